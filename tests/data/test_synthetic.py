"""Synthetic dataset writers: exact layouts, determinism, modality rendering, cross-modal learnability."""

import hashlib
import os
import time

import numpy as np
import pytest
from PIL import Image

from csdn.data import LLCM, SYSUMM01, RegDB, detect_dataset
from csdn.data.synthetic import make_llcm, make_regdb, make_sysu, render_person


def _digest(root):
    h = hashlib.sha256()
    for folder, _, files in sorted(os.walk(root)):
        for name in sorted(files):
            path = os.path.join(folder, name)
            h.update(os.path.relpath(path, root).encode())
            h.update(open(path, "rb").read())
    return h.hexdigest()


def test_sysu_layout_is_readable_and_deterministic(tmp_path):
    start = time.perf_counter()
    root = make_sysu(tmp_path / "a", num_train_ids=30, num_val_ids=4, num_test_ids=6, images_per_cam=4, seed=3)
    elapsed = time.perf_counter() - start
    assert elapsed < 30  # ~0.5 s on a 2-core CPU for 40 ids
    assert _digest(root) == _digest(make_sysu(tmp_path / "b", 30, 4, 6, 4, seed=3))
    assert _digest(root) != _digest(make_sysu(tmp_path / "c", 30, 4, 6, 4, seed=4))
    assert detect_dataset(root) == "sysu"
    reader = SYSUMM01(root)
    assert reader.train.num_classes == 34 and len(reader.test_ids) == 6
    ids = [
        list(map(int, open(os.path.join(root, "exp", f"{n}_id.txt")).read().split(",")))
        for n in ("train", "val", "test")
    ]
    assert sorted(sum(ids, [])) == list(range(1, 41))
    sample = reader.train.visible[0]
    assert Image.open(sample.path).size == (32, 64) and sample.path.endswith(".jpg")


def test_regdb_and_llcm_layouts(tmp_path):
    regdb = make_regdb(tmp_path / "regdb", num_ids=10, images_per_id=2, num_trials=3)
    assert detect_dataset(regdb) == "regdb"
    for trial in (1, 2, 3):
        reader = RegDB(regdb, trial=trial)
        assert reader.train.num_classes == 5 and len(reader.test("t2v").query) == 10
        train_pids = {os.path.basename(os.path.dirname(s.path)) for s in reader.train.visible}
        test_pids = {os.path.basename(os.path.dirname(s.path)) for s in reader.test("v2t").query}
        assert not train_pids & test_pids
    thermal = RegDB(regdb).train.infrared[0].path
    assert thermal.endswith(".bmp") and Image.open(thermal).mode == "L"
    llcm = make_llcm(tmp_path / "llcm", num_train_ids=6, num_test_ids=4)
    assert detect_dataset(llcm) == "llcm"
    reader = LLCM(llcm)
    assert reader.train.num_classes == 6
    assert {s.cam for s in reader.test("ir2vis").query} <= {1, 2, 4, 5, 6, 7, 8, 9}
    assert all(s.cam > 0 for s in reader.train.visible)


def test_rendering_modalities():
    rng = np.random.default_rng(0)
    vis = render_person(3, "visible", rng, (64, 32)).astype(int)
    ir = render_person(3, "infrared", rng, (64, 32)).astype(int)
    assert vis.shape == ir.shape == (64, 32, 3)
    assert np.array_equal(ir[..., 0], ir[..., 1]) and np.array_equal(ir[..., 0], ir[..., 2])
    assert np.abs(vis[..., 0] - vis[..., 2]).mean() > 5
    with pytest.raises(ValueError, match="Unknown modality 'uv'"):
        render_person(3, "uv", rng)


def test_identity_is_recoverable_across_modalities_without_learning(tmp_path):
    # Nearest neighbour on normalised row/column intensity profiles, infrared -> visible: far above chance.
    train = SYSUMM01(make_sysu(tmp_path / "s", num_train_ids=20, num_val_ids=1, num_test_ids=1)).train

    def feature(path):
        a = np.asarray(Image.open(path).convert("L"), dtype=np.float32)
        f = np.concatenate([a.mean(1), a.mean(0)])
        return (f - f.mean()) / (f.std() + 1e-6)

    q = np.stack([feature(s.path) for s in train.infrared])
    g = np.stack([feature(s.path) for s in train.visible])
    nearest = ((q[:, None] - g[None]) ** 2).sum(-1).argmin(1)
    accuracy = np.mean(np.array([s.label for s in train.visible])[nearest] == [s.label for s in train.infrared])
    assert accuracy > 4 / train.num_classes


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="num_test_ids must be a positive integer"):
        make_sysu(tmp_path, num_test_ids=0)
    with pytest.raises(ValueError, match="num_ids must be at least 2"):
        make_regdb(tmp_path, num_ids=1)
