"""A run removes only what it created, and never writes through a link (its lock, logs, metrics, checkpoints)."""

import logging
import os
import subprocess
import sys

import pytest
import torch

from csdn._io import UnsafeFileError, atomic_write_text, open_append
from csdn.engine.run_dir import LOCK_NAME, claim_run_folder
from csdn.engine.tracking import MetricsLogger, write_run_files
from csdn.models.checkpoint import save_checkpoint

# run B: claims its folder, writes its files through csdn's writers, says so, and holds on until told to end
NESTED_RUN = """
import sys, torch
from csdn._io import atomic_write_text, open_append
from csdn.engine.run_dir import claim_run_folder
from csdn.models.checkpoint import save_checkpoint
folder = sys.argv[1]
with claim_run_folder(folder) as claim:
    atomic_write_text(folder + "/config.yaml", "b: 1\\n")
    atomic_write_text(folder + "/run.json", "{}\\n")
    with open_append(folder + "/train.log") as log, open_append(folder + "/metrics.jsonl") as metrics:
        log.write("B trains\\n"), metrics.write("{}\\n")
    save_checkpoint({"w": torch.ones(2)}, folder + "/checkpoints/last.pt")
    claim.mark_started()
    print("written", flush=True)
    sys.stdin.read()
"""
B_FILES = ["checkpoints", "checkpoints/last.pt", "config.yaml", "metrics.jsonl", "run.json", "train.log"]

OTHER_WRITER = """
import pathlib, sys
folder = pathlib.Path(sys.argv[1])
(folder / "notes.txt").write_text("mine")
(folder / "checkpoints" / "theirs.pt").write_bytes(b"theirs")
(folder / "shared").mkdir()
"""


