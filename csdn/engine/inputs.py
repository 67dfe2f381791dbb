"""Training inputs: the stage-3 paired data loader and the held-out validation split.

The frozen image-feature banks of stages 1-2 live in :mod:`csdn.engine.feature_bank`.
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING

import torch
from torch.utils.data import DataLoader

from ..data.image_cache import ResizedImageStore
from ..data.loaders import CrossModalityDataset, collate
from ..data.samplers import CrossModalityIdentitySampler
from ..data.samples import Sample, TestSplit, TrainSplit
from .config import TrainConfig
from .distributed import DistInfo

if TYPE_CHECKING:  # torchvision is imported when a pipeline is built, not with csdn
    from ..data.transforms import TrainTransforms

__all__ = ["image_stage_loader", "holdout_validation"]


def image_stage_loader(train: TrainSplit, cfg: TrainConfig, dist: DistInfo, generator: torch.Generator) -> DataLoader:
    """Stage-3 loader: collated :class:`csdn.data.loaders.PairedSample` batches of P x K identity-aligned pairs.

    Every rank walks the same global batches, drawn from ``(seed, epoch)`` (call ``loader.sampler.set_epoch``),
    and loads its contiguous slice of ``P x K / W`` pairs. Each pair carries an augmentation seed keyed by
    ``(seed, epoch, position in the global batch)``, so the images do not depend on the world size, the rank or
    ``num_workers`` (and a resumed run replays them); ``generator`` only seeds the workers' base seeds.
    """
    from ..data.transforms import build_train_transforms  # torchvision on first use, not at import

    d, s3 = cfg.data, cfg.stage3
    augment_on = "device" if d.augment_on == "cuda" else "cpu"
    if augment_on == "device" and d.image_cache == "off":
        raise ValueError("data.augment_on=cuda needs the image cache: set data.image_cache to auto, memory or disk")
    transforms = build_train_transforms(
        d.height,
        d.width,
        padding=d.pad,
        flip_p=d.flip_p,
        erasing_p=d.erasing_p,
        gray=d.exchange_gray,
        adapgray_p=d.adap_gray_p,
    )
    sampler = CrossModalityIdentitySampler.from_split(
        train,
        s3.num_ids,
        s3.num_pos,
        seed=cfg.runtime.seed,
        num_replicas=dist.world_size,
        rank=dist.rank,
        sample_seeds=True,
    )
    return DataLoader(
        CrossModalityDataset(
            train, transforms, image_cache=_image_cache(train, cfg, transforms), augment_on=augment_on
        ),
        batch_size=sampler.batch_size,
        sampler=sampler,
        num_workers=d.num_workers,
        generator=generator,
        drop_last=True,
        collate_fn=collate,  # one thread in the main process (num_workers=0), as in a worker
        pin_memory=False,
        persistent_workers=False,
    )


def _image_cache(train: TrainSplit, cfg: TrainConfig, transforms: TrainTransforms) -> str | ResizedImageStore:
    """The decode-once store of the training images as configured (``data.image_cache``, ``cache_*``)."""
    d = cfg.data
    if d.image_cache == "off":
        return "off"
    paths = [s.path for s in (*train.visible, *train.infrared)]
    resize = transforms.visible.transforms[0]  # the pipelines' own Resize, so cached pixels equal uncached ones
    budget = int(d.cache_memory_gb * 2**30)
    return ResizedImageStore(paths, d.height, d.width, resize, d.image_cache, budget, d.cache_dir or None)


def holdout_validation(train: TrainSplit, num_ids: int, seed: int = 0) -> tuple[TrainSplit, TestSplit]:
    """Split ``num_ids`` training identities off as a validation set, so no model choice touches the test set.

    The held-out identities are drawn with ``random.Random(seed)``; the rest are relabelled ``0..C'-1`` in
    sorted-pid order. Validation: infrared queries against a visible gallery of all the held-out images,
    ``protocol="regdb"`` (nothing removed, standard CMC).

    Raises:
        ValueError: if ``num_ids`` leaves fewer than 2 training identities or holds out none.
    """
    pids = train.pids
    if not 1 <= num_ids <= len(pids) - 2:
        raise ValueError(f"data.val_ids={num_ids} is invalid: expected 1..{len(pids) - 2} for {len(pids)} train ids")
    held = set(random.Random(seed).sample(sorted(pids), num_ids))
    kept = sorted(set(pids) - held)
    relabel = {pid: label for label, pid in enumerate(kept)}

    def keep(samples: list[Sample]) -> list[Sample]:
        return [s._replace(label=relabel[s.pid]) for s in samples if s.pid in relabel]

    def hold(samples: list[Sample]) -> list[Sample]:
        return [s._replace(label=-1) for s in samples if s.pid in held]

    reduced = TrainSplit(keep(train.visible), keep(train.infrared), len(kept))
    validation = TestSplit(
        query=hold(train.infrared),
        gallery=hold(train.visible),
        protocol="regdb",
        query_modality="infrared",
        gallery_modality="visible",
        name=f"validation ({num_ids} held-out train ids)",
    )
    return reduced, validation
