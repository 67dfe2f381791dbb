"""From features to the final query-gallery distance: metric, optional query expansion, optional re-ranking.

With ``rerank=True`` the k-reciprocal re-ranking runs directly on the features (:class:`FeatureRows`): the
(N x N) distances, N = Nq + Ng, are produced block by block for the neighbour search with exactly the products
q.q + q.g and g.g (the query-gallery block is kept: it is the gallery rows' query part and the final original
distance), the neighbours' distances are kept from the search and any other entry the encoding needs is computed
on demand, so memory stays O(block x N + Nq x Ng) and the result equals ``re_ranking(d(q, g), d(q, q), d(g, g))``
on the full matrices up to neighbour swaps at float round-off (the squared distances are computed directly,
without a square root, for the euclidean metric).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from .._threads import caller_threads, torch_threads
from ._ops import smallest_k
from .rerank import DistanceRows, _check_params, k_reciprocal_rerank

__all__ = ["METRICS", "FeatureRows", "distance"]

METRICS = ("cosine", "euclidean")
_SEARCH_DTYPES = {
    None: None,
    "float32": torch.float32,
    "fp32": torch.float32,
    "float16": torch.float16,
    "fp16": torch.float16,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
}
_GATHER_ELEMENTS = 1 << 24  # feature elements gathered at once in FeatureRows.values
_PRODUCT_ELEMENTS = 1 << 23  # distances per neighbour-search block (tall enough for an efficient matmul)


def _squared(dots: torch.Tensor, norm_a: torch.Tensor, norm_b: torch.Tensor, metric: str) -> torch.Tensor:
    """Squared distances from inner products: cosine (1 - dot)^2 on unit vectors, euclidean |a|^2+|b|^2-2ab."""
    if metric == "cosine":
        return (1.0 - dots).square()
    return (norm_a + norm_b - 2.0 * dots).clamp_(min=0.0)


class FeatureRows(DistanceRows):
    """Squared distances between N = Nq + Ng feature vectors, computed on demand.

    The neighbour search computes exactly the products q.q, q.g (query rows, in one matmul) and g.g (gallery
    rows); a gallery row's query part is read from the stored (Nq, Ng) query-gallery block, which is also the
    final original distance. Each product is followed by in-place passes (column norms, row norms, clamp), and no
    operation of the loop leaves the device.

    Args:
        query_feats: (Nq, D) float tensor (unit rows for ``cosine``).
        gallery_feats: (Ng, D) float tensor on the same device.
        metric: ``"cosine"`` (distance 1 - cos) or ``"euclidean"``.
        search_dtype: Optional lower precision (float16/bfloat16) for the neighbour-search matmuls.
    """

    def __init__(
        self,
        query_feats: torch.Tensor,
        gallery_feats: torch.Tensor,
        metric: str,
        search_dtype: torch.dtype | None = None,
    ) -> None:
        self.feats = torch.cat([query_feats, gallery_feats]).float()
        self.norms = self.feats.square().sum(1)
        self.num_query, self.num_gallery = len(query_feats), len(gallery_feats)
        self.metric = metric
        self.device = self.feats.device
        self.product_threads = caller_threads()  # the products keep these; the rest runs on one thread
        self.exact_search = search_dtype in (None, torch.float32)
        self._search_feats = self.feats if self.exact_search else self.feats.to(search_dtype)
        self._q_g: torch.Tensor | None = None  # squared query-gallery distances, kept by neighbours()
        self._nbrs: torch.Tensor | None = None  # (N, k) neighbour lists and their squared distances, likewise
        self._nbr_sq: torch.Tensor | None = None

    def _block(self, start: int, stop: int, others: slice) -> torch.Tensor:
        """Squared distances (float32) from items start:stop to the items ``others``, in the search precision."""
        f = self._search_feats
        with torch_threads(self.product_threads):  # compute-bound: the caller's threads
            sq = torch.mm(f[start:stop], f[others].T).float()
        if self.metric == "cosine":  # (1 - dot)^2
            return sq.neg_().add_(1.0).square_()
        # |b|^2 - 2ab in one pass after a plain product (addmm with a broadcast bias was ~1.5x slower on CPU)
        torch.add(self.norms[None, others], sq, alpha=-2.0, out=sq)
        return sq.add_(self.norms[start:stop, None]).clamp_(min=0.0)

    def neighbours(self, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        n, nq = self.num_items, self.num_query
        step = max(1, _PRODUCT_ELEMENTS // n)
        row_max = torch.empty(n, dtype=torch.float32, device=self.device)
        nbrs = torch.empty(n, k, dtype=torch.long, device=self.device)
        nbr_sq = torch.empty(n, k, dtype=torch.float32, device=self.device)
        q_g = torch.empty(nq, self.num_gallery, dtype=torch.float32, device=self.device)
        rows = torch.empty(min(step, self.num_gallery), n, dtype=torch.float32, device=self.device)  # gallery rows
        starts = [*range(0, nq, step), *range(nq, n, step)]  # no block straddles queries and gallery
        for s, e in zip(starts, [*starts[1:], n], strict=True):
            if e <= nq:  # query rows: one product with all items
                block = self._block(s, e, slice(0, n))
                q_g[s:e] = block[:, nq:]
            else:  # gallery rows: the query part is the stored query-gallery block, transposed
                block = rows[: e - s]
                block[:, :nq] = q_g[:, s - nq : e - nq].T
                block[:, nq:] = self._block(s, e, slice(nq, n))
            row_max[s:e] = block.amax(1)
            nbrs[s:e] = smallest_k(block, k)
            nbr_sq[s:e] = block.gather(1, nbrs[s:e])
        if self.exact_search:  # exact values worth keeping: most pairs values() is asked for are neighbours
            self._q_g, self._nbrs, self._nbr_sq = q_g, nbrs, nbr_sq
        return nbrs, row_max

    def values(self, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
        out = torch.empty(rows.shape, dtype=torch.float32, device=self.device)
        missing = torch.ones(rows.shape, dtype=torch.bool, device=self.device)
        if (
            self._nbrs is not None and self._nbr_sq is not None
        ):  # pairs (i, j) with j among i's stored neighbours: read, not recomputed
            step = max(1, _GATHER_ELEMENTS // self._nbrs.shape[1])
            for s in range(0, rows.numel(), step):
                hit = self._nbrs[rows[s : s + step]] == cols[s : s + step, None]  # (E, k), at most one per row
                out[s : s + step] = torch.where(hit, self._nbr_sq[rows[s : s + step]], 0.0).sum(1)
                missing[s : s + step] = ~hit.any(1)
        rows, cols, where = rows[missing], cols[missing], missing.nonzero().squeeze(1)
        step = max(1, _GATHER_ELEMENTS // self.feats.shape[1])
        for s in range(0, rows.numel(), step):
            r, c = rows[s : s + step], cols[s : s + step]
            dots = (self.feats[r] * self.feats[c]).sum(1)
            out[where[s : s + step]] = _squared(dots, self.norms[r], self.norms[c], self.metric)
        return out

    def query_gallery(self, start: int, stop: int) -> torch.Tensor:
        if self._q_g is not None:
            return self._q_g[start:stop]
        q, g = self.feats[start:stop], self.feats[self.num_query :]
        with torch_threads(self.product_threads):
            dots = q @ g.T
        return _squared(dots, self.norms[start:stop, None], self.norms[None, self.num_query :], self.metric)


def _features(x: Any, name: str, device: torch.device | None) -> torch.Tensor:
    t = x.detach() if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x))
    if device is not None:
        t = t.to(device)
    if t.ndim != 2 or t.shape[0] == 0 or t.shape[1] == 0:
        raise ValueError(f"{name} must be a non-empty 2-D (num_items, dim) array, got shape {tuple(t.shape)}.")
    if not t.is_floating_point():
        t = t.float()
    if not bool(torch.isfinite(t).all()):
        raise ValueError(f"{name} contains NaN or infinite values.")
    return t if t.dtype == torch.float64 else t.float()


def _pairwise(q: torch.Tensor, g: torch.Tensor, metric: str) -> torch.Tensor:
    """Plain (not squared) distances (Nq, Ng): 1 - cos for unit rows, or euclidean."""
    if metric == "cosine":
        return 1.0 - q @ g.T
    sq = _squared(q @ g.T, q.square().sum(1)[:, None], g.square().sum(1)[None, :], metric)
    return sq.sqrt_()


def _average_query_expansion(q: torch.Tensor, g: torch.Tensor, k: int, metric: str) -> torch.Tensor:
    """Replace each query by the mean of itself and its k nearest gallery items (re-normalised for cosine)."""
    k = min(k, len(g))
    nearest = torch.topk(_pairwise(q, g, metric), k, dim=1, largest=False).indices  # (Nq, k)
    q = (q + g[nearest].sum(1)) / (k + 1)
    return F.normalize(q, dim=1) if metric == "cosine" else q


def distance(
    query_feats: Any,
    gallery_feats: Any,
    metric: str = "cosine",
    rerank: bool = False,
    k1: int = 20,
    k2: int = 6,
    lambda_value: float = 0.3,
    device: str | torch.device | None = None,
    search_dtype: str | torch.dtype | None = None,
    query_expansion: int = 0,
) -> torch.Tensor:
    """Query-gallery distances from features, optionally k-reciprocal re-ranked, in one fused pass.

    Args:
        query_feats: Query features (Nq, D), numpy or torch.
        gallery_feats: Gallery features (Ng, D).
        metric: ``"cosine"`` (1 - cosine similarity; features are L2-normalised first; for features of constant
            norm, such as CSDN's, it ranks exactly like the negative inner product the official code uses) or
            ``"euclidean"``.
        rerank: Apply k-reciprocal re-ranking (same result as :func:`csdn.evaluation.re_ranking` on the three
            distance matrices of these features).
        k1: Re-ranking: neighbours of the k-reciprocal sets (paper default 20).
        k2: Re-ranking: neighbours of the query expansion (paper default 6).
        lambda_value: Re-ranking: weight of the original distance (paper default 0.3).
        device: Where to compute (default: the query features' device; numpy input: CPU).
        search_dtype: ``"float16"``/``"bfloat16"`` runs the re-ranking neighbour search in that precision
            (faster on GPUs; neighbours of near-tied items may change). Default: full precision.
        query_expansion: If > 0, average query expansion: each query is replaced by the mean of itself and its
            ``query_expansion`` nearest gallery items before the final distances are computed.

    Returns:
        Float32 (float64 for float64 input without re-ranking) tensor (Nq, Ng) on ``device``; smaller = closer.

    Raises:
        ValueError: On bad shapes, NaN/inf features, an unknown metric or search dtype, or bad parameters.
    """
    if metric not in METRICS:
        raise ValueError(f"Unknown value {metric!r} for argument metric. Valid values are {list(METRICS)}.")
    key = search_dtype if isinstance(search_dtype, torch.dtype) or search_dtype is None else str(search_dtype).lower()
    if isinstance(key, torch.dtype):
        key = str(key).replace("torch.", "")
    if key not in _SEARCH_DTYPES:
        valid = ["float32", "float16", "bfloat16"]
        raise ValueError(f"Unknown value {search_dtype!r} for argument search_dtype. Valid values are {valid}.")
    if isinstance(query_expansion, bool) or not isinstance(query_expansion, int) or query_expansion < 0:
        raise ValueError(f"query_expansion must be a non-negative integer, got {query_expansion!r}.")
    if rerank:
        _check_params(k1, k2, lambda_value)
    dev = torch.device(device) if device is not None else None
    q = _features(query_feats, "query_feats", dev)
    g = _features(gallery_feats, "gallery_feats", q.device)
    if q.shape[1] != g.shape[1]:
        raise ValueError(f"query_feats have dimension {q.shape[1]} but gallery_feats {g.shape[1]}; they must match.")
    if metric == "cosine":
        q, g = F.normalize(q, dim=1), F.normalize(g, dim=1)
    if query_expansion:
        q = _average_query_expansion(q, g, query_expansion, metric)
    if not rerank:
        return _pairwise(q, g, metric)
    source = FeatureRows(q, g, metric, _SEARCH_DTYPES[key])
    return k_reciprocal_rerank(source, k1, k2, float(lambda_value))
