"""Feature extraction for users: images in any common form -> re-ID embeddings of one modality.

:class:`FeatureExtractor` wraps a trained model (a ``csdn train`` checkpoint or any module with
``encode_image(images, modality)``) and the official test transform, in the spirit of torchreid's
``FeatureExtractor``::

    extractor = FeatureExtractor("runs/sysu/checkpoints/final.pt", modality="infrared", flip=True)
    query = extractor(["q1.jpg", "q2.jpg"])                      # (2, 6144) CPU float32
    gallery = extractor(list_images("gallery/"), modality="visible")
    result = csdn.search(query, gallery, topk=10)

This module sits at the top of the package (next to the CLI) and may use every layer.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import PIL.Image
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms import v2

from .data.loaders import load_image
from .data.samples import Modality
from .data.transforms import build_test_transform
from .evaluation.features import FLIP_MODES, encode_images, model_device

logger = logging.getLogger(__name__)

__all__ = [
    "FeatureExtractor",
    "IMAGE_EXTENSIONS",
    "check_image_size",
    "list_images",
    "load_model",
    "preprocess",
    "to_pil_image",
]

#: File extensions :func:`list_images` treats as images (lower case).
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")

ImageInput = str | os.PathLike | PIL.Image.Image | np.ndarray | torch.Tensor


def list_images(root: str | os.PathLike, recursive: bool = True) -> list[str]:
    """Sorted paths of the image files under ``root`` (extensions in :data:`IMAGE_EXTENSIONS`).

    Raises:
        FileNotFoundError: if ``root`` is not a folder.
        ValueError: if it holds no image file.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"image folder {str(root)!r} does not exist or is not a folder")
    pattern = "**/*" if recursive else "*"
    paths = sorted(str(p) for p in root.glob(pattern) if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())
    if not paths:
        raise ValueError(f"image folder {str(root)!r} holds no image file (looked for {', '.join(IMAGE_EXTENSIONS)})")
    return paths


