"""Fixtures shared by every test folder."""

from pathlib import Path

import pytest
import torch


def _flip_tensor_bytes(path: Path, tensor: torch.Tensor, count: int = 64) -> int:
    """Invert ``count`` bytes of ``tensor``'s raw data where they are stored in the file at ``path``.

    The bytes are found by content, so the flip lands in a tensor record (the file still unpickles) and not in
    the zip structure. Returns the offset of the first flipped byte.
    """
    raw = tensor.detach().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()
    assert len(raw) >= count, "pick a tensor of at least `count` bytes"
    data = bytearray(path.read_bytes())
    offset = data.find(raw[:count])
    assert offset >= 0, f"the tensor's bytes are not in {path}"
    data[offset : offset + count] = bytes(b ^ 0xFF for b in data[offset : offset + count])
    path.write_bytes(bytes(data))
    return offset


@pytest.fixture
def flip_tensor_bytes():
    """``flip(path, tensor, count=64)``: corrupt a saved file inside one tensor's data (see above)."""
    return _flip_tensor_bytes


class _RestoresItself(torch.nn.Module):
    """A module whose TorchScript ``__setstate__`` (code stored in the archive) prints a marker and sets ``w``."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.ones(3))

    @torch.jit.export
    def __getstate__(self):
        return (self.w, self.training)

    @torch.jit.export
    def __setstate__(self, state: tuple[torch.Tensor, bool]):
        print("TorchScript code from the archive ran")
        self.w = state[0] + 2.0  # code in the file decides the weights
        self.training = state[1]

    def forward(self, x):
        return x * self.w


@pytest.fixture
def save_self_restoring_archive():
    """``save(path) -> path``: a TorchScript archive whose loading runs its own ``__setstate__`` (prints
    "TorchScript code from the archive ran"; the loaded ``w`` is 3.0, not the saved 1.0)."""

    def save(path: Path) -> Path:
        torch.jit.save(torch.jit.script(_RestoresItself()), path)
        return path

    return save


@pytest.fixture
def restore_registry():
    """Undo the dataset registrations a test makes (``csdn.data.register_dataset``)."""
    from csdn.data.registry import DATASETS

    saved = dict(DATASETS)
    yield
    DATASETS.clear()
    DATASETS.update(saved)
