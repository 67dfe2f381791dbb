import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from csdn.engine import load_checkpoint
from csdn.engine.batching import paired_batches, shuffled_batches
from csdn.engine.build import build_csdn
from csdn.engine.distributed import DistInfo, dist_info_from_env, resolve_device
from csdn.engine.trainer import Trainer

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


def test_stage1_batches_are_identity_aligned():
    vis = torch.tensor([0, 0, 0, 1, 1, 2, 2, 2, 2, 3])
    ir = torch.tensor([3, 2, 1, 0, 1, 2])
    batches = paired_batches(vis, ir, 3, torch.Generator().manual_seed(0))
    assert len(batches) == 10 // 3
    seen = torch.cat([v for v, _ in batches])
    assert len(set(seen.tolist())) == seen.numel() == 9  # the larger modality is visited without repetition
    for v, i in batches:
        assert torch.equal(vis[v], ir[i])  # pair k of a batch has the same identity on both sides
    with pytest.raises(ValueError, match="only one modality"):
        paired_batches(torch.tensor([0, 5]), torch.tensor([0, 0]), 1, torch.Generator())
    order = shuffled_batches(10, 4, torch.Generator().manual_seed(0))
    assert [b.numel() for b in order] == [4, 4] and len(set(torch.cat(order).tolist())) == 8


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        (["stage1.batch_size=8"], "stage1.batch_size=8: the global batch of 8 items cannot be split evenly over 3"),
        (["stage1.batch_size=9", "stage2.batch_size=16"], "stage2.batch_size=16: the global batch of 16 items"),
        (["stage1.batch_size=9", "stage2.batch_size=18"], "stage3.num_ids x stage3.num_pos=8: the global batch"),
    ],
)
def test_world_size_that_cannot_split_a_batch_fails_at_start(tiny_cfg, sysu_train, sets, message):
    cfg = tiny_cfg(*sets)  # stage 3: 4 ids x 2 images = 8 pairs per global batch
    model = build_csdn(cfg, sysu_train.num_classes, torch.device("cpu"))
    with pytest.raises(ValueError, match=message) as error:
        Trainer(cfg, model, sysu_train, dist_info=DistInfo(0, 3, 0))
    assert "use a world size that divides" in str(error.value)
    assert not (Path(cfg.runtime.output_dir) / "checkpoints").exists()  # nothing written before the check


# ------------------------------------------------------------------------- 2 processes = 1 process, end to end

TOL = 1e-4


def _train(run_dir: Path, root: Path, sets: list[str], nproc: int = 1) -> subprocess.CompletedProcess:
    args = [x for item in [*TINY_OVERRIDES, *sets, f"runtime.output_dir={run_dir}"] for x in ("--set", item)]
    cmd = ["-m", "csdn", "-q", "train", "--preset", "demo", "--root", str(root), "--no-eval", *args]
    if nproc > 1:
        cmd = ["-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}", *cmd]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "default"}
    done = subprocess.run([sys.executable, *cmd], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]  # torchrun fails if any rank fails
    return done


def _epochs(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def _assert_same_run(a: Path, b: Path) -> None:
    """Same optimizer steps and losses per epoch, same final tensors (1e-4 of their magnitude), same counters."""
    epochs_a, epochs_b = _epochs(a), _epochs(b)
    assert [e["event"] for e in epochs_a] == [e["event"] for e in epochs_b]
    for ea, eb in zip(epochs_a, epochs_b, strict=True):
        assert ea["steps"] == eb["steps"], (ea, eb)
        for key in set(ea) - {"event", "step", "steps", "seconds", "time"}:
            if isinstance(ea[key], float):
                assert abs(ea[key] - eb[key]) <= TOL * max(abs(ea[key]), 1e-8), (ea["event"], key, ea[key], eb[key])
    final_a, final_b = (load_checkpoint(d / "checkpoints" / "final.pt")["model"] for d in (a, b))
    assert final_a.keys() == final_b.keys()
    for key, ta in final_a.items():
        tb = final_b[key]
        if ta.is_floating_point():
            scale = max(float(ta.abs().max()), 1e-12)
            assert float((ta - tb).abs().max()) <= TOL * scale, key
        else:  # BatchNorm counters, token ids
            assert torch.equal(ta, tb), key


def test_two_processes_train_the_single_process_recipe(tmp_path, sysu_root):
    """torchrun with 2 gloo processes writes the final.pt of 1 process (augmentations on, every stage)."""
    sets = ["stage3.epochs=2", "data.erasing_p=0.5", "data.flip_p=0.5"]
    single, ddp, workers = tmp_path / "single", tmp_path / "ddp", tmp_path / "workers"
    _train(single, sysu_root, sets)
    done = _train(ddp, sysu_root, sets, nproc=2)
    assert "broadcast_buffers" not in done.stderr and "FutureWarning" not in done.stderr
    assert sorted(os.listdir(ddp / "checkpoints")) == ["final.pt", "last.pt"]  # rank 0 alone writes
    events = [e["event"] for e in _epochs(ddp)]
    assert events == ["stage1/epoch"] * 2 + ["stage2/epoch"] * 2 + ["stage3/epoch"] * 2  # written once
    assert len(load_checkpoint(ddp / "checkpoints" / "last.pt")["rng_ranks"]) == 2  # each rank's random streams
    _assert_same_run(single, ddp)
    _train(workers, sysu_root, [*sets, "data.num_workers=2"])  # loader workers do not change the images
    _assert_same_run(single, workers)


def test_two_processes_match_one_under_the_official_procedure(tmp_path, sysu_root):
    """The official quirks: BN-train extraction (global statistics), dropout text bank, sampled feature bank."""
    sets = [
        "stage3.epochs=2",
        *(f"quirks.{q}=true" for q in ("bn_train_extraction", "dropout_text_bank", "sampled_feature_bank")),
        "stage1.batch_size=6",
    ]
    single, ddp = tmp_path / "single", tmp_path / "ddp"
    _train(single, sysu_root, sets)
    _train(ddp, sysu_root, sets, nproc=2)
    _assert_same_run(single, ddp)
