import json
import os
import subprocess
import sys

import pytest
import torch

from csdn.engine import load_checkpoint
from csdn.engine.batching import paired_batches, shuffled_batches
from csdn.engine.distributed import DistInfo, dist_info_from_env, resolve_device

from .conftest import TINY_OVERRIDES


def test_env_parsing(monkeypatch):
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    assert dist_info_from_env() == DistInfo(0, 1, 0) and not DistInfo().distributed
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", "1")
    info = dist_info_from_env()
    assert info == DistInfo(1, 2, 1) and info.distributed and not info.is_main
    monkeypatch.setenv("RANK", "2")
    with pytest.raises(ValueError, match="outside 0..WORLD_SIZE-1"):
        dist_info_from_env()
    monkeypatch.setenv("RANK", "x")
    with pytest.raises(ValueError, match="RANK='x' is invalid"):
        dist_info_from_env()


def test_resolve_device():
    assert resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(ValueError, match="expected auto, cpu, cuda or cuda:N"):
        resolve_device("gpu0")
    if not torch.cuda.is_available():
        assert resolve_device("auto") == torch.device("cpu")
        with pytest.raises(ValueError, match="CUDA is not available"):
            resolve_device("cuda")


def test_stage1_batches_are_identity_aligned_and_sharded():
    vis = torch.tensor([0, 0, 0, 1, 1, 2, 2, 2, 2, 3])
    ir = torch.tensor([3, 2, 1, 0, 1, 2])
    batches = paired_batches(vis, ir, 3, torch.Generator().manual_seed(0))
    assert len(batches) == 10 // 3
    seen = torch.cat([v for v, _ in batches])
    assert len(set(seen.tolist())) == seen.numel() == 9  # the larger modality is visited without repetition
    for v, i in batches:
        assert torch.equal(vis[v], ir[i])  # pair k of a batch has the same identity on both sides
    shards = [paired_batches(vis, ir, 2, torch.Generator().manual_seed(1), r, 2) for r in (0, 1)]
    assert len(shards[0]) == len(shards[1]) == 2  # 5 batches -> 2 per rank, equal counts
    flat = [tuple(v.tolist()) for shard in shards for v, _ in shard]
    assert len(set(flat)) == 4
    with pytest.raises(ValueError, match="only one modality"):
        paired_batches(torch.tensor([0, 5]), torch.tensor([0, 0]), 1, torch.Generator())
    order = shuffled_batches(10, 4, torch.Generator().manual_seed(0))
    assert [b.numel() for b in order] == [4, 4] and len(set(torch.cat(order).tolist())) == 8


def stage3_losses(run_dir):
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [json.loads(x)["loss"] for x in lines if '"stage3/epoch"' in x]


def test_torchrun_ddp_two_cpu_processes(tmp_path, sysu_root):
    sets = [*TINY_OVERRIDES, "stage3.epochs=4", "runtime.deterministic=false"]
    args = [x for item in sets for x in ("--set", item)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    single = tmp_path / "single"
    cmd = [sys.executable, "-m", "csdn", "-q", "train", "--preset", "demo", "--root", str(sysu_root), "--no-eval"]
    done = subprocess.run([*cmd, *args, "--set", f"runtime.output_dir={single}"], env=env, capture_output=True,
                          text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr
    ddp = tmp_path / "ddp"
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "csdn"]
    done = subprocess.run([*launcher, *cmd[3:], *args, "--set", f"runtime.output_dir={ddp}"], env=env,
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]  # torchrun fails if any rank fails
    assert sorted(os.listdir(ddp / "checkpoints")) == ["final.pt", "last.pt"]  # rank 0 alone writes
    events = [json.loads(x)["event"] for x in (ddp / "metrics.jsonl").read_text().splitlines()]
    assert events == ["stage1/epoch"] * 2 + ["stage2/epoch"] * 2 + ["stage3/epoch"] * 4  # written once
    for run_dir in (single, ddp):
        losses = stage3_losses(run_dir)
        assert losses[-1] < losses[0]  # same shape: the stage-3 loss goes down in both runs
    steps = {name: [json.loads(x)["steps"] for x in (d / "metrics.jsonl").read_text().splitlines()]
             for name, d in (("single", single), ("ddp", ddp))}  # fmt: skip
    assert steps["single"][-4:] == steps["ddp"][-4:]  # stage 3: the same global batches, so the same step count
    assert len(load_checkpoint(ddp / "checkpoints" / "last.pt")["rng_ranks"]) == 2  # each rank's random streams
    state = load_checkpoint(ddp / "checkpoints" / "final.pt")
    assert all(torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point())
