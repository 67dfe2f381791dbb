"""Whole-batch losses under DDP: every rank computes the loss of the global batch, not of its own slice.

The recipe (exactly the single-process gradient, for any loss):

1. Each rank runs the model on its contiguous slice ``[r * B / W, (r + 1) * B / W)`` of the global batch
   (:func:`rank_slice`; the stage-3 sampler already yields that slice).
2. :func:`gather_with_grad` (or :func:`gather_chunks` for a forward over concatenated parts) rebuilds the global
   batch, in global order, on every rank; labels are gathered the same way (or sliced from the global batch).
3. Every rank computes the *same* loss ``L`` of the global batch (per-sample terms as a global mean,
   :func:`global_mean`) and calls ``L.backward()`` on it, with no extra factor.

Why no factor: the backward of the autograd all_gather (:func:`gather_with_grad`) sums the gradients that all ranks
send to a slice, and all ``W`` ranks differentiate the same ``L``, so rank ``r``'s parameters receive
``W * dL/dtheta`` restricted to the paths through its own slice. DDP's all-reduce averages (divides by ``W``),
giving ``sum_r dL/dtheta|_r = dL/dtheta``. Parameters used only after the gather (a classifier applied to the
gathered features, the text bank side of SupCon) get the full ``dL/dtheta`` on every rank, whose average is
itself. (An all_gather whose backward returns only the local gradient slice would need ``L * W`` instead; the
autograd all_gather used here must not be scaled.) The loss value is the global one on every rank, so logging
needs no all-reduce.

Without a process group (or with one process) every function here is the identity, so the same trainer code
runs single-process.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

import torch
import torch.distributed as dist

from ..data.samplers import rank_slice_bounds

__all__ = [
    "world",
    "check_global_batch",
    "rank_slice",
    "gather_with_grad",
    "gather_chunks",
    "global_mean",
    "all_reduce_with_grad",
]

T = TypeVar("T", torch.Tensor, Sequence)


# torch 2.14 deprecates torch.distributed.nn.functional (a FutureWarning per call site) for the private
# _functional_collectives, so the two differentiable collectives needed here are written on the public API.
class _AllGather(torch.autograd.Function):
    """``all_gather`` along dim 0; backward: each rank gets the sum over ranks of the gradients of its rows."""

    @staticmethod
    def forward(ctx: Any, tensor: torch.Tensor) -> torch.Tensor:
        parts = [torch.empty_like(tensor) for _ in range(dist.get_world_size())]
        dist.all_gather(parts, tensor.contiguous())
        ctx.rows = slice(dist.get_rank() * tensor.shape[0], (dist.get_rank() + 1) * tensor.shape[0])
        return torch.cat(parts)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.contiguous().clone()
        dist.all_reduce(grad)  # sum over ranks (gloo has no reduce_scatter), then this rank's rows
        return grad[ctx.rows]


class _AllReduce(torch.autograd.Function):
    """Sum over ranks; backward: the sum over ranks of the output gradients."""

    @staticmethod
    def forward(ctx: Any, tensor: torch.Tensor) -> torch.Tensor:
        out = tensor.contiguous().clone()
        dist.all_reduce(out)
        return out

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.contiguous().clone()
        dist.all_reduce(grad)
        return grad


def world() -> tuple[int, int]:
    """``(rank, world_size)`` of the default process group, ``(0, 1)`` without one."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def check_global_batch(global_batch: int, world_size: int, what: str) -> int:
    """Rows per rank of a global batch; call once at start for every configured batch size.

    Args:
        global_batch: configured global batch size ``B``.
        world_size: number of processes ``W``.
        what: the setting's name for the message, e.g. ``"stage1.batch_size"``.

    Raises:
        ValueError: if ``W`` does not divide ``B`` (names both and what to change).
    """
    bounds = rank_slice_bounds(global_batch, 0, world_size, f"{what}={global_batch}: the global batch")
    return bounds.stop


def rank_slice(batch: T, rank: int | None = None, world_size: int | None = None) -> T:
    """Rank ``rank``'s contiguous part ``[rank * B / W, (rank + 1) * B / W)`` of a global batch (tensor or list).

    ``rank``/``world_size`` default to the process group's. Every rank walks the same global batches, so the
    step count and the sequence of global batches do not depend on ``W``.

    Raises:
        ValueError: if ``W`` does not divide ``len(batch)``.
    """
    own_rank, own_world = world()
    rank = own_rank if rank is None else rank
    world_size = own_world if world_size is None else world_size
    return batch[rank_slice_bounds(len(batch), rank, world_size)]


def gather_with_grad(tensor: torch.Tensor) -> torch.Tensor:
    """Concatenate every rank's ``tensor`` along dim 0 in rank order, differentiably.

    Args:
        tensor: this rank's slice, ``(B / W, ...)``; the same shape on every rank.

    Returns:
        The global batch ``(B, ...)`` (rows of rank 0 first). Gradients flow back to every rank's slice (see the
        module docstring for why the loss needs no scaling). Identity without a process group.
    """
    _, world_size = world()
    if world_size == 1:
        return tensor
    if not tensor.requires_grad:  # labels, indices: a plain collective, no autograd graph
        parts = [torch.empty_like(tensor) for _ in range(world_size)]
        dist.all_gather(parts, tensor.contiguous())
        return torch.cat(parts)
    return _AllGather.apply(tensor)


def gather_chunks(tensor: torch.Tensor, chunks: int) -> torch.Tensor:
    """Gather a local ``[part_1; ...; part_n]`` (equal parts) into the global ``[part_1 of all; ...; part_n of all]``.

    For a forward over concatenated inputs, e.g. the stage-3 model on ``[visible view 1; view 2; infrared]``
    of the rank's ``B / W`` pairs: the result is the single-process ``[view 1 (B); view 2 (B); infrared (B)]``.

    Raises:
        ValueError: if ``tensor``'s first dimension is not a multiple of ``chunks``.
    """
    if tensor.shape[0] % chunks:
        raise ValueError(f"gather_chunks: {tensor.shape[0]} rows cannot be cut into {chunks} equal parts")
    return torch.cat([gather_with_grad(part) for part in tensor.chunk(chunks)])


def global_mean(values: torch.Tensor) -> torch.Tensor:
    """Mean over the global batch of per-sample values ``(B / W, ...)`` of this rank (differentiable).

    Use it for per-sample terms computed on the rank's slice (cross-entropy with ``reduction="none"``, HSE);
    equal to ``values.mean()`` of the whole batch in one process, with the same gradient after DDP averaging.
    """
    return gather_with_grad(values).mean()


def all_reduce_with_grad(tensor: torch.Tensor) -> torch.Tensor:
    """Sum of ``tensor`` over all ranks, differentiably (gradients are summed over ranks too); identity alone."""
    return tensor if world()[1] == 1 else _AllReduce.apply(tensor)
