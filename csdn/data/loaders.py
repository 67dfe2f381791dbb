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
from typing import TYPE_CHECKING, Any, NamedTuple

import PIL.Image
import torch
from torch.utils.data import Dataset, default_collate

from .._threads import memory_bound
from .image_cache import CACHE_MODES, ResizedImageStore
from .images import load_image
from .samples import Sample, TrainSplit

if TYPE_CHECKING:  # torchvision is imported when a pipeline is built, not with csdn
    from .augment import ViewPlan
    from .transforms import TrainTransforms

__all__ = [
    "load_image",
    "CachedImageLoader",
    "ImageDataset",
    "PairedSample",
    "RawPairedSample",
    "CrossModalityDataset",
    "AUGMENT_ON",
    "concat_views",
    "collate",
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
        with memory_bound():  # per-image ops: one thread, as in a DataLoader worker (csdn/_threads.py says why)
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


class RawPairedSample(NamedTuple):
    """A training item for device-side augmentation: resized uint8 images and the views' drawn parameters.

    Attributes:
        visible: resized visible image, uint8 ``(H, W, 3)``.
        infrared: resized infrared image, uint8 ``(H, W, 3)``.
        params: drawn parameters of visible view 1, view 2 and the infrared view, int64 ``(3, NUM_PARAMS)``.
        visible_label, infrared_label, visible_cam, infrared_cam: as :class:`PairedSample`.
    """

    visible: torch.Tensor
    infrared: torch.Tensor
    params: torch.Tensor
    visible_label: int
    infrared_label: int
    visible_cam: int
    infrared_cam: int


#: Where :class:`CrossModalityDataset` applies the augmentations: in the item (``"cpu"``) or later, batched, on
#: the training device (``"device"``, see :meth:`CrossModalityDataset.to_views`).
AUGMENT_ON = ("cpu", "device")


class CrossModalityDataset(Dataset):
    """Visible/infrared training pairs, indexed by ``(visible_index, infrared_index)`` tuples.

    Designed for :class:`~csdn.data.samplers.CrossModalityIdentitySampler`, whose pairs share an identity.
    An index may also be a ``(visible_index, infrared_index, seed)`` triple
    (:class:`~csdn.data.samplers.SeededPair`): the three pipelines then draw inside :func:`seeded_augmentation`,
    so the item depends on the seed only, not on the process or worker.
    Item: :class:`PairedSample`; a DataLoader batch of ``P * K`` pairs gives ``2 * P * K`` visible images (two
    views) and ``P * K`` infrared images, see :func:`concat_views`.

    Decode once, resize once: with the official pipelines (:func:`~csdn.data.transforms.build_train_transforms`
    shape) and the default loader, each image is decoded and resized once per run into a
    :class:`~csdn.data.image_cache.ResizedImageStore`, and the three views are made from it by
    :class:`~csdn.data.augment.ViewPlan` (the same draws and the same pixels as the pipelines; tested equal).
    Other pipelines or loaders, or ``image_cache="off"``, run ``loader`` and the pipelines as they are.

    Args:
        train: the reader's training split (indices refer to ``train.visible`` / ``train.infrared``).
        transforms: the three pipelines; default :func:`~csdn.data.transforms.build_train_transforms`.
        loader: reads a path into a PIL image.
        image_cache: ``"auto"``/``"memory"``/``"disk"`` (a store built with the default budget and folder),
            ``"off"``, or a :class:`~csdn.data.image_cache.ResizedImageStore` over ``visible + infrared`` paths.
        augment_on: ``"cpu"`` (items are :class:`PairedSample`) or ``"device"`` (items are
            :class:`RawPairedSample`; :meth:`to_views` makes the views batched on the training device). Needs
            the cached path.

    Raises:
        ValueError: On an unknown ``image_cache``/``augment_on``, or ``augment_on="device"`` without the cache.
    """

    def __init__(
        self,
        train: TrainSplit,
        transforms: TrainTransforms | None = None,
        loader: Callable[[str], PIL.Image.Image] = load_image,
        image_cache: str | ResizedImageStore = "auto",
        augment_on: str = "cpu",
    ) -> None:
        self.train = train
        if transforms is None:
            from .transforms import build_train_transforms

            transforms = build_train_transforms()
        self.transforms = transforms
        self.loader = loader
        if augment_on not in AUGMENT_ON:
            raise ValueError(
                f"Unknown value {augment_on!r} for argument augment_on. Valid values are {list(AUGMENT_ON)}."
            )
        if isinstance(image_cache, str) and image_cache not in CACHE_MODES:
            raise ValueError(
                f"Unknown value {image_cache!r} for argument image_cache. Valid values are {list(CACHE_MODES)}."
            )
        self.plans = self._plans() if loader is load_image and image_cache != "off" else None
        self.store: ResizedImageStore | None = None
        if self.plans is not None:
            paths = [s.path for s in (*train.visible, *train.infrared)]
            plan = self.plans[0]
            self.store = (
                image_cache
                if isinstance(image_cache, ResizedImageStore)
                else ResizedImageStore(paths, plan.height, plan.width, plan.resize, mode=image_cache)
            )
        if augment_on == "device" and self.store is None:
            raise ValueError(
                "augment_on='device' needs the official pipelines, the default loader and an image cache "
                "(data.image_cache not 'off')"
            )
        self.augment_on = augment_on

    def _plans(self) -> tuple[ViewPlan, ViewPlan, ViewPlan] | None:
        from .augment import compile_view  # torchvision's transforms: on first use, not with csdn

        view1, view2, infrared = (compile_view(p) for p in self.transforms)
        if view1 is None or view2 is None or infrared is None:
            return None
        plans = (view1, view2, infrared)
        first = plans[0].resize
        same = all(
            (p.resize.size, p.resize.interpolation, p.resize.antialias)
            == (first.size, first.interpolation, first.antialias)
            for p in plans
        )
        return plans if same else None

    def __len__(self) -> int:
        """Number of visible samples (the sampler, not this length, defines an epoch)."""
        return len(self.train.visible)

    def __getitem__(self, index: tuple[int, int] | tuple[int, int, int]) -> PairedSample | RawPairedSample:
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
        labels = (vis.label, ir.label, vis.cam, ir.cam)
        with memory_bound():  # per-image ops: one thread, as in a DataLoader worker (csdn/_threads.py says why)
            if self.store is None:
                return PairedSample(*self._pipelines(vis, ir, seed[0] if seed else None), *labels)
            assert self.plans is not None  # the store is made only with the plans
            vis_image, ir_image = self.store[vis_index], self.store[len(self.train.visible) + ir_index]
            with seeded_augmentation(seed[0] if seed else None):
                params = [plan.draw() for plan in self.plans]  # view 1, view 2, infrared: the pipelines' order
            if self.augment_on == "device":
                raw = torch.from_numpy(vis_image.copy()), torch.from_numpy(ir_image.copy())
                return RawPairedSample(*raw, torch.tensor(params, dtype=torch.long), *labels)
            images = (vis_image, vis_image, ir_image)
            view1, view2, infrared = (
                plan.apply(image, p) for plan, image, p in zip(self.plans, images, params, strict=True)
            )
            return PairedSample(view1, view2, infrared, *labels)

    def _pipelines(self, vis: Sample, ir: Sample, seed: int | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        vis_image, ir_image = self.loader(vis.path), self.loader(ir.path)
        with seeded_augmentation(seed):
            return (
                self.transforms.visible(vis_image),
                self.transforms.visible_exchange(vis_image),
                self.transforms.infrared(ir_image),
            )

    def to_views(self, batch: PairedSample | RawPairedSample, device: str | torch.device) -> PairedSample:
        """A collated batch as :class:`PairedSample` of views on ``device``.

        A :class:`RawPairedSample` batch (``augment_on="device"``) is moved as uint8 and augmented there, batched,
        with the parameters drawn in the items (equal to the CPU views); a :class:`PairedSample` batch is moved.
        """
        if isinstance(batch, PairedSample):
            return batch._replace(
                visible=batch.visible.to(device, non_blocking=True),
                visible_exchange=batch.visible_exchange.to(device, non_blocking=True),
                infrared=batch.infrared.to(device, non_blocking=True),
            )
        vis, ir = batch.visible.to(device, non_blocking=True), batch.infrared.to(device, non_blocking=True)
        from .augment import NUM_PARAMS, apply_batch

        if batch.params.shape[-1] != NUM_PARAMS:
            raise ValueError(f"batch.params must end with {NUM_PARAMS} fields, got {tuple(batch.params.shape)}")
        if self.plans is None:
            raise ValueError(
                "to_views got a RawPairedSample batch, but this dataset has no view plans (it runs its pipelines as "
                "they are): make it with augment_on='device'"
            )
        view1, view2, infrared = (apply_batch(plan, image, batch.params[:, v]) for v, (plan, image) in enumerate(
            zip(self.plans, (vis, vis, ir), strict=True)))  # fmt: skip
        return PairedSample(view1, view2, infrared, *batch[3:])


def concat_views(batch: PairedSample) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Split a collated :class:`PairedSample` batch into model inputs.

    Returns:
        ``visible (2B, 3, H, W)`` = view 1 then view 2, ``visible_labels (2B,)``, ``infrared (B, 3, H, W)``,
        ``infrared_labels (B,)``.
    """
    visible = torch.cat([batch.visible, batch.visible_exchange])
    labels = torch.as_tensor(batch.visible_label)
    return visible, torch.cat([labels, labels]), batch.infrared, torch.as_tensor(batch.infrared_label)


def collate(batch: list[Any]) -> Any:
    """``default_collate`` on one torch thread: a DataLoader ``collate_fn`` for loaders whose main process collates.

    Stacking a batch is memory-bound; at the default thread count it stalls on a busy machine like the items do
    (see :mod:`csdn._threads`). Workers already run on one thread, so this only changes ``num_workers=0``.
    """
    with memory_bound():
        return default_collate(batch)
