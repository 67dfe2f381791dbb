"""What an evaluation report shows beyond the headline numbers, computed from one query x gallery distance matrix.

- :func:`camera_matrix`: rank-1 and mAP of every query-camera x gallery-camera block, under the dataset's
  protocol rules (each block is scored by :func:`csdn.evaluation.evaluate` itself, so the removal rule and the
  CMC variant are exactly the headline ones).
- :func:`distance_distributions` / :func:`roc_curve`: distances of matching and non-matching query-gallery pairs
  (pairs the protocol removes are left out) and the ROC of "same identity if distance <= threshold".
- :func:`hardest_queries`: the queries with the lowest AP and their top-k ranked gallery items (as the evaluator
  ranks them: removed items skipped, ties broken by gallery index).

Everything is numpy/torch (no plotting): :mod:`csdn.report.html` draws the results.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..evaluation import evaluate
from ..evaluation.roc import ROCCurve as ROCCurve
from ..evaluation.roc import pair_distances, roc_curve
from ..evaluation.roc import removed_pairs as _removed

__all__ = [
    "CameraMatrix",
    "HardQuery",
    "ROCCurve",
    "camera_matrix",
    "distance_distributions",
    "hardest_queries",
    "roc_curve",
]


def _numpy(x: Any, dtype: Any = None) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=dtype)


def _check(distmat: Any, q_pids: Any, g_pids: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    dist = _numpy(distmat, np.float64)
    if dist.ndim != 2 or dist.size == 0:
        raise ValueError(f"distmat must be a non-empty (num_query, num_gallery) matrix, got shape {dist.shape}")
    qp, gp = _numpy(q_pids).reshape(-1), _numpy(g_pids).reshape(-1)
    if qp.size != dist.shape[0] or gp.size != dist.shape[1]:
        raise ValueError(
            f"distmat has shape {dist.shape} but {qp.size} query and {gp.size} gallery ids were given; "
            "pass one id per row and per column"
        )
    return dist, qp, gp


# ------------------------------------------------------------------------------------------------ camera matrix


@dataclass
class CameraMatrix:
    """Per camera-pair metrics; ``nan`` where a block has no valid query (e.g. SYSU camera 3 vs camera 2).

    Attributes:
        query_cams: Query camera ids (rows), sorted.
        gallery_cams: Gallery camera ids (columns), sorted.
        rank1: ``(len(query_cams), len(gallery_cams))`` rank-1 fractions.
        mAP: Same shape, mAP fractions.
        num_valid: Same shape, number of queries with a true match in the block (0 where ``nan``).
    """

    query_cams: list[int]
    gallery_cams: list[int]
    rank1: np.ndarray
    mAP: np.ndarray
    num_valid: np.ndarray


def camera_matrix(
    distmat: Any, q_pids: Any, g_pids: Any, q_cams: Any, g_cams: Any, protocol: str = "sysu"
) -> CameraMatrix:
    """Rank-1 and mAP of the queries of each camera against the gallery items of each camera.

    Args:
        distmat: ``(Q, G)`` distances (smaller = closer).
        q_pids: Query identities ``(Q,)``.
        g_pids: Gallery identities ``(G,)``.
        q_cams: Query camera ids ``(Q,)``.
        g_cams: Gallery camera ids ``(G,)``.
        protocol: Evaluation protocol (its removal rule and CMC variant apply inside every block).

    Returns:
        A :class:`CameraMatrix`.
    """
    dist, qp, gp = _check(distmat, q_pids, g_pids)
    qc, gc = _numpy(q_cams).reshape(-1), _numpy(g_cams).reshape(-1)
    if qc.size != qp.size or gc.size != gp.size:
        raise ValueError(f"q_cams/g_cams need {qp.size}/{gp.size} entries, got {qc.size}/{gc.size}")
    rows, cols = sorted(int(c) for c in np.unique(qc)), sorted(int(c) for c in np.unique(gc))
    rank1 = np.full((len(rows), len(cols)), np.nan)
    mean_ap = np.full_like(rank1, np.nan)
    valid = np.zeros(rank1.shape, dtype=np.int64)
    for i, q_cam in enumerate(rows):
        qi = np.flatnonzero(qc == q_cam)
        for j, g_cam in enumerate(cols):
            gi = np.flatnonzero(gc == g_cam)
            block = (dist[np.ix_(qi, gi)], qp[qi], gp[gi], qc[qi], gc[gi])
            try:
                result = evaluate(*block, protocol=protocol, max_rank=1)
            except ValueError as error:  # no query of this camera has a match among these gallery items
                if "no valid query" not in str(error):
                    raise
                continue
            rank1[i, j], mean_ap[i, j], valid[i, j] = result.rank1, result.mAP, result.num_valid
    return CameraMatrix(rows, cols, rank1, mean_ap, valid)


# ------------------------------------------------------------------------------------- distances and the ROC


def distance_distributions(
    distmat: Any, q_pids: Any, g_pids: Any, q_cams: Any = None, g_cams: Any = None, protocol: str = "sysu"
) -> tuple[np.ndarray, np.ndarray]:
    """Distances of matching (same identity) and non-matching pairs, leaving out the pairs the protocol removes.

    Returns:
        ``(matching, non_matching)``: 1-D float64 arrays (:func:`csdn.evaluation.roc.pair_distances`).
    """
    _check(distmat, q_pids, g_pids)
    return pair_distances(distmat, q_pids, g_pids, q_cams, g_cams, protocol)


# ------------------------------------------------------------------------------------------- hardest queries


@dataclass
class HardQuery:
    """One query with a low AP and its ranked list.

    Attributes:
        index: Row of the query in the distance matrix.
        ap: Its average precision (fraction).
        ranked: Gallery indices of its top-k kept items, best first.
        distances: Their distances.
        correct: Whether each ranked item has the query's identity.
    """

    index: int
    ap: float
    ranked: np.ndarray
    distances: np.ndarray
    correct: np.ndarray


def hardest_queries(
    distmat: Any,
    q_pids: Any,
    g_pids: Any,
    q_cams: Any = None,
    g_cams: Any = None,
    protocol: str = "sysu",
    *,
    num: int = 8,
    topk: int = 10,
) -> list[HardQuery]:
    """The ``num`` valid queries with the lowest AP (ties: lower query index first), each with its top-``topk``.

    The AP is the evaluator's own (:func:`csdn.evaluation.evaluate`); the ranked list skips the items the
    protocol removes for that query and orders equal distances by gallery index, as the evaluator does.
    """
    dist, qp, gp = _check(distmat, q_pids, g_pids)
    if num < 1 or topk < 1:
        raise ValueError(f"num and topk must be >= 1, got {num} and {topk}")
    result = evaluate(dist, qp, gp, q_cams, g_cams, protocol=protocol)
    valid_rows = np.flatnonzero(result.valid)
    worst = valid_rows[np.argsort(result.ap, kind="stable")[:num]]
    ap_of = dict(zip(valid_rows.tolist(), result.ap.tolist(), strict=True))
    removed = _removed(protocol, qp, gp, q_cams, g_cams)
    out = []
    for row in worst.tolist():
        kept = np.flatnonzero(~removed[row])
        ranked = kept[np.argsort(dist[row, kept], kind="stable")[:topk]]
        out.append(HardQuery(row, ap_of[row], ranked, dist[row, ranked], gp[ranked] == qp[row]))
    return out
