"""The frozen image-feature banks of stages 1-2: extraction passes, the official quirks, cache files.

Stages 1 and 2 train text-side modules against attention-pool image features that do not change while they
train, so the features are extracted once per stage (or once for both) instead of every step:

* By default every training image is extracted once, in eval mode, and stages 1-2 share the bank.
* ``quirks.bn_train_extraction`` (official): stage 2 extracts again with BatchNorm in train mode, which moves
  the BN running statistics, so that bank is cached in ``checkpoints/features_stage2.pt`` and a resumed stage 2
  reads it back instead of extracting (and moving the statistics) again. The official stage-1 extraction runs
  in eval mode (CLIP's modules are built in eval mode and nothing calls ``train()`` before stage 1); stage 2's
  follows stage 1's ``set_train()`` and uses the same loader of ``stage1.batch_size`` images, so its BN batch
  statistics come from ``stage1.batch_size`` images, and like the official loop it feeds visible batch j, then
  infrared batch j, alternately (the shared trunk's running statistics depend on that order).
* ``quirks.sampled_feature_bank`` (official): each stage extracts the images of one epoch of the stage-3
  identity sampler (:func:`sampled_bank_split`) instead of every image.

Under ``torchrun`` every rank walks the same extraction batches, extracts its contiguous share of each and the
features are gathered, so the bank is the single-process one; with the BN-train quirk the model's global
BatchNorm (:mod:`csdn.engine.sync_batchnorm`) then normalises with the statistics of the whole batch.

Example:
    >>> banks = StageFeatureBanks(cfg, model, train, device, run_dir / "checkpoints", is_main=True, generator=gen)
    >>> bank = banks.for_stage(1, resuming=False)  # FeatureBank of (N, D) features and (N,) labels on `device`
"""

from __future__ import annotations

import itertools
import logging
import os
from pathlib import Path
from typing import Any, NamedTuple

import torch
import torch.distributed as dist
from torch.utils.data import DataLoader

from .._deprecation import deprecated_getattr
from .._progress import Progress, ProgressReport
from ..data.loaders import ImageDataset, collate
from ..data.samplers import CrossModalityIdentitySampler
from ..data.samples import Sample, TrainSplit
from ..models import CSDN
from ..models.checkpoint import FEATURES_FORMAT, load_checkpoint, save_checkpoint
from ..models.factory import resolve_ablation
from .config import DataConfig, TrainConfig
from .distributed_ops import world

