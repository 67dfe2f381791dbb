"""Exact, vectorised CMC / mAP / mINP for (visible-infrared) person re-identification.

The numbers equal those of the field's reference evaluators (AGW/CSDN ``eval_sysu`` and ``eval_regdb``, LLCM
``eval_llcm``, torchreid ``eval_market1501``) with ties broken by gallery index (a stable sort; the references
use numpy's unstable quicksort, so they only agree on tie-free input). See :mod:`csdn.evaluation.protocols` for
the removal rule and CMC variant of each protocol.

Definitions, for one query with ``n`` true matches among the kept gallery items ranked by increasing distance:

- AP: mean over the true matches of (number of true matches up to it) / (its 1-based rank).
- INP: ``n`` / (1-based rank of the hardest true match) (Ye et al., *Deep Learning for Person Re-identification:
  A Survey and Outlook*).
- CMC at rank k: 1 if the first true match is within the first k positions of the (standard or
  identity-deduplicated) ranking.

Queries without any true match among their kept gallery items are *invalid*: they are left out of mAP, mINP and
the CMC denominator (as in the references).

Edge cases we define (the references crash or print): ``max_rank`` larger than the gallery is clipped to the
gallery size; ranked lists shorter than ``max_rank`` after removal or deduplication (where the references build
ragged arrays) are padded with their last value, i.e. a query counts as matched at every rank after its first
match; NaN/inf distances, empty inputs, mismatched shapes and an input without any valid query raise
``ValueError``.

The work is done with torch on the input's device (numpy input runs on CPU), in chunks of queries so memory stays
O(chunk x G); there is no per-query Python loop.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from .._threads import memory_bound
from ._ops import nonzero_2d, sort_rows
from .protocols import Protocol, get_protocol

__all__ = ["EvaluationResult", "evaluate"]

logger = logging.getLogger(__name__)

_CHUNK_ELEMENTS = 1 << 21  # queries per chunk = this / gallery size (at least 1)


@dataclass
class EvaluationResult:
    """Metrics of one query set against one gallery.

    Attributes:
        cmc: CMC curve, numpy float64 array of length ``min(max_rank, G)``, fractions in [0, 1];
            ``cmc[k]`` is the rank-(k+1) accuracy.
        mAP: Mean average precision over valid queries, in [0, 1].
        mINP: Mean inverse negative penalty over valid queries, in [0, 1].
        ap: Average precision of each valid query, shape (num_valid,), in query order.
        inp: Inverse negative penalty of each valid query, shape (num_valid,).
        valid: Bool mask (Q,) of the queries that have at least one true match.
        num_valid: Number of valid queries.
        protocol: Name of the protocol used.
        first: 0-based position of each valid query's first true match in the ranking the CMC counts (the
            identity-deduplicated one under ``sysu``/``llcm``), shape (num_valid,); 0 = a rank-1 hit.
    """

    cmc: np.ndarray
    mAP: float
    mINP: float
    ap: np.ndarray
    inp: np.ndarray
    valid: np.ndarray
    num_valid: int
    protocol: str
    first: np.ndarray | None = None

    @property
    def rank1(self) -> float:
        """Rank-1 accuracy (``cmc[0]``)."""
        return float(self.cmc[0])

    def rank(self, k: int) -> float:
        """Rank-k accuracy, ``k`` 1-based (clipped to the CMC length)."""
        if k < 1:
            raise ValueError(f"rank k must be >= 1, got {k}.")
        return float(self.cmc[min(k, len(self.cmc)) - 1])

    def __repr__(self) -> str:
        return (
            f"EvaluationResult(protocol={self.protocol!r}, queries={len(self.valid)}, valid={self.num_valid}, "
            f"rank1={self.rank1:.4f}, mAP={self.mAP:.4f}, mINP={self.mINP:.4f}, cmc=<{len(self.cmc)} ranks>)"
        )

    def summary(self, ranks: tuple[int, ...] = (1, 5, 10, 20)) -> dict[str, float]:
        """Headline numbers as fractions: ``{"rank1": .., "rank5": .., ..., "mAP": .., "mINP": ..}``."""
        out = {f"rank{k}": self.rank(k) for k in ranks}
        out["mAP"] = self.mAP
        out["mINP"] = self.mINP
        return out


def _as_tensor(x: Any, name: str, device: torch.device | None = None) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        t = x.detach()
    else:
        try:
            t = torch.as_tensor(np.asarray(x))
        except (TypeError, ValueError) as exc:
            raise ValueError(
                f"{name} must be a numpy array or torch tensor of numbers, got {type(x).__name__}."
            ) from exc
    return t if device is None else t.to(device)


def _check_ids(x: Any, name: str, n: int, device: torch.device) -> torch.Tensor:
    t = _as_tensor(x, name, device)
    if t.ndim > 1:
        raise ValueError(f"{name} must be 1-D, got shape {tuple(t.shape)}.")
    t = t.reshape(-1)
    if t.numel() != n:
        raise ValueError(f"{name} has {t.numel()} entries but distmat implies {n}; pass one id per row/column.")
    if t.is_floating_point() or t.is_complex() or t.dtype == torch.bool:
        if t.is_floating_point() and torch.equal(t, t.round()):
            return t.long()
        raise ValueError(f"{name} must hold integer ids, got dtype {t.dtype}.")
    return t.long()


def _validate(
    distmat: Any, q_pids: Any, g_pids: Any, q_cams: Any, g_cams: Any, protocol: Protocol, max_rank: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    dist = _as_tensor(distmat, "distmat")
    if dist.ndim != 2:
        raise ValueError(f"distmat must be 2-D (num_query, num_gallery), got shape {tuple(dist.shape)}.")
    num_q, num_g = dist.shape
    if num_q == 0 or num_g == 0:
        raise ValueError(f"distmat is empty (shape {tuple(dist.shape)}): need at least one query and one gallery item.")
    if dist.dtype == torch.bool or dist.is_complex():
        raise ValueError(f"distmat must hold real distances, got dtype {dist.dtype}.")
    if dist.is_floating_point():
        lo, hi = torch.aminmax(dist)  # NaN propagates; cheaper than a full isfinite pass
        if not (bool(torch.isfinite(lo)) and bool(torch.isfinite(hi))):
            bad = int((~torch.isfinite(dist)).sum())
            raise ValueError(
                f"distmat contains {bad} NaN or infinite values; check the features (e.g. a zero vector "
                "normalised to NaN) before evaluating."
            )
    if isinstance(max_rank, bool) or not isinstance(max_rank, (int, np.integer)) or max_rank < 1:
        raise ValueError(f"max_rank must be a positive integer, got {max_rank!r}.")
    qp = _check_ids(q_pids, "q_pids", num_q, dist.device)
    gp = _check_ids(g_pids, "g_pids", num_g, dist.device)
    qc = gc = None
    if protocol.needs_cams:
        if q_cams is None or g_cams is None:
            raise ValueError(f"protocol {protocol.name!r} needs camera ids: pass q_cams and g_cams.")
        qc = _check_ids(q_cams, "q_cams", num_q, dist.device)
        gc = _check_ids(g_cams, "g_cams", num_g, dist.device)
    return dist, qp, gp, qc, gc


def _positives(match: torch.Tensor, dist: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Distances and gallery indices of each row's true matches, sorted by (distance, index), padded with +inf.

    Args:
        match: Bool (c, G), True at the kept true matches.
        dist: Float distances (c, G).

    Returns:
        ``(pos_d, pos_i, num_pos)``: (c, P) with P the largest number of matches in a row, padded with (+inf, G),
        and the number of matches of each row (c,).
    """
    c, num_g = match.shape
    rows, cols = nonzero_2d(match)  # row-major: columns ascending within a row
    num_pos = torch.bincount(rows, minlength=c)
    width = max(int(num_pos.max()), 1)
    slot = torch.arange(rows.numel(), device=match.device) - (num_pos.cumsum(0) - num_pos)[rows]
    pos_d = torch.full((c, width), float("inf"), device=dist.device, dtype=dist.dtype)
    pos_i = torch.full((c, width), num_g, device=dist.device, dtype=torch.long)
    pos_d[rows, slot] = dist[rows, cols]
    pos_i[rows, slot] = cols
    pos_d, perm = torch.sort(pos_d, dim=1, stable=True)  # stable: equal distances stay in index order
    return pos_d, pos_i.gather(1, perm), num_pos


