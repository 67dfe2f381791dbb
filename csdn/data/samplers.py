"""Cross-modality identity sampler: P identities x K images per modality per batch, aligned by identity."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
from torch.utils.data import Sampler

from .samples import TrainSplit

__all__ = ["CrossModalityIdentitySampler"]


def _positions(labels: Sequence[int]) -> dict[int, np.ndarray]:
    labels = np.asarray(labels, dtype=np.int64)
    order = np.argsort(labels, kind="stable")
    uniq, starts = np.unique(labels[order], return_index=True)
    return {int(u): idx for u, idx in zip(uniq, np.split(order, starts[1:]), strict=True)}


def _positive_int(value: int, name: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"Argument {name} must be an integer >= {minimum}, got {value!r}.")
    return int(value)


class CrossModalityIdentitySampler(Sampler[tuple[int, int]]):
    """Yields ``(visible_index, infrared_index)`` pairs, ``P * K`` per batch, both of the same identity.

    Each batch draws ``P = num_ids`` identities without replacement (among those with images in both
    modalities), then ``K = num_instances`` visible and ``K`` infrared indices per identity *with* replacement,
    like the official ``IdentitySampler``. Pair ``i`` of a batch holds the visible and infrared images of the
    same identity, so the visible and infrared halves of a batch have identical label sequences. An epoch has
    ``max(n_visible, n_infrared) // (P * K) + 1`` global batches, as the official sampler produces.

    Distributed training: global batch ``b`` goes to rank ``b % num_replicas`` (the batch count is rounded up to a
    multiple of ``num_replicas``), so the ranks' shares are disjoint and together form the single-process epoch.
    Draws come from ``numpy.random.default_rng([seed, epoch])``: call :meth:`set_epoch` every epoch.

    Use with ``DataLoader(paired_dataset, sampler=sampler, batch_size=sampler.batch_size)``; every batch is full.

    Args:
        visible_labels: training label of each visible sample.
        infrared_labels: training label of each infrared sample.
        num_ids: ``P``, identities per batch.
        num_instances: ``K``, images per identity and modality.
        seed: base seed shared by all ranks.
        num_replicas: number of distributed processes.
        rank: this process's rank in ``0..num_replicas-1``.
    """

    def __init__(
        self,
        visible_labels: Sequence[int],
        infrared_labels: Sequence[int],
        num_ids: int = 8,
        num_instances: int = 4,
        *,
        seed: int = 0,
        num_replicas: int = 1,
        rank: int = 0,
    ) -> None:
        self.num_ids = _positive_int(num_ids, "num_ids")
        self.num_instances = _positive_int(num_instances, "num_instances")
        self.num_replicas = _positive_int(num_replicas, "num_replicas")
        self.rank = _positive_int(rank, "rank", minimum=0)
        if self.rank >= self.num_replicas:
            raise ValueError(f"Argument rank must be in 0..{self.num_replicas - 1}, got {rank}.")
        self.seed = int(seed)
        self.epoch = 0
        self._visible, self._infrared = _positions(visible_labels), _positions(infrared_labels)
        self.labels = np.array(sorted(set(self._visible) & set(self._infrared)), dtype=np.int64)
        if len(self.labels) < self.num_ids:
            raise ValueError(
                f"Only {len(self.labels)} identities have images in both modalities but num_ids={self.num_ids} "
                "identities are needed per batch; lower num_ids."
            )
        n = max(len(visible_labels), len(infrared_labels))
        self.global_batches = n // self.batch_size + 1
        self.batches_per_rank = -(-self.global_batches // self.num_replicas)

    @classmethod
    def from_split(
        cls, train: TrainSplit, num_ids: int = 8, num_instances: int = 4, **kwargs
    ) -> CrossModalityIdentitySampler:
        """Build the sampler for a reader's :class:`TrainSplit` (indices refer to ``train.visible/infrared``)."""
        return cls(
            [s.label for s in train.visible], [s.label for s in train.infrared], num_ids, num_instances, **kwargs
        )

    @property
    def batch_size(self) -> int:
        """Pairs per batch, ``P * K``."""
        return self.num_ids * self.num_instances

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch's draws (same on every rank)."""
        self.epoch = int(epoch)

    def batches(self) -> Iterator[list[tuple[int, int]]]:
        """This rank's batches of the current epoch, each a list of ``P * K`` ``(visible, infrared)`` pairs."""
        rng = np.random.default_rng([self.seed, self.epoch])
        for b in range(self.batches_per_rank * self.num_replicas):
            ids = rng.choice(self.labels, self.num_ids, replace=False)
            vis = np.concatenate([rng.choice(self._visible[int(i)], self.num_instances) for i in ids])
            ir = np.concatenate([rng.choice(self._infrared[int(i)], self.num_instances) for i in ids])
            if b % self.num_replicas == self.rank:
                yield list(zip(vis.tolist(), ir.tolist(), strict=True))

    def __iter__(self) -> Iterator[tuple[int, int]]:
        for batch in self.batches():
            yield from batch

    def __len__(self) -> int:
        return self.batches_per_rank * self.batch_size
