"""The sparse algebra of k-reciprocal re-ranking: encoding V, local query expansion, query-gallery Jaccard.

Private helpers of :mod:`csdn.evaluation.rerank` (which owns the distance-row sources, the neighbour search and
the public functions). Everything works on the neighbour lists and on V as COO ``(rows, cols, vals)``; CPU
tensors go through numpy where it is several times faster than torch at these sizes, and each such function
keeps a torch twin for accelerators (tests check that both agree on CPU).
"""

from __future__ import annotations

import itertools
import warnings
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from ._ops import nonzero_2d

if TYPE_CHECKING:
    from .rerank import DistanceRows

__all__ = ["encode", "query_expansion", "shared_mass"]

_BLOCK_ELEMENTS = 1 << 22  # encoding: items per block = this / max(N, K^2 H); Jaccard: at most this many outputs
_PAIR_BUDGET = 1 << 21  # (query entry, gallery entry) pairs per Jaccard step


def _reciprocal(nbrs: Any, step: int) -> Any:
    """``out[i, r]`` = item i is among the neighbours of its neighbour ``nbrs[i, r]``. (N, K) -> bool (N, K).

    ``nbrs``: a torch tensor, or a numpy array (CPU: int32 gathers, faster than torch's int64 ones).
    """
    if isinstance(nbrs, np.ndarray):
        own = np.arange(nbrs.shape[0], dtype=nbrs.dtype)
        blocks = range(0, nbrs.shape[0], step)  # each (step, K, K) comparison reduced at once: O(step K^2) memory
        return np.concatenate([(nbrs[nbrs[s : s + step]] == own[s : s + step, None, None]).any(-1) for s in blocks])
    out = torch.empty(nbrs.shape, dtype=torch.bool, device=nbrs.device)
    for s in range(0, nbrs.shape[0], step):
        rows = torch.arange(s, min(s + step, nbrs.shape[0]), device=nbrs.device)
        out[s : s + step] = (nbrs[nbrs[s : s + step]] == rows[:, None, None]).any(-1)
    return out


def _expansion_mask(
    s: int, e: int, nbrs: torch.Tensor, recip: torch.Tensor, half: torch.Tensor, half_recip: torch.Tensor, n: int
) -> torch.Tensor:
    """Expanded k-reciprocal sets of items s:e as a bool mask (c, N) (accelerators: dense, no host round trip)."""
    r_nb, r_ok = nbrs[s:e], recip[s:e]  # (c, K)
    mask = torch.zeros(e - s, n + 1, dtype=torch.bool, device=nbrs.device)  # column n collects "not taken"
    mask.scatter_(1, torch.where(r_ok, r_nb, n), True)  # the k1-reciprocal set of each item
    cand, cand_ok = half[r_nb], half_recip[r_nb]  # (c, K, H): each member's round(k1/2)-reciprocal set
    inside = mask.gather(1, cand.flatten(1)).view(cand.shape) & cand_ok
    overlap = inside.sum(-1).double() > (2.0 / 3.0) * cand_ok.sum(-1).double()
    take = cand_ok & (r_ok & overlap)[..., None]
    mask.scatter_(1, torch.where(take, cand, n).flatten(1), True)
    return mask[:, :n]


def _expanded_pairs_numpy(
    s: int, e: int, nbrs: np.ndarray, recip: np.ndarray, half: np.ndarray, half_recip: np.ndarray, n: int
) -> tuple[np.ndarray, np.ndarray]:
    """CPU version of ``nonzero_2d(_expansion_mask(...))``: (local row, column) of the expanded sets of items s:e.

    Works on the k1-reciprocal (item, member) pairs only (about half of the k1 + 1 neighbours) instead of every
    neighbour, with numpy's int32 gathers and boolean compress (several times faster than torch's on CPU).
    """
    pi, pk = np.nonzero(recip[s:e])  # the k1-reciprocal pairs (local item, position)
    j = nbrs[s:e][pi, pk]
    own = pi.astype(np.int64) * n + j  # flat (c, N) positions of the k1-reciprocal sets
    mask = np.zeros((e - s) * n, dtype=bool)
    mask[own] = True
    cand = half[j] + (own - j)[:, None]  # (P, H) flat positions of each member's round(k1/2) neighbours
    cand_ok = half_recip[j]
    inside = np.count_nonzero(mask[cand] & cand_ok, axis=1)
    overlap = inside > (2.0 / 3.0) * np.count_nonzero(cand_ok, axis=1)  # float64, as the reference
    mask[cand[cand_ok & overlap[:, None]]] = True
    flat = np.flatnonzero(mask)
    return flat // n, flat % n