def _tied_ahead(kept_d: torch.Tensor, rows: torch.Tensor, d: torch.Tensor, i: torch.Tensor) -> torch.Tensor:
    """Mask (len(rows), G) of the items of ``kept_d[rows]`` at distance ``d`` with a gallery index below ``i``."""
    idx = torch.arange(kept_d.shape[1], device=kept_d.device)
    return (kept_d[rows] == d[:, None]) & (idx[None, :] < i[:, None])


def _match_ranks(kept_d: torch.Tensor, pos_d: torch.Tensor, pos_i: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """0-based rank of every true match among the kept items, ties broken by gallery index.

    Args:
        kept_d: Distances (c, G) with removed items set to +inf.
        pos_d, pos_i: Sorted true-match distances and gallery indices (c, P) from :func:`_positives`.

    Returns:
        ``(rank, tied)``: long (c, P), the number of kept items ranked before each match (padding entries are
        meaningless), and bool (c, P), whether other kept items share the match's distance.
    """
    ranked = sort_rows(kept_d)
    rank = torch.searchsorted(ranked, pos_d, right=False)  # kept items with a strictly smaller distance
    equal = torch.searchsorted(ranked, pos_d, right=True) - rank
    tied = (equal > 1) & torch.isfinite(pos_d)
    rows, cols = torch.nonzero(tied, as_tuple=True)
    step = max(1, _CHUNK_ELEMENTS // kept_d.shape[1])
    for s in range(0, rows.numel(), step):  # equal distances: items with a smaller gallery index come first
        r, t = rows[s : s + step], cols[s : s + step]
        rank[r, t] += _tied_ahead(kept_d, r, pos_d[r, t], pos_i[r, t]).sum(1)
    return rank, tied


def _chunk_metrics(
    dist: torch.Tensor,
    q_pids: torch.Tensor,
    q_cams: torch.Tensor | None,
    g_pids: torch.Tensor,
    g_cams: torch.Tensor | None,
    g_uid: torch.Tensor | None,
    protocol: Protocol,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-query metrics of one chunk of queries.

    Each row's kept distances are sorted (values only) and the true matches are located in them with
    ``searchsorted``, which gives every match's rank among the kept items without an argsort.

    Args:
        dist: Float distances (c, G).
        q_pids, q_cams: Query ids and cameras, shape (c,).
        g_pids, g_cams: Gallery ids and cameras, shape (G,).
        g_uid: Gallery identity indices 0..U-1 (G,) for the unique-identity CMC, else None.
        protocol: The protocol.

    Returns:
        ``(num_pos, first, ap, inp)`` each of shape (c,): number of true matches, 0-based position of the first
        match in the (standard or deduplicated) ranking, AP and INP (float64; meaningless where num_pos == 0).
    """
    removed = protocol.removed(q_pids, g_pids, q_cams, g_cams)
    match = g_pids[None, :] == q_pids[:, None]
    kept_d = dist
    if removed is not None:
        match &= ~removed
        kept_d = dist.masked_fill(removed, float("inf"))
    pos_d, pos_i, num_pos = _positives(match, dist)
    rank, tied = _match_ranks(kept_d, pos_d, pos_i)
    t = torch.arange(pos_d.shape[1], device=dist.device)
    real = t[None, :] < num_pos[:, None]
    ap = torch.where(real, (t + 1).double() / (rank + 1).double(), 0.0).sum(1) / num_pos.clamp(min=1)
    last = rank.gather(1, (num_pos - 1).clamp(min=0)[:, None]).squeeze(1)
    inp = num_pos.double() / (last + 1).double()
    if g_uid is None:
        return num_pos, rank[:, 0], ap, inp
    # unique-identity CMC: count the identities having a kept item ranked before the first match
    # (kept items of the query's identity are all matches, so none of them precedes the first match)
    ahead = kept_d < pos_d[:, :1]
    rows = tied[:, 0].nonzero().squeeze(1)
    if rows.numel():
        ahead[rows] |= _tied_ahead(kept_d, rows, pos_d[rows, 0], pos_i[rows, 0])
    rows, cols = nonzero_2d(ahead)
    seen = torch.zeros(dist.shape[0], int(g_uid.max()) + 1, dtype=torch.bool, device=dist.device)
    seen[rows, g_uid[cols]] = True
    first = seen.sum(1)
    return num_pos, first, ap, inp


def evaluate(
    distmat: Any,
    q_pids: Any,
    g_pids: Any,
    q_cams: Any = None,
    g_cams: Any = None,
    protocol: str | Protocol = "sysu",
    max_rank: int = 20,
) -> EvaluationResult:
    """Compute CMC, mAP and mINP of a query-gallery distance matrix under a re-ID protocol.

    Args:
        distmat: Distances (Q, G), smaller = closer; numpy array or torch tensor on any device (float32/64 or
            integer). For similarity scores pass their negation.
        q_pids: Query identities (Q,).
        g_pids: Gallery identities (G,).
        q_cams: Query camera ids (Q,); required by ``sysu``, ``llcm`` and ``market``, ignored by ``regdb``.
        g_cams: Gallery camera ids (G,); as ``q_cams``.
        protocol: ``"sysu"``, ``"regdb"``, ``"llcm"`` or ``"market"`` (see :mod:`csdn.evaluation.protocols`).
        max_rank: Length of the CMC curve (clipped to G).

    Returns:
        An :class:`EvaluationResult` (CMC, mAP, mINP as fractions; per-valid-query AP and INP).

    Raises:
        ValueError: On an unknown protocol, wrong shapes, NaN/inf distances, empty inputs, missing camera ids
            or when no query has a true match in the gallery.
    """
    proto = get_protocol(protocol)
    with memory_bound():  # sorts, comparisons and gathers: one CPU thread is as fast and immune to busy cores
        return _evaluate(distmat, q_pids, g_pids, q_cams, g_cams, proto, max_rank)


def _evaluate(
    distmat: Any, q_pids: Any, g_pids: Any, q_cams: Any, g_cams: Any, proto: Protocol, max_rank: int
) -> EvaluationResult:
    dist, qp, gp, qc, gc = _validate(distmat, q_pids, g_pids, q_cams, g_cams, proto, max_rank)
    num_q, num_g = dist.shape
    if num_g < max_rank:
        logger.info("gallery has only %d items: CMC clipped to rank %d", num_g, num_g)
    max_rank = min(int(max_rank), num_g)
    if not dist.is_floating_point():
        dist = dist.double()
    elif dist.dtype in (torch.float16, torch.bfloat16):
        dist = dist.float()  # exact; numpy cannot sort bfloat16
    g_uid = None
    if proto.unique_cmc:
        _, g_uid = torch.unique(gp, return_inverse=True)
    step = max(1, _CHUNK_ELEMENTS // num_g)
    outs = []
    for s in range(0, num_q, step):
        sl = slice(s, s + step)
        outs.append(_chunk_metrics(dist[sl], qp[sl], None if qc is None else qc[sl], gp, gc, g_uid, proto))
    num_pos, first, ap, inp = (torch.cat(t).cpu() for t in zip(*outs, strict=True))
    valid = num_pos > 0
    num_valid = int(valid.sum())
    if num_valid == 0:
        raise ValueError(
            "no valid query: none of the query identities has a match in the gallery after the "
            f"{proto.name!r} removal rule; check that q_pids and g_pids use the same id space."
        )
    counts = torch.bincount(first[valid].clamp(max=max_rank), minlength=max_rank + 1)[:max_rank]
    cmc = (counts.cumsum(0).double() / num_valid).numpy()
    ap_v, inp_v = ap[valid].numpy(), inp[valid].numpy()
    return EvaluationResult(
        cmc=cmc,
        mAP=float(ap_v.mean()),
        mINP=float(inp_v.mean()),
        ap=ap_v,
        inp=inp_v,
        valid=valid.numpy(),
        num_valid=num_valid,
        protocol=proto.name,
        first=first[valid].numpy(),
    )
