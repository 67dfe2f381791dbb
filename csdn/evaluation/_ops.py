"""Small tensor kernels shared by the evaluation modules, using numpy's SIMD routines for CPU tensors.

On CPU, numpy's ``sort``, ``partition`` and ``flatnonzero`` are several times faster than their torch
counterparts; these helpers dispatch to them for CPU tensors and to torch elsewhere, with identical results.
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["nonzero_2d", "smallest_k", "sort_rows"]


def sort_rows(x: torch.Tensor) -> torch.Tensor:
    """Each row's values in ascending order, (c, N) -> (c, N)."""
    if x.device.type == "cpu":
        return torch.from_numpy(np.sort(x.numpy(), axis=1))
    return torch.sort(x, dim=1).values


def nonzero_2d(mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Row and column indices of the True entries of a 2-D bool tensor, in row-major order (int64)."""
    if mask.device.type == "cpu":
        flat = torch.from_numpy(np.flatnonzero(mask.numpy()))
        return torch.div(flat, mask.shape[1], rounding_mode="floor"), flat % mask.shape[1]
    rows, cols = mask.nonzero(as_tuple=True)
    return rows, cols


def _smallest_k_topk(rows: torch.Tensor, k: int) -> torch.Tensor:
    extra = int(k < rows.shape[1])  # one more value tells whether equal values straddle the cut
    vals, idx = torch.topk(rows, k + extra, dim=1, largest=False, sorted=True)
    idx, perm = torch.sort(idx, dim=1)
    vals, perm2 = torch.sort(vals.gather(1, perm), dim=1, stable=True)
    return _finish(rows, vals, idx.gather(1, perm2), k)


def _finish(rows: torch.Tensor, vals: torch.Tensor, idx: torch.Tensor, k: int) -> torch.Tensor:
    """Cut (value, index)-sorted candidate lists to k; redo rows whose k-th and (k+1)-th values tie."""
    out = idx[:, :k]
    if vals.shape[1] > k:
        spill = vals[:, k] == vals[:, k - 1]  # the kept tied items may not be the lowest-index ones
        if bool(spill.any()):
            out[spill] = torch.sort(rows[spill], dim=1, stable=True).indices[:, :k]
    return out


def smallest_k(rows: torch.Tensor, k: int) -> torch.Tensor:
    """Indices of the k smallest entries of each row in ascending order, ties broken by index. (c, N) -> (c, k).

    On CPU: numpy ``partition`` finds each row's (k+1)-th smallest value, the entries up to it are collected in
    index order and sorted stably by value; rows with ties at that value fall back to ``topk``.
    """
    num = rows.shape[1]
    if rows.device.type != "cpu" or k >= num or rows.dtype not in (torch.float32, torch.float64):
        return _smallest_k_topk(rows, k)
    cut = torch.from_numpy(np.partition(rows.numpy(), k, axis=1)[:, k : k + 1])
    r, c = nonzero_2d(rows <= cut)
    if r.numel() != rows.shape[0] * (k + 1):  # ties at the (k+1)-th value: extra candidates in some row
        return _smallest_k_topk(rows, k)
    idx = c.view(rows.shape[0], k + 1)  # columns ascending within each row
    vals, perm = torch.sort(rows.gather(1, idx), dim=1, stable=True)
    return _finish(rows, vals, idx.gather(1, perm), k)
