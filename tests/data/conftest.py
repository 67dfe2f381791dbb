"""Helpers that hand-build tiny dataset trees in tmp_path (shared by the csdn.data tests)."""

import os
import random

import numpy as np
import pytest
from PIL import Image


def write_image(path, colour=(10, 200, 30), size=(4, 8), mode="RGB"):
    """Write a tiny valid image (format from the extension) and return its path as str."""
    path = str(path)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.new(mode, size, colour if mode == "RGB" else colour[0]).save(path)
    return path


def write_folder(folder, names):
    """Write one tiny image per name into ``folder`` (created in the given, unsorted, order)."""
    for name in names:
        write_image(os.path.join(str(folder), name))


@pytest.fixture
def keep_global_rng():
    """Restore Python's and NumPy's global RNG state after a test that reimplements the reference with them."""
    py_state, np_state = random.getstate(), np.random.get_state()
    yield
    random.setstate(py_state)
    np.random.set_state(np_state)


@pytest.fixture(name="write_image")
def _write_image_fixture():
    return write_image


@pytest.fixture(name="write_folder")
def _write_folder_fixture():
    return write_folder
