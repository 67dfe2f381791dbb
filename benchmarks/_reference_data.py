"""A stage-3 training loader written the way the official CSDN/AGW code works, for benchmarks only.

The official code resizes every training image once, offline, into in-memory arrays (LANCZOS to 144x288), and
its dataset then runs three torchvision (v1) chains per (visible, infrared) pair: ToPILImage -> Pad(10) ->
RandomCrop -> RandomHorizontalFlip -> ToTensor -> Normalize -> channel random erasing, the second visible chain
adding a channel exchange and the infrared chain an adaptive grey; the channel transforms draw from Python's
``random`` and write into the tensor. This is an independent re-write of that structure, used only to time csdn
against.
"""

from __future__ import annotations

import math
import random

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset
from torchvision import transforms as T

MEAN, STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
FILL = (0.4914, 0.4822, 0.4465)


def _erase(img: torch.Tensor, p: float = 0.5) -> torch.Tensor:
    if random.uniform(0, 1) > p:
        return img
    _, height, width = img.shape
    for _ in range(100):
        area = random.uniform(0.02, 0.4) * height * width
        aspect = random.uniform(0.3, 1 / 0.3)
        h, w = int(round(math.sqrt(area * aspect))), int(round(math.sqrt(area / aspect)))
        if h < height and w < width:
            top, left = random.randint(0, height - h), random.randint(0, width - w)
            for c in range(3):
                img[c, top : top + h, left : left + w] = FILL[c]
            return img
    return img


def _copy_or_grey(img: torch.Tensor, idx: int) -> torch.Tensor:
    if idx < 3:
        img[(idx + 1) % 3] = img[idx]
        img[(idx + 2) % 3] = img[idx]
    else:
        grey = 0.2989 * img[0] + 0.5870 * img[1] + 0.1140 * img[2]
        img[0], img[1], img[2] = grey, grey, grey
    return img


def _exchange(img: torch.Tensor, gray: int = 2) -> torch.Tensor:
    return _copy_or_grey(img, min(random.randint(0, gray), 3))


def _adap_gray(img: torch.Tensor, p: float = 0.5) -> torch.Tensor:
    idx = random.randint(0, 3)
    if idx == 3 and random.uniform(0, 1) > p:
        return img
    return _copy_or_grey(img, idx)


def _chain(*extra) -> T.Compose:
    base = [T.ToPILImage(), T.Pad(10), T.RandomCrop((288, 144)), T.RandomHorizontalFlip(), T.ToTensor()]
    return T.Compose([*base, T.Normalize(MEAN, STD), T.Lambda(_erase), *(T.Lambda(f) for f in extra)])


def pre_resize(paths: list[str], height: int = 288, width: int = 144) -> np.ndarray:
    """The official offline step: every image decoded and LANCZOS-resized once, stacked (N, H, W, 3) uint8."""
    out = np.empty((len(paths), height, width, 3), dtype=np.uint8)
    for i, path in enumerate(paths):
        with Image.open(path) as image:
            out[i] = np.asarray(image.convert("RGB").resize((width, height), Image.LANCZOS))
    return out


class ReferencePairs(Dataset):
    """Items ``(visible view 1, view 2, infrared, visible label, infrared label)`` from pre-resized arrays.

    Indexed like csdn's dataset by ``(visible_index, infrared_index[, seed])`` (the seed is ignored: the official
    loader draws from the worker's global streams).
    """

    def __init__(self, visible: np.ndarray, infrared: np.ndarray, vis_labels: list[int], ir_labels: list[int]):
        self.visible, self.infrared = visible, infrared
        self.vis_labels, self.ir_labels = vis_labels, ir_labels
        self.rgb, self.rgb2, self.thermal = _chain(), _chain(_exchange), _chain(_adap_gray)

    def __len__(self) -> int:
        return len(self.visible)

    def __getitem__(self, index):
        v, i = index[0], index[1]
        img, ir = self.visible[v], self.infrared[i]
        return self.rgb(img), self.rgb2(img), self.thermal(ir), self.vis_labels[v], self.ir_labels[i]
