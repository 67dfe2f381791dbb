"""ImageDataset / CrossModalityDataset with DataLoader on a tiny synthetic SYSU tree."""

import os

import pytest
import torch
from torch.utils.data import BatchSampler, DataLoader

from csdn.data import (
    SYSUMM01,
    CrossModalityDataset,
    CrossModalityIdentitySampler,
    ImageDataset,
    Sample,
    build_test_transform,
    build_train_transforms,
    concat_views,
    load_image,
)
from csdn.data.synthetic import make_sysu


@pytest.fixture(scope="module")
def sysu(tmp_path_factory):
    root = make_sysu(
        tmp_path_factory.mktemp("sysu"),
        num_train_ids=6,
        num_val_ids=1,
        num_test_ids=2,
        images_per_cam=2,
        image_size=(32, 16),
        missing_cam_prob=0.0,
    )
    return SYSUMM01(root)


def test_image_dataset_items(sysu):
    train_item = ImageDataset(sysu.train.infrared, build_test_transform(32, 16))[3]
    sample = sysu.train.infrared[3]
    assert train_item[0].shape == (3, 32, 16)
    assert train_item[1:] == (sample.label, sample.cam, "infrared")
    query = sysu.test().query
    image, label, cam, modality = ImageDataset(query)[0]
    assert image.mode == "RGB" and (label, cam, modality) == (query[0].pid, query[0].cam, "infrared")
    images, labels, cams, modalities = next(iter(DataLoader(ImageDataset(query, build_test_transform(32, 16)), 4)))
    assert images.shape == (4, 3, 32, 16) and labels.tolist() == [s.pid for s in query[:4]]
    assert list(modalities) == ["infrared"] * 4


def test_paired_loader_gives_two_visible_views_and_aligned_labels(sysu):
    train = sysu.train
    sampler = CrossModalityIdentitySampler.from_split(train, num_ids=2, num_instances=2, seed=0)
    dataset = CrossModalityDataset(train, build_train_transforms(32, 16, padding=2))
    batches = list(DataLoader(dataset, sampler=sampler, batch_size=sampler.batch_size))
    assert len(batches) == len(sampler) // sampler.batch_size
    visible, visible_labels, infrared, infrared_labels = concat_views(batches[0])
    assert visible.shape == (8, 3, 32, 16) and infrared.shape == (4, 3, 32, 16)
    assert torch.equal(visible_labels[:4], infrared_labels) and torch.equal(visible_labels[4:], infrared_labels)
    assert torch.equal(batches[0].visible_label, batches[0].infrared_label)
    # the same pairs through a batch_sampler
    batch = next(iter(DataLoader(dataset, batch_sampler=BatchSampler(sampler, sampler.batch_size, drop_last=True))))
    assert batch.visible.shape == (4, 3, 32, 16)
    with pytest.raises(TypeError, match="indexed by \\(visible_index, infrared_index\\) pairs"):
        dataset[0]


def test_load_image_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        load_image(tmp_path / "missing.jpg")
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not a jpeg")
    with pytest.raises(ValueError, match="Cannot decode image"):
        load_image(bad)
    with pytest.raises(ValueError, match="Cannot decode image"):
        ImageDataset([Sample(os.fspath(bad), 1, 1, "visible")])[0]


def test_cached_loader_resizes_and_invalidates(tmp_path):
    from PIL import Image

    from csdn.data.loaders import CachedImageLoader

    path = tmp_path / "a.png"
    Image.new("RGB", (10, 20), (255, 0, 0)).save(path)
    loader = CachedImageLoader(8, 4)
    first = loader(path)
    assert first.size == (4, 8) and first.getpixel((0, 0)) == (255, 0, 0) and len(loader) == 1
    assert loader(path).getpixel((0, 0)) == (255, 0, 0)
    Image.new("RGB", (10, 20), (0, 0, 255)).save(path)
    os.utime(path, ns=(1, 123456789))  # a changed source (mtime/size) is re-read
    assert loader(path).getpixel((0, 0)) == (0, 0, 255)
