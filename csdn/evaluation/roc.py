"""Verification view of a ranking: genuine / impostor pair distances, the ROC, and TPR at fixed FPRs.

Every query-gallery pair the protocol keeps is a *genuine* pair (same identity) or an *impostor* pair; the rule
"same identity if distance <= threshold" has a true-positive rate (genuine pairs accepted) and a false-positive
rate (impostor pairs accepted) per threshold. fast-reid reports TPR at FPR 1e-4, 1e-3 and 1e-2 from the same
pairs; :func:`tpr_at_fpr` gives those operating points exactly (the best TPR whose FPR does not exceed the target,
no interpolation), and ``None`` where the split has too few impostor pairs to measure that FPR (fewer than
``1 / FPR``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from .protocols import get_protocol

__all__ = ["FPR_TARGETS", "ROCCurve", "fpr_key", "pair_distances", "removed_pairs", "roc_curve", "tpr_at_fpr"]

#: The false-positive rates of the reported operating points (fast-reid's).
FPR_TARGETS = (1e-4, 1e-3, 1e-2)


def _numpy(x: Any, dtype: Any = None) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=dtype)


def fpr_key(fpr: float) -> str:
    """The JSON/table key of an FPR target: ``1e-4`` for 0.0001."""
    mantissa, exponent = f"{fpr:.0e}".split("e")
    return f"{mantissa}e{int(exponent)}"


def removed_pairs(protocol: str, q_pids: Any, g_pids: Any, q_cams: Any = None, g_cams: Any = None) -> np.ndarray:
    """Bool ``(Q, G)``: the pairs the protocol leaves out (all False when it removes nothing)."""
    qp, gp = _numpy(q_pids).reshape(-1), _numpy(g_pids).reshape(-1)
    proto = get_protocol(protocol)
    if proto.needs_cams and (q_cams is None or g_cams is None):
        raise ValueError(f"protocol {proto.name!r} needs camera ids: pass q_cams and g_cams")
    cams = (None, None) if q_cams is None else (torch.as_tensor(_numpy(q_cams)), torch.as_tensor(_numpy(g_cams)))
    mask = proto.removed(torch.as_tensor(qp), torch.as_tensor(gp), *cams)
    return np.zeros((qp.size, gp.size), dtype=bool) if mask is None else mask.numpy()


def pair_distances(
    distmat: Any, q_pids: Any, g_pids: Any, q_cams: Any = None, g_cams: Any = None, protocol: str = "sysu"
) -> tuple[np.ndarray, np.ndarray]:
    """Distances of genuine (same identity) and impostor pairs, leaving out the pairs the protocol removes.

    Args:
        distmat: ``(Q, G)`` distances (smaller = closer).
        q_pids: Query identities ``(Q,)``.
        g_pids: Gallery identities ``(G,)``.
        q_cams: Query camera ids ``(Q,)`` (needed by protocols with a removal rule).
        g_cams: Gallery camera ids ``(G,)``.
        protocol: Evaluation protocol.

    Returns:
        ``(genuine, impostor)``: 1-D float64 arrays.
    """
    dist = _numpy(distmat, np.float64)
    qp, gp = _numpy(q_pids).reshape(-1), _numpy(g_pids).reshape(-1)
    if dist.ndim != 2 or dist.shape != (qp.size, gp.size):
        raise ValueError(
            f"distmat has shape {dist.shape} but {qp.size} query and {gp.size} gallery ids were given; "
            "pass one id per row and per column"
        )
    kept = ~removed_pairs(protocol, qp, gp, q_cams, g_cams)
    same = qp[:, None] == gp[None, :]
    return dist[same & kept], dist[~same & kept]


def tpr_at_fpr(genuine: Any, impostor: Any, targets: Sequence[float] = FPR_TARGETS) -> dict[str, float | None]:
    """True-positive rate of the best threshold whose false-positive rate is at most each target.

    With ``n`` impostor pairs, FPR <= f allows ``k = floor(f * n)`` impostors through: the threshold lies just
    below the ``(k+1)``-th smallest impostor distance, and the TPR is the share of genuine distances below it.

    Returns:
        ``{fpr_key(f): TPR in [0, 1] or None}``; ``None`` when there are fewer than ``1 / f`` impostor pairs (or no
        genuine pair), since such an FPR cannot be measured on this split.
    """
    pos, neg = _numpy(genuine, np.float64).reshape(-1), _numpy(impostor, np.float64).reshape(-1)
    out: dict[str, float | None] = {}
    for fpr in targets:
        if not 0 < fpr < 1:
            raise ValueError(f"FPR targets must lie in (0, 1), got {fpr!r}")
        allowed = int(np.floor(fpr * neg.size + 1e-9))
        if allowed < 1 or pos.size == 0:
            out[fpr_key(fpr)] = None
            continue
        if allowed >= neg.size:
            out[fpr_key(fpr)] = 1.0
            continue
        threshold = np.partition(neg, allowed)[allowed]  # the (allowed+1)-th smallest impostor distance
        out[fpr_key(fpr)] = float(np.count_nonzero(pos < threshold) / pos.size)
    return out


@dataclass
class ROCCurve:
    """ROC of the rule "same identity if distance <= threshold".

    Attributes:
        fpr: False-positive rates, increasing from 0 to 1 (one point per distinct threshold, plus the origin).
        tpr: True-positive rates at the same thresholds.
        thresholds: Distance thresholds (``-inf`` for the origin).
        auc: Area under the curve (trapezoidal), the probability that a random matching pair is closer than a
            random non-matching one (ties count one half).
    """

    fpr: np.ndarray
    tpr: np.ndarray
    thresholds: np.ndarray
    auc: float


def roc_curve(matching: Any, non_matching: Any) -> ROCCurve:
    """ROC curve of matching vs non-matching distances (vectorised: one sort and two cumulative sums).

    Raises:
        ValueError: if either set is empty.
    """
    pos, neg = _numpy(matching, np.float64).reshape(-1), _numpy(non_matching, np.float64).reshape(-1)
    if pos.size == 0 or neg.size == 0:
        raise ValueError(f"need matching and non-matching distances, got {pos.size} and {neg.size}")
    values = np.concatenate([pos, neg])
    is_pos = np.concatenate([np.ones(pos.size), np.zeros(neg.size)])
    order = np.argsort(values, kind="stable")
    values, is_pos = values[order], is_pos[order]
    last_of_value = np.r_[np.flatnonzero(np.diff(values)), values.size - 1]  # one point per distinct threshold
    tp, fp = np.cumsum(is_pos)[last_of_value], np.cumsum(1 - is_pos)[last_of_value]
    tpr, fpr = np.r_[0.0, tp / pos.size], np.r_[0.0, fp / neg.size]
    return ROCCurve(fpr, tpr, np.r_[-np.inf, values[last_of_value]], float(np.trapezoid(tpr, fpr)))
