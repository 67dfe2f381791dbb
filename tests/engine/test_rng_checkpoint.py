import random

import numpy as np
import pytest
import torch

from csdn.engine import rng
from csdn.models import checkpoint as ckpt


def draws(gen):
    return (random.random(), float(np.random.rand()), torch.rand(2).tolist(), torch.rand(2, generator=gen).tolist())


def test_round_trip_with_weights_only(tmp_path):
    state = {"model": {"w": torch.arange(3.0)}, "stage": 2, "epoch": 5, "nested": [1.5, "x", None, (1, 2)]}
    path = ckpt.save_checkpoint(state, tmp_path / "c.pt")
    raw = torch.load(path, weights_only=True)
    assert raw["format"] == ckpt.CHECKPOINT_FORMAT
    loaded = ckpt.load_checkpoint(path)
    assert torch.equal(loaded["model"]["w"], torch.arange(3.0)) and loaded["epoch"] == 5
    assert [p.name for p in tmp_path.iterdir()] == ["c.pt"]


def test_only_plain_values_are_accepted(tmp_path):
    with pytest.raises(TypeError, match=r"checkpoint\['bad'\] is a pathlib"):
        ckpt.save_checkpoint({"bad": tmp_path}, tmp_path / "c.pt")
    assert not list(tmp_path.iterdir())


def test_failed_write_keeps_previous_file(tmp_path, monkeypatch):
    path = ckpt.save_checkpoint({"epoch": 1}, tmp_path / "c.pt")

    def broken_save(obj, handle):
        handle.write(b"partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(KeyboardInterrupt):
        ckpt.save_checkpoint({"epoch": 2}, path)
    monkeypatch.undo()
    assert ckpt.load_checkpoint(path)["epoch"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["c.pt"]


def test_foreign_and_missing_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        ckpt.load_checkpoint(tmp_path / "none.pt")
    torch.save({"conv.weight": torch.zeros(1)}, tmp_path / "raw.pt")
    with pytest.raises(ValueError, match="not a csdn training checkpoint"):
        ckpt.load_checkpoint(tmp_path / "raw.pt")
    (tmp_path / "junk.pt").write_bytes(b"junk")
    with pytest.raises(ValueError, match="could not be read as a csdn checkpoint"):
        ckpt.load_checkpoint(tmp_path / "junk.pt")


def test_rng_state_survives_a_checkpoint(tmp_path):
    gen = torch.Generator().manual_seed(3)
    random.seed(1)
    np.random.seed(2)
    torch.manual_seed(3)
    draws(gen)
    ckpt.save_checkpoint({"rng": rng.capture_rng_state({"loader": gen})}, tmp_path / "c.pt")
    expected = draws(gen)
    draws(gen)
    gen2 = torch.Generator()
    rng.restore_rng_state(ckpt.load_checkpoint(tmp_path / "c.pt")["rng"], {"loader": gen2})
    assert draws(gen2) == expected
    with pytest.raises(ValueError, match="no state for generator 'other'"):
        rng.restore_rng_state(ckpt.load_checkpoint(tmp_path / "c.pt")["rng"], {"other": gen2})


def test_deterministic_block_restores_flags_and_checks_cublas(monkeypatch):
    before = torch.are_deterministic_algorithms_enabled()
    with rng.deterministic_algorithms(True, torch.device("cpu")):
        assert torch.are_deterministic_algorithms_enabled()
    assert torch.are_deterministic_algorithms_enabled() == before
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    with pytest.raises(ValueError, match="CUBLAS_WORKSPACE_CONFIG=:4096:8"):
        with rng.deterministic_algorithms(True, torch.device("cuda", 0)):
            pass
