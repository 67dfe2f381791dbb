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
# Stage-3 settings of the end-to-end comparisons: 2 epochs at a moderate learning rate. Adam turns round-off-sized
# gradients into steps of up to lr, so at high rates summation-order noise (1 vs 2 processes differ only in that)
# grows chaotically; the per-step gradients are compared exactly in test_one_step_on_two_ranks_equals_one_rank.
STAGE3 = ["stage3.epochs=2", "stage3.lr=3e-4", "data.erasing_p=0.5", "data.flip_p=0.5"]
# The attention pool's key bias adds the same logit to every key of a query, which the softmax cancels: its
# gradient is zero in exact arithmetic, so Adam moves it on round-off alone (it changes no output).
NOISE_ONLY = {"image_encoder.attnpool.k_proj.bias"}
OFFICIAL = [f"quirks.{name}=true" for name in ("bn_train_extraction", "dropout_text_bank", "sampled_feature_bank")]


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
        if ta.is_floating_point() and key not in NOISE_ONLY:
            scale = max(float(ta.abs().max()), 1e-12)
            assert float((ta - tb).abs().max()) <= TOL * scale, key
        elif not ta.is_floating_point():  # BatchNorm counters
            assert torch.equal(ta, tb), key


def test_two_processes_train_the_single_process_recipe(tmp_path, sysu_root):
    """torchrun with 2 gloo processes (2 loader workers each) writes the final.pt of 1 process (0 workers)."""
    single, ddp = tmp_path / "single", tmp_path / "ddp"
    _train(single, sysu_root, STAGE3)
    done = _train(ddp, sysu_root, [*STAGE3, "data.num_workers=2"], nproc=2)
    assert "FutureWarning" not in done.stderr  # DDP's deprecated broadcast_buffers, the deprecated collectives
    assert sorted(os.listdir(ddp / "checkpoints")) == ["final.pt", "last.pt"]  # rank 0 alone writes
    events = [e["event"] for e in _epochs(ddp)]
    assert events == ["stage1/epoch"] * 2 + ["stage2/epoch"] * 2 + ["stage3/epoch"] * 2  # written once
    assert len(load_checkpoint(ddp / "checkpoints" / "last.pt")["rng_ranks"]) == 2  # each rank's random streams
    assert [e["steps"] for e in _epochs(ddp)] == [7, 7, 5, 5, 8, 8]  # 62 // 8, (62 + 28) // 16, 62 // 8 + 1
    _assert_same_run(single, ddp)


def test_two_processes_match_one_under_the_official_procedure(tmp_path, sysu_root):
    """The official quirks: BN-train extraction (global statistics), dropout text bank, sampled feature bank."""
    single, ddp = tmp_path / "single", tmp_path / "ddp"
    _train(single, sysu_root, [*STAGE3, *OFFICIAL, "data.num_workers=2", "stage1.batch_size=6"])
    _train(ddp, sysu_root, [*STAGE3, *OFFICIAL, "stage1.batch_size=6"], nproc=2)
    _assert_same_run(single, ddp)


def test_ablate_under_torchrun_trains_the_single_process_variant_and_writes_the_study_once(tmp_path, sysu_root):
    """``csdn ablate`` on 2 processes: the variant's run equals the 1-process one; rank 0 alone writes the study."""
    args = [x for item in [*TINY_OVERRIDES, *STAGE3] for x in ("--set", item)]
    base = ["-m", "csdn", "-q", "ablate", "--preset", "demo", "--root", str(sysu_root), "--variants", "csdn"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    outputs = {}
    torchrun = ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    for name, launcher in (("single", []), ("ddp", torchrun)):
        cmd = [sys.executable, *launcher, *base, "--out", str(tmp_path / name), "--no-report", "--trials", "2", *args]
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]
        outputs[name] = done.stdout
    assert outputs["ddp"].count("results: ") == outputs["single"].count("results: ") == 1  # the study's files, once
    _assert_same_run(tmp_path / "single" / "csdn", tmp_path / "ddp" / "csdn")
    single, ddp = (json.loads((tmp_path / name / "ablation.json").read_text()) for name in ("single", "ddp"))
    assert ddp == single  # plan, configuration and every metric of the table


# ------------------------------------------------------------------------------- one step, gradient level

STAGE_GRADS = Path(__file__).parent / "distributed_scripts" / "stage_grads.py"


def test_one_step_on_two_ranks_equals_one_rank(tmp_path, sysu_root):
    """For every stage: the loss and the DDP-averaged gradient of one step on 2 ranks are the 1-process ones."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    one, two = tmp_path / "one", tmp_path / "two"
    one.mkdir(), two.mkdir()
    runs = [
        [sys.executable, str(STAGE_GRADS), str(sysu_root), str(one)],
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", str(STAGE_GRADS)]
        + [str(sysu_root), str(two)],
    ]
    for cmd in runs:
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]
    expected = torch.load(one / "rank0.pt", weights_only=True)
    assert sorted(expected) == ["buffers", "stage1", "stage2", "stage3"]
    for rank in range(2):
        got = torch.load(two / f"rank{rank}.pt", weights_only=True)
        for part, values in expected.items():
            assert got[part].keys() == values.keys(), part
            for key, value in values.items():
                if not value.is_floating_point():  # BatchNorm counters
                    assert torch.equal(got[part][key], value), (part, key)
                    continue
                if key in NOISE_ONLY:  # zero in exact arithmetic: round-off on both sides
                    largest = max(float(v.abs().max()) for v in values.values() if v.is_floating_point())
                    assert max(float(value.abs().max()), float(got[part][key].abs().max())) <= 1e-4 * largest
                    continue
                finite = torch.isfinite(value)  # the text attention mask holds -inf
                assert torch.equal(got[part][key][~finite], value[~finite]), (rank, part, key)
                value, other = value[finite], got[part][key][finite]
                scale = max(float(value.abs().max()), 1e-12)
                assert float((other - value).abs().max()) <= 1e-5 * scale, (rank, part, key)
    for part in ("stage1", "stage2", "stage3"):
        grads = [v for k, v in expected[part].items() if k != "loss"]
        assert grads and sum(float(g.norm()) for g in grads) > 1e-3, part  # real gradients, not matching zeros
    tracked = [v for k, v in expected["buffers"].items() if k.endswith("num_batches_tracked")]
    assert min(int(t) for t in tracked) >= 1 and max(int(t) for t in tracked) > 1  # stage 3 + BN-train extraction


def test_bn_train_extraction_with_uneven_and_empty_shares(tmp_path, sysu_root):
    """9 images in batches of 4 on 2 ranks: shares 2/2, 2/2 and 0/1; features and BN statistics as 1 process."""
    script = Path(__file__).parent / "distributed_scripts" / "extract_bn.py"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    one, two = tmp_path / "one", tmp_path / "two"
    one.mkdir(), two.mkdir()
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    for cmd in (
        [sys.executable, str(script), str(sysu_root), str(one)],
        [*launcher, str(script), str(sysu_root), str(two)],
    ):
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]
    expected = torch.load(one / "rank0.pt", weights_only=True)
    assert expected["features"].shape[0] == 9 and expected["image_encoder.stems.visible.bn1.num_batches_tracked"] == 3
    for rank in range(2):
        got = torch.load(two / f"rank{rank}.pt", weights_only=True)
        assert got.keys() == expected.keys()
        for key, value in expected.items():
            if value.is_floating_point():
                scale = max(float(value.abs().max()), 1e-12)
                assert float((got[key] - value).abs().max()) <= 1e-5 * scale, (rank, key)
            else:
                assert torch.equal(got[key], value), (rank, key)
