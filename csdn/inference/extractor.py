"""Feature extraction for users: images in any common form -> re-ID embeddings of one modality.

:class:`FeatureExtractor` wraps a trained model (a ``csdn train`` checkpoint, an official CSDN checkpoint or any
module with ``encode_image(images, modality)``) and the official test transform, in the spirit of torchreid's
``FeatureExtractor``::

    extractor = FeatureExtractor("runs/sysu/checkpoints/final.pt", modality="infrared", flip=True)
    query = extractor(["q1.jpg", "q2.jpg"])                      # (2, 6144) CPU float32
    gallery = extractor(list_images("gallery/"), modality="visible")
    result = csdn.search(query, gallery, topk=10)

Never imports the training engine: checkpoints are read through :mod:`csdn.models.checkpoint`.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator, Sequence
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader

from .._progress import Progress, ProgressReport
from ..data import Modality
from ..data.images import ImageInput, InputDataset, SkippedInput, check_image_size, collate_skipping, split_inputs
from ..data.loaders import collate
from ..evaluation.features import FLIP_DEFAULT, FLIP_MODES, encode_images, model_device
from ..models.checkpoint import load_model_file

logger = logging.getLogger(__name__)

__all__ = ["FeatureExtractor", "load_model"]


def load_model(
    checkpoint_or_model: str | os.PathLike | nn.Module,
    device: str | torch.device | None = None,
    image_size: int | tuple[int, int] | None = None,
    *,
    clip: str | os.PathLike | None = None,
    trust_code: bool = False,
) -> tuple[nn.Module, tuple[int, int] | None]:
    """Resolve a model argument: a module is used as is, a path is loaded as a checkpoint.

    Args:
        checkpoint_or_model: Any ``nn.Module`` with ``encode_image(images, modality)``; or the path of a checkpoint
            written by ``csdn train`` (rebuilt exactly from the record it carries) or of the authors' official
            code (``model_<epoch>.pth``); see :func:`csdn.models.checkpoint.load_model_file`.
        device: Where the model should live; ``None`` keeps a module where it is and loads checkpoints on CPU.
        image_size: Input ``(H, W)`` an official checkpoint was trained at (default ``(288, 144)``); csdn
            checkpoints record theirs.
        clip: For a csdn checkpoint without a CLIP architecture record (older csdn): the CLIP weights it was trained
            from, an official name or a local file (a checkpoint never chooses one itself); never needed otherwise.
        trust_code: Let that CLIP file run its own code (see :func:`csdn.models.checkpoint.load_csdn`).

    Returns:
        ``(model, image_size)``: the model in eval mode for checkpoints, and its training input ``(H, W)``
        (``None`` for a module).

    Raises:
        FileNotFoundError: if the checkpoint does not exist.
        ValueError: if the file is neither kind of checkpoint, or the module has no ``encode_image``.
    """
    if isinstance(checkpoint_or_model, nn.Module):
        if not callable(getattr(checkpoint_or_model, "encode_image", None)):
            raise ValueError(
                f"checkpoint_or_model is a {type(checkpoint_or_model).__name__} without an encode_image(images, "
                "modality) method; pass a csdn.models.CSDN (or a module with that method) or a checkpoint path"
            )
        model = checkpoint_or_model if device is None else checkpoint_or_model.to(device)
        return model, None
    if not isinstance(checkpoint_or_model, (str, os.PathLike)):
        raise ValueError(
            f"checkpoint_or_model must be a checkpoint path or an nn.Module, got {type(checkpoint_or_model).__name__}"
        )
    size = check_image_size(image_size or (288, 144))
    device = "cpu" if device is None else device
    return load_model_file(checkpoint_or_model, device, size, clip=clip, trust_code=trust_code)


class FeatureExtractor:
    """Embed images of one modality with a trained CSDN (or any model with ``encode_image``).

    Inputs may be image paths, PIL images, numpy arrays (HxW, HxWxC uint8 or float in [0, 1]; NxHxWxC batches),
    uint8 tensors (C, H, W) / (N, C, H, W) (raw images), or float tensors (3, H, W) / (N, 3, H, W) taken as
    already preprocessed model inputs (as torchreid's extractor does); or a list mixing them. Everything but
    preprocessed tensors goes through the official test transform (antialiased resize to ``image_size``,
    ImageNet normalisation; :func:`csdn.data.build_test_transform`).

    Args:
        checkpoint_or_model: A ``csdn train`` checkpoint path or a module with ``encode_image`` (see
            :func:`load_model`).
        device: Where the model runs (``"cuda"``, ``"cpu"``, ...). ``None``: a module stays where it is, a
            checkpoint is loaded on CPU.
        modality: Default modality of the inputs, ``"visible"`` or ``"infrared"`` (selects the stem); each call
            may override it.
        batch_size: Images per forward pass.
        image_size: Model input ``(H, W)`` or an int for square inputs; default: the checkpoint's training size,
            else ``(288, 144)``.
        flip: Also embed the horizontally flipped image (the official test protocol; default
            :data:`csdn.evaluation.features.FLIP_DEFAULT`, on, as in :class:`csdn.evaluation.VIReIDEvaluator`).
        flip_mode: How the two embeddings combine: ``"concat"`` (official CSDN, doubles the dimension: 3072 ->
            6144 for RN50) or ``"sum"`` (AGW/LLCM baselines). Same helper as the evaluator.
        num_workers: DataLoader workers that decode and transform images (0 = in the calling process).
        autocast_dtype: Run the model under ``torch.autocast`` with this dtype (e.g. ``torch.bfloat16``);
            ``None`` = full precision. Features are returned as float32 either way.
        clip: See :func:`load_model` (only for old checkpoints without a CLIP architecture record).
        trust_code: See :func:`load_model` (only for old checkpoints whose CLIP file must run its own code).

    Features are the model's test embeddings, not re-normalised: for CSDN with the default flip, rows of 6144
    values for RN50 (two 3072-d embeddings, each two unit-length halves) with norm 2 for every image; without
    flip, 3072 values of norm ``sqrt(2)``. Compare them by inner product (the official test) or cosine distance
    (the same ranking; csdn's default); ``csdn extract --metric cosine`` writes unit-length rows.

    Example:
        >>> extractor = FeatureExtractor(model, modality="infrared")  # doctest: +SKIP
        >>> feats = extractor(["a.jpg", "b.jpg"])                    # doctest: +SKIP
        >>> feats.shape, feats.norm(dim=1)                           # doctest: +SKIP
        (torch.Size([2, 6144]), tensor([2., 2.]))
    """

    def __init__(
        self,
        checkpoint_or_model: str | os.PathLike | nn.Module,
        device: str | torch.device | None = None,
        modality: str = "visible",
        batch_size: int = 64,
        image_size: int | tuple[int, int] | None = None,
        flip: bool = FLIP_DEFAULT,
        flip_mode: str = "concat",
        num_workers: int = 0,
        autocast_dtype: torch.dtype | None = None,
        trust_code: bool = False,
        clip: str | os.PathLike | None = None,
    ) -> None:
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        if flip_mode not in FLIP_MODES:
            raise ValueError(f"Unknown value {flip_mode!r} for argument flip_mode. Valid values are {list(FLIP_MODES)}")
        if not isinstance(num_workers, int) or num_workers < 0:
            raise ValueError(f"num_workers must be an int >= 0, got {num_workers!r}")
        self.modality = Modality.parse(modality).value
        self.model, trained_size = load_model(checkpoint_or_model, device, image_size, clip=clip, trust_code=trust_code)
        self.image_size = check_image_size(image_size or trained_size or (288, 144))
        self.batch_size, self.flip, self.flip_mode, self.num_workers = batch_size, bool(flip), flip_mode, num_workers
        self.autocast_dtype = autocast_dtype
        from ..data.transforms import build_test_transform  # torchvision on first use, not at import

        self.transform = build_test_transform(*self.image_size)
        #: Image files the last call with ``skip_bad=True`` skipped (position, path, reason), in input order.
        self.skipped: list[SkippedInput] = []

    @property
    def device(self) -> torch.device:
        """The device of the model's parameters."""
        return model_device(self.model)

    def __call__(
        self,
        inputs: ImageInput | Sequence[ImageInput],
        modality: str | None = None,
        progress: ProgressReport = False,
        skip_bad: bool = False,
    ) -> torch.Tensor:
        """Embed ``inputs`` (see the class docstring for the accepted forms).

        Args:
            inputs: One image, one batch array/tensor, or a sequence of images.
            modality: Modality of these inputs; default: the extractor's ``modality``.
            progress: ``True``: a bar on a terminal, a log line every 10 s elsewhere (``csdn extract``);
                ``False`` (default): silent; or a callable ``progress(done, total)`` called after every batch.
            skip_bad: Skip image files that are missing, undecodable, truncated or over PIL's pixel limit instead
                of raising; they are listed in :attr:`skipped` (and counted in a warning log line), and their rows
                are left out of the result.

        Returns:
            CPU float32 tensor ``(N, D)`` (``(N, 2D)`` with ``flip`` and ``flip_mode="concat"``), rows in input
            order (``N`` = inputs minus skipped files).

        Raises:
            ValueError: for an empty input, an unsupported input type or shape, an unknown modality, an
                unreadable image file (without ``skip_bad``), or when every file was skipped.
            FileNotFoundError: for a missing image file (without ``skip_bad``).
        """
        modality = Modality.parse(modality or self.modality).value
        items = split_inputs(inputs)
        if not items:
            raise ValueError("inputs is empty: pass at least one image")
        self.skipped = []
        chunks = []
        with Progress(len(items), f"extracting {len(items)} {modality} features", progress, logger) as bar:
            for batch in self._batches(items, modality, skip_bad):
                chunks.append(batch)
                bar.update(len(batch))
        if self.skipped:
            names = ", ".join(s.path for s in self.skipped[:3]) + (", ..." if len(self.skipped) > 3 else "")
            logger.warning("skipped %d of %d unreadable images: %s", len(self.skipped), len(items), names)
        if not chunks:
            raise ValueError(f"none of the {len(items)} images could be read (first: {self.skipped[0].reason})")
        return torch.cat(chunks)

    @torch.no_grad()
    def _batches(self, items: list[Any], modality: str, skip_bad: bool = False) -> Iterator[torch.Tensor]:
        loader = DataLoader(
            InputDataset(items, self.image_size, self.transform, skip_bad=skip_bad),
            batch_size=self.batch_size,
            num_workers=self.num_workers,
            collate_fn=collate_skipping if skip_bad else collate,
        )
        device = self.device
        was_training = self.model.training
        self.model.eval()
        autocast = (
            torch.autocast(device.type, dtype=self.autocast_dtype)
            if self.autocast_dtype is not None
            else contextlib.nullcontext()
        )
        try:
            for images in loader:
                if skip_bad:
                    images, skipped = images
                    self.skipped.extend(skipped)
                    if images is None:
                        continue
                with autocast:
                    yield (
                        encode_images(self.model, images.to(device), modality, self.flip, self.flip_mode).float().cpu()
                    )
        finally:
            self.model.train(was_training)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(model={type(self.model).__name__}, device={self.device}, modality="
            f"{self.modality!r}, image_size={self.image_size}, batch_size={self.batch_size}, flip={self.flip}, "
            f"flip_mode={self.flip_mode!r})"
        )
