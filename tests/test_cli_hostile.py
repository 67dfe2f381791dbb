"""Hostile and damaged files on the command line: each is one escaped, length-capped ``csdn: error:`` line and exit
status 2, naming the right reason (an empty file, a folder, a FIFO, a link loop, a malformed record)."""

import copy
import os

import PIL.Image
import pytest
import torch

from csdn.cli import main
from csdn.models.checkpoint import final_checkpoint, save_checkpoint
from csdn.models.factory import ModelConfig, csdn_from_config

CONFIG = {"model": {"clip": "tiny-RN", "clip_seed": 3}, "data": {"height": 64, "width": 32}, "runtime": {"seed": 2}}


@pytest.fixture(scope="module")
def record():
    model = csdn_from_config(ModelConfig(clip="tiny-RN", clip_seed=3), 4, (64, 32), seed=2)
    return final_checkpoint(model, CONFIG)


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    root = tmp_path_factory.mktemp("images")
    PIL.Image.new("RGB", (16, 32), (90, 40, 10)).save(root / "a.png")
    return root


def _commands(checkpoint, images, tmp_path):
    out = tmp_path
    return {
        "extract": ["extract", "--checkpoint", checkpoint, "--images", images, "--modality", "visible",
                    "--out", out / "f.pt"],
        "export": ["export", "--checkpoint", checkpoint, "--modality", "visible", "--out", out / "m.onnx"],
    }  # fmt: skip


def _one_line_error(capsys, argv):
    code = main(["-q", *map(str, argv)])
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.count("\n") == 1 and err.startswith("csdn: error: "), err
    return err


@pytest.mark.parametrize("command", ["extract", "export"])
def test_a_zero_byte_checkpoint_is_one_line(capsys, tmp_path, images, command):
    """Regression: the official-checkpoint fallback raised EOFError (a traceback)."""
    empty = tmp_path / "final.pt"
    empty.write_bytes(b"")
    err = _one_line_error(capsys, _commands(empty, images, tmp_path)[command])
    assert f"checkpoint {str(empty)!r} is empty (0 bytes)" in err


def _fifo(path):
    os.mkfifo(path)
    return path


def _loop(path):
    os.symlink(path, path)
    return path


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs and symbolic links (POSIX)")
@pytest.mark.parametrize(
    "make, reason",
    [
        (lambda p: p.mkdir() or p, "is a folder, not a regular file"),
        (_fifo, "is a FIFO (named pipe), not a regular file"),
        (_loop, "is a symbolic link loop"),
        (lambda p: os.symlink(p.with_name("gone.pt"), p) or p, "is a symbolic link to a missing file"),
    ],
    ids=["folder", "fifo", "link-loop", "dangling-link"],
)
@pytest.mark.parametrize("command", ["extract", "export"])
def test_special_files_as_checkpoints_name_the_right_reason(capsys, tmp_path, images, make, reason, command):
    path = make(tmp_path / "final.pt")
    err = _one_line_error(capsys, _commands(path, images, tmp_path)[command])
    assert f"checkpoint {str(path)!r} {reason}" in err


MALFORMED = {
    "config-a-string": (lambda s: s.update(config="runs/x/config.yaml"), "has a str as 'config'"),
    "config-without-data": (lambda s: s["config"].pop("data"), "has no 'config.data' entry"),
    "missing-runtime-seed": (lambda s: s["config"]["runtime"].pop("seed"), "has no 'config.runtime.seed' entry"),
    "clip-arch-a-string": (lambda s: s.update(clip_arch="RN50"), "has a str as 'clip_arch'"),
    "model-a-list": (lambda s: s.update(model=[1, 2]), "has a list as 'model'"),
    "wrong-shape": (lambda s: s["model"].update({"head_proj.bn.weight": torch.ones(5)}), "does not fit the model"),
    "num-classes-1e9": (lambda s: s.update(num_classes=10**9), "declares num_classes=1000000000"),
    "vocab-1e9": (lambda s: s["clip_arch"].update(vocab_size=10**9), "declares clip_arch.vocab_size=1000000000"),
}


@pytest.mark.parametrize("damage", list(MALFORMED))
def test_malformed_checkpoints_are_one_line_and_exit_2(capsys, tmp_path, images, record, damage):
    change, phrase = MALFORMED[damage]
    state = copy.deepcopy(record)
    change(state)
    path = tmp_path / "final.pt"
    save_checkpoint(state, path)
    err = _one_line_error(capsys, _commands(path, images, tmp_path)["extract"])
    assert phrase in err and str(path) in err


def test_file_derived_text_is_escaped_and_capped(capsys, tmp_path, images, record):
    state = copy.deepcopy(record)
    state["config"]["model"]["n_ctx"] = "\x1b[2J\x1b]0;owned\x07\n" + "A" * 5_000_000  # 5 MB in one string
    path = tmp_path / "final.pt"
    save_checkpoint(state, path)
    err = _one_line_error(capsys, _commands(path, images, tmp_path)["extract"])
    assert "\x1b" not in err and "\x07" not in err and len(err) < 1200
    assert r"n_ctx='\x1b[2J\x1b]0;owned\x07\nAAA" in err and "more characters)" in err


def test_a_csv_pid_with_5000_digits_names_the_file_and_line(capsys, tmp_path, images):
    root = tmp_path / "csv"
    root.mkdir()
    for name in ("a", "b"):
        PIL.Image.new("RGB", (16, 32)).save(root / f"{name}.png")
    header = "path,pid,cam,modality\n"
    (root / "train.csv").write_text(header + "a.png,1,1,visible\n" + "b.png," + "9" * 5000 + ",2,infrared\n")
    for name in ("query", "gallery"):
        (root / f"{name}.csv").write_text(header + "a.png,7,1,visible\n")
    err = _one_line_error(capsys, ["data", "stats", root, "--dataset", "csv"])
    assert f"{root / 'train.csv'} line 3: pid has 5000 digits" in err and len(err) < 600
