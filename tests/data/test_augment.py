"""Decode once, resize once: the cached, compiled views equal the official pipelines, seed for seed, pixel for pixel."""

import os

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader
from torchvision.transforms import v2

import csdn.data.image_cache as image_cache
from csdn.data import SYSUMM01, CrossModalityDataset, CrossModalityIdentitySampler, build_train_transforms
from csdn.data.augment import apply_batch, compile_view
from csdn.data.image_cache import ResizedImageStore
from csdn.data.loaders import PairedSample, RawPairedSample, seeded_augmentation
from csdn.data.synthetic import make_sysu

SETTINGS = [
    {},
    {"padding": 0, "flip_p": 1.0, "erasing_p": 1.0, "gray": 3, "adapgray_p": 1.0},
    {"padding": 3, "flip_p": 0.0, "erasing_p": 0.0, "gray": 7, "adapgray_p": 0.0},
]


@pytest.fixture(scope="module")
def sysu(tmp_path_factory):
    root = make_sysu(tmp_path_factory.mktemp("sysu"), num_train_ids=4, num_val_ids=1, num_test_ids=2,
                     images_per_cam=2, image_size=(40, 18), missing_cam_prob=0.0)  # fmt: skip
    return SYSUMM01(root)


@pytest.mark.parametrize("settings", SETTINGS)
def test_compiled_views_equal_the_pipelines(settings):
    pil = Image.fromarray(np.random.default_rng(1).integers(0, 256, (53, 21, 3), dtype=np.uint8))
    pipelines = build_train_transforms(32, 16, **settings)
    plans = [compile_view(p) for p in pipelines]
    assert all(p is not None for p in plans)
    for seed in range(30):
        for pipeline, plan in zip(pipelines, plans, strict=True):
            with seeded_augmentation(seed):
                expected = pipeline(pil)
            resized = np.asarray(plan.resize(pil))
            with seeded_augmentation(seed):
                params = torch.tensor(plan.draw())
            assert torch.equal(plan.apply(resized, params), expected), (seed, params)
            batched = apply_batch(
                plan, torch.from_numpy(resized.copy())[None].repeat(2, 1, 1, 1), params[None].repeat(2, 1)
            )
            assert torch.equal(batched[1], expected), (seed, params)


def test_other_pipelines_do_not_compile():
    official = build_train_transforms(32, 16)
    reflect = v2.Compose([*official.visible.transforms[:2], v2.Pad(10, padding_mode="reflect"),
                          *official.visible.transforms[3:]])  # fmt: skip
    extra = v2.Compose([*official.infrared.transforms, v2.RandomErasing()])
    assert compile_view(official.visible) is not None
    assert compile_view(reflect) is None and compile_view(extra) is None


def _items(dataset, indices):
    return [dataset[i] for i in indices]


@pytest.mark.parametrize("mode", ["memory", "disk"])
def test_cached_dataset_equals_the_uncached_pipelines(sysu, mode, tmp_path):
    transforms = build_train_transforms(32, 16, padding=4, gray=3)
    paths = [s.path for s in (*sysu.train.visible, *sysu.train.infrared)]
    store = ResizedImageStore(paths, 32, 16, transforms.visible.transforms[0], mode=mode, cache_dir=tmp_path)
    cached = CrossModalityDataset(sysu.train, transforms, image_cache=store)
    plain = CrossModalityDataset(sysu.train, transforms, image_cache="off")
    assert cached.store is store and plain.store is None
    indices = [(i % len(sysu.train.visible), (3 * i) % len(sysu.train.infrared), 100 + i) for i in range(12)]
    for a, b in zip(_items(cached, indices) * 2, _items(plain, indices) * 2, strict=True):  # second round: hits
        assert all(torch.equal(x, y) for x, y in zip(a[:3], b[:3], strict=True)) and a[3:] == b[3:]
    torch.manual_seed(5)  # unseeded items draw from the global stream in the pipelines' order
    a = cached[(0, 1)]
    torch.manual_seed(5)
    b = plain[(0, 1)]
    assert all(torch.equal(x, y) for x, y in zip(a[:3], b[:3], strict=True))


def test_device_augmentation_equals_the_cpu_views(sysu):
    transforms = build_train_transforms(32, 16, padding=4, erasing_p=0.8, gray=3, adapgray_p=0.7)
    sampler = CrossModalityIdentitySampler.from_split(sysu.train, 2, 2, seed=1, sample_seeds=True)
    cpu = CrossModalityDataset(sysu.train, transforms, image_cache="memory")
    device = CrossModalityDataset(sysu.train, transforms, image_cache="memory", augment_on="device")
    for a, raw in zip(DataLoader(cpu, sampler=sampler, batch_size=4), DataLoader(device, sampler=sampler, batch_size=4),
                      strict=True):  # fmt: skip
        assert isinstance(raw, RawPairedSample) and raw.visible.dtype == torch.uint8
        b = device.to_views(raw, "cpu")
        assert isinstance(b, PairedSample)
        assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))


def test_store_rereads_changed_files_and_disk_store_is_reused(tmp_path, monkeypatch):
    path = tmp_path / "a.png"
    Image.new("RGB", (10, 20), (255, 0, 0)).save(path)
    resize = v2.Resize((8, 4), antialias=True)
    decoded = []
    real = image_cache.load_image
    monkeypatch.setattr(image_cache, "load_image", lambda p: decoded.append(p) or real(p))
    for mode in ("memory", "disk"):
        store = ResizedImageStore([str(path)], 8, 4, resize, mode=mode, cache_dir=tmp_path / "cache")
        assert tuple(store[0][0, 0]) == (255, 0, 0) and tuple(store[0][0, 0]) == (255, 0, 0)
    assert len(decoded) == 2  # once per store, not per read
    again = ResizedImageStore([str(path)], 8, 4, resize, mode="disk", cache_dir=tmp_path / "cache")
    assert tuple(again[0][0, 0]) == (255, 0, 0) and len(decoded) == 2  # a later run reads the disk store
    Image.new("RGB", (10, 20), (0, 0, 255)).save(path)
    os.utime(path, ns=(1, 123456789))
    assert tuple(again[0][0, 0]) == (0, 0, 255) and len(decoded) == 3


def test_bad_cache_settings(sysu, tmp_path):
    with pytest.raises(ValueError, match="Unknown value 'ram' for argument image_cache"):
        CrossModalityDataset(sysu.train, image_cache="ram")
    with pytest.raises(ValueError, match="Unknown value 'gpu' for argument augment_on"):
        CrossModalityDataset(sysu.train, augment_on="gpu")
    with pytest.raises(ValueError, match="needs the official pipelines"):
        CrossModalityDataset(sysu.train, image_cache="off", augment_on="device")
    with pytest.raises(ValueError, match="raise it or use data.image_cache=disk"):
        ResizedImageStore(["a.jpg"] * 4, 8, 4, v2.Resize((8, 4)), mode="memory", memory_budget=100)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(OSError, match="set data.cache_dir to a writable folder"):
        ResizedImageStore(["a.jpg"], 8, 4, v2.Resize((8, 4)), mode="disk", cache_dir=blocker / "sub")
