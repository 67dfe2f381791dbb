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


def _corrupted(tmp_path, flip_tensor_bytes):
    state = _state()
    path = tmp_path / "final.pt"
    save_checkpoint(state, path)
    flip_tensor_bytes(path, state["model"]["w"])
    return path


@pytest.mark.parametrize(
    "map_location",
    ["cuda", "cuda:1", torch.device("cuda", 0), "cpu:0", lambda storage, location: storage, {"cpu": "cpu"}],
    ids=["cuda", "cuda:1", "device-cuda", "cpu:0", "function", "dict"],
)
def test_the_digest_is_checked_for_every_map_location(tmp_path, flip_tensor_bytes, map_location):
    """Checked on the CPU before the tensors move, so a corrupted file is reported as such even without CUDA."""
    path = _corrupted(tmp_path, flip_tensor_bytes)
    with pytest.raises(ValueError, match=r"final\.pt' is corrupted: its content does not match the sha256"):
        load_checkpoint(path, map_location=map_location)


def test_a_renamed_digest_entry_is_refused(tmp_path):
    save_checkpoint(_state(), tmp_path / "x.pt")
    raw = torch.load(tmp_path / "x.pt", weights_only=True)
    raw["sha257"] = raw.pop(DIGEST_KEY)  # renamed: the file would pass for one written before digests
    torch.save(raw, tmp_path / "renamed.pt")
    with pytest.raises(ValueError, match="has no 'sha256' entry but 'sha257' holds a sha256 digest"):
        load_checkpoint(tmp_path / "renamed.pt")


def test_renamed_keys_change_the_digest_at_every_level():
    base = _state()
    for rename in (("model", "modem"), ("epoch", "epoc")):
        changed = dict(base)
        changed[rename[1]] = changed.pop(rename[0])
        assert content_digest(changed) != content_digest(base)
    nested = {**base, "model": {("v" if k == "w" else k): v for k, v in base["model"].items()}}
    assert content_digest(nested) != content_digest(base)
    assert content_digest({"a": {"b": 1}}) != content_digest({"a": {"b": [1]}})  # nesting


@pytest.mark.filterwarnings("ignore::UserWarning")  # sparse tensors are in beta
def test_sparse_tensors_are_hashed_and_unusual_layouts_refused(tmp_path):
    sparse = torch.sparse_coo_tensor(torch.tensor([[0, 2], [1, 0]]), torch.tensor([1.0, 2.0]), (3, 3))
    save_checkpoint({"s": sparse}, tmp_path / "sparse.pt")
    assert torch.equal(load_checkpoint(tmp_path / "sparse.pt")["s"].to_dense(), sparse.to_dense())
    other = torch.sparse_coo_tensor(torch.tensor([[0, 2], [1, 0]]), torch.tensor([1.0, 3.0]), (3, 3))
    assert content_digest({"s": sparse}) != content_digest({"s": other})
    assert content_digest({"s": sparse}) != content_digest({"s": sparse.to_dense()})
    with pytest.raises(ValueError, match="a torch.sparse_csr tensor cannot be hashed"):
        content_digest({"s": sparse.to_dense().to_sparse_csr()})
