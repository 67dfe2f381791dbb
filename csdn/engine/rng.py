"""Random state of a run, in one place: seeding, capture and restore (every rank's), deterministic algorithms.

:func:`capture_rng_state` / :func:`restore_rng_state` turn the Python, NumPy, torch (CPU) and CUDA generator
states, plus any explicit ``torch.Generator`` the run owns, into tensors and plain values that a checkpoint can
hold (:mod:`csdn.models.checkpoint`), which is what lets a resumed run continue bit-exactly;
:func:`gather_rng_states` / :func:`restore_rank_rng_state` do it for every rank of a distributed run.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from .distributed import DistInfo

logger = logging.getLogger(__name__)

__all__ = [
    "capture_rng_state",
    "restore_rng_state",
    "gather_rng_states",
    "restore_rank_rng_state",
    "seed_global_rngs",
    "keyed_seed",
    "keyed_rng",
    "deterministic_algorithms",
]


def capture_rng_state(generators: Mapping[str, torch.Generator] | None = None) -> dict[str, Any]:
    """Snapshot the global Python/NumPy/torch/CUDA generators and the named explicit generators.

    Returns:
        A dict of tensors and plain values (checkpoint-safe); pass it to :func:`restore_rng_state`.
    """
    version, internal, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {
        "python": [version, list(internal), gauss],
        "numpy": [str(kind), torch.from_numpy(np.asarray(keys, dtype=np.int64)), int(pos), int(has_gauss), cached],
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() and torch.cuda.is_initialized() else [],
        "generators": {name: gen.get_state() for name, gen in (generators or {}).items()},
    }
    return state


def restore_rng_state(state: Mapping[str, Any], generators: Mapping[str, torch.Generator] | None = None) -> None:
    """Restore what :func:`capture_rng_state` captured (CUDA states only where CUDA is available).

    Raises:
        ValueError: if a named generator has no saved state.
    """
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    saved = state.get("generators", {})
    for name, gen in (generators or {}).items():
        if name not in saved:
            raise ValueError(f"checkpoint has no state for generator {name!r} (saved: {', '.join(saved) or 'none'})")
        gen.set_state(saved[name])


def seed_global_rngs(seed: int) -> None:
    """Seed Python's, NumPy's and torch's global generators (what dropout and in-process augmentations draw from)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def keyed_seed(*key: int) -> int:
    """A 63-bit seed that depends only on ``key`` (e.g. ``(run seed, stage, epoch, iteration)``)."""
    return int(np.random.SeedSequence([int(k) for k in key]).generate_state(1, np.uint64)[0]) >> 1


@contextlib.contextmanager
def keyed_rng(seed: int, device: torch.device) -> Iterator[None]:
    """Draw torch's CPU and ``device``'s randomness (dropout masks) from ``seed`` inside the block.

    Every rank that enters with the same ``seed`` draws the same numbers, whatever the world size; the global
    generators' states are restored on exit, so the caller's streams are untouched.
    """
    cuda = [device.index if device.index is not None else torch.cuda.current_device()] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=cuda):
        torch.default_generator.manual_seed(seed)
        for index in cuda:
            torch.cuda.default_generators[index].manual_seed(seed)
        yield


@contextlib.contextmanager
def deterministic_algorithms(enabled: bool, device: torch.device | None = None) -> Iterator[None]:
    """Within the block, ``torch.use_deterministic_algorithms(True)`` and no cuDNN benchmarking when ``enabled``;
    the previous settings are restored on exit.

    Raises:
        ValueError: on CUDA without ``CUBLAS_WORKSPACE_CONFIG`` (cuBLAS needs it for deterministic results).
    """
    if not enabled:
        yield
        return
    if device is not None and device.type == "cuda" and not os.environ.get("CUBLAS_WORKSPACE_CONFIG"):
        raise ValueError(
            "runtime.deterministic=true on CUDA needs CUBLAS_WORKSPACE_CONFIG=:4096:8 in the environment before "
            "CUDA starts (the csdn command line sets it); or set runtime.deterministic=false"
        )
    previous = (torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.benchmark)
    torch.use_deterministic_algorithms(True)
    torch.backends.cudnn.benchmark = False
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous[0])
        torch.backends.cudnn.benchmark = previous[1]


def gather_rng_states(generators: Mapping[str, torch.Generator], info: DistInfo) -> list[dict[str, Any]]:
    """:func:`capture_rng_state` of every rank, in rank order (collective when distributed)."""
    states: list[Any] = [capture_rng_state(generators)]
    if info.distributed:
        states = [None] * info.world_size
        dist.all_gather_object(states, capture_rng_state(generators))
    return states


def restore_rank_rng_state(state: Mapping[str, Any], generators: Mapping[str, torch.Generator], info: DistInfo) -> None:
    """Restore this rank's entry of ``state["rng_ranks"]`` (rank 0's if the world size changed since the save)."""
    per_rank = state["rng_ranks"]
    if len(per_rank) != info.world_size:
        logger.warning(
            "checkpoint holds RNG states of %d ranks, not %d: using rank 0's", len(per_rank), info.world_size
        )
    restore_rng_state(per_rank[info.rank] if len(per_rank) == info.world_size else per_rank[0], generators)
