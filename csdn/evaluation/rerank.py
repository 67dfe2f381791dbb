"""k-reciprocal re-ranking (Zhong et al., CVPR 2017) with top-k neighbour lists and sparse Jaccard distances.

Same result (float32, <= 1e-5 abs) as the standard implementation (torchreid ``utils/rerank.py``): the combined
(Nq+Ng)^2 distance matrix is squared, each item's distances are divided by their maximum, the k1-reciprocal sets
are expanded with the round(k1/2)-reciprocal sets of their members when these overlap by more than 2/3, the
encoding V holds exp(-distance) weights normalised per item, V is averaged over each item's k2 nearest
neighbours (skipped when k2 == 1), and the final distance is ``(1 - lambda) * jaccard + lambda * distance``.
(Zhong et al.'s original code kept the squared distances and V in float16; torchreid, and we, use float32.)

Instead of dense (N x N) matrices and full argsorts, only the max(k1 + 1, k2) nearest neighbours of every item are
kept (a partial search bounded by group minima on CPU, ``topk`` elsewhere; see :func:`csdn.evaluation._ops.smallest_k`),
V is stored sparsely (tens of non-zeros per item) and the query-gallery Jaccard distances are a sparse
"sum of minima" join over shared neighbours (those sparse parts: :mod:`csdn.evaluation._kreciprocal`).
Rows of the distance matrix are produced block by block by a
:class:`DistanceRows` source, so peak memory is O(block x N) plus the (Nq x Ng) output; the fused
:func:`csdn.evaluation.distance` source computes them from features and never holds an N x N matrix.
Ties in the neighbour ranking are broken by item index (the reference's quicksort leaves them unordered).
Non-negative distances are ranked by their own values (squaring is monotone): where distinct distances collide
once squared in float32 and divided by the row maximum (differences below float32 resolution, e.g. float64 inputs
a few 1e-9 apart), the reference's order among them is its quicksort's, csdn's follows the distances.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from .._threads import memory_bound
from ._kreciprocal import encode, query_expansion, shared_mass
from ._ops import copy_transposed, smallest_k

__all__ = ["DistanceRows", "MatrixRows", "k_reciprocal_rerank", "re_ranking"]

_BLOCK_ELEMENTS = 1 << 22  # rows per block of the final (Nq, Ng) pass = this / N; caps the search blocks too
_SEARCH_ELEMENTS = 1 << 20  # neighbour-search rows per block = this / N (small blocks transpose cache-friendly)
SPARSE_BACKENDS = ("auto", "scipy", "torch")


class DistanceRows:
    """Source of rows of the *squared* combined distance matrix over N = Nq + Ng items (queries first).

    Row ``i`` holds the squared distances from item ``i`` to all N items, in the layout the standard
    implementation ends up with after its transpose (see :class:`MatrixRows`). Subclasses implement
    :meth:`rows`, :meth:`values` and :meth:`query_gallery`.
    """

    num_query: int
    num_gallery: int
    device: torch.device

    @property
    def num_items(self) -> int:
        return self.num_query + self.num_gallery

    def search(self, start: int, stop: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Neighbour-search keys and squared-distance maxima of items ``start:stop``.

        Returns:
            ``(keys, row_max)``: keys (c, N) in the same order as the squared distances of each row (the
            distances themselves, or an approximation when a fast search is asked for), and the float32 maximum
            squared distance of each row (c,).
        """
        raise NotImplementedError

    def neighbours(self, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The k nearest items of every item, ties by index, and each row's maximum squared distance.

        Returns:
            ``(nbrs, row_max)``: int64 (N, k) in ascending distance, float32 (N,).
        """
        n = self.num_items
        step = max(1, min(_BLOCK_ELEMENTS, _SEARCH_ELEMENTS) // n)
        row_max = torch.empty(n, dtype=torch.float32, device=self.device)
        nbrs = torch.empty(n, k, dtype=torch.long, device=self.device)
        for s in range(0, n, step):
            keys, row_max[s : s + step] = self.search(s, min(s + step, n))
            nbrs[s : s + step] = smallest_k(keys, k)
        return nbrs, row_max

    def values(self, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
        """Squared distances at the index pairs ``(rows[e], cols[e])``, float32 (E,)."""
        raise NotImplementedError

    def query_gallery(self, start: int, stop: int) -> torch.Tensor:
        """Squared query-gallery distances of queries ``start:stop``, float32 (stop - start, Ng)."""
        raise NotImplementedError


class MatrixRows(DistanceRows):
    """Rows of ``[[q_q, q_g], [q_g^T, g_g]]`` squared, as the standard code lays them out.

    The standard code divides column i of the squared combined matrix by its maximum and transposes, so its
    row i is column i of the combined matrix: ``[q_q[:, i], q_g[i, :]]`` for a query and
    ``[q_g[:, j], g_g[:, j]]`` for a gallery item j (identical to plain rows when the inputs are symmetric).

    Args:
        q_g: Query-gallery distances (Nq, Ng).
        q_q: Query-query distances (Nq, Nq).
        g_g: Gallery-gallery distances (Ng, Ng).
        nonnegative: Whether all distances are >= 0 (computed when None); then the neighbour search runs on the
            distances themselves instead of their squares.
    """

    def __init__(
        self, q_g: torch.Tensor, q_q: torch.Tensor, g_g: torch.Tensor, nonnegative: bool | None = None
    ) -> None:
        if q_g.device.type == "cpu" and torch.bfloat16 in (q_g.dtype, q_q.dtype, g_g.dtype):
            q_g, q_q, g_g = q_g.float(), q_q.float(), g_g.float()  # numpy (the CPU kernels) has no bfloat16
        self.q_g, self.q_q, self.g_g = q_g, q_q, g_g
        self.num_query, self.num_gallery = q_g.shape
        self.device = q_g.device
        if nonnegative is None:
            nonnegative = all(bool(m.amin() >= 0) for m in (q_g, q_q, g_g))
        self.nonnegative = nonnegative

    @staticmethod
    def _sq(x: torch.Tensor) -> torch.Tensor:
        return x.square().to(torch.float32)  # squared in the input precision, then float32 (as the reference)

    def search(self, start: int, stop: int) -> tuple[torch.Tensor, torch.Tensor]:
        raw = self._raw_rows(start, stop)
        if not self.nonnegative:
            raw = self._sq(raw)
            return raw, raw.amax(1)
        # squaring is monotone on non-negative distances: search the raw rows, square only the maxima
        return raw, self._sq(raw.amax(1))

    def _raw_rows(self, start: int, stop: int) -> torch.Tensor:
        nq = self.num_query
        out = torch.empty(stop - start, self.num_items, dtype=self.q_g.dtype, device=self.device)
        if start < nq:  # transposed straight into place (faster than cat, which copies twice)
            s, e = start, min(stop, nq)
            copy_transposed(out[: e - s, :nq], self.q_q[:, s:e])
            out[: e - s, nq:].copy_(self.q_g[s:e])
        if stop > nq:
            s, e = max(start, nq) - nq, stop - nq
            copy_transposed(out[-(e - s) :, :nq], self.q_g[:, s:e])
            copy_transposed(out[-(e - s) :, nq:], self.g_g[:, s:e])
        return out

    def values(self, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
        mats = (self.q_q, self.q_g, self.g_g)
        if self.device.type == "cpu":  # numpy's boolean indexing: several times faster than torch's on CPU
            out = np.empty(rows.shape, dtype=self.q_g.numpy().dtype)
            q_q, q_g, g_g = (m.numpy() for m in mats)
            return self._sq(torch.from_numpy(self._gather(rows.numpy(), cols.numpy(), q_q, q_g, g_g, out)))
        dense = torch.empty(rows.shape, dtype=self.q_g.dtype, device=self.device)
        return self._sq(self._gather(rows, cols, *mats, dense))

    def _gather(self, rows: Any, cols: Any, q_q: Any, q_g: Any, g_g: Any, out: Any) -> Any:
        """``out[e]`` = entry ``(rows[e], cols[e])`` of the transposed layout; numpy arrays or torch tensors alike."""
        nq = self.num_query
        rq, cq = rows < nq, cols < nq
        for sel, mat, r, c in (
            (rq & cq, q_q, cols, rows),
            (rq & ~cq, q_g, rows, cols - nq),
            (~rq & cq, q_g, cols, rows - nq),
            (~rq & ~cq, g_g, cols - nq, rows - nq),
        ):
            out[sel] = mat[r[sel], c[sel]]
        return out

    def query_gallery(self, start: int, stop: int) -> torch.Tensor:
        return self._sq(self.q_g[start:stop])


def k_reciprocal_rerank(
    source: DistanceRows, k1: int = 20, k2: int = 6, lambda_value: float = 0.3, sparse_backend: str = "auto"
) -> torch.Tensor:
    """Re-rank query-gallery distances given a source of combined squared-distance rows.

    Args:
        source: The rows (see :class:`DistanceRows`).
        k1, k2, lambda_value: As :func:`re_ranking`.
        sparse_backend: Sparse product of the local query expansion: ``"scipy"`` (CPU only, several times faster
            than torch.sparse there), ``"torch"`` (any device) or ``"auto"`` (scipy on CPU, torch elsewhere).

    Returns:
        Float32 tensor (Nq, Ng) on the source's device.
    """
    if sparse_backend not in SPARSE_BACKENDS:
        raise ValueError(f"Unknown value {sparse_backend!r} for argument sparse_backend; use one of {SPARSE_BACKENDS}.")
    with memory_bound():  # every pass but the fused products (which scope their own threads) is memory-bound
        return _rerank(source, k1, k2, lambda_value, sparse_backend)


def _rerank(source: DistanceRows, k1: int, k2: int, lambda_value: float, sparse_backend: str) -> torch.Tensor:
    if sparse_backend == "auto":
        sparse_backend = "scipy" if source.device.type == "cpu" else "torch"
    elif sparse_backend == "scipy" and source.device.type != "cpu":
        raise ValueError(f"sparse_backend='scipy' needs CPU tensors, got device {source.device}; use 'torch'.")
    n, nq = source.num_items, source.num_query
    k_recip = min(k1 + 1, n)
    nbrs, row_max = source.neighbours(max(k_recip, min(k2, n)))  # k2 may exceed k1 + 1
    if not bool((row_max > 0).all()):
        bad = int((row_max <= 0).nonzero()[0, 0])
        raise ValueError(f"all distances of item {bad} are zero; re-ranking needs at least one positive distance.")
    coo = encode(source, k1, row_max, nbrs[:, :k_recip].contiguous())
    if k2 != 1:
        coo = query_expansion(coo, nbrs, k2, n, sparse_backend)
    final = shared_mass(coo, nq, n)
    step = max(1, _BLOCK_ELEMENTS // n)
    for s in range(0, nq, step):  # in place, block by block: no extra (Nq, Ng) temporaries
        block = final[s : s + step]
        block.copy_(1.0 - block / (2.0 - block))  # Jaccard distance
        if lambda_value != 0:
            orig = source.query_gallery(s, s + block.shape[0]) / row_max[s : s + block.shape[0], None]
            block.mul_(1 - lambda_value).add_(orig * lambda_value)
    return final


def _check_params(k1: Any, k2: Any, lambda_value: Any) -> None:
    for name, k in (("k1", k1), ("k2", k2)):
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise ValueError(f"{name} must be a positive integer, got {k!r}.")
    if not isinstance(lambda_value, (int, float)) or not 0.0 <= float(lambda_value) <= 1.0:
        raise ValueError(f"lambda_value must be a number in [0, 1], got {lambda_value!r}.")


def _as_matrix(x: Any, name: str, shape: tuple[int, int], device: torch.device | None) -> tuple[torch.Tensor, bool]:
    """Validated float tensor, and whether all its entries are >= 0."""
    t = x.detach() if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x))
    t = t if device is None else t.to(device)
    if tuple(t.shape) != shape:
        raise ValueError(f"{name} must have shape {shape} (from q_g_dist), got {tuple(t.shape)}.")
    if not t.is_floating_point():
        t = t.double()
    lo, hi = torch.aminmax(t)  # NaN propagates; cheaper than a full isfinite pass
    if not (bool(torch.isfinite(lo)) and bool(torch.isfinite(hi))):
        raise ValueError(f"{name} contains NaN or infinite values.")
    return t, bool(lo >= 0)


def re_ranking(
    q_g_dist: Any, q_q_dist: Any, g_g_dist: Any, k1: int = 20, k2: int = 6, lambda_value: float = 0.3
) -> np.ndarray:
    """k-reciprocal re-ranking of euclidean distances (Zhong et al. 2017), as torchreid ``utils/rerank.py``.

    Args:
        q_g_dist: Query-gallery distances (Nq, Ng), numpy or torch (any device; work happens there). float16
            distances are squared in float16 as the reference does (and ranked by their own values, see the module
            notes on near-ties); bfloat16 ones on the CPU in float32.
        q_q_dist: Query-query distances (Nq, Nq).
        g_g_dist: Gallery-gallery distances (Ng, Ng).
        k1: Size of the k-reciprocal neighbourhoods (20 in the paper); galleries smaller than k1 are fine.
        k2: Neighbours averaged in the local query expansion (6 in the paper; 1 disables it; may exceed k1 + 1).
        lambda_value: Weight of the original distance in the final one (0.3 in the paper).

    Returns:
        Re-ranked distances, numpy float32 (Nq, Ng).

    Raises:
        ValueError: On wrong shapes, NaN/inf, empty inputs or out-of-range parameters.
    """
    _check_params(k1, k2, lambda_value)
    with memory_bound():
        return _re_ranking(q_g_dist, q_q_dist, g_g_dist, k1, k2, float(lambda_value))


def _re_ranking(q_g_dist: Any, q_q_dist: Any, g_g_dist: Any, k1: int, k2: int, lambda_value: float) -> np.ndarray:
    q_g = q_g_dist.detach() if isinstance(q_g_dist, torch.Tensor) else torch.as_tensor(np.asarray(q_g_dist))
    if q_g.ndim != 2 or q_g.numel() == 0:
        raise ValueError(f"q_g_dist must be a non-empty 2-D (Nq, Ng) matrix, got shape {tuple(q_g.shape)}.")
    nq, ng = q_g.shape
    q_g, pos_qg = _as_matrix(q_g, "q_g_dist", (nq, ng), None)
    q_q, pos_qq = _as_matrix(q_q_dist, "q_q_dist", (nq, nq), q_g.device)
    g_g, pos_gg = _as_matrix(g_g_dist, "g_g_dist", (ng, ng), q_g.device)
    dtype = torch.promote_types(torch.promote_types(q_g.dtype, q_q.dtype), g_g.dtype)
    source = MatrixRows(q_g.to(dtype), q_q.to(dtype), g_g.to(dtype), nonnegative=pos_qg and pos_qq and pos_gg)
    return k_reciprocal_rerank(source, k1, k2, lambda_value).cpu().numpy()