def load_model(
    checkpoint_or_model: str | os.PathLike | nn.Module,
    device: str | torch.device | None = None,
    image_size: int | tuple[int, int] | None = None,
) -> tuple[nn.Module, tuple[int, int] | None]:
    """Resolve a model argument: a module is used as is, a path is loaded as a checkpoint.

    Args:
        checkpoint_or_model: Any ``nn.Module`` with ``encode_image(images, modality)``; or the path of a checkpoint
            written by ``csdn train`` (rebuilt exactly from the config it carries, see
            :func:`csdn.engine.modeling.load_trained_model`); or of a checkpoint of the authors' official code
            (``model_<epoch>.pth``, rebuilt with :func:`csdn.models.csdn_from_official`; the report of the key
            mapping is logged).
        device: Where the model should live; ``None`` keeps a module where it is and loads checkpoints on CPU.
        image_size: Input ``(H, W)`` an official checkpoint was trained at (default ``(288, 144)``); csdn
            checkpoints record theirs.

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
    from .engine.checkpoint import load_checkpoint
    from .engine.modeling import load_trained_model

    path, device = os.fspath(checkpoint_or_model), "cpu" if device is None else device
    try:
        load_checkpoint(path, map_location="meta")  # cheap format check; FileNotFoundError for a missing file
    except ValueError as not_csdn:
        return _load_official(path, device, image_size, not_csdn)
    model, cfg, _ = load_trained_model(path, device=device)
    logger.info("loaded %s (%s, %dx%d input)", path, cfg.model.clip, cfg.data.height, cfg.data.width)
    return model, (cfg.data.height, cfg.data.width)


def _load_official(path: str, device, image_size, not_csdn: ValueError) -> tuple[nn.Module, tuple[int, int]]:
    """Second attempt of :func:`load_model`: a checkpoint of the official CSDN code."""
    from .models.official import csdn_from_official

    size = check_image_size(image_size or (288, 144))
    try:
        model, report = csdn_from_official(path, image_size=size, device=device)
    except (ValueError, RuntimeError, KeyError) as not_official:
        raise ValueError(
            f"checkpoint {path!r} is neither a csdn training checkpoint nor an official CSDN checkpoint "
            f"({not_csdn}; as an official checkpoint: {str(not_official).splitlines()[0]})"
        ) from None
    logger.info("loaded official CSDN checkpoint %s at %dx%d: %s", path, *size, str(report).splitlines()[0])
    return model, size


def check_image_size(image_size: int | Sequence[int]) -> tuple[int, int]:
    """Return ``image_size`` as ``(H, W)`` (an int means square) or raise ValueError naming the argument."""
    size = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
    if len(size) != 2 or not all(isinstance(s, int) and s > 0 for s in size):
        raise ValueError(f"image_size must be a positive int or (height, width), got {image_size!r}")
    return size  # type: ignore[return-value]


def to_pil_image(image: Any) -> PIL.Image.Image:
    """One raw image -> RGB PIL image (grey and single-channel images are replicated to three channels).

    Accepts a file path, a PIL image, a numpy array HxW / HxWx1 / HxWx3 / HxWx4 (uint8, or float in [0, 1]), or a
    uint8 tensor (1 or 3, H, W).

    Raises:
        FileNotFoundError: for a missing file.
        ValueError: for a folder, an undecodable file, or an unsupported type, shape or dtype (naming it).
    """
    if isinstance(image, (str, os.PathLike)):
        if Path(image).is_dir():
            raise ValueError(f"input {os.fspath(image)!r} is a folder; pass csdn.extract.list_images(folder)")
        return load_image(image)
    if isinstance(image, PIL.Image.Image):
        return image.convert("RGB")
    if isinstance(image, torch.Tensor):
        if image.dtype != torch.uint8 or image.dim() != 3 or image.shape[0] not in (1, 3):
            raise ValueError(f"uint8 tensor images must be (C, H, W) with C 1 or 3, got {image.dtype} "
                             f"{tuple(image.shape)}")  # fmt: skip
        return v2.functional.to_pil_image(image.cpu()).convert("RGB")
    if not isinstance(image, np.ndarray):
        raise ValueError(
            f"cannot read a {type(image).__name__} as an image; expected a path, PIL image, array or tensor"
        )
    array = image[:, :, 0] if image.ndim == 3 and image.shape[2] == 1 else image
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (3, 4)):
        raise ValueError(
            f"numpy images must be HxW, HxWx1, HxWx3 or HxWx4 (or a batch NxHxWxC), got shape {image.shape}"
        )
    if np.issubdtype(array.dtype, np.floating):
        array = (np.clip(array, 0.0, 1.0) * 255.0).round().astype(np.uint8)
    elif array.dtype != np.uint8:
        raise ValueError(f"numpy images must be uint8 (0-255) or float (0-1), got dtype {array.dtype}")
    return PIL.Image.fromarray(np.ascontiguousarray(array)).convert("RGB")


def _split_batches(inputs: Any) -> list[Any]:
    """Flatten ``inputs`` (one image, a batch array/tensor, or a sequence of images) into a list of items."""
    if isinstance(inputs, np.ndarray):
        return list(inputs) if inputs.ndim == 4 else [inputs]
    if isinstance(inputs, torch.Tensor):
        return list(inputs) if inputs.dim() == 4 else [inputs]
    if isinstance(inputs, (str, os.PathLike, PIL.Image.Image)):
        return [inputs]
    if isinstance(inputs, Sequence):
        return list(inputs)
    raise ValueError(
        f"inputs must be a path, PIL image, numpy array, tensor or a sequence of them, got {type(inputs).__name__}"
    )


class _InputDataset(Dataset):
    """Items of a user's input list as preprocessed ``(3, H, W)`` float tensors."""

    def __init__(self, items: list[Any], image_size: tuple[int, int], transform: v2.Transform) -> None:
        self.items, self.image_size, self.transform = items, image_size, transform

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> torch.Tensor:
        item = self.items[index]
        if isinstance(item, torch.Tensor) and item.is_floating_point():
            return self._preprocessed(item, index)
        try:
            return self.transform(to_pil_image(item))
        except ValueError as error:
            raise ValueError(f"input {index}: {error}") from None

    def _preprocessed(self, item: torch.Tensor, index: int) -> torch.Tensor:
        if item.dim() != 3 or tuple(item.shape) != (3, *self.image_size):
            height, width = self.image_size
            raise ValueError(
                f"input {index}: float tensors are taken as preprocessed model inputs of shape (3, {height}, {width})"
                f" (resized, ImageNet-normalised), got {tuple(item.shape)}; pass uint8 tensors, arrays, PIL images "
                "or paths to have them preprocessed"
            )
        return item.float().cpu()