def encode(source: DistanceRows, k1: int, row_max: torch.Tensor, nbrs: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Sparse k-reciprocal encoding V as COO ``(rows, cols, vals)`` sorted by row then column."""
    n = source.num_items
    half_k = min(int(np.around(k1 / 2.0)) + 1, n)
    cpu = source.device.type == "cpu"
    index: Any = nbrs.numpy().astype(np.int32 if n < 2**31 else np.int64) if cpu else nbrs  # numpy on CPU
    step = max(1, _BLOCK_ELEMENTS // nbrs.shape[1] ** 2)
    recip = _reciprocal(index, step)
    half = index[:, :half_k].copy() if cpu else index[:, :half_k].contiguous()
    half_recip = _reciprocal(half, step)
    step = max(1, _BLOCK_ELEMENTS // max(n, nbrs.shape[1] ** 2 * half_k))

    parts = []
    for s in range(0, n, step):
        e = min(s + step, n)
        if cpu:
            local, c = (torch.from_numpy(a) for a in _expanded_pairs_numpy(s, e, index, recip, half, half_recip, n))
        else:
            local, c = nonzero_2d(_expansion_mask(s, e, index, recip, half, half_recip, n))
        r = local + s
        w = torch.exp(-(source.values(r, c) / row_max[r]))
        total = torch.zeros(e - s, dtype=w.dtype, device=w.device).index_add_(0, local, w)
        parts.append((r, c, w / total[local]))
    return tuple(torch.cat(t) for t in zip(*parts, strict=True))


def _row_ptr(rows: torch.Tensor, n: int) -> torch.Tensor:
    ptr = torch.zeros(n + 1, dtype=torch.long, device=rows.device)
    ptr[1:] = torch.bincount(rows, minlength=n).cumsum(0)
    return ptr


def _expand_segments(ptr: torch.Tensor, seg: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Positions of all entries of the CSR segments ``seg`` (M,), and the index of the segment of each."""
    counts = ptr[seg + 1] - ptr[seg]
    owner = torch.repeat_interleave(torch.arange(seg.numel(), device=seg.device), counts)
    offset = torch.arange(owner.numel(), device=seg.device) - (counts.cumsum(0) - counts)[owner]
    return ptr[seg][owner] + offset, owner


def query_expansion(
    coo: tuple[torch.Tensor, ...], nbrs: torch.Tensor, k2: int, n: int, backend: str
) -> tuple[torch.Tensor, ...]:
    """V_qe[i] = mean of V over the k2 nearest neighbours of i, as the sparse product A @ V (A[i, nbr] = 1/k2).

    ``backend``: "scipy" (CPU tensors only; much faster than torch.sparse there) or "torch".
    """
    rows, cols, vals = coo
    k2 = min(k2, n)
    a_rows = torch.arange(n, device=nbrs.device).repeat_interleave(k2)
    a_cols = nbrs[:, :k2].reshape(-1)
    if backend == "scipy":
        import scipy.sparse as sp

        a = sp.csr_matrix((np.full(n * k2, 1.0 / k2, np.float32), (a_rows.numpy(), a_cols.numpy())), shape=(n, n))
        v = sp.csr_matrix((vals.numpy(), (rows.numpy(), cols.numpy())), shape=(n, n))
        out = (a @ v).tocoo()
        return torch.from_numpy(out.row).long(), torch.from_numpy(out.col).long(), torch.from_numpy(out.data)
    a_vals = torch.full(a_rows.shape, 1.0 / k2, dtype=vals.dtype, device=vals.device)
    a = torch.sparse_coo_tensor(torch.stack([a_rows, a_cols]), a_vals, (n, n), check_invariants=False)
    v = torch.sparse_coo_tensor(torch.stack([rows, cols]), vals, (n, n), check_invariants=False)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        out = torch.sparse.mm(a.coalesce(), v.coalesce()).coalesce()
    return out.indices()[0], out.indices()[1], out.values()


def shared_mass(coo: tuple[torch.Tensor, ...], nq: int, n: int) -> torch.Tensor:
    """S[i, j] = sum_k min(V[i, k], V[nq + j, k]) for queries i and gallery items j, float32 (Nq, Ng).

    ``coo``: V as (rows, cols, vals), entries grouped by row in ascending row order. A join on the column: each
    query entry meets the gallery entries of its column; the query rows are processed in blocks of about
    ``_PAIR_BUDGET`` such pairs. CPU tensors go through numpy (several times faster than torch's gathers,
    ``repeat_interleave`` and boolean indexing at these sizes; float64 sums).
    """
    if coo[0].device.type == "cpu":
        rows, cols, vals = (t.numpy() for t in coo)
        return torch.from_numpy(_shared_mass_numpy(rows, cols, vals, nq, n))
    return _shared_mass_torch(coo, nq, n)


def _shared_mass_torch(coo: tuple[torch.Tensor, ...], nq: int, n: int) -> torch.Tensor:
    """torch :func:`shared_mass` (accelerators), float32 (Nq, Ng)."""
    rows, cols, vals = coo
    ng = n - nq
    is_q = rows < nq
    q_r, q_c, q_v = rows[is_q], cols[is_q], vals[is_q]
    g_r, g_c, g_v = rows[~is_q] - nq, cols[~is_q], vals[~is_q]
    by_col = torch.argsort(g_c, stable=True)  # gallery entries grouped by column
    g_r, g_v = g_r[by_col], g_v[by_col]
    col_ptr = _row_ptr(g_c, n)
    entry_pairs = col_ptr[q_c + 1] - col_ptr[q_c]  # gallery entries sharing each query entry's column
    row_pairs = torch.zeros(nq, dtype=torch.long, device=rows.device).index_add_(0, q_r, entry_pairs).cumsum(0)
    q_ptr = _row_ptr(q_r, nq)
    out = torch.zeros(nq, ng, dtype=vals.dtype, device=vals.device)
    for s, e in _pair_blocks(row_pairs.cpu().numpy(), nq, ng):
        lo, hi = int(q_ptr[s]), int(q_ptr[e])
        pos, owner = _expand_segments(col_ptr, q_c[lo:hi])
        m = torch.minimum(q_v[lo:hi][owner], g_v[pos])
        out.view(-1).index_add_(0, q_r[lo:hi][owner] * ng + g_r[pos], m)
    return out


def _pair_blocks(row_pairs: np.ndarray, nq: int, ng: int) -> list[tuple[int, int]]:
    """Query row ranges with about ``_PAIR_BUDGET`` pairs and at most ``_BLOCK_ELEMENTS`` outputs each.

    ``row_pairs``: cumulative number of (query entry, gallery entry) pairs up to each query row, (Nq,).
    """
    max_rows = max(1, _BLOCK_ELEMENTS // ng)  # bounds the per-block (rows, Ng) sums (float64 on CPU)
    bounds = [0]
    while bounds[-1] < nq:
        s = bounds[-1]
        done = 0 if s == 0 else int(row_pairs[s - 1])
        e = int(np.searchsorted(row_pairs, done + _PAIR_BUDGET, side="right"))
        bounds.append(min(max(s + 1, e), s + max_rows, nq))
    return list(itertools.pairwise(bounds))


def _shared_mass_numpy(rows: np.ndarray, cols: np.ndarray, vals: np.ndarray, nq: int, n: int) -> np.ndarray:
    """numpy :func:`shared_mass` (CPU), float32 (Nq, Ng)."""
    ng = n - nq
    is_q = rows < nq
    q_r, q_c, q_v = rows[is_q], cols[is_q], vals[is_q]
    g_c = cols[~is_q]
    by_col = np.argsort(g_c, kind="stable")  # gallery entries grouped by column
    g_r, g_v = rows[~is_q][by_col] - nq, vals[~is_q][by_col]
    col_ptr = np.concatenate([[0], np.cumsum(np.bincount(g_c, minlength=n))])
    entry_pairs = col_ptr[q_c + 1] - col_ptr[q_c]  # gallery entries sharing each query entry's column
    row_pairs = np.cumsum(np.bincount(q_r, weights=entry_pairs, minlength=nq)).astype(np.int64)
    q_ptr = np.concatenate([[0], np.cumsum(np.bincount(q_r, minlength=nq))])
    out = np.empty((nq, ng), dtype=np.float32)
    for s, e in _pair_blocks(row_pairs, nq, ng):
        lo, hi = q_ptr[s], q_ptr[e]
        counts = entry_pairs[lo:hi]
        owner = np.repeat(np.arange(lo, hi), counts)
        pos = np.arange(owner.size) + np.repeat(col_ptr[q_c[lo:hi]] - (np.cumsum(counts) - counts), counts)
        mins = np.minimum(q_v[owner], g_v[pos])
        flat = (q_r[owner] - s) * ng + g_r[pos]
        out[s:e] = np.bincount(flat, weights=mins, minlength=(e - s) * ng).reshape(e - s, ng)
    return out