@pytest.fixture
def run_b():
    procs = []

    def start(folder):
        proc = subprocess.Popen(
            [sys.executable, "-c", NESTED_RUN, str(folder)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        procs.append(proc)
        assert proc.stdout.readline().strip() == "written"
        return proc

    yield start
    for proc in procs:
        if not proc.stdin.closed:
            proc.stdin.close()
        proc.wait(timeout=60)
        proc.stdout.close()


def _tree(folder):
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def _write_a_runs_files(folder):
    atomic_write_text(folder / "config.yaml", "a: 1\n")
    with open_append(folder / "train.log") as log:
        log.write("A starts\n")
    save_checkpoint({"w": torch.zeros(2)}, folder / "checkpoints" / "features_stage1.pt")


def test_a_nested_run_survives_the_outer_runs_failed_start(tmp_path, run_b):
    outer = tmp_path / "runs" / "nest"
    with pytest.raises(RuntimeError, match="stage-1 extraction failed"), claim_run_folder(outer):
        _write_a_runs_files(outer)
        b = run_b(outer / "inner")  # run B starts in a folder inside A's while A is still starting
        raise RuntimeError("stage-1 extraction failed")  # e.g. SIGTERM before A's first epoch
    assert _tree(outer) == sorted(["inner", *[f"inner/{name}" for name in [*B_FILES, LOCK_NAME]]])
    assert f'"pid": {b.pid}' in (outer / "inner" / LOCK_NAME).read_text()  # B still holds its folder
    assert torch.equal(torch.load(outer / "inner" / "checkpoints" / "last.pt")["w"], torch.ones(2))
    b.stdin.close()
    assert b.wait(timeout=60) == 0
    assert _tree(outer / "inner") == B_FILES  # B released its lock and kept its files


def test_files_another_process_writes_during_the_start_are_kept(tmp_path, caplog):
    folder = tmp_path / "run"
    with caplog.at_level(logging.INFO, logger="csdn.engine.run_dir"):
        with pytest.raises(KeyboardInterrupt), claim_run_folder(folder):
            _write_a_runs_files(folder)
            subprocess.run([sys.executable, "-c", OTHER_WRITER, str(folder)], check=True)
            raise KeyboardInterrupt
    # A's config.yaml, train.log and feature cache are gone; the other process's files, and the folders
    # holding them, stay
    assert _tree(folder) == ["checkpoints", "checkpoints/theirs.pt", "notes.txt", "shared"]
    assert "removed the 3 entries it created" in caplog.text
    assert f"kept 1 of the entries the failed run created in {folder}, as they now are or hold another" in caplog.text


def test_a_file_replaced_by_another_process_is_kept(tmp_path):
    folder = tmp_path / "run"
    with pytest.raises(RuntimeError), claim_run_folder(folder):
        atomic_write_text(folder / "config.yaml", "a: 1\n")
        os.replace(_other_file(tmp_path, "theirs: 1\n"), folder / "config.yaml")  # another writer's rename
        raise RuntimeError
    assert (folder / "config.yaml").read_text() == "theirs: 1\n"


def test_a_trainer_failing_at_start_leaves_a_nested_run_alone(tmp_path, tiny_cfg, sysu_train, run_b, monkeypatch):
    from csdn.engine import Trainer, build_csdn, trainer

    nest = tmp_path / "runs" / "nest"
    started = []

    def write_run_files_then_start_b(*args):  # run B starts in A's folder while A is still starting
        trainer_files = write_run_files(*args)
        started.append(run_b(nest / "inner"))
        return trainer_files

    monkeypatch.setattr(trainer, "write_run_files", write_run_files_then_start_b)
    cfg = tiny_cfg("stage1.batch_size=200", output="runs/nest")  # stops at stage 1 (bank smaller than a batch)
    run = Trainer(cfg, build_csdn(cfg, sysu_train.num_classes), sysu_train)
    with pytest.raises(ValueError, match="stage1.batch_size=200 is larger than the stage-1 feature bank"):
        run.fit()
    (b,) = started
    assert _tree(nest) == sorted(["inner", *[f"inner/{name}" for name in [*B_FILES, LOCK_NAME]]])  # A's own files: gone
    b.stdin.close()
    assert b.wait(timeout=60) == 0


def _other_file(tmp_path, text):
    path = tmp_path / "elsewhere.txt"
    path.write_text(text)
    return path


# ------------------------------------------------------------------------------------------ no link followed
@pytest.fixture
def victim(tmp_path):
    path = tmp_path / "precious.txt"
    path.write_text("do not touch\n")
    return path


@pytest.mark.parametrize("dangling", [False, True])
def test_a_lock_file_symlink_is_refused_and_its_target_untouched(tmp_path, victim, dangling):
    folder = tmp_path / "run"
    folder.mkdir()
    target = tmp_path / "missing.txt" if dangling else victim
    (folder / LOCK_NAME).symlink_to(target)
    with pytest.raises(UnsafeFileError, match=rf"lock file '{folder / LOCK_NAME}' is a symbolic link: csdn writes"):
        with claim_run_folder(folder):
            pass
    assert victim.read_text() == "do not touch\n" and not (tmp_path / "missing.txt").exists()
    assert (folder / LOCK_NAME).is_symlink()  # left for the user to inspect


def test_a_hard_linked_lock_file_is_refused(tmp_path, victim):
    folder = tmp_path / "run"
    folder.mkdir()
    os.link(victim, folder / LOCK_NAME)
    with pytest.raises(UnsafeFileError, match=r"run.lock' has 2 hard links"):
        with claim_run_folder(folder):
            pass
    assert victim.read_text() == "do not touch\n"


@pytest.mark.parametrize("kind", ["folder", "fifo"])
def test_a_lock_that_is_not_a_regular_file_is_refused(tmp_path, kind):
    folder = tmp_path / "run"
    folder.mkdir()
    os.mkdir(folder / LOCK_NAME) if kind == "folder" else os.mkfifo(folder / LOCK_NAME)
    with pytest.raises(UnsafeFileError, match=r"run.lock' is not a regular file"):
        with claim_run_folder(folder):
            pass


def test_release_removes_only_the_file_it_locked(tmp_path):
    folder = tmp_path / "run"
    with claim_run_folder(folder) as claim:
        claim.mark_started()
        os.unlink(folder / LOCK_NAME)
        (folder / LOCK_NAME).write_text("another run's lock\n")  # e.g. someone deleted ours and a new run locked
    assert (folder / LOCK_NAME).read_text() == "another run's lock\n"


def test_metrics_and_log_files_are_never_written_through_links(tmp_path, victim):
    from csdn.engine.logs import RunFileHandler

    (tmp_path / "metrics.jsonl").symlink_to(victim)
    with pytest.raises(UnsafeFileError, match=r"metrics.jsonl' is a symbolic link: csdn never writes through"):
        MetricsLogger(tmp_path / "metrics.jsonl").log("stage1/epoch", step=0, loss=1.0)
    (tmp_path / "train.log").symlink_to(victim)
    with pytest.raises(UnsafeFileError, match=r"train.log' is a symbolic link"):
        RunFileHandler(tmp_path / "train.log")
    assert victim.read_text() == "do not touch\n"


def test_run_files_and_checkpoints_replace_links_instead_of_following_them(tmp_path, tiny_cfg, victim, monkeypatch):
    cfg = tiny_cfg()
    out = tmp_path / "run"
    (out / "checkpoints").mkdir(parents=True)
    for name in ("config.yaml", "run.json", "checkpoints/last.pt"):
        (out / name).symlink_to(victim)
    write_run_files(out, cfg)
    save_checkpoint({"w": torch.zeros(1)}, out / "checkpoints" / "last.pt")
    assert victim.read_text() == "do not touch\n"
    assert not any((out / name).is_symlink() for name in ("config.yaml", "run.json", "checkpoints/last.pt"))
    # the temporary file is created exclusively: a link planted at its (normally unguessable) name is refused
    import csdn._io

    monkeypatch.setattr(csdn._io.secrets, "token_hex", lambda n: "0a1b2c3d")
    planted = out / f".final.{os.getpid()}.0a1b2c3d.tmp.pt"
    planted.symlink_to(victim)
    with pytest.raises(FileExistsError):
        save_checkpoint({"w": torch.zeros(1)}, out / "final.pt")
    assert victim.read_text() == "do not touch\n" and not (out / "final.pt").exists()


def test_csdn_train_on_a_linked_lock_exits_2_with_one_line(capsys, tmp_path, sysu_root, victim):
    from csdn.cli import main

    from .conftest import TINY_OVERRIDES

    out = tmp_path / "run"
    out.mkdir()
    (out / LOCK_NAME).symlink_to(victim)
    sets = [x for item in [*TINY_OVERRIDES, f"runtime.output_dir={out}"] for x in ("--set", item)]
    code = main(["-q", "train", "--preset", "demo", "--root", str(sysu_root), "--no-eval", *sets])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1, err
    assert err.startswith(f"csdn: error: lock file {str(out / LOCK_NAME)!r} is a symbolic link: csdn writes its lock")
    assert victim.read_text() == "do not touch\n" and sorted(p.name for p in out.iterdir()) == [LOCK_NAME]


def test_resume_tidies_only_its_own_places_never_a_nested_run(tmp_path):
    from csdn.engine.run_dir import tidy_for_resume

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    pid = int(dead.stdout)
    ours = [tmp_path / f".run.{pid}.0a1b2c3d.tmp.json", tmp_path / "checkpoints" / f".last.{pid}.0a1b2c3d.tmp.pt"]
    inner = tmp_path / "inner" / "checkpoints"  # another run's folder, its own leftovers are its own business
    theirs = inner / f".last.{pid}.0a1b2c3d.tmp.pt"
    for path in [*ours, theirs]:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"half")
    tidy_for_resume(tmp_path, stage=1, epoch=1)
    assert [p.exists() for p in [*ours, theirs]] == [False, False, True]


def test_a_failed_start_removes_the_tensorboard_files_it_created(tmp_path, monkeypatch):
    import types

    class FakeSummaryWriter:  # what the run needs of torch.utils.tensorboard.SummaryWriter: its event file's name
        def __init__(self, logdir):
            os.makedirs(logdir, exist_ok=True)
            name = os.path.join(logdir, f"events.out.tfevents.0.host.{os.getpid()}.0")
            open(name, "wb").close()
            self.file_writer = types.SimpleNamespace(event_writer=types.SimpleNamespace(_file_name=name))

        def add_scalar(self, *args):
            pass

    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", types.SimpleNamespace(SummaryWriter=FakeSummaryWriter))
    folder = tmp_path / "run"
    folder.mkdir()
    metrics = MetricsLogger(folder / "metrics.jsonl", folder / "tensorboard")
    assert not (folder / "tensorboard").exists()  # made at the first record, inside the claim
    with pytest.raises(RuntimeError), claim_run_folder(folder):
        metrics.log("stage1/iter", step=0, loss=1.0)
        assert len(os.listdir(folder / "tensorboard")) == 1
        raise RuntimeError
    assert _tree(folder) == []
