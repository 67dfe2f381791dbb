"""The stage-3 loader is built from the configuration: every augmentation and sampler setting reaches it."""

import pytest
import torch
from torchvision.transforms import v2

from csdn.data.loaders import collate
from csdn.data.transforms import ChannelAdapGray, ChannelExchange, ChannelRandomErasing
from csdn.engine import apply_overrides, get_preset
from csdn.engine.distributed import DistInfo
from csdn.engine.inputs import image_stage_loader

from .conftest import TINY_OVERRIDES


def _only(pipeline: v2.Compose, kind: type) -> v2.Transform:
    found = [t for t in pipeline.transforms if isinstance(t, kind)]
    assert len(found) == 1, f"{kind.__name__} appears {len(found)} times in {pipeline}"
    return found[0]


def test_non_default_augmentation_and_sampler_settings_reach_the_stage3_loader(sysu_train):
    settings = ["data.pad=3", "data.flip_p=0.25", "data.erasing_p=0.125", "data.exchange_gray=3",
                "data.adap_gray_p=0.375", "stage3.num_ids=3", "stage3.num_pos=2", "runtime.seed=11"]  # fmt: skip
    cfg = apply_overrides(get_preset("demo"), [*TINY_OVERRIDES, *settings])
    loader = image_stage_loader(sysu_train, cfg, DistInfo(), torch.Generator().manual_seed(0))
    transforms = loader.dataset.transforms
    for pipeline in transforms:  # visible view 1, visible view 2, infrared
        assert _only(pipeline, v2.Pad).padding == 3
        assert _only(pipeline, v2.RandomCrop).size == (32, 16)
        assert _only(pipeline, v2.RandomHorizontalFlip).p == 0.25
        assert _only(pipeline, ChannelRandomErasing).p == 0.125
    assert _only(transforms.visible_exchange, ChannelExchange).gray == 3
    assert _only(transforms.infrared, ChannelAdapGray).p == 0.375
    assert not any(isinstance(t, (ChannelExchange, ChannelAdapGray)) for t in transforms.visible.transforms)
    sampler = loader.sampler
    assert (sampler.num_ids, sampler.batch_size, sampler.seed) == (3, 3 * 2, 11)  # P x K
    assert loader.batch_size == 6 and loader.num_workers == 0
    assert loader.collate_fn is collate  # the main process collates on one thread


def test_image_cache_and_augment_settings_reach_the_stage3_loader(sysu_train, tmp_path):
    def dataset(*settings):
        cfg = apply_overrides(get_preset("demo"), [*TINY_OVERRIDES, *settings])
        return image_stage_loader(sysu_train, cfg, DistInfo(), torch.Generator().manual_seed(0)).dataset

    assert dataset().store.mode == "memory" and dataset().augment_on == "cpu"
    assert dataset("data.image_cache=off").store is None
    disk = dataset("data.cache_memory_gb=0", f"data.cache_dir={tmp_path}")  # auto: over the budget -> disk
    assert disk.store.mode == "disk" and disk.store.file.parent == tmp_path
    raw = dataset("data.augment_on=cuda")
    assert raw.augment_on == "device" and raw.store is not None
    with pytest.raises(ValueError, match="data.augment_on=cuda needs the image cache"):
        dataset("data.augment_on=cuda", "data.image_cache=off")
