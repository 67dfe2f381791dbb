"""Small tensor kernels shared by the evaluation modules, using numpy's SIMD routines for CPU tensors.

On CPU, numpy's ``sort``, ``partition`` and ``flatnonzero`` are several times faster than their torch
counterparts; these helpers dispatch to them for CPU tensors and to torch elsewhere, with identical results.
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["copy_transposed", "nonzero_2d", "smallest_k", "sort_rows"]

_TILE = 512  # copy_transposed: source rows per tile (a tile and its transpose stay in cache)
_MAX_CANDIDATES = 64  # more than 64k candidates per row on average (adversarial order): full partition instead


def sort_rows(x: torch.Tensor) -> torch.Tensor:
    """Each row's values in ascending order, (c, N) -> (c, N)."""
    if x.device.type == "cpu":
        return torch.from_numpy(np.sort(x.numpy(), axis=1))
    return torch.sort(x, dim=1).values


def copy_transposed(dst: torch.Tensor, src: torch.Tensor) -> None:
    """``dst.copy_(src.T)``; on CPU through numpy in tiles of rows (several times faster than torch's strided copy)."""
    if dst.device.type != "cpu" or dst.dtype != src.dtype:
        dst.copy_(src.T)
        return
    d, s = dst.numpy(), src.numpy()
    for r in range(0, s.shape[0], _TILE):
        d[:, r : r + _TILE] = s[r : r + _TILE].T


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
    if vals.shape[1] <= k:
        return out
    spill = vals[:, k] == vals[:, k - 1]  # the kept tied items may not be the lowest-index ones
    if rows.device.type == "cpu":
        if bool(spill.any()):
            out[spill] = torch.sort(rows[spill], dim=1, stable=True).indices[:, :k]
        return out
    return torch.where(spill[:, None], _smallest_k_given_kth(rows, vals[:, k - 1 : k], k), out)


def _smallest_k_given_kth(rows: torch.Tensor, kth: torch.Tensor, k: int) -> torch.Tensor:
    """smallest_k of each row given its k-th smallest value (c, 1), without a host round trip (for accelerators).

    Keeps every entry below the k-th value and the lowest-index entries equal to it, then orders them by
    (value, index).
    """
    below, tied = rows < kth, rows == kth
    take = below | (tied & (tied.cumsum(1) <= k - below.sum(1, keepdim=True)))
    chosen = torch.topk(torch.where(take, rows, torch.inf), k, dim=1, largest=False).indices
    chosen = torch.sort(chosen, dim=1).values
    return chosen.gather(1, torch.sort(rows.gather(1, chosen), dim=1, stable=True).indices)


def smallest_k(rows: torch.Tensor, k: int) -> torch.Tensor:
    """Indices of the k smallest entries of each row in ascending order, ties broken by index. (c, N) -> (c, k).

    On CPU: split each row into G >= 2(k + 1) groups (a power of two; entry j in group j mod G), take the
    (k+1)-th smallest of the G group minima as a threshold: at least k + 1 entries (one in each of k + 1 groups)
    lie at or below it, so they include the k smallest, and there are few others (about 27 per row for k = 21 on
    distances). One vectorised pass collects them; numpy ``partition`` and a stable sort of these candidates (in
    index order) give the exact answer. Elsewhere (or for short rows): ``topk`` plus a tie fix-up.
    """
    num = rows.shape[1]
    if rows.device.type != "cpu" or k >= num or rows.dtype not in (torch.float32, torch.float64):
        return _smallest_k_topk(rows, k)
    groups = 1 << (2 * (k + 1) - 1).bit_length()  # smallest power of two >= 2(k + 1): vectorises well
    if groups <= num // 2:  # else groups of one or two entries: the threshold would save nothing
        x = rows.numpy()
        flat = np.flatnonzero(x <= _group_threshold(rows, groups, k))
        if flat.size <= _MAX_CANDIDATES * rows.shape[0] * k:
            values, cols = _pad_rows(x, flat)
            return torch.from_numpy(cols).gather(1, _smallest_k_exact(torch.from_numpy(values), k))
    return _smallest_k_exact(rows, k)


def _group_threshold(rows: torch.Tensor, groups: int, k: int) -> np.ndarray:
    """The (k+1)-th smallest of the minima of ``groups`` groups of each row, (c, 1) (``k < groups <= N``).

    Group g holds the entries j = g, g + groups, ... below ``groups * (N // groups)``; the few entries past that
    belong to no group (the bound holds without them). torch's strided minimum over power-of-two groups is
    several times faster than numpy's here.
    """
    c, num = rows.shape
    if rows.stride(1) != 1:  # the group view below needs unit steps along a row
        rows = rows.contiguous()
    mins = torch.amin(rows.as_strided((c, num // groups, groups), (rows.stride(0), groups, 1)), dim=1)
    return np.partition(mins.numpy(), k, axis=1)[:, k : k + 1]


def _pad_rows(x: np.ndarray, flat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Entries ``x.flat[flat]`` (row-major order) as padded (rows, width) value (+inf pads) and column arrays."""
    num_rows, num = x.shape
    r = flat // num
    counts = np.bincount(r, minlength=num_rows)
    width = int(counts.max())
    dest = r * width + (np.arange(flat.size) - (np.cumsum(counts) - counts)[r])
    values = np.full((num_rows, width), np.inf, dtype=x.dtype)
    cols = np.zeros((num_rows, width), dtype=np.int64)
    values.reshape(-1)[dest] = x.reshape(-1)[flat]
    cols.reshape(-1)[dest] = flat - r * num
    return values, cols


def _smallest_k_exact(rows: torch.Tensor, k: int) -> torch.Tensor:
    """smallest_k through a full-row numpy partition (CPU, float rows)."""
    if k >= rows.shape[1]:
        return _smallest_k_topk(rows, k)
    cut = torch.from_numpy(np.partition(rows.numpy(), k, axis=1)[:, k : k + 1])
    r, c = nonzero_2d(rows <= cut)
    if r.numel() != rows.shape[0] * (k + 1):  # ties at the (k+1)-th value: extra candidates in some row
        return _smallest_k_topk(rows, k)
    idx = c.view(rows.shape[0], k + 1)  # columns ascending within each row
    vals, perm = torch.sort(rows.gather(1, idx), dim=1, stable=True)
    return _finish(rows, vals, idx.gather(1, perm), k)
