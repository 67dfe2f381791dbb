"""Output paths are checked before any work: one ``csdn: error:`` line naming the path, exit 2, nothing written."""

import errno
import os
import shutil
from collections import namedtuple

import pytest

from csdn.cli import main
from csdn.cli.paths import check_output_file
from csdn.data.synthetic import make_sysu


def run_cli(capsys, *argv):
    code = main(list(map(str, argv)))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def one_error_line(code, out, err):
    assert code == 2, err
    lines = [line for line in err.splitlines() if line.startswith("csdn: error: ")]
    assert len(lines) == 1 and err.strip().splitlines()[-1] == lines[0] and "Traceback" not in err, err
    return lines[0]


@pytest.fixture(scope="module")
def sysu(tmp_path_factory):
    root = tmp_path_factory.mktemp("out") / "sysu"
    return make_sysu(root, num_train_ids=2, num_val_ids=1, num_test_ids=3, images_per_cam=1, image_size=(48, 32))


def commands(tmp, ckpt, sysu, target):
    """Each command with its output option set to ``target`` (a file target, or a folder target)."""
    common = ["--checkpoint", ckpt]
    images = ["--images", f"{sysu}/cam3", "--modality", "infrared"]
    return {
        "eval --json": ["eval", *common, "--root", sysu, "--json", target],
        "extract --out": ["extract", *common, *images, "--out", target],
        "export --out": ["export", *common, "--modality", "infrared", "--out", target],
        "eval --plot": ["eval", *common, "--root", sysu, "--plot", target],
        "eval --report": ["eval", *common, "--root", sysu, "--report", target],
        "demo --dir": ["demo", "--quick", "--dir", target],
        "train output_dir": ["train", "--preset", "demo", "--root", sysu, "--set", f"runtime.output_dir={target}"],
    }


NAMES = list(commands("t", "c", "s", "x"))


@pytest.mark.parametrize("command", NAMES)
def test_a_target_under_a_file(capsys, tmp_path, tiny_checkpoint, sysu, command):
    (tmp_path / "plain.txt").write_text("x")
    target = tmp_path / "plain.txt" / "sub" / "out.pt"
    line = one_error_line(*run_cli(capsys, *commands(tmp_path, tiny_checkpoint[0], sysu, target)[command]))
    assert str(target) in line and "plain.txt' which is a file" not in line
    assert f"lies under {str(tmp_path / 'plain.txt')!r}, which is a file" in line


@pytest.mark.parametrize("command", ["eval --plot", "eval --report", "demo --dir", "train output_dir"])
def test_a_folder_target_that_is_a_file(capsys, tmp_path, tiny_checkpoint, sysu, command):
    (tmp_path / "plain.txt").write_text("x")
    target = tmp_path / "plain.txt"
    line = one_error_line(*run_cli(capsys, *commands(tmp_path, tiny_checkpoint[0], sysu, target)[command]))
    assert str(target) in line and "is a file" in line


@pytest.mark.parametrize("command", NAMES)
def test_an_unwritable_folder(capsys, monkeypatch, tmp_path, tiny_checkpoint, sysu, command):
    import csdn.cli.paths as paths

    def denied(**kwargs):  # root may write anywhere, so the refusal of the file system is simulated
        raise PermissionError(errno.EACCES, "Permission denied", kwargs["dir"])

    monkeypatch.setattr(paths.tempfile, "NamedTemporaryFile", denied)
    (tmp_path / "new").mkdir()  # a file target's folder must exist; a folder target is new/out.pt itself
    target = tmp_path / "new" / "out.pt"
    line = one_error_line(*run_cli(capsys, *commands(tmp_path, tiny_checkpoint[0], sysu, target)[command]))
    assert str(target) in line and f"cannot write in {str(tmp_path / 'new')!r} (Permission denied)" in line
    assert list((tmp_path / "new").iterdir()) == []


