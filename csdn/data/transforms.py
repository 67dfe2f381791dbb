"""Channel augmentations of the AGW/CAJ family and the official CSDN train/test pipelines (transforms v2).

The three channel transforms act on tensor images ``(..., 3, H, W)`` (``ChannelRandomErasing`` also accepts one
channel) placed after ``ToDtype``/``Normalize`` in a pipeline, exactly where the official code applies them.
``make_params`` draws the randomness (from ``generator`` if given, else torch's default generator, which
DataLoader seeds per worker, like torchvision's own transforms); ``transform`` applies it without modifying the
input in place. Non-image inputs (labels, ...) pass through unchanged.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, NamedTuple

import PIL.Image
import torch
from torchvision import tv_tensors
from torchvision.transforms import InterpolationMode, v2

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "ERASING_FILL",
    "ChannelRandomErasing",
    "ChannelExchange",
    "ChannelAdapGray",
    "TrainTransforms",
    "build_train_transforms",
    "build_test_transform",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
#: Per-channel fill of ChannelRandomErasing (the CIFAR means the reference uses, applied to normalised images).
ERASING_FILL = (0.4914, 0.4822, 0.4465)
#: Luminance weights used to convert RGB to grey (ITU-R BT.601, as in the reference).
GREY_WEIGHTS = (0.2989, 0.5870, 0.1140)


def _is_pure_tensor(obj: Any) -> bool:
    return isinstance(obj, torch.Tensor) and not isinstance(obj, tv_tensors.TVTensor)


def _image_tensor(inpt: Any, name: str, channels: Sequence[int] = (3,)) -> torch.Tensor:
    if isinstance(inpt, PIL.Image.Image):
        raise TypeError(f"{name} expects a tensor image (..., C, H, W); got a PIL image. Put it after v2.ToImage().")
    if inpt.ndim < 3 or inpt.shape[-3] not in channels:
        raise ValueError(
            f"{name} expects images of shape (..., C, H, W) with C in {tuple(channels)}; got {tuple(inpt.shape)}."
        )
    return inpt


def _rewrap(out: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return tv_tensors.wrap(out, like=like) if isinstance(like, tv_tensors.TVTensor) else out


def _check_probability(value: float, name: str) -> float:
    if not 0.0 <= float(value) <= 1.0:
        raise ValueError(f"Argument {name} must be a probability in [0, 1], got {value!r}.")
    return float(value)


def _grey(image: torch.Tensor) -> torch.Tensor:
    """Luminance of ``(..., 3, H, W)`` as ``(..., 1, H, W)``, computed in float."""
    weights = torch.tensor(GREY_WEIGHTS, dtype=torch.float32, device=image.device).view(3, 1, 1)
    return (image.float() * weights).sum(dim=-3, keepdim=True)


def _to_dtype(values: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    return values.to(dtype) if dtype.is_floating_point else values.round().clamp(0, 255).to(dtype)


def _channel_op(image: torch.Tensor, index: int, grey: bool) -> torch.Tensor:
    """Copy channel ``index`` into all three channels, or replace all three by luminance if ``grey``."""
    source = _grey(image) if grey else image[..., index : index + 1, :, :]
    return _to_dtype(source, image.dtype).expand_as(image).clone()


class _ChannelTransform(v2.Transform):
    _transformed_types = (tv_tensors.Image, tv_tensors.Video, _is_pure_tensor, PIL.Image.Image)

    def __init__(self, generator: torch.Generator | None = None) -> None:
        super().__init__()
        self.generator = generator

    def _randint(self, low: int, high: int) -> int:
        """Uniform integer in ``[low, high]`` (both inclusive, like ``random.randint``)."""
        return int(torch.randint(low, high + 1, (1,), generator=self.generator).item())

    def _uniform(self, low: float = 0.0, high: float = 1.0) -> float:
        return low + (high - low) * float(torch.rand(1, generator=self.generator).item())


class ChannelExchange(_ChannelTransform):
    """Replace the RGB image by one of its channels (or its luminance) — the visible "view 2" augmentation.

    Draws ``idx`` uniformly from ``0..gray`` (inclusive); ``idx`` 0/1/2 copies the R/G/B channel into all three
    channels, any larger ``idx`` converts to luminance grey (0.2989 R + 0.5870 G + 0.1140 B).

    Note:
        The official default ``gray=2`` therefore **never** greys (only channel copies, each with probability
        1/3). We keep that default to reproduce published numbers; ``gray=3`` greys with probability 1/4.

    Args:
        gray: largest index drawn; must be ``>= 0``.
        generator: optional ``torch.Generator`` for the draws.
    """

    def __init__(self, gray: int = 2, generator: torch.Generator | None = None) -> None:
        super().__init__(generator)
        if isinstance(gray, bool) or not isinstance(gray, int) or gray < 0:
            raise ValueError(f"Argument gray must be a non-negative integer, got {gray!r}.")
        self.gray = gray

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        return {"index": self._randint(0, self.gray)}

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        image = _image_tensor(inpt, type(self).__name__)
        index = params["index"]
        return _rewrap(_channel_op(image, min(index, 2), grey=index > 2), inpt)


class ChannelAdapGray(_ChannelTransform):
    """Infrared augmentation: copy one channel into all three, or (probability ``p``) convert to luminance grey.

    Draws ``idx`` uniformly from ``0..3``; 0/1/2 copy the R/G/B channel into all three channels; 3 converts to
    luminance grey with probability ``p`` and otherwise leaves the image unchanged.

    Args:
        p: probability of greying when ``idx == 3``.
        generator: optional ``torch.Generator`` for the draws.
    """

    def __init__(self, p: float = 0.5, generator: torch.Generator | None = None) -> None:
        super().__init__(generator)
        self.p = _check_probability(p, "p")

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        index = self._randint(0, 3)
        return {"index": index, "grey": index == 3 and self._uniform() < self.p}

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        image = _image_tensor(inpt, type(self).__name__)
        if params["index"] == 3 and not params["grey"]:
            return inpt
        return _rewrap(_channel_op(image, min(params["index"], 2), grey=params["grey"]), inpt)


class ChannelRandomErasing(_ChannelTransform):
    """Random erasing with a fixed per-channel fill, as the AGW/CSDN reference implements it.

    With probability ``p``: up to ``max_attempts`` times draw an area ``U(scale) * H * W`` and an aspect ratio
    ``U(ratio)`` (uniform, not log-uniform), ``h = round(sqrt(area * aspect))``, ``w = round(sqrt(area / aspect))``;
    the first rectangle with ``h < H`` and ``w < W`` is placed at a uniform top-left corner and filled with
    ``value[c]`` in channel ``c`` (one-channel images use ``value[0]``). The fill is applied to the *normalised*
    image, as in the reference.

    Args:
        p: probability of erasing.
        scale: range of the erased fraction of the image area, ``0 < lo <= hi <= 1``.
        ratio: range of the aspect ratio ``h / w``, ``0 < lo <= hi``.
        value: per-channel fill (3 values, or 1 for all channels).
        max_attempts: tries before giving up (image returned unchanged).
        generator: optional ``torch.Generator`` for the draws.
    """

    def __init__(
        self,
        p: float = 0.5,
        scale: tuple[float, float] = (0.02, 0.4),
        ratio: tuple[float, float] = (0.3, 1 / 0.3),
        value: Sequence[float] = ERASING_FILL,
        max_attempts: int = 100,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__(generator)
        self.p = _check_probability(p, "p")
        if len(scale) != 2 or not 0 < scale[0] <= scale[1] <= 1:
            raise ValueError(f"Argument scale must be (lo, hi) with 0 < lo <= hi <= 1, got {scale!r}.")
        if len(ratio) != 2 or not 0 < ratio[0] <= ratio[1]:
            raise ValueError(f"Argument ratio must be (lo, hi) with 0 < lo <= hi, got {ratio!r}.")
        value = tuple(float(v) for v in value)
        if len(value) not in (1, 3):
            raise ValueError(f"Argument value must hold 1 or 3 fill values, got {len(value)}.")
        if isinstance(max_attempts, bool) or not isinstance(max_attempts, int) or max_attempts < 1:
            raise ValueError(f"Argument max_attempts must be a positive integer, got {max_attempts!r}.")
        self.scale, self.ratio, self.value, self.max_attempts = tuple(scale), tuple(ratio), value, max_attempts

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        if self._uniform() >= self.p:
            return {"box": None}
        images = [x for x in flat_inputs if isinstance(x, torch.Tensor)]
        if not images:
            return {"box": None}
        height, width = images[0].shape[-2:]
        for _ in range(self.max_attempts):
            area = self._uniform(*self.scale) * height * width
            aspect = self._uniform(*self.ratio)
            h, w = int(round(math.sqrt(area * aspect))), int(round(math.sqrt(area / aspect)))
            if h < height and w < width:
                return {"box": (self._randint(0, height - h), self._randint(0, width - w), h, w)}
        return {"box": None}

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        image = _image_tensor(inpt, type(self).__name__, channels=(1, 3))
        if params["box"] is None:
            return inpt
        if not image.dtype.is_floating_point:
            raise TypeError(f"ChannelRandomErasing expects a float (normalised) image; got dtype {image.dtype}.")
        top, left, h, w = params["box"]
        channels = image.shape[-3]
        fill = self.value if len(self.value) == channels else (self.value[0],) * channels
        out = image.clone()
        out[..., :, top : top + h, left : left + w] = torch.tensor(fill, dtype=image.dtype, device=image.device).view(
            channels, 1, 1
        )
        return _rewrap(out, inpt)


class TrainTransforms(NamedTuple):
    """The three training pipelines: visible view 1, visible view 2 (adds ChannelExchange), infrared."""

    visible: v2.Compose
    visible_exchange: v2.Compose
    infrared: v2.Compose


def _check_size(height: int, width: int) -> None:
    for name, value in (("height", height), ("width", width)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"Argument {name} must be a positive integer number of pixels, got {value!r}.")


def _resize(height: int, width: int, interpolation: InterpolationMode) -> v2.Resize:
    return v2.Resize((height, width), interpolation=interpolation, antialias=True)


def build_train_transforms(
    height: int = 288,
    width: int = 144,
    *,
    padding: int = 10,
    flip_p: float = 0.5,
    erasing_p: float = 0.5,
    gray: int = 2,
    adapgray_p: float = 0.5,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
    interpolation: InterpolationMode = InterpolationMode.LANCZOS,
) -> TrainTransforms:
    """Official stage-3 training pipelines for PIL images.

    Each pipeline: Resize to ``(height, width)`` with antialiasing (LANCZOS, like the official pre-resized
    arrays) -> ToImage -> Pad(``padding``) -> RandomCrop(``(height, width)``) -> RandomHorizontalFlip(``flip_p``)
    -> ToDtype(float32, scale) -> Normalize(``mean``, ``std``) -> ChannelRandomErasing(``erasing_p``); visible
    view 2 adds ChannelExchange(``gray``) and infrared adds ChannelAdapGray(``adapgray_p``). The two visible
    views are independent draws. Output: float tensors ``(3, height, width)``.
    """
    _check_size(height, width)

    def pipeline(*extra: v2.Transform) -> v2.Compose:
        return v2.Compose(
            [
                _resize(height, width, interpolation),
                v2.ToImage(),
                v2.Pad(padding),
                v2.RandomCrop((height, width)),
                v2.RandomHorizontalFlip(flip_p),
                v2.ToDtype(torch.float32, scale=True),
                v2.Normalize(list(mean), list(std)),
                ChannelRandomErasing(p=erasing_p),
                *extra,
            ]
        )

    return TrainTransforms(pipeline(), pipeline(ChannelExchange(gray)), pipeline(ChannelAdapGray(adapgray_p)))


def build_test_transform(
    height: int = 288,
    width: int = 144,
    *,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
    interpolation: InterpolationMode = InterpolationMode.LANCZOS,
) -> v2.Compose:
    """Official test pipeline for PIL images: Resize (antialiased) -> ToImage -> ToDtype -> Normalize."""
    _check_size(height, width)
    return v2.Compose(
        [
            _resize(height, width, interpolation),
            v2.ToImage(),
            v2.ToDtype(torch.float32, scale=True),
            v2.Normalize(list(mean), list(std)),
        ]
    )
