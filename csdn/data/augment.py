"""The official training pipelines, run from resized uint8 images: per item on the CPU or batched on a device.

:func:`~csdn.data.transforms.build_train_transforms` pipelines (Resize -> ToImage -> Pad -> RandomCrop -> flip ->
ToDtype -> Normalize -> ChannelRandomErasing [-> ChannelExchange | ChannelAdapGray]) are compiled into a
:class:`ViewPlan` that splits each view into its random draws (:meth:`ViewPlan.draw`, the same torch calls in the
same order as the ``v2.Compose``, so a seed gives the same view) and their application to an image already
resized by the pipeline's own ``Resize`` (done once per image and cached, see :mod:`csdn.data.image_cache`):

- :meth:`ViewPlan.apply` (CPU, one image): pad + crop + flip as one uint8 copy, ``ToDtype`` + ``Normalize`` as one
  256-entry lookup per channel (the table is computed by the pipeline's own two transforms, so values are
  bit-identical), erasing and the channel transform in place;
- :func:`apply_batch` (any device, a batch): the same operations as gathers and masks on ``(B, H, W, 3)`` uint8.

Pipelines of any other shape do not compile (``None``) and run as they are.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torchvision.transforms import v2

from .transforms import ChannelAdapGray, ChannelExchange, ChannelRandomErasing, _grey

__all__ = ["NUM_PARAMS", "ViewPlan", "apply_batch", "compile_view"]

#: Fields of one view's drawn parameters: crop top, crop left, flip, erase top, left, height, width (height 0:
#: no erasing), channel index (0-2 copy that channel, 3 grey, -1 unchanged).
NUM_PARAMS = 8
_EXPECTED = (v2.Resize, v2.ToImage, v2.Pad, v2.RandomCrop, v2.RandomHorizontalFlip, v2.ToDtype, v2.Normalize)


class ViewPlan:
    """One compiled training view (see the module notes); build with :func:`compile_view`."""

    def __init__(self, steps: Sequence[v2.Transform]) -> None:
        self.resize, _, pad, self.crop, self.flip, to_dtype, normalize, self.erasing, *extra = steps
        self.pad = int(pad.padding if isinstance(pad.padding, int) else pad.padding[0])
        self.height, self.width = (int(s) for s in self.crop.size)
        self.channel = extra[0] if extra else None
        levels = torch.arange(256, dtype=torch.uint8).view(1, 1, 256).expand(3, 1, 256)
        lut = normalize(to_dtype(v2.functional.to_image(levels.clone())))  # the pipeline's own arithmetic
        self.lut = lut.reshape(3, 256).contiguous()
        self._lut_np = self.lut.numpy()
        fill = self.erasing.value if len(self.erasing.value) == 3 else self.erasing.value * 3
        self.fill = torch.tensor(fill, dtype=torch.float32)
        self._padded = torch.empty(3, 1, 1).expand(3, self.height + 2 * self.pad, self.width + 2 * self.pad)
        self._cropped = torch.empty(3, 1, 1).expand(3, self.height, self.width)

    def draw(self) -> tuple[int, ...]:
        """The view's random parameters, drawn from torch's generators as the ``v2.Compose`` draws them.

        Returns:
            ``NUM_PARAMS`` ints (see :data:`NUM_PARAMS`).
        """
        crop = self.crop.make_params([self._padded])
        flip = not bool(torch.rand(1) >= self.flip.p)  # v2.RandomHorizontalFlip's own test
        box = self.erasing.make_params([self._cropped])["box"] or (0, 0, 0, 0)
        channel = -1
        if isinstance(self.channel, ChannelExchange):
            index = self.channel.make_params([self._cropped])["index"]
            channel = min(index, 3)
        elif isinstance(self.channel, ChannelAdapGray):
            params = self.channel.make_params([self._cropped])
            channel = params["index"] if params["index"] < 3 else (3 if params["grey"] else -1)
        return (crop["top"], crop["left"], int(flip), *box, channel)

    def apply(self, image: np.ndarray, params: Sequence[int]) -> torch.Tensor:
        """One view of a resized uint8 image ``(H, W, 3)`` with drawn ``params``, float32 ``(3, H, W)`` (CPU)."""
        top, left, flip, e_top, e_left, e_h, e_w, channel = (int(v) for v in params)
        h, w, p = self.height, self.width, self.pad
        dy, dx = top - p, left - p  # source offset of the crop window inside the unpadded image
        canvas = np.zeros((h, w, 3), dtype=np.uint8)
        canvas[max(0, -dy) : h - max(0, dy), max(0, -dx) : w - max(0, dx)] = image[
            max(0, dy) : h + min(0, dy), max(0, dx) : w + min(0, dx)
        ]
        if flip:
            canvas = canvas[:, ::-1]
        out = np.empty((3, h, w), dtype=np.float32)
        for c in range(3):
            np.take(self._lut_np[c], canvas[:, :, c], out=out[c], mode="clip")  # uint8: never clipped; no checks
        view = torch.from_numpy(out)
        if e_h:
            view[:, e_top : e_top + e_h, e_left : e_left + e_w] = self.fill.view(3, 1, 1)
        if channel == 3:
            view.copy_(_grey(view).expand_as(view))
        elif channel >= 0:
            view.copy_(view[channel : channel + 1].clone().expand_as(view))
        return view


def compile_view(pipeline: v2.Compose) -> ViewPlan | None:
    """A :class:`ViewPlan` for an official-shaped pipeline, else ``None`` (the pipeline then runs as it is)."""
    steps = list(getattr(pipeline, "transforms", []))
    if len(steps) not in (8, 9) or not all(type(t) is k for t, k in zip(steps, _EXPECTED, strict=False)):
        return None
    resize, _, pad, crop, _, to_dtype, _, erasing, *extra = steps
    if type(erasing) is not ChannelRandomErasing or erasing.generator is not None:
        return None
    if extra and (type(extra[0]) not in (ChannelExchange, ChannelAdapGray) or extra[0].generator is not None):
        return None
    padding = [pad.padding] * 4 if isinstance(pad.padding, int) else list(pad.padding)
    uniform_pad = len(set(padding)) == 1 and len(padding) in (1, 2, 4)
    if not uniform_pad or pad.padding_mode != "constant" or pad.fill not in (0, None):
        return None
    if crop.padding is not None or crop.pad_if_needed or list(resize.size) != list(crop.size):
        return None
    if resize.max_size is not None or to_dtype.dtype not in (torch.float32, {torch.Tensor: torch.float32}):
        return None
    return ViewPlan(steps) if to_dtype.scale else None


def apply_batch(plan: ViewPlan, images: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
    """:meth:`ViewPlan.apply` for a batch, on the images' device (equal to it on CPU tensors).

    Args:
        plan: The view.
        images: Resized uint8 images ``(B, H, W, 3)`` on any device.
        params: Drawn parameters, int ``(B, NUM_PARAMS)`` (any device).

    Returns:
        float32 ``(B, 3, H, W)`` on the images' device.
    """
    dev, (b, h, w) = images.device, images.shape[:3]
    top, left, flip, e_top, e_left, e_h, e_w, channel = params.to(dev).long().unbind(1)
    rows = torch.arange(h, device=dev)[None, :] + (top - plan.pad)[:, None]  # (B, H) source rows
    cols = torch.arange(w, device=dev)[None, :]
    cols = torch.where(flip[:, None] > 0, w - 1 - cols, cols) + (left - plan.pad)[:, None]  # (B, W)
    inside = ((rows >= 0) & (rows < h))[:, :, None] & ((cols >= 0) & (cols < w))[:, None, :]
    batch = torch.arange(b, device=dev)[:, None, None]
    pixels = images[batch, rows.clamp(0, h - 1)[:, :, None], cols.clamp(0, w - 1)[:, None, :]]  # (B, H, W, 3)
    pixels = torch.where(inside[..., None], pixels, 0).permute(0, 3, 1, 2).long()  # (B, 3, H, W)
    offset = torch.arange(3, device=dev).view(1, 3, 1, 1) * 256
    out = plan.lut.to(dev).view(-1)[pixels + offset]
    ys, xs = torch.arange(h, device=dev), torch.arange(w, device=dev)
    erase = ((ys[None] >= e_top[:, None]) & (ys[None] < (e_top + e_h)[:, None]))[:, :, None] & (
        (xs[None] >= e_left[:, None]) & (xs[None] < (e_left + e_w)[:, None])
    )[:, None, :]
    out = torch.where(erase[:, None], plan.fill.to(dev).view(1, 3, 1, 1), out)
    copied = out.gather(1, channel.clamp(0, 2).view(b, 1, 1, 1).expand(b, 1, h, w)).expand_as(out)
    out = torch.where((channel == 3).view(b, 1, 1, 1), _grey(out).expand_as(out), out)
    return torch.where(((channel >= 0) & (channel <= 2)).view(b, 1, 1, 1), copied, out).contiguous()
