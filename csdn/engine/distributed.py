"""Distributed helpers for ``torchrun``: environment parsing, process-group setup, rank-0 helpers.

``torchrun --nproc_per_node=N -m csdn train ...`` sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``
and ``MASTER_PORT``; :func:`init_distributed` reads them, picks ``nccl`` for CUDA devices and ``gloo`` otherwise
and binds each process to ``cuda:LOCAL_RANK``. Without those variables everything is a single process.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

logger = logging.getLogger(__name__)

__all__ = [
    "DistInfo",
    "dist_info_from_env",
    "init_distributed",
    "resolve_device",
    "barrier",
    "all_reduce_mean",
    "cleanup_distributed",
]


@dataclass(frozen=True)
class DistInfo:
    """This process's place in the job (``rank`` 0 of ``world_size`` 1 when not distributed)."""

    rank: int = 0  # global rank
    world_size: int = 1  # number of processes
    local_rank: int = 0  # rank on this machine (selects the GPU)

    @property
    def distributed(self) -> bool:
        """True when more than one process takes part."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """True on rank 0, the process that logs and writes checkpoints."""
        return self.rank == 0


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        message = f"environment variable {name}={raw!r} is invalid: expected an integer (set by torchrun)"
        raise ValueError(message) from None


def dist_info_from_env() -> DistInfo:
    """Read ``RANK``/``WORLD_SIZE``/``LOCAL_RANK`` as set by ``torchrun`` (defaults: a single process)."""
    info = DistInfo(_env_int("RANK", 0), _env_int("WORLD_SIZE", 1), _env_int("LOCAL_RANK", 0))
    if not 0 <= info.rank < info.world_size:
        raise ValueError(f"RANK={info.rank} is outside 0..WORLD_SIZE-1={info.world_size - 1}; launch with torchrun")
    return info


def resolve_device(spec: str, info: DistInfo | None = None) -> torch.device:
    """Turn a config device string into a ``torch.device``.

    ``"auto"`` is ``cuda:LOCAL_RANK`` when CUDA is available, else ``cpu``; a bare ``"cuda"`` also becomes
    ``cuda:LOCAL_RANK``.

    Raises:
        ValueError: for an unparsable string or a CUDA device requested on a machine without CUDA.
    """
    info = info or DistInfo()
    if spec == "auto":
        spec = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(spec)
    except RuntimeError:
        raise ValueError(f"device {spec!r} is invalid: expected auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {spec!r} was requested but CUDA is not available; use runtime.device=cpu")
        if device.index is None:
            device = torch.device("cuda", info.local_rank)
    return device


def init_distributed(device: torch.device, info: DistInfo | None = None) -> DistInfo:
    """Initialise the default process group when ``WORLD_SIZE > 1`` (idempotent); returns the job's layout."""
    info = info or dist_info_from_env()
    if info.distributed and not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group(backend=backend, rank=info.rank, world_size=info.world_size)
    return info


def cleanup_distributed() -> None:
    """Destroy the default process group if one is active."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def barrier() -> None:
    """Synchronise all ranks (no-op without a process group)."""
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def all_reduce_mean(value: torch.Tensor) -> torch.Tensor:
    """Mean of ``value`` over all ranks (returns ``value`` unchanged without a process group)."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return value
    reduced = value.detach().clone()
    dist.all_reduce(reduced, op=dist.ReduceOp.SUM)
    return reduced / dist.get_world_size()
