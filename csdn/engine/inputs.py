"""Training inputs: the frozen image-feature bank of stages 1-2 and the stage-3 paired data loader."""

from __future__ import annotations

import logging
import os
import random
from typing import NamedTuple

import torch
from torch import nn
from torch.utils.data import DataLoader

from ..data.loaders import CrossModalityDataset, ImageDataset
from ..data.samplers import CrossModalityIdentitySampler
from ..data.samples import Sample, TestSplit, TrainSplit
from ..data.transforms import build_test_transform, build_train_transforms
from .checkpoint import FEATURES_FORMAT, load_checkpoint, save_checkpoint
from .config import DataConfig, TrainConfig
from .distributed import DistInfo

__all__ = [
    "FeatureBank",
    "extract_features",
    "extract_feature_bank",
    "sampled_bank_split",
    "save_feature_bank",
    "load_feature_bank",
    "image_stage_loader",
    "holdout_validation",
]

logger = logging.getLogger(__name__)


class FeatureBank(NamedTuple):
    """Frozen CLIP-space image features of the training images of a split (CPU, float32).

    The split is the whole training set, or the official identity-sampled bank (:func:`sampled_bank_split`).

    Attributes:
        visible: (Nv, D) features of ``train.visible`` in order.
        visible_labels: (Nv,) their labels.
        infrared: (Ni, D) features of ``train.infrared`` in order.
        infrared_labels: (Ni,) their labels.
    """

    visible: torch.Tensor
    visible_labels: torch.Tensor
    infrared: torch.Tensor
    infrared_labels: torch.Tensor


@torch.no_grad()
def extract_features(
    model: nn.Module,
    samples: list[Sample],
    modality: str,
    data: DataConfig,
    device: torch.device,
    *,
    train_bn: bool = False,
    batch_size: int | None = None,
    generator: torch.Generator | None = None,
    channels_last: bool = False,
    amp: str = "none",
) -> torch.Tensor:
    """Attention-pool features ``model.clip_image_features`` of ``samples`` with the test transform -> (N, D).

    Args:
        model: the CSDN model.
        samples: images of one modality.
        modality: ``"visible"`` or ``"infrared"`` (selects the stem).
        data: image size, workers and default batch size.
        device: where the model runs.
        train_bn: run with BatchNorm in train mode (the official quirk: batch statistics, running stats updated);
            the images are then visited in a random order drawn from ``generator``.
        batch_size: images per forward pass (default ``data.extract_batch_size``).
        generator: draws the visiting order when ``train_bn`` (never touched otherwise).
        channels_last: feed images in channels_last memory format.
        amp: ``"none"``, ``"bf16"`` or ``"fp16"`` autocast.

    Returns:
        CPU float32 tensor ``(len(samples), D)`` in the order of ``samples``.
    """
    order = torch.randperm(len(samples), generator=generator) if train_bn else torch.arange(len(samples))
    dataset = ImageDataset([samples[i] for i in order.tolist()], build_test_transform(data.height, data.width))
    loader = DataLoader(
        dataset,
        batch_size=batch_size or data.extract_batch_size,
        shuffle=False,
        num_workers=data.num_workers,
        generator=torch.Generator().manual_seed(0),  # keeps the global RNG untouched (worker seeds unused)
    )
    was_training = model.training
    model.train(train_bn)
    memory = torch.channels_last if channels_last else torch.contiguous_format
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(amp)
    chunks = []
    try:
        for images, *_ in loader:
            images = images.to(device, memory_format=memory, non_blocking=True)
            with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
                chunks.append(model.clip_image_features(images, modality).float().cpu())
    finally:
        model.train(was_training)
    features = torch.cat(chunks)
    return torch.empty_like(features).index_copy_(0, order, features)


def extract_feature_bank(
    model: nn.Module, train: TrainSplit, data: DataConfig, device: torch.device, **kwargs
) -> FeatureBank:
    """:func:`extract_features` for both modalities of ``train`` (keyword arguments are passed on)."""
    logger.info("extracting frozen image features: %d visible, %d infrared", len(train.visible), len(train.infrared))
    visible = extract_features(model, train.visible, "visible", data, device, **kwargs)
    infrared = extract_features(model, train.infrared, "infrared", data, device, **kwargs)
    return FeatureBank(
        visible,
        torch.tensor([s.label for s in train.visible], dtype=torch.long),
        infrared,
        torch.tensor([s.label for s in train.infrared], dtype=torch.long),
    )


def sampled_bank_split(train: TrainSplit, num_ids: int, num_pos: int, seed: int, stage: int) -> TrainSplit:
    """The images of the official stage-1/2 feature bank: one epoch of the identity sampler, drawn per stage.

    The official script extracts its stage-1/2 features through a loader driven by the stage-3
    ``IdentitySampler`` (``num_ids`` identities x ``num_pos`` images per modality, images with replacement),
    so its bank holds ``(N // (num_ids * num_pos) + 1) * num_ids * num_pos`` identity-aligned visible/infrared
    pairs (``N`` = the larger modality's image count), identities drawn uniformly, and is drawn again for stage 2.

    Args:
        train: the training split.
        num_ids, num_pos: ``P`` and ``K`` of the sampler (``stage3.num_ids``, ``stage3.num_pos``).
        seed: the run's seed.
        stage: 1 or 2; selects the draw (sampler epoch ``10**6 + stage``, apart from the stage-3 epochs).

    Returns:
        A :class:`TrainSplit` whose ``visible[i]`` and ``infrared[i]`` are the ``i``-th pair (same label).
    """
    sampler = CrossModalityIdentitySampler.from_split(train, num_ids, num_pos, seed=seed)
    sampler.set_epoch(10**6 + stage)
    pairs = list(sampler)
    return TrainSplit([train.visible[v] for v, _ in pairs], [train.infrared[i] for _, i in pairs], train.num_classes)


def save_feature_bank(bank: FeatureBank, path: str | os.PathLike) -> None:
    """Write ``bank`` atomically (CPU tensors, format :data:`~csdn.engine.checkpoint.FEATURES_FORMAT`)."""
    save_checkpoint({k: v.cpu() for k, v in bank._asdict().items()}, path, format=FEATURES_FORMAT)


def load_feature_bank(path: str | os.PathLike, device: torch.device | str = "cpu") -> FeatureBank:
    """Read a bank written by :func:`save_feature_bank` onto ``device``."""
    saved = load_checkpoint(path, format=FEATURES_FORMAT)
    return FeatureBank(*(saved[name].to(device) for name in FeatureBank._fields))


def image_stage_loader(train: TrainSplit, cfg: TrainConfig, dist: DistInfo, generator: torch.Generator) -> DataLoader:
    """Stage-3 loader: collated :class:`csdn.data.loaders.PairedSample` batches of P x K identity-aligned pairs.

    The sampler draws identities from ``(seed, epoch)`` (call ``loader.sampler.set_epoch``); ``generator`` seeds
    the workers' augmentation streams, so a resumed run replays the same augmentations.
    """
    d, s3 = cfg.data, cfg.stage3
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
        train, s3.num_ids, s3.num_pos, seed=cfg.runtime.seed, num_replicas=dist.world_size, rank=dist.rank
    )
    return DataLoader(
        CrossModalityDataset(train, transforms),
        batch_size=sampler.batch_size,
        sampler=sampler,
        num_workers=d.num_workers,
        generator=generator,
        drop_last=True,
        pin_memory=False,
        persistent_workers=False,
    )


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
