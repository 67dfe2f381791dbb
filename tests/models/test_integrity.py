"""Every csdn file carries a digest of its content; loading checks it, so corruption is one clear error."""

import logging

import pytest
import torch

from csdn.models.checkpoint import (
    DIGEST_KEY,
    FEATURES_FORMAT,
    content_digest,
    load_checkpoint,
    save_checkpoint,
)


def _state():
    gen = torch.Generator().manual_seed(0)
    return {
        "model": {"w": torch.randn(64, 8, generator=gen), "b": torch.arange(5), "h": torch.ones(3).bfloat16()},
        "epoch": 3,
        "stage": "final",
        "lr": [0.5, 1e-3],
        "pair": (1, None),
        "flag": True,
    }


def test_round_trip_keeps_the_digest_and_drops_it_from_the_state(tmp_path):
    state = _state()
    save_checkpoint(state, tmp_path / "x.pt")
    raw = torch.load(tmp_path / "x.pt", weights_only=True)
    assert raw[DIGEST_KEY] == content_digest({k: v for k, v in raw.items() if k != DIGEST_KEY})
    loaded = load_checkpoint(tmp_path / "x.pt")
    assert DIGEST_KEY not in loaded and loaded["epoch"] == 3 and torch.equal(loaded["model"]["w"], state["model"]["w"])


def test_digest_tells_types_order_and_values_apart():
    base = content_digest({"a": 1, "b": torch.zeros(2)})
    others = [
        {"a": 1.0, "b": torch.zeros(2)},
        {"a": True, "b": torch.zeros(2)},
        {"a": "1", "b": torch.zeros(2)},
        {"b": torch.zeros(2), "a": 1},
        {"a": 1, "b": torch.zeros(2, dtype=torch.float64)},
        {"a": 1, "b": torch.zeros(1, 2)},
        {"a": 1, "b": torch.tensor([0.0, 1e-30])},
    ]
    assert len({base, *(content_digest(o) for o in others)}) == len(others) + 1
    assert content_digest([1, 2]) == content_digest((1, 2))  # a file may give a tuple back as a list


@pytest.mark.parametrize("fmt", [None, FEATURES_FORMAT])
def test_64_flipped_bytes_are_one_clear_error_naming_the_file(tmp_path, flip_tensor_bytes, fmt):
    state = _state()
    kwargs = {} if fmt is None else {"format": fmt}
    path = tmp_path / "final.pt"
    save_checkpoint(state, path, **kwargs)
    flip_tensor_bytes(path, state["model"]["w"])
    torch.load(path, weights_only=True)  # the file still reads: only the digest can tell
    with pytest.raises(ValueError, match=r"final\.pt' is corrupted: its content does not match the sha256"):
        load_checkpoint(path, **kwargs)
    load_checkpoint(path, map_location="meta", **kwargs)  # a structural look reads no tensor data: no check


def test_a_file_without_digest_loads_with_a_warning(tmp_path, caplog):
    torch.save({"format": FEATURES_FORMAT, "features": torch.ones(2, 3)}, tmp_path / "old.pt")
    with caplog.at_level(logging.WARNING, logger="csdn.models.checkpoint"):
        loaded = load_checkpoint(tmp_path / "old.pt", format=FEATURES_FORMAT)
    assert torch.equal(loaded["features"], torch.ones(2, 3))
    assert "old.pt has no content digest" in caplog.text
