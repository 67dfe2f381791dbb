"""Straightforward reference implementations, written the way the field's evaluators are, for benchmarks only.

``reference_evaluate`` ranks every query with a full argsort and walks each query's ranked list in Python
(list comprehensions for the identity de-duplication and the precision curve), the structure of AGW/CSDN
``eval_sysu``/``eval_regdb``, LLCM ``eval_llcm`` and torchreid ``eval_market1501``. ``reference_rerank`` is the
dense k-reciprocal re-ranking with (N x N) float32 matrices and full argsorts, the structure of torchreid
``utils/rerank.py``. Both are independent re-writes used only to time csdn against.
"""

from __future__ import annotations

import numpy as np


def _removed(protocol, q_pid, q_cam, ranked_pids, ranked_cams):
    if protocol == "sysu":
        return (q_cam == 3) & (ranked_cams == 2)
    if protocol == "regdb":
        return np.zeros(len(ranked_pids), dtype=bool)
    return (ranked_pids == q_pid) & (ranked_cams == q_cam)


def reference_evaluate(distmat, q_pids, g_pids, q_cams, g_cams, protocol="sysu", max_rank=20):
    """Per-query loop evaluator; returns ``(cmc, mAP, mINP)`` (numpy argsort, quicksort: ties unordered)."""
    num_q, num_g = distmat.shape
    max_rank = min(max_rank, num_g)
    indices = np.argsort(distmat, axis=1)
    ranked_all = g_pids[indices]
    matches = (ranked_all == q_pids[:, np.newaxis]).astype(np.int32)
    all_cmc, all_ap, all_inp = [], [], []
    num_valid = 0.0
    for q in range(num_q):
        order = indices[q]
        keep = np.invert(_removed(protocol, q_pids[q], q_cams[q], g_pids[order], g_cams[order]))
        raw = matches[q][keep]
        if protocol in ("sysu", "llcm"):
            ranked = ranked_all[q][keep]
            first = np.unique(ranked, return_index=True)[1]
            dedup = [ranked[k] for k in sorted(first)]
            curve = (np.asarray(dedup) == q_pids[q]).astype(np.int32).cumsum()
        else:
            curve = raw.cumsum()
        if not np.any(raw):
            continue
        cum = raw.cumsum()
        last = np.max(np.where(raw == 1))
        all_inp.append(cum[last] / (last + 1.0))
        curve[curve > 1] = 1
        if len(curve) < max_rank:  # the field's code builds a ragged array here; pad like csdn does
            curve = np.concatenate([curve, np.full(max_rank - len(curve), curve[-1])])
        all_cmc.append(curve[:max_rank])
        num_valid += 1.0
        precision = np.asarray([x / (k + 1.0) for k, x in enumerate(cum)]) * raw
        all_ap.append(precision.sum() / raw.sum())
    cmc = np.asarray(all_cmc).astype(np.float32).sum(0) / num_valid
    return cmc, float(np.mean(all_ap)), float(np.mean(all_inp))


def reference_rerank(q_g_dist, q_q_dist, g_g_dist, k1=20, k2=6, lambda_value=0.3):
    """Dense k-reciprocal re-ranking: (N x N) float32 matrices, a full argsort, per-item Python loops."""
    num_q = q_g_dist.shape[0]
    combined = np.concatenate(
        [np.concatenate([q_q_dist, q_g_dist], axis=1), np.concatenate([q_g_dist.T, g_g_dist], axis=1)], axis=0
    )
    combined = np.power(combined, 2).astype(np.float32)
    dist = np.transpose(combined / np.max(combined, axis=0))
    del combined
    num_all = dist.shape[0]
    enc = np.zeros_like(dist, dtype=np.float32)
    initial_rank = np.argsort(dist).astype(np.int32)
    half = int(np.around(k1 / 2.0))
    for i in range(num_all):
        forward = initial_rank[i, : k1 + 1]
        backward = initial_rank[forward, : k1 + 1]
        own = forward[np.where(backward == i)[0]]
        expanded = own
        for cand in own:
            c_forward = initial_rank[cand, : half + 1]
            c_backward = initial_rank[c_forward, : half + 1]
            theirs = c_forward[np.where(c_backward == cand)[0]]
            if len(np.intersect1d(theirs, own)) > 2.0 / 3 * len(theirs):
                expanded = np.append(expanded, theirs)
        expanded = np.unique(expanded)
        weight = np.exp(-dist[i, expanded])
        enc[i, expanded] = weight / np.sum(weight)
    dist = dist[:num_q]
    if k2 != 1:
        enc_qe = np.zeros_like(enc, dtype=np.float32)
        for i in range(num_all):
            enc_qe[i] = np.mean(enc[initial_rank[i, :k2]], axis=0)
        enc = enc_qe
        del enc_qe
    del initial_rank
    inv_index = [np.where(enc[:, i] != 0)[0] for i in range(num_all)]
    jaccard = np.zeros_like(dist, dtype=np.float32)
    for i in range(num_q):
        shared = np.zeros((1, num_all), dtype=np.float32)
        nonzero = np.where(enc[i] != 0)[0]
        for col in nonzero:
            rows = inv_index[col]
            shared[0, rows] += np.minimum(enc[i, col], enc[rows, col])
        jaccard[i] = 1 - shared / (2.0 - shared)
    final = jaccard * (1 - lambda_value) + dist * lambda_value
    return final[:, num_q:]
