"""DataLoader datasets: single images for feature extraction, visible/infrared pairs for stage-3 training.

Stage-3 training (8 ids x 4 images per modality -> 64 visible + 32 infrared images per step)::

    train = reader.train
    sampler = CrossModalityIdentitySampler.from_split(train, num_ids=8, num_pos=4, seed=0)
    loader = DataLoader(CrossModalityDataset(train, build_train_transforms()), sampler=sampler,
                        batch_size=sampler.batch_size, num_workers=4)
    for epoch in range(epochs):
        sampler.set_epoch(epoch)
        for batch in loader:                  # a PairedSample of batched tensors, B = P * K = 32
            visible, visible_labels, infrared, infrared_labels = concat_views(batch)
            # visible (2B, 3, H, W) = [view 1; view 2], visible_labels (2B,), infrared (B, 3, H, W), (B,)

World-size and worker invariant augmentations: build the sampler with ``sample_seeds=True``. Each item then
carries a seed keyed by ``(seed, epoch, position in the global batch)`` and :class:`CrossModalityDataset` draws
its augmentations from torch's CPU generator seeded with it (scoped, restored afterwards), so the images do
not depend on the rank, the world size or ``num_workers``.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator, Sequence
from typing import Any, NamedTuple

import PIL.Image
import torch
from torch.utils.data import Dataset

from .images import load_image
from .samples import Sample, TrainSplit
from .transforms import TrainTransforms, build_train_transforms

__all__ = [
    "load_image",
    "CachedImageLoader",
    "ImageDataset",
    "PairedSample",
    "CrossModalityDataset",
    "concat_views",
    "seeded_augmentation",
]


class CachedImageLoader:
    """Optional in-memory cache of decoded, resized images (what the official ``.npy`` arrays held).

    Calling it with a path returns the RGB image resized to ``(height, width)`` with antialiasing; results are
    kept per ``(path, modification time, file size)``, so an edited or replaced source file is re-read. Use it as
    the ``loader`` of :class:`ImageDataset` / :class:`CrossModalityDataset` (each DataLoader worker keeps its
    own cache). The later ``Resize`` of the pipelines is then a no-op.

    Args:
        height: output height in pixels.
        width: output width in pixels.
        resample: PIL resampling filter (LANCZOS, as the official preprocessing).
    """

    def __init__(self, height: int = 288, width: int = 144, resample: int = PIL.Image.Resampling.LANCZOS) -> None:
        if min(height, width) < 1:
            raise ValueError(f"Arguments height and width must be positive, got {height}x{width}.")
        self.size = (width, height)
        self.resample = resample
        self._cache: dict[str, tuple[tuple[int, int], PIL.Image.Image]] = {}

    def __call__(self, path: str | os.PathLike) -> PIL.Image.Image:
        path = os.fspath(path)
        try:
            stat = os.stat(path)
        except FileNotFoundError:
            raise FileNotFoundError(f"Image {path} not found; was the dataset moved?") from None
        stamp = (stat.st_mtime_ns, stat.st_size)
        hit = self._cache.get(path)
        if hit is None or hit[0] != stamp:
            hit = (stamp, load_image(path).resize(self.size, self.resample))
            self._cache[path] = hit
        return hit[1].copy()

    def __len__(self) -> int:
        return len(self._cache)


class ImageDataset(Dataset):
    """Images of a sample list; items are ``(image, label, cam, modality)``.

    ``label`` is ``Sample.label`` for training samples (``>= 0``) and ``Sample.pid`` for test samples.
    With the default collate a batch is ``(images (B, 3, H, W), labels (B,), cams (B,), modalities)`` with the
    modalities as a sequence of str.

    Args:
        samples: samples to read (e.g. ``split.query`` or ``train.visible``).
        transform: applied to the PIL image (e.g. :func:`~csdn.data.transforms.build_test_transform`);
            ``None`` returns the PIL image.
        loader: reads a path into a PIL image.
    """

    def __init__(
        self,
        samples: Sequence[Sample],
        transform: Callable[[PIL.Image.Image], Any] | None = None,
        loader: Callable[[str], PIL.Image.Image] = load_image,
    ) -> None:
        self.samples = list(samples)
        self.transform = transform
        self.loader = loader

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[Any, int, int, str]:
        sample = self.samples[index]
        image = self.loader(sample.path)
        if self.transform is not None:
            image = self.transform(image)
        label = sample.label if sample.label >= 0 else sample.pid
        return image, label, sample.cam, sample.modality


@contextlib.contextmanager
def seeded_augmentation(seed: int | None) -> Iterator[None]:
    """Draw torch's CPU randomness (what torchvision v2 ``make_params`` uses) from ``seed`` inside the block.

    The CPU generator's state is restored on exit, so the caller's stream is untouched; CUDA generators are
    neither read nor changed. ``seed=None`` leaves the global stream as it is (the worker-seeded behaviour).
    The csdn and torchvision transforms draw from torch only, so Python's ``random`` needs no scoping.
    """
    if seed is None:
        yield
        return
    with torch.random.fork_rng(devices=[]):
        torch.default_generator.manual_seed(int(seed))
        yield


class PairedSample(NamedTuple):
    """One training item (or, after default collate, one batch with a leading ``B`` dimension).

    Attributes:
        visible: visible view 1, ``(3, H, W)`` float.
        visible_exchange: visible view 2 of the *same* image (independent draw, plus ChannelExchange).
        infrared: infrared image of the pair, ``(3, H, W)``.
        visible_label: training label of the visible image.
        infrared_label: training label of the infrared image (equal to ``visible_label`` for sampler pairs).
        visible_cam: camera of the visible image.
        infrared_cam: camera of the infrared image.
    """

    visible: torch.Tensor
    visible_exchange: torch.Tensor
    infrared: torch.Tensor
    visible_label: int
    infrared_label: int
    visible_cam: int
    infrared_cam: int


class CrossModalityDataset(Dataset):
    """Visible/infrared training pairs, indexed by ``(visible_index, infrared_index)`` tuples.

    Designed for :class:`~csdn.data.samplers.CrossModalityIdentitySampler`, whose pairs share an identity.
    An index may also be a ``(visible_index, infrared_index, seed)`` triple
    (:class:`~csdn.data.samplers.SeededPair`): the three pipelines then run inside
    :func:`seeded_augmentation`, so the item depends on the seed only, not on the process or worker.
    Item: :class:`PairedSample`; a DataLoader batch of ``P * K`` pairs gives ``2 * P * K`` visible images (two
    views) and ``P * K`` infrared images, see :func:`concat_views`.

    Args:
        train: the reader's training split (indices refer to ``train.visible`` / ``train.infrared``).
        transforms: the three pipelines; default :func:`~csdn.data.transforms.build_train_transforms`.
        loader: reads a path into a PIL image.
    """

    def __init__(
        self,
        train: TrainSplit,
        transforms: TrainTransforms | None = None,
        loader: Callable[[str], PIL.Image.Image] = load_image,
    ) -> None:
        self.train = train
        self.transforms = transforms if transforms is not None else build_train_transforms()
        self.loader = loader

    def __len__(self) -> int:
        """Number of visible samples (the sampler, not this length, defines an epoch)."""
        return len(self.train.visible)

    def __getitem__(self, index: tuple[int, int] | tuple[int, int, int]) -> PairedSample:
        try:
            vis_index, ir_index, *seed = index
            if len(seed) > 1:
                raise ValueError
        except (TypeError, ValueError):
            raise TypeError(
                f"CrossModalityDataset is indexed by (visible_index, infrared_index[, seed]) tuples, got {index!r}; "
                "use it with CrossModalityIdentitySampler."
            ) from None
        vis, ir = self.train.visible[vis_index], self.train.infrared[ir_index]
        vis_image, ir_image = self.loader(vis.path), self.loader(ir.path)
        with seeded_augmentation(seed[0] if seed else None):
            views = (
                self.transforms.visible(vis_image),
                self.transforms.visible_exchange(vis_image),
                self.transforms.infrared(ir_image),
            )
        return PairedSample(
            visible=views[0],
            visible_exchange=views[1],
            infrared=views[2],
            visible_label=vis.label,
            infrared_label=ir.label,
            visible_cam=vis.cam,
            infrared_cam=ir.cam,
        )


def concat_views(batch: PairedSample) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Split a collated :class:`PairedSample` batch into model inputs.

    Returns:
        ``visible (2B, 3, H, W)`` = view 1 then view 2, ``visible_labels (2B,)``, ``infrared (B, 3, H, W)``,
        ``infrared_labels (B,)``.
    """
    visible = torch.cat([batch.visible, batch.visible_exchange])
    labels = torch.as_tensor(batch.visible_label)
    return visible, torch.cat([labels, labels]), batch.infrared, torch.as_tensor(batch.infrared_label)
