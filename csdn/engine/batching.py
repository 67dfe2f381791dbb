"""Batch orders of stages 1-2 over a frozen feature bank, drawn from an explicit generator.

The orders are *global* batches: every rank draws the same list from the same generator and computes its
contiguous slice of each batch (:func:`csdn.engine.distributed_ops.rank_slice`), so the batches, their number and
the learning-rate schedule do not depend on the world size.

As in the official code (``i_ter = num_image // batch``), an epoch is ``num_items // batch_size`` full batches:
an incomplete last batch is dropped, and fewer items than ``batch_size`` give no batch at all (never an empty
one). The stages refuse that case before training (``PromptStage.prepare`` in :mod:`csdn.engine.stages`).
"""

from __future__ import annotations

import torch

__all__ = ["paired_batches", "shuffled_batches"]


def paired_batches(
    visible_labels: torch.Tensor,
    infrared_labels: torch.Tensor,
    batch_size: int,
    generator: torch.Generator,
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """One stage-1 epoch of identity-aligned (visible index, infrared index) batches.

    Every item of the larger modality appears once in random order; each is paired with a random item of the
    other modality with the same label, so batch ``b`` has the same label sequence on both sides (as the
    official identity-sampled feature bank). Incomplete last batches are dropped; fewer items of the larger
    modality than ``batch_size`` give an empty list (no batch), never an empty batch.

    Args:
        visible_labels: (Nv,) labels of the cached visible features.
        infrared_labels: (Ni,) labels of the cached infrared features.
        batch_size: pairs per batch.
        generator: CPU generator drawing the order and the partners.

    Returns:
        ``max(Nv, Ni) // batch_size`` pairs ``(visible_idx (B,), infrared_idx (B,))`` of LongTensors on the CPU.
    """
    _check_batch_size(batch_size)
    swap = infrared_labels.numel() > visible_labels.numel()
    anchor, other = (infrared_labels, visible_labels) if swap else (visible_labels, infrared_labels)
    anchor, other = anchor.cpu(), other.cpu()
    order = torch.randperm(anchor.numel(), generator=generator)
    sorted_other, other_order = torch.sort(other, stable=True)
    num_classes = int(max(anchor.max(), other.max())) + 1
    counts = torch.bincount(sorted_other, minlength=num_classes)
    missing = torch.unique(anchor[counts[anchor] == 0])
    if missing.numel():
        raise ValueError(f"labels {missing.tolist()[:5]} have images in only one modality; stage 1 needs both")
    offsets = torch.cumsum(counts, 0) - counts
    labels = anchor[order]
    pick = (torch.rand(labels.numel(), generator=generator) * counts[labels]).long().clamp_max(counts[labels] - 1)
    partners = other_order[offsets[labels] + pick]
    pairs = (partners, order) if swap else (order, partners)
    return list(zip(_full_batches(pairs[0], batch_size), _full_batches(pairs[1], batch_size), strict=True))


def shuffled_batches(num_items: int, batch_size: int, generator: torch.Generator) -> list[torch.Tensor]:
    """One stage-2 epoch: a random permutation of ``num_items`` cut into full batches (none if fewer items).

    Returns:
        ``num_items // batch_size`` LongTensors of shape ``(batch_size,)`` on the CPU.
    """
    _check_batch_size(batch_size)
    return _full_batches(torch.randperm(num_items, generator=generator), batch_size)


def _check_batch_size(batch_size: int) -> None:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size={batch_size!r} is invalid: expected a whole number >= 1")


def _full_batches(order: torch.Tensor, batch_size: int) -> list[torch.Tensor]:
    """``order`` (N,) cut into ``N // batch_size`` batches of ``batch_size``; the incomplete rest is dropped.

    (``tensor[:0].split(b)`` would yield one empty batch, hence the explicit count.)
    """
    count = order.numel() // batch_size
    return [order[i * batch_size : (i + 1) * batch_size] for i in range(count)]
