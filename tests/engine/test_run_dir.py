"""Run folders: one run at a time (stale locks taken over), failed starts undo their creations, resume tidies."""

import json
import logging
import os
import platform
import subprocess
import sys

import pytest
import torch

from csdn._io import atomic_write_text, open_append
from csdn.engine.run_dir import LOCK_NAME, RunFolderBusyError, claim_run_folder, tidy_for_resume
from csdn.models.checkpoint import save_checkpoint

HOLDER = """
import sys
from csdn.engine.run_dir import claim_run_folder
with claim_run_folder(sys.argv[1]):
    print("held", flush=True)
    sys.stdin.read()
"""


@pytest.fixture
def held_by_other_process(tmp_path):
    """Start a process holding the lock of a folder; yields ``(folder, pid)`` and ends the process after."""

    def hold(folder):
        proc = subprocess.Popen(
            [sys.executable, "-c", HOLDER, str(folder)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        assert proc.stdout.readline().strip() == "held"
        procs.append(proc)
        return proc.pid

    procs = []
    yield hold
    for proc in procs:
        proc.communicate(timeout=30)


def _dead_pid():
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_second_claim_is_refused_naming_the_holder(tmp_path, held_by_other_process):
    folder = tmp_path / "run"
    pid = held_by_other_process(folder)
    with pytest.raises(RunFolderBusyError, match=rf"'{folder}' is in use by pid {pid} on host {platform.node()}, st"):
        with claim_run_folder(folder):
            pass
    assert (folder / LOCK_NAME).is_file()  # the holder's lock is left alone


def test_a_stale_lock_of_a_dead_process_is_taken_over(tmp_path, caplog):
    folder = tmp_path / "run"
    folder.mkdir()
    dead = _dead_pid()
    record = {"pid": dead, "host": platform.node(), "started": "2026-01-01 00:00:00 UTC"}
    (folder / LOCK_NAME).write_text(json.dumps(record))
    with caplog.at_level(logging.WARNING, logger="csdn.engine.run_dir"), claim_run_folder(folder) as claim:
        held = json.loads((folder / LOCK_NAME).read_text())
        claim.mark_started()
    assert f"taking over the lock of a run that ended without releasing it (pid {dead} on host" in caplog.text
    assert held["pid"] == os.getpid() and held["host"] == platform.node()
    assert not (folder / LOCK_NAME).exists()  # released at the end


def test_nested_claims_share_the_outer_one(tmp_path):
    with claim_run_folder(tmp_path / "run") as outer, claim_run_folder(tmp_path / "run") as inner:
        assert inner is outer
    with claim_run_folder(tmp_path / "run"):  # free again
        pass


def test_a_failed_start_removes_only_what_it_created(tmp_path):
    # what csdn's writers create is recorded at creation; only that is removed
    fresh = tmp_path / "runs" / "fresh"
    with pytest.raises(RuntimeError), claim_run_folder(fresh):
        save_checkpoint({"x": torch.zeros(1)}, fresh / "checkpoints" / "features_stage1.pt")
        with open_append(fresh / "train.log") as log:
            log.write("started\n")
        raise RuntimeError("missing CLIP file")
    assert not (tmp_path / "runs").exists()  # the parents the claim created go too

    old = tmp_path / "old"
    (old / "checkpoints").mkdir(parents=True)
    (old / "checkpoints" / "last.pt").write_bytes(b"ckpt")
    (old / "train.log").write_text("earlier run\n")
    with pytest.raises(KeyboardInterrupt), claim_run_folder(old):
        with open_append(old / "train.log") as log:
            log.write("this run\n")
        save_checkpoint({"x": torch.zeros(1)}, old / "checkpoints" / "features_stage1.pt")
        atomic_write_text(old / "tensorboard" / "events", "x")
        raise KeyboardInterrupt
    assert sorted(str(p.relative_to(old)) for p in old.rglob("*")) == [
        "checkpoints",
        "checkpoints/last.pt",
        "train.log",
    ]
    assert (old / "train.log").read_text() == "earlier run\nthis run\n"  # appended to, not created: kept


def test_a_failure_after_the_first_epoch_keeps_everything(tmp_path):
    folder = tmp_path / "run"
    with pytest.raises(RuntimeError), claim_run_folder(folder) as claim:
        (folder / "metrics.jsonl").write_text("{}\n")
        claim.mark_started()
        raise RuntimeError("epoch 2 failed")
    assert sorted(p.name for p in folder.iterdir()) == ["metrics.jsonl"]


def test_tidy_for_resume_removes_dead_temp_files_and_later_metrics(tmp_path):
    (tmp_path / "checkpoints").mkdir()
    dead, alive = _dead_pid(), os.getppid()
    stale = [tmp_path / "checkpoints" / f".last.{dead}.0a1b2c3d.tmp.pt", tmp_path / f".run.{dead}.deadbeef.tmp.json"]
    kept = [tmp_path / "checkpoints" / f".last.{alive}.0a1b2c3d.tmp.pt", tmp_path / "checkpoints" / "last.pt"]
    for path in stale + kept:
        path.write_bytes(b"x")
    records = [
        {"event": "stage1/epoch", "step": 0},
        {"event": "stage1/epoch", "step": 1},
        {"event": "stage3/epoch", "step": 0},
        {"event": "stage3/eval", "step": 0},
        {"event": "stage3/epoch", "step": 1},  # after the checkpoint (stage 3, 1 epoch done): written again
        {"event": "note", "step": None},
        {"event": "stage3/eval", "step": 1},
        {"event": "stage4/epoch", "step": 0},
    ]
    text = "".join(json.dumps(r) + "\n" for r in records) + '{"event": "stage3/ep'  # a line cut short by a kill
    (tmp_path / "metrics.jsonl").write_text(text)
    tidy_for_resume(tmp_path, stage=3, epoch=1)
    assert [p.exists() for p in stale + kept] == [False, False, True, True]
    left = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert left == [records[i] for i in (0, 1, 2, 3, 5)]


def test_trainer_fit_holds_its_folder(tmp_path, tiny_cfg, sysu_train, held_by_other_process):
    from csdn.engine import Trainer, build_csdn

    cfg = tiny_cfg()
    pid = held_by_other_process(cfg.runtime.output_dir)
    trainer = Trainer(cfg, build_csdn(cfg, sysu_train.num_classes), sysu_train)
    with pytest.raises(RunFolderBusyError, match=f"is in use by pid {pid} on host"):
        trainer.fit()


def test_under_torchrun_every_rank_stops_on_a_held_folder(tmp_path, sysu_root, held_by_other_process):
    from .conftest import TINY_OVERRIDES

    out = tmp_path / "run"
    pid = held_by_other_process(out)
    sets = [x for item in [*TINY_OVERRIDES, f"runtime.output_dir={out}"] for x in ("--set", item)]
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "csdn"]
    done = subprocess.run(
        [*launcher, "-q", "train", "--preset", "demo", "--root", str(sysu_root), "--no-eval", *sets],
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        capture_output=True,
        text=True,
        timeout=240,
    )  # fmt: skip  (a rank waiting forever would hit the timeout)
    assert done.returncode != 0
    assert done.stderr.count(f"csdn: error: run folder {str(out)!r} is in use by pid {pid}") == 2, done.stderr[-2000:]


def test_without_os_locks_the_record_file_is_the_lock(tmp_path, monkeypatch, caplog):
    from csdn.engine import run_dir

    monkeypatch.setattr(run_dir, "fcntl", None)  # as on Windows
    folder = tmp_path / "run"
    folder.mkdir()
    alive = {"pid": os.getppid(), "host": platform.node(), "started": "2026-01-01 00:00:00 UTC"}
    (folder / LOCK_NAME).write_text(json.dumps(alive))
    with pytest.raises(RunFolderBusyError, match=f"in use by pid {os.getppid()} .* if that run is gone, delete"):
        with claim_run_folder(folder):
            pass
    (folder / LOCK_NAME).write_text(json.dumps({**alive, "pid": _dead_pid()}))
    with caplog.at_level(logging.WARNING, logger="csdn.engine.run_dir"), claim_run_folder(folder) as claim:
        assert json.loads((folder / LOCK_NAME).read_text())["pid"] == os.getpid()
        claim.mark_started()
    assert "is locked by its record file only" in caplog.text and "taking over the lock" in caplog.text
    assert not (folder / LOCK_NAME).exists()


def test_a_trainer_that_fails_before_its_first_epoch_leaves_no_folder(tmp_path, tiny_cfg, sysu_train):
    from csdn.engine import Trainer, build_csdn

    cfg = tiny_cfg(output="runs/new")
    trainer = Trainer(cfg, build_csdn(cfg, sysu_train.num_classes), sysu_train)
    with pytest.raises(FileNotFoundError, match="nothing to resume"):
        trainer.fit(resume=True)
    assert not (tmp_path / "runs" / "new").exists()
