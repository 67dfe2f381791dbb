"""csdn._io: the atomic-write helper every csdn writer uses."""

import os
import stat

import pytest
import torch

from csdn._io import atomic_path, atomic_write_text
from csdn.engine import save_checkpoint


@pytest.fixture
def umask_022():
    previous = os.umask(0o022)
    yield 0o022
    os.umask(previous)


def test_success_replaces_the_target_and_leaves_nothing_else(tmp_path):
    target = tmp_path / "sub" / "plot.png"  # the folder is created
    with atomic_path(target) as tmp:
        assert tmp.parent == target.parent and tmp.name.startswith(".") and tmp.suffix == ".png"
        assert not tmp.exists() and not target.exists()
        tmp.write_bytes(b"new")
    assert target.read_bytes() == b"new"
    assert os.listdir(target.parent) == ["plot.png"]


def test_failure_keeps_the_old_file_and_removes_the_temporary(tmp_path):
    target = tmp_path / "results.json"
    target.write_text("old")
    with pytest.raises(RuntimeError, match="writer crashed"):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("writer crashed")
    assert target.read_text() == "old"
    assert os.listdir(tmp_path) == ["results.json"]


def test_folders_are_staged_and_cleaned_up_too(tmp_path):
    target = tmp_path / "dataset"
    with atomic_path(target) as tmp:
        (tmp / "exp").mkdir(parents=True)
        (tmp / "exp" / "ids.txt").write_text("1,2")
    assert (target / "exp" / "ids.txt").read_text() == "1,2"
    with pytest.raises(KeyboardInterrupt):
        with atomic_path(tmp_path / "other") as tmp:
            (tmp / "cam1").mkdir(parents=True)
            raise KeyboardInterrupt
    assert sorted(os.listdir(tmp_path)) == ["dataset"]


def test_files_get_umask_permissions(tmp_path, umask_022):
    # 0o666 minus umask 022 = rw-r--r--, as open() would give; a mkstemp file would be 0o600
    atomic_write_text(tmp_path / "a" / "config.yaml", "x: 1\n")
    save_checkpoint({"w": torch.zeros(1)}, tmp_path / "final.pt")
    for path in (tmp_path / "a" / "config.yaml", tmp_path / "final.pt"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o644, path
    assert (tmp_path / "a" / "config.yaml").read_text(encoding="utf-8") == "x: 1\n"


@pytest.mark.parametrize("kind", ["folder", "fifo"])
def test_appending_refuses_what_is_not_a_regular_file(tmp_path, kind):
    from csdn._io import UnsafeFileError, open_append

    path = tmp_path / "metrics.jsonl"
    os.mkdir(path) if kind == "folder" else os.mkfifo(path)  # a FIFO without reader would block a plain open
    with pytest.raises(UnsafeFileError, match=r"metrics.jsonl' is not a regular file"):
        open_append(path)


def test_only_what_a_helper_created_is_recorded(tmp_path):
    from csdn._io import make_dirs, open_append, recording_creations

    (tmp_path / "old.log").write_text("before\n")
    with recording_creations(tmp_path) as log:
        made = make_dirs(tmp_path / "a" / "b")
        with open_append(tmp_path / "old.log") as old, open_append(tmp_path / "a" / "new.log") as new:
            old.write("x\n"), new.write("y\n")
        atomic_write_text(tmp_path / "a" / "b" / "c.txt", "1")
        atomic_write_text(tmp_path / "a" / "b" / "c.txt", "2")  # rewriting its own file keeps it recorded
    atomic_write_text(tmp_path / "after.txt", "not recorded")
    assert made == [tmp_path / "a", tmp_path / "a" / "b"]
    assert [os.path.relpath(p, tmp_path) for p in log.entries] == ["a", "a/b", "a/new.log", "a/b/c.txt"]
    assert log.remove() == (4, [])
    assert sorted(os.listdir(tmp_path)) == ["after.txt", "old.log"]
