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