__all__ = [
    "FeatureBank",
    "StageFeatureBanks",
    "extract_clip_features",
    "extract_feature_bank",
    "extraction_steps",
    "sampled_bank_split",
    "save_feature_bank",
    "load_feature_bank",
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
def extract_clip_features(
    model: CSDN,
    samples: list[Sample],
    modality: str,
    data: DataConfig,
    device: torch.device,
    *,
    train_bn: bool = False,
    shuffle: bool = True,
    batch_size: int | None = None,
    generator: torch.Generator | None = None,
    channels_last: bool = False,
    amp: str = "none",
    progress: ProgressReport = True,
) -> torch.Tensor:
    """Attention-pool features ``model.clip_image_features`` of ``samples`` with the test transform -> (N, D).

    The one-modality case of :func:`extract_feature_bank` (same batching, same order).

    Args:
        model: the CSDN model.
        samples: images of one modality.
        modality: ``"visible"`` or ``"infrared"`` (selects the stem).
        data: image size, workers and default batch size.
        device: where the model runs.
        train_bn: run with BatchNorm in train mode (the official quirk: batch statistics, running stats updated).
        shuffle: with ``train_bn``, batch the images in a random order drawn from ``generator``; ``False``
            batches them in the given order (the official identity-sampled bank is in its sampler's order).
            Eval mode always keeps the given order.
        batch_size: images per forward pass (default ``data.extract_batch_size``).
        generator: draws the shuffled order (never touched otherwise).
        channels_last: feed images in channels_last memory format.
        amp: ``"none"``, ``"bf16"`` or ``"fp16"`` autocast.
        progress: ``True``: a bar on a terminal, a log line every 10 s elsewhere; ``False``: silent; or a
            callable ``progress(done, total)`` called after every batch with the images extracted so far.

    Returns:
        CPU float32 tensor ``(len(samples), D)`` in the order of ``samples``.
    """
    features = _extract(
        model,
        {modality: samples},
        data,
        device,
        train_bn=train_bn,
        shuffle=shuffle,
        batch_size=batch_size,
        generator=generator,
        channels_last=channels_last,
        amp=amp,
        progress=progress,
    )
    return features[modality]


@torch.no_grad()
def _extract(
    model: CSDN,
    samples: dict[str, list[Sample]],
    data: DataConfig,
    device: torch.device,
    *,
    train_bn: bool = False,
    shuffle: bool = True,
    batch_size: int | None = None,
    generator: torch.Generator | None = None,
    channels_last: bool = False,
    amp: str = "none",
    progress: ProgressReport = True,
) -> dict[str, torch.Tensor]:
    """Features of every modality of ``samples`` (``{modality: (N_m, D)}``), the passes in :func:`extraction_steps`."""
    size = batch_size or data.extract_batch_size
    batches = {m: _batch_order(len(s), size, generator if train_bn and shuffle else None) for m, s in samples.items()}
    steps = extraction_steps(batches.get("visible", []), batches.get("infrared", []))
    rank, world_size = world()
    mine = {m: [b[_share(b.numel(), rank, world_size)] for b in batches[m]] for m in samples}  # this rank's rows
    loaders = {m: iter(_share_loader(samples[m], mine[m], data)) for m in samples}
    was_training = model.training
    model.train(train_bn)
    memory = torch.channels_last if channels_last else torch.contiguous_format
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(amp)
    chunks: dict[str, list[torch.Tensor]] = {m: [] for m in samples}
    desc = " + ".join(f"{len(s)} {m}" for m, s in samples.items())
    total = sum(b.numel() for shares in mine.values() for b in shares)
    bar = Progress(total, f"extracting {desc} training features", progress, logger)
    try:
        for modality, batch in steps:  # every batch, even an empty share: global BatchNorm is collective
            rows = batch[_share(batch.numel(), rank, world_size)].numel()
            images = next(loaders[modality])[0] if rows else torch.empty(0, 3, data.height, data.width)
            images = images.to(device, memory_format=memory, non_blocking=True)
            with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
                chunks[modality].append(model.clip_image_features(images, modality).float())
            bar.update(images.shape[0])  # this rank's share
    finally:
        bar.close()
        model.train(was_training)
    return {m: _scatter_rows(torch.cat(chunks[m]), batches[m], len(samples[m])) for m in samples}


def extraction_steps(visible: list[torch.Tensor], infrared: list[torch.Tensor]) -> list[tuple[str, torch.Tensor]]:
    """The order of the extraction passes: visible batch j, then infrared batch j, alternately (the official loop).

    The official script extracts through a loader of aligned visible/infrared pairs, so both modalities have the
    same number of batches; when they do not (the every-image bank), the longer modality's remaining batches
    follow once the shorter one is exhausted.

    Args:
        visible: the visible global batches, each a tensor of sample indices.
        infrared: the infrared global batches.

    Returns:
        ``[("visible", visible[0]), ("infrared", infrared[0]), ("visible", visible[1]), ...]``.
    """
    steps = []
    for pair in itertools.zip_longest(visible, infrared):
        steps += [(m, b) for m, b in zip(("visible", "infrared"), pair, strict=True) if b is not None]
    return steps


def _batch_order(count: int, batch_size: int, generator: torch.Generator | None) -> list[torch.Tensor]:
    """Global batches of sample indices: in order, or in a random order drawn from ``generator`` when given."""
    order = torch.arange(count) if generator is None else torch.randperm(count, generator=generator)
    return list(order.split(batch_size))


def _share_loader(samples: list[Sample], shares: list[torch.Tensor], data: DataConfig) -> DataLoader:
    """Loader of this rank's rows of each global batch (test transform), one loader batch per non-empty share."""
    from ..data.transforms import build_test_transform  # torchvision on first use, not at import

    transform = build_test_transform(data.height, data.width)
    dataset = ImageDataset([samples[i] for i in torch.cat(shares).tolist()], transform)
    bounds = torch.tensor([0, *[b.numel() for b in shares]]).cumsum(0).tolist()
    return DataLoader(
        dataset,
        batch_sampler=[list(range(a, z)) for a, z in itertools.pairwise(bounds) if z > a],
        num_workers=data.num_workers,
        generator=torch.Generator().manual_seed(0),  # keeps the global RNG untouched (worker seeds unused)
        collate_fn=collate,  # one thread in the main process (num_workers=0), as in a worker
    )


def _scatter_rows(local: torch.Tensor, batches: list[torch.Tensor], count: int) -> torch.Tensor:
    """Every rank's rows of ``batches`` gathered and written back in sample order -> ``(count, D)`` on CPU."""
    _, world_size = world()
    shares = [[b[_share(b.numel(), r, world_size)] for b in batches] for r in range(world_size)]  # [rank][batch]
    parts = _gather_rows(local, [sum(b.numel() for b in share) for share in shares])
    features = torch.empty(count, parts[0].shape[1])
    for share, part in zip(shares, parts, strict=True):
        features.index_copy_(0, torch.cat(share), part.cpu())
    return features


def _share(rows: int, rank: int, world_size: int) -> slice:
    """Rank ``rank``'s contiguous rows of a batch of ``rows`` (nearly equal shares; the last batch may be short)."""
    return slice(rank * rows // world_size, (rank + 1) * rows // world_size)


def _gather_rows(local: torch.Tensor, counts: list[int]) -> list[torch.Tensor]:
    """Every rank's ``(counts[r], D)`` rows (no autograd; ``all_gather`` needs equal shapes, hence the padding)."""
    if len(counts) == 1:
        return [local]
    padded = local.new_zeros(max(counts), local.shape[1])
    padded[: local.shape[0]] = local
    parts = [torch.empty_like(padded) for _ in counts]
    dist.all_gather(parts, padded)
    return [part[:count] for part, count in zip(parts, counts, strict=True)]


def extract_feature_bank(
    model: CSDN, train: TrainSplit, data: DataConfig, device: torch.device, **kwargs: Any
) -> FeatureBank:
    """:func:`extract_clip_features` for both modalities of ``train``, the passes alternating like the official loop.

    Visible batch j, then infrared batch j (:func:`extraction_steps`): with BatchNorm in train mode the shared
    trunk's running statistics depend on that order. With ``train_bn`` and ``shuffle`` the visible order is drawn
    from ``generator`` first, then the infrared one. Under ``torchrun`` every rank walks the same passes.

    Args:
        model: the CSDN model.
        train: the training split.
        data: image size, workers and default batch size.
        device: where the model runs.
        **kwargs: keyword arguments of :func:`extract_clip_features` (``train_bn``, ``shuffle``, ...).

    Returns:
        :class:`FeatureBank` of CPU float32 ``(Nv, D)``/``(Ni, D)`` features in the order of ``train``.
    """
    logger.info("extracting frozen image features: %d visible, %d infrared", len(train.visible), len(train.infrared))
    features = _extract(model, {"visible": train.visible, "infrared": train.infrared}, data, device, **kwargs)
    return FeatureBank(
        features["visible"],
        torch.tensor([s.label for s in train.visible], dtype=torch.long),
        features["infrared"],
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
        num_ids: ``P`` of the sampler (``stage3.num_ids``).
        num_pos: ``K`` of the sampler (``stage3.num_pos``).
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
    """Write ``bank`` atomically (CPU tensors, format :data:`~csdn.models.checkpoint.FEATURES_FORMAT`)."""
    save_checkpoint({k: v.cpu() for k, v in bank._asdict().items()}, path, format=FEATURES_FORMAT)


def load_feature_bank(path: str | os.PathLike, device: torch.device | str = "cpu") -> FeatureBank:
    """Read a bank written by :func:`save_feature_bank` onto ``device``."""
    saved = load_checkpoint(path, format=FEATURES_FORMAT)
    return FeatureBank(*(saved[name].to(device) for name in FeatureBank._fields))


class StageFeatureBanks:
    """The feature bank each of stages 1-2 trains on, under the run's quirks (see the module docstring).

    Args:
        cfg: the run configuration (``quirks``, ``data``, ``stage1.batch_size``, ``stage3.num_ids/num_pos``,
            ``runtime.seed/channels_last/amp``).
        model: the CSDN model (``clip_image_features`` is called on it).
        train: the training split.
        device: where the model runs and where the banks are kept.
        cache_dir: folder of the ``features_stage{N}.pt`` cache files (the run's ``checkpoints/``).
        is_main: this process writes and removes the cache files (rank 0).
        generator: the visiting order of BN-train extractions (the trainer's stage-1/2 order stream).
    """

    def __init__(
        self,
        cfg: TrainConfig,
        model: CSDN,
        train: TrainSplit,
        device: torch.device,
        cache_dir: Path,
        *,
        is_main: bool,
        generator: torch.Generator,
    ) -> None:
        self.cfg = cfg
        self.model = model
        self.train = train
        self.device = device
        self.cache_dir = Path(cache_dir)
        self.is_main = is_main
        self.generator = generator
        #: the bank of the current (or last) stage 1-2; ``None`` when there is none or it was released.
        self.bank: FeatureBank | None = None

    def cache_path(self, stage: int) -> Path:
        """The cache file of ``stage``'s bank: ``cache_dir / "features_stage{stage}.pt"``."""
        return self.cache_dir / f"features_stage{stage}.pt"

    def remove_stale_caches(self, stage: int) -> None:
        """Delete the cache files of the stages before ``stage`` (finished, so no longer needed; rank 0 only)."""
        if self.is_main:
            for earlier in range(1, stage):
                self.cache_path(earlier).unlink(missing_ok=True)

    def for_stage(self, stage: int, resuming: bool) -> FeatureBank:
        """The bank stage ``stage`` (1 or 2) trains on, kept as :attr:`bank` and returned.

        Reuses the previous stage's bank when no quirk asks for a new one; with the BN-train quirk a resumed
        stage 2 reads its cache file, a fresh one extracts it and writes the cache (rank 0).

        Args:
            stage: 1 or 2.
            resuming: the stage continues from a mid-stage checkpoint.

        Returns:
            :class:`FeatureBank` of ``(Nv, D)``/``(Ni, D)`` float32 features and ``(Nv,)``/``(Ni,)`` labels on
            :attr:`device`.
        """
        self.bank = self._load_or_extract(stage, resuming)
        return self.bank

    def _load_or_extract(self, stage: int, resuming: bool) -> FeatureBank:
        train_bn = self.cfg.quirks.bn_train_extraction and stage == 2
        sampled = self.cfg.quirks.sampled_feature_bank
        cache = self.cache_path(stage)
        if train_bn and resuming and cache.is_file():
            return load_feature_bank(cache, self.device)
        if self.bank is not None and not (train_bn or sampled):
            return self.bank
        split = self.train
        if sampled:
            s3 = self.cfg.stage3
            split = sampled_bank_split(split, s3.num_ids, s3.num_pos, self.cfg.runtime.seed, stage)
        bank = extract_feature_bank(
            self.model,
            split,
            self.cfg.data,
            self.device,
            train_bn=train_bn,
            shuffle=not sampled,  # the sampled bank is in the official loader's order already
            batch_size=self.cfg.stage1.batch_size if train_bn else None,
            generator=self.generator,
            channels_last=self.cfg.runtime.channels_last,
            amp=self.cfg.runtime.amp,
            progress=self.is_main and self.cfg.runtime.progress,
        )
        if train_bn and self.is_main:
            save_feature_bank(bank, cache)
        return FeatureBank(*(t.to(self.device) for t in bank))

    def end_stage(self, stage: int) -> None:
        """Release :attr:`bank` after ``stage`` unless a later stage reuses it (stage 1's eval-mode bank, stage 2)."""
        if stage == 2 or 2 not in resolve_ablation(self.cfg.model).stages or self.cfg.quirks.bn_train_extraction:
            self.bank = None


# deprecated names (removed in 0.3.0; see docs/development.md, "Deprecation policy")
__getattr__ = deprecated_getattr(
    __name__, {"extract_features": ("csdn.engine.feature_bank.extract_clip_features", lambda: extract_clip_features)}
)
