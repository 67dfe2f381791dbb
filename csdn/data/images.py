"""Images in any common form -> RGB PIL images or model-input batches; finding image files in a folder.

Used by :class:`csdn.inference.FeatureExtractor`, the visualisations, the exporter and the dataset loaders
(:func:`load_image`). The accepted forms: a file path, a PIL image, a numpy array HxW / HxWx1 / HxWx3 / HxWx4
(uint8, or float in [0, 1]; NxHxWxC batches), a uint8 tensor (C, H, W) / (N, C, H, W) (raw images), or a float
tensor (3, H, W) / (N, 3, H, W) taken as an already preprocessed model input.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, cast

import numpy as np
import PIL.Image
import torch
from torch.utils.data import Dataset

from .._threads import memory_bound

if TYPE_CHECKING:  # torchvision (and with it its detection ops and torch._dynamo) is imported on first use only
    from torchvision.transforms import v2

__all__ = [
    "IMAGE_EXTENSIONS",
    "WIDE_MODES",
    "ImageInput",
    "InputDataset",
    "SkippedInput",
    "collate_skipping",
    "check_image_size",
    "list_images",
    "load_image",
    "preprocess",
    "split_inputs",
    "to_8bit",
    "to_pil_image",
]

#: File extensions :func:`list_images` treats as images (lower case).
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")

ImageInput = str | os.PathLike | PIL.Image.Image | np.ndarray | torch.Tensor


#: PIL modes of more than 8 bits per pixel (16-bit thermal PNGs, 32-bit integer and float images).
WIDE_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I", "F")
_UINT16_MAX = 65535


def to_8bit(image: PIL.Image.Image) -> PIL.Image.Image:
    """Scale a 16-bit, 32-bit integer or float greyscale image to 8-bit ``"L"`` by its range, never clipping.

    - ``I;16*`` (16-bit, e.g. thermal-camera PNGs): the full range 0..65535 maps to 0..255 (``round(v * 255 /
      65535)``, halves rounded up), so the image keeps its brightness relative to the sensor's range.
    - ``I`` (32-bit integer; PIL opens some 16-bit PNGs and TIFFs this way): as 16-bit when every value lies in
      0..65535, else min-max.
    - ``F`` (float): values in [0, 1] map to 0..255 (``round(v * 255)``); any other range is min-max scaled.
    - Min-max scaling maps the image's minimum to 0 and its maximum to 255 (a constant image becomes 0).

    Other modes are returned unchanged. NaNs (float images) become 0. Memory is bounded: 16-bit values are scaled
    exactly in integers (one 4-byte copy per pixel), the others in one float32 copy changed in place, so a
    large image costs a few bytes per pixel on top of PIL's own, never several float64 copies.
    """
    if image.mode not in WIDE_MODES:
        return image
    if image.mode == "F":
        floats = np.array(image, dtype=np.float32)  # the one (writable) float copy; everything below is in place
    else:
        values = np.asarray(image)  # uint16 / int32, as PIL stores them
        if image.mode.startswith("I;16") or values.size == 0 or (values.min() >= 0 and values.max() <= _UINT16_MAX):
            scaled = values.astype(np.uint32)  # floor((510 v + 65535) / 131070) = round(v * 255 / 65535), half up
            scaled *= 510
            scaled += _UINT16_MAX
            scaled //= 2 * _UINT16_MAX
            return PIL.Image.fromarray(scaled.astype(np.uint8), mode="L")
        floats = values.astype(np.float32)  # the one float copy
    np.nan_to_num(floats, copy=False, nan=0.0, posinf=0.0, neginf=0.0)
    low, high = (float(floats.min()), float(floats.max())) if floats.size else (0.0, 0.0)
    if image.mode == "F" and low >= 0.0 and high <= 1.0:
        floats *= 255.0
    elif high > low:
        floats -= low
        floats *= 255.0  # before the division: exact for integer-valued images
        floats /= high - low
    else:
        floats[...] = 0.0
    floats += 0.5  # halves up
    np.floor(floats, out=floats)
    np.clip(floats, 0, 255, out=floats)
    return PIL.Image.fromarray(floats.astype(np.uint8), mode="L")


def load_image(path: str | os.PathLike) -> PIL.Image.Image:
    """Open an image file as an RGB PIL image (grey/thermal images are replicated to three channels).

    16-bit, 32-bit and float images are scaled to 8 bits from their full range (:func:`to_8bit`), not clipped.
    Images over PIL's pixel limit (``PIL.Image.MAX_IMAGE_PIXELS``, a guard against decompression bombs) are
    refused, as are files PIL cannot decode or that end early (truncated).

    Raises:
        FileNotFoundError: if the file is missing.
        ValueError: if the file cannot be decoded or is over the pixel limit, naming it.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", PIL.Image.DecompressionBombWarning)
            with PIL.Image.open(path) as image:
                image.load()
                return to_8bit(image).convert("RGB")
    except FileNotFoundError:
        raise FileNotFoundError(f"Image {path} not found; was the dataset moved after the reader was built?") from None
    except (PIL.Image.DecompressionBombError, PIL.Image.DecompressionBombWarning) as error:
        raise ValueError(
            f"Image {path} is larger than PIL's limit of {PIL.Image.MAX_IMAGE_PIXELS} pixels ({error}); if you "
            "trust the file, raise PIL.Image.MAX_IMAGE_PIXELS."
        ) from None
    except (OSError, SyntaxError, PIL.UnidentifiedImageError) as error:
        raise ValueError(
            f"Cannot decode image {path} ({error}); the file is damaged, truncated or not an image; re-extract or "
            "replace it."
        ) from None


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