def preprocess(
    inputs: ImageInput | Sequence[ImageInput], image_size: int | tuple[int, int] = (288, 144)
) -> torch.Tensor:
    """Turn images in any form :class:`FeatureExtractor` accepts into one model-input batch ``(N, 3, H, W)``.

    Raises:
        ValueError: for an empty input or an unsupported type or shape.
    """
    size = check_image_size(image_size)
    items = _split_batches(inputs)
    if not items:
        raise ValueError("inputs is empty: pass at least one image")
    dataset = _InputDataset(items, size, build_test_transform(*size))
    return torch.stack([dataset[i] for i in range(len(dataset))])


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
        flip: Also embed the horizontally flipped image (the official test protocol, also the default of
            :class:`csdn.evaluation.VIReIDEvaluator`; pass ``flip=True`` to reproduce its numbers).
        flip_mode: How the two embeddings combine: ``"concat"`` (official CSDN, doubles the dimension: 3072 ->
            6144 for RN50) or ``"sum"`` (AGW/LLCM baselines). Same helper as the evaluator.
        num_workers: DataLoader workers that decode and transform images (0 = in the calling process).
        autocast_dtype: Run the model under ``torch.autocast`` with this dtype (e.g. ``torch.bfloat16``);
            ``None`` = full precision. Features are returned as float32 either way.

    Example:
        >>> extractor = FeatureExtractor(model, modality="infrared")  # doctest: +SKIP
        >>> extractor(["a.jpg", "b.jpg"]).shape                      # doctest: +SKIP
        torch.Size([2, 3072])
    """

    def __init__(
        self,
        checkpoint_or_model: str | os.PathLike | nn.Module,
        device: str | torch.device | None = None,
        modality: str = "visible",
        batch_size: int = 64,
        image_size: int | tuple[int, int] | None = None,
        flip: bool = False,
        flip_mode: str = "concat",
        num_workers: int = 0,
        autocast_dtype: torch.dtype | None = None,
    ) -> None:
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        if flip_mode not in FLIP_MODES:
            raise ValueError(f"Unknown value {flip_mode!r} for argument flip_mode. Valid values are {list(FLIP_MODES)}")
        if not isinstance(num_workers, int) or num_workers < 0:
            raise ValueError(f"num_workers must be an int >= 0, got {num_workers!r}")
        self.modality = Modality.parse(modality).value
        self.model, trained_size = load_model(checkpoint_or_model, device, image_size)
        self.image_size = check_image_size(image_size or trained_size or (288, 144))
        self.batch_size, self.flip, self.flip_mode, self.num_workers = batch_size, bool(flip), flip_mode, num_workers
        self.autocast_dtype = autocast_dtype
        self.transform = build_test_transform(*self.image_size)

    @property
    def device(self) -> torch.device:
        """The device of the model's parameters."""
        return model_device(self.model)

    def __call__(self, inputs: ImageInput | Sequence[ImageInput], modality: str | None = None) -> torch.Tensor:
        """Embed ``inputs`` (see the class docstring for the accepted forms).

        Args:
            inputs: One image, one batch array/tensor, or a sequence of images.
            modality: Modality of these inputs; default: the extractor's ``modality``.

        Returns:
            CPU float32 tensor ``(N, D)`` (``(N, 2D)`` with ``flip`` and ``flip_mode="concat"``), rows in input
            order.

        Raises:
            ValueError: for an empty input, an unsupported input type or shape, an unknown modality.
            FileNotFoundError: for a missing image file.
        """
        modality = Modality.parse(modality or self.modality).value
        items = _split_batches(inputs)
        if not items:
            raise ValueError("inputs is empty: pass at least one image")
        return torch.cat(list(self._batches(items, modality)))

    @torch.no_grad()
    def _batches(self, items: list[Any], modality: str) -> Iterator[torch.Tensor]:
        loader = DataLoader(
            _InputDataset(items, self.image_size, self.transform),
            batch_size=self.batch_size,
            num_workers=self.num_workers,
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
