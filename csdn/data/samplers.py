"""Cross-modality identity sampler: P identities x K images per modality per batch, aligned by identity."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, NamedTuple

import numpy as np
from torch.utils.data import Sampler

from .._deprecation import warn_deprecated
from .samples import TrainSplit

__all__ = ["CrossModalityIdentitySampler", "SeededPair", "rank_slice_bounds"]


class SeededPair(NamedTuple):
    """A ``(visible_index, infrared_index)`` pair with the seed of its augmentations.

    ``seed`` depends only on the sampler's ``(seed, epoch)`` and the pair's position in the epoch's sequence of
    global batches, so the augmented images do not depend on the world size, the rank or the loader workers.
    """

    visible: int
    infrared: int
    seed: int


def _positions(labels: Sequence[int]) -> dict[int, np.ndarray]:
    array = np.asarray(labels, dtype=np.int64)
    order = np.argsort(array, kind="stable")
    uniq, starts = np.unique(array[order], return_index=True)
    return {int(u): idx for u, idx in zip(uniq, np.split(order, starts[1:]), strict=True)}


def _positive_int(value: int, name: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"Argument {name} must be an integer >= {minimum}, got {value!r}.")
    return int(value)


def rank_slice_bounds(global_batch: int, rank: int, world_size: int, what: str = "the global batch") -> slice:
    """Positions ``[rank * B / W, (rank + 1) * B / W)`` of a global batch of ``B`` items that rank ``rank`` computes.

    Raises:
        ValueError: if ``B`` is not a multiple of ``W`` (the message names both and what to change).
    """
    if global_batch % world_size:
        raise ValueError(
            f"{what} of {global_batch} items cannot be split evenly over {world_size} processes: use a world size "
            f"that divides {global_batch}, or a batch size that is a multiple of {world_size}."
        )
    per_rank = global_batch // world_size
    return slice(rank * per_rank, (rank + 1) * per_rank)


class CrossModalityIdentitySampler(Sampler):
    """Yields ``(visible_index, infrared_index)`` pairs, ``P * K`` per global batch, both of the same identity.

    Each global batch draws ``P = num_ids`` identities without replacement (among those with images in both
    modalities), then ``K = num_pos`` visible and ``K`` infrared indices per identity *with* replacement, like the
    official ``IdentitySampler``. Pair ``i`` of a batch holds the visible and infrared images of the same identity,
    so the visible and infrared halves of a batch have identical label sequences. An epoch has
    ``max(n_visible, n_infrared) // (P * K) + 1`` global batches, as the official sampler produces.

    The sequence of global batches depends only on ``(seed, epoch)`` (``numpy.random.default_rng([seed, epoch])``),
    never on the world size: call :meth:`set_epoch` every epoch. Distributed training: every rank walks the same
    global batches and takes the contiguous slice ``[rank * P*K / W, (rank + 1) * P*K / W)`` of each, so every
    rank makes the same number of steps as one process and the ranks' slices, concatenated in rank order, are
    the single-process batch. :attr:`batch_size` is the per-rank slice, :attr:`global_batch_size` is ``P * K``.

    With ``sample_seeds=True`` the items are :class:`SeededPair` triples carrying a per-sample augmentation seed
    (keyed by ``(seed, epoch, position in the epoch)``) that :class:`~csdn.data.loaders.CrossModalityDataset`
    uses, so the augmented images are independent of world size and ``num_workers`` too.

    Use with ``DataLoader(paired_dataset, sampler=sampler, batch_size=sampler.batch_size)``; every batch is full.

    Args:
        visible_labels: training label of each visible sample.
        infrared_labels: training label of each infrared sample.
        num_ids: ``P``, identities per global batch.
        num_pos: ``K``, images per identity and modality.
        seed: base seed shared by all ranks.
        num_replicas: number of distributed processes ``W``; must divide ``P * K``.
        rank: this process's rank in ``0..num_replicas-1``.
        sample_seeds: yield :class:`SeededPair` items instead of plain pairs.
        num_instances: deprecated name of ``num_pos`` (0.1.0); warns, removed in 0.3.0.

    Raises:
        ValueError: for non-positive sizes, too few identities, a bad rank, or ``P * K`` not divisible by ``W``.
    """

    def __init__(
        self,
        visible_labels: Sequence[int],
        infrared_labels: Sequence[int],
        num_ids: int = 8,
        num_pos: int = 4,
        *,
        seed: int = 0,
        num_replicas: int = 1,
        rank: int = 0,
        sample_seeds: bool = False,
        num_instances: int | None = None,
    ) -> None:
        if num_instances is not None:  # the 0.1.0 name (removed in 0.3.0)
            warn_deprecated("CrossModalityIdentitySampler(num_instances=...)", "num_pos", stacklevel=2)
            num_pos = num_instances
        self.num_ids = _positive_int(num_ids, "num_ids")
        self.num_pos = _positive_int(num_pos, "num_pos")
        self.num_replicas = _positive_int(num_replicas, "num_replicas")
        self.rank = _positive_int(rank, "rank", minimum=0)
        if self.rank >= self.num_replicas:
            raise ValueError(f"Argument rank must be in 0..{self.num_replicas - 1}, got {rank}.")
        self._slice = rank_slice_bounds(
            self.global_batch_size,
            self.rank,
            self.num_replicas,
            f"The stage-3 global batch num_ids x num_pos = {self.num_ids} x {self.num_pos}",
        )
        self.seed = int(seed)
        self.sample_seeds = bool(sample_seeds)
        self.epoch = 0
        self._visible, self._infrared = _positions(visible_labels), _positions(infrared_labels)
        self.labels = np.array(sorted(set(self._visible) & set(self._infrared)), dtype=np.int64)
        if len(self.labels) < self.num_ids:
            raise ValueError(
                f"Only {len(self.labels)} identities have images in both modalities but num_ids={self.num_ids} "
                "identities are needed per batch; lower num_ids."
            )
        n = max(len(visible_labels), len(infrared_labels))
        self.global_batches = n // self.global_batch_size + 1

    @classmethod
    def from_split(
        cls, train: TrainSplit, num_ids: int = 8, num_pos: int = 4, **kwargs: Any
    ) -> CrossModalityIdentitySampler:
        """Build the sampler for a reader's :class:`TrainSplit` (indices refer to ``train.visible/infrared``)."""
        return cls([s.label for s in train.visible], [s.label for s in train.infrared], num_ids, num_pos, **kwargs)

    @property
    def global_batch_size(self) -> int:
        """Pairs per global batch, ``P * K``."""
        return self.num_ids * self.num_pos

    @property
    def batch_size(self) -> int:
        """Pairs per batch on this rank, ``P * K / num_replicas`` (the DataLoader's ``batch_size``)."""
        return self.global_batch_size // self.num_replicas

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch's draws (same on every rank)."""
        self.epoch = int(epoch)

    def global_batches_of_epoch(self) -> Iterator[list[tuple[int, int]]]:
        """Every global batch of the current epoch (all ranks' slices), ``P * K`` pairs each."""
        rng = np.random.default_rng([self.seed, self.epoch])
        for _ in range(self.global_batches):
            ids = rng.choice(self.labels, self.num_ids, replace=False)
            vis = np.concatenate([rng.choice(self._visible[int(i)], self.num_pos) for i in ids])
            ir = np.concatenate([rng.choice(self._infrared[int(i)], self.num_pos) for i in ids])
            yield list(zip(vis.tolist(), ir.tolist(), strict=True))

    def batch_seeds(self, batch: int) -> list[int]:
        """Augmentation seeds of the ``P * K`` positions of global batch ``batch`` of the current epoch."""
        state = np.random.SeedSequence([self.seed, self.epoch, batch]).generate_state(self.global_batch_size, np.uint64)
        return [int(s) >> 1 for s in state]  # 63 bits: a valid torch.Generator seed

    def batches(self) -> Iterator[list]:
        """This rank's slice of every global batch of the current epoch (pairs, or :class:`SeededPair` items)."""
        for b, pairs in enumerate(self.global_batches_of_epoch()):
            items: list[Any] = pairs
            if self.sample_seeds:
                items = [SeededPair(v, i, s) for (v, i), s in zip(pairs, self.batch_seeds(b), strict=True)]
            yield items[self._slice]

    def __iter__(self) -> Iterator:
        for batch in self.batches():
            yield from batch

    def __len__(self) -> int:
        return self.global_batches * self.batch_size