def check_image_size(image_size: int | Sequence[int]) -> tuple[int, int]:
    """Return ``image_size`` as ``(H, W)`` (an int means square) or raise ValueError naming the argument."""
    size = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
    if len(size) != 2 or not all(isinstance(s, int) and s > 0 for s in size):
        raise ValueError(f"image_size must be a positive int or (height, width), got {image_size!r}")
    return size


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
            raise ValueError(f"input {os.fspath(image)!r} is a folder; pass csdn.data.images.list_images(folder)")
        return load_image(image)
    if isinstance(image, PIL.Image.Image):
        return to_8bit(image).convert("RGB")
    if isinstance(image, torch.Tensor):
        if image.dtype != torch.uint8 or image.dim() != 3 or image.shape[0] not in (1, 3):
            raise ValueError(f"uint8 tensor images must be (C, H, W) with C 1 or 3, got {image.dtype} "
                             f"{tuple(image.shape)}")  # fmt: skip
        from torchvision.transforms.v2.functional import to_pil_image as tensor_to_pil

        return tensor_to_pil(image.cpu()).convert("RGB")
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


def split_inputs(inputs: Any) -> list[Any]:
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


class SkippedInput(NamedTuple):
    """An input file :class:`InputDataset` could not read (with ``skip_bad``): its position, path and why."""

    index: int  # type: ignore[assignment]  # the public field name shadows tuple.index on purpose
    path: str
    reason: str


class InputDataset(Dataset):
    """Items of a user's input list as preprocessed ``(3, H, W)`` float tensors.

    With ``skip_bad``, an image *file* that is missing, undecodable, truncated or over PIL's pixel limit gives a
    :class:`SkippedInput` instead of an error (collate batches with :func:`collate_skipping`); other bad inputs
    (wrong array shapes, types) still raise.
    """

    def __init__(
        self, items: list[Any], image_size: tuple[int, int], transform: v2.Transform, skip_bad: bool = False
    ) -> None:
        self.items, self.image_size, self.transform, self.skip_bad = items, image_size, transform, skip_bad

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> torch.Tensor | SkippedInput:
        item = self.items[index]
        if isinstance(item, torch.Tensor) and item.is_floating_point():
            return self._preprocessed(item, index)
        try:
            with memory_bound():  # per-image ops: one thread, as in a DataLoader worker (csdn/_threads.py)
                return self.transform(to_pil_image(item))
        except (ValueError, FileNotFoundError) as error:
            if self.skip_bad and isinstance(item, (str, os.PathLike)) and not Path(item).is_dir():
                return SkippedInput(index, os.fspath(item), str(error))
            if isinstance(error, FileNotFoundError):
                raise
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


def collate_skipping(batch: list[torch.Tensor | SkippedInput]) -> tuple[torch.Tensor | None, list[SkippedInput]]:
    """DataLoader ``collate_fn`` for :class:`InputDataset` with ``skip_bad``: (stacked good images or None, skipped)."""
    good = [x for x in batch if isinstance(x, torch.Tensor)]
    with memory_bound():
        stacked = torch.stack(good) if good else None
    return stacked, [x for x in batch if isinstance(x, SkippedInput)]


def preprocess(
    inputs: ImageInput | Sequence[ImageInput], image_size: int | tuple[int, int] = (288, 144)
) -> torch.Tensor:
    """Turn images in any form :class:`FeatureExtractor` accepts into one model-input batch ``(N, 3, H, W)``.

    Raises:
        ValueError: for an empty input or an unsupported type or shape.
    """
    from .transforms import build_test_transform

    size = check_image_size(image_size)
    items = split_inputs(inputs)
    if not items:
        raise ValueError("inputs is empty: pass at least one image")
    dataset = InputDataset(items, size, build_test_transform(*size))
    return torch.stack([cast(torch.Tensor, dataset[i]) for i in range(len(dataset))])  # no skip_bad: tensors only
