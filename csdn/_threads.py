"""Scoped torch CPU thread counts for memory-bound passes (private helper shared by every layer but clip).

Why one thread: a torch parallel region ends only when every thread of it has finished. On a machine where
other work runs (a shared workstation, a cluster node, the data loader's own workers), one of the two threads
is often descheduled, and with OpenMP's default wait policy the other spins at every op boundary, so a chain of
short ops (comparisons, gathers, copies, reductions over distance rows; the per-image ops of augmentation) is
several times slower than on one thread (SYSU-size re-ranking: 0.86 s instead of 0.08 s at load ~2 on 2 cores),
while these passes run at memory speed and measured the same at 1 and 2 threads on an idle machine. The large
matrix products stay on the caller's thread count (:func:`caller_threads`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

__all__ = ["caller_threads", "memory_bound", "torch_threads"]


@contextlib.contextmanager
def torch_threads(num: int | None) -> Iterator[None]:
    """Run the block with ``num`` torch CPU threads, then restore the previous count.

    ``None`` (or the current count) leaves the setting alone; a change costs well under a microsecond. Nested
    scopes restore in order, so a product inside a :func:`memory_bound` block can return to the count captured
    by :func:`caller_threads` before it.
    """
    before = torch.get_num_threads()
    if num is None or num == before:
        yield
        return
    torch.set_num_threads(max(1, int(num)))
    try:
        yield
    finally:
        torch.set_num_threads(before)


def memory_bound() -> contextlib.AbstractContextManager[None]:
    """Scope for memory-bound passes: one torch CPU thread (see the module notes for the measurements)."""
    return torch_threads(1)


def caller_threads() -> int:
    """The current torch CPU thread count, to capture before entering :func:`memory_bound` (for products)."""
    return torch.get_num_threads()
