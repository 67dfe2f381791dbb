"""Test-time feature extraction for any model with ``encode_image(images, modality)``.

The official CSDN test feature of an image is ``cat(f(x), f(flip(x)))``: the 3072-d embedding of the image and of
its horizontal mirror, concatenated (6144-d), compared by inner product; so the score of two images is the sum
of their plain and mirrored scores. The features are not re-normalised: ``f(x)`` is two unit-length halves
(norm ``sqrt(2)``), so the official feature has norm 2 for every image, and cosine distance (csdn's default
metric) ranks exactly like the official inner product. ``flip_mode="sum"`` gives ``f(x) + f(flip(x))`` instead
(the AGW/LLCM baselines' convention; same dimension as the model's output, norm at most ``2 * sqrt(2)``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader

from .._progress import Progress, ProgressReport
from ..data import Modality
from ..data.loaders import ImageDataset, collate
from ..data.samples import Sample

__all__ = ["FLIP_DEFAULT", "FLIP_MODES", "encode_images", "extract_features", "model_device"]

logger = logging.getLogger(__name__)

FLIP_MODES = ("concat", "sum")
FLIP_DEFAULT = True
"""Flip test-time augmentation on or off by default, in every entry point (extractor, evaluator, extract,
export): on, as in the official test."""


def model_device(model: nn.Module) -> torch.device:
    """Device of the model's first parameter or buffer (CPU for a model without any)."""
    for tensor in (*model.parameters(), *model.buffers()):
        return tensor.device
    return torch.device("cpu")


def encode_images(
    model: nn.Module, images: torch.Tensor, modality: str, flip: bool = FLIP_DEFAULT, flip_mode: str = "concat"
) -> torch.Tensor:
    """Embed a batch, optionally with the flip test-time augmentation.

    Args:
        model: Module with ``encode_image(images (B, 3, H, W), modality) -> (B, D)``.
        images: Preprocessed images (B, 3, H, W) on the model's device.
        modality: ``"visible"`` or ``"infrared"``.
        flip: Also embed the horizontally mirrored images.
        flip_mode: ``"concat"`` -> (B, 2D) (official CSDN), ``"sum"`` -> (B, D).

    Returns:
        Float tensor (B, D) or (B, 2D).
    """
    feats = model.encode_image(images, modality)  # type: ignore[operator]  # duck-typed: any module with encode_image
    if not flip:
        return feats
    mirrored = model.encode_image(images.flip(-1), modality)  # type: ignore[operator]  # as above
    return torch.cat([feats, mirrored], dim=1) if flip_mode == "concat" else feats + mirrored


@torch.inference_mode()
def extract_features(
    model: nn.Module,
    samples: Sequence[Sample],
    modality: str | Modality,
    transform: Callable[[Any], torch.Tensor] | None = None,
    batch_size: int = 64,
    device: str | torch.device | None = None,
    flip: bool = FLIP_DEFAULT,
    flip_mode: str = "concat",
    num_workers: int = 0,
    progress: ProgressReport = True,
) -> torch.Tensor:
    """Embed the images of ``samples`` with ``model.encode_image`` in eval mode.

    Args:
        model: Module with ``encode_image(images, modality)``; it is put in eval mode for the extraction and
            its previous mode is restored afterwards. It is not moved: pass ``device`` where it lives.
        samples: Samples to embed (their ``path``; order is kept).
        modality: Modality the images are encoded as (``"visible"``/``"infrared"``).
        transform: PIL image -> (3, H, W) tensor; default :func:`csdn.data.build_test_transform` (288x144).
        batch_size: Images per forward pass.
        device: Where the images are sent (default: the model's device).
        flip: Flip test-time augmentation (see the module docstring).
        flip_mode: ``"concat"`` (official, doubles the dimension) or ``"sum"``.
        num_workers: DataLoader worker processes.
        progress: ``True``: a bar on a terminal, a log line every 10 s elsewhere; ``False``: silent; or a
            callable ``progress(done, total)`` called after every batch with the images embedded so far.

    Returns:
        Float32 CPU tensor (len(samples), D) (D doubled by ``flip_mode="concat"``).

    Raises:
        ValueError: On an unknown modality or flip mode, an empty sample list or a bad batch size.
    """
    modality = Modality.parse(modality).value
    if flip_mode not in FLIP_MODES:
        raise ValueError(f"Unknown value {flip_mode!r} for argument flip_mode. Valid values are {list(FLIP_MODES)}.")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}.")
    if len(samples) == 0:
        raise ValueError("samples is empty: nothing to extract features from.")
    if not callable(getattr(model, "encode_image", None)):
        raise ValueError(f"model must have an encode_image(images, modality) method; got {type(model).__name__}.")
    dev = torch.device(device) if device is not None else model_device(model)
    if transform is None:
        from ..data.transforms import build_test_transform  # torchvision on first use, not at import

        transform = build_test_transform()
    loader = DataLoader(
        ImageDataset(samples, transform),
        batch_size=batch_size,
        shuffle=False,
        num_workers=num_workers,
        pin_memory=dev.type == "cuda",
        collate_fn=collate,  # one thread in the main process (num_workers=0), as in a worker
    )
    was_training = model.training
    model.eval()
    bar = Progress(len(samples), f"extracting {len(samples)} {modality} features", progress, logger)
    try:
        chunks = []
        for images, *_ in loader:
            feats = encode_images(model, images.to(dev, non_blocking=True), modality, flip, flip_mode)
            chunks.append(feats.float().cpu())
            bar.update(images.shape[0])
    finally:
        bar.close()
        model.train(was_training)
    out = torch.cat(chunks)
    logger.debug("extracted %d %s features of dimension %d", out.shape[0], modality, out.shape[1])
    return out