def test_a_read_only_file_system(capsys, tiny_checkpoint, sysu):
    if not os.path.isdir("/proc/self"):
        pytest.skip("needs /proc")
    line = one_error_line(*run_cli(capsys, "eval", "--checkpoint", tiny_checkpoint[0], "--root", sysu, "--json",
                                   "/proc/self/eval.json"))  # fmt: skip
    assert "'/proc/self/eval.json'" in line and "cannot write in '/proc/self'" in line


@pytest.mark.parametrize("command", NAMES)
def test_a_full_disk(capsys, monkeypatch, tmp_path, tiny_checkpoint, sysu, command):
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10**9, 10**9 - 4096, 4096))
    target = tmp_path / "out.pt"
    line = one_error_line(*run_cli(capsys, *commands(tmp_path, tiny_checkpoint[0], sysu, target)[command]))
    assert str(target) in line and "is full (4096 bytes free)" in line
    assert list(tmp_path.iterdir()) == []


def test_eval_checks_its_outputs_before_loading_anything(capsys, tmp_path, sysu):
    (tmp_path / "plain.txt").write_text("x")
    missing_checkpoint = tmp_path / "missing.pt"  # would fail first if the model were loaded first
    line = one_error_line(*run_cli(capsys, "eval", "--checkpoint", missing_checkpoint, "--root", sysu, "--json",
                                   tmp_path / "plain.txt" / "e.json"))  # fmt: skip
    assert "--json" in line and "missing.pt" not in line


def test_a_file_target_in_a_missing_folder_is_refused_before_the_work(capsys, tmp_path, sysu):
    missing_checkpoint = tmp_path / "missing.pt"  # would fail first if the model were loaded first
    target = tmp_path / "typo" / "eval.json"
    line = one_error_line(
        *run_cli(capsys, "eval", "--checkpoint", missing_checkpoint, "--root", sysu, "--json", target)
    )
    assert f"--json {str(target)!r}: its folder {str(target.parent)!r} does not exist" in line
    assert not target.parent.exists()  # nothing created


def test_a_folder_gets_the_default_file_name(capsys, tmp_path, tiny_checkpoint, sysu):
    (tmp_path / "feats").mkdir()
    images = ["--images", f"{sysu}/cam3", "--modality", "infrared"]
    for target, written in ((tmp_path / "feats", tmp_path / "feats"), (f"{tmp_path}/new/", tmp_path / "new")):
        code, out, err = run_cli(capsys, "-q", "extract", "--checkpoint", tiny_checkpoint[0], *images, "--out", target)
        assert code == 0, err
        assert [p.name for p in written.iterdir()] == ["features.pt"]
    assert check_output_file(f"{tmp_path}/x/", "--out", "eval.json") == tmp_path / "x" / "eval.json"
    assert check_output_file(tmp_path / "y.json", "--out", "eval.json") == tmp_path / "y.json"
    (tmp_path / "z" / "eval.json").mkdir(parents=True)
    with pytest.raises(ValueError, match="eval.json' is a folder; pass a file name"):
        check_output_file(tmp_path / "z", "--json", "eval.json")
    with pytest.raises(ValueError, match="is a folder; pass a file name"):
        check_output_file(tmp_path / "z", "--json")


def test_a_disk_that_fills_up_while_writing(capsys, monkeypatch, tmp_path, tiny_checkpoint, sysu):
    import torch

    real_save = torch.save

    def save_then_fill(obj, handle, *args, **kwargs):
        real_save(obj, handle, *args, **kwargs)  # most of the file is on disk when the disk fills up
        raise OSError(errno.ENOSPC, "No space left on device", getattr(handle, "name", None))

    monkeypatch.setattr(torch, "save", save_then_fill)
    out = tmp_path / "feats" / "f.pt"
    out.parent.mkdir()
    line = one_error_line(*run_cli(capsys, "-q", "extract", "--checkpoint", tiny_checkpoint[0], "--images",
                                   f"{sysu}/cam3", "--modality", "infrared", "--out", out))  # fmt: skip
    assert f"cannot write in {str(out.parent)!r}: the disk is full" in line
    assert list(out.parent.iterdir()) == []  # the temporary file is gone, nothing half-written
