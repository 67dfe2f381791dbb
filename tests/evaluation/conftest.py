"""Shared helpers for the evaluation tests: an independent dense re-ranking reference."""

from __future__ import annotations

import numpy as np
import pytest


def dense_rerank(q_g, q_q, g_g, k1=20, k2=6, lambda_value=0.3):
    """Dense k-reciprocal re-ranking written from the algorithm of Zhong et al. as torchreid implements it."""
    nq = q_g.shape[0]
    full = np.power(np.block([[q_q, q_g], [q_g.T, g_g]]), 2).astype(np.float32)
    orig = (full / full.max(axis=0)).T  # row i = column i divided by its maximum
    n = full.shape[0]
    rank = np.argsort(orig, axis=1, kind="stable")
    half = int(np.around(k1 / 2.0))

    def reciprocal(i, k):
        return [f for f in rank[i, : k + 1] if i in rank[f, : k + 1]]

    enc = np.zeros((n, n), dtype=np.float32)
    for i in range(n):
        own = reciprocal(i, k1)
        expanded = set(own)
        for cand in own:
            theirs = reciprocal(cand, half)
            if len(set(theirs) & set(own)) > 2.0 / 3.0 * len(theirs):
                expanded |= set(theirs)
        idx = np.array(sorted(expanded))
        weight = np.exp(-orig[i, idx])
        enc[i, idx] = weight / weight.sum()
    if k2 != 1:
        enc = np.stack([enc[rank[i, :k2]].mean(axis=0) for i in range(n)])
    jaccard = np.zeros((nq, n), dtype=np.float32)
    for i in range(nq):
        for j in range(n):
            shared = np.minimum(enc[i], enc[j]).sum()
            jaccard[i, j] = 1 - shared / (2 - shared)
    final = jaccard * (1 - lambda_value) + orig[:nq] * lambda_value
    return final[:, nq:]


@pytest.fixture(name="dense_rerank")
def dense_rerank_fixture():
    """The dense reference re-ranking (a plain function)."""
    return dense_rerank
