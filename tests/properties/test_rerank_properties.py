"""``re_ranking`` and the fused ``distance(..., rerank=True)`` against the dense reference re-ranking
(benchmarks/_reference.py: full (N, N) matrices, full argsorts, per-item loops) on random features.

Hypothesis draws the sizes (including galleries smaller than k1), k1, k2 (also k2 > k1 + 1), lambda and the
features' seed; features are clustered Gaussians, so neighbourhoods are non-trivial but exact ties do not occur
(the reference's unstable argsort would order tied items arbitrarily).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from csdn.evaluation import distance, re_ranking

_spec = importlib.util.spec_from_file_location(
    "csdn_bench_reference", Path(__file__).resolve().parents[2] / "benchmarks" / "_reference.py"
)
assert _spec is not None and _spec.loader is not None
reference = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(reference)


def _features(seed: int, n: int, dim: int = 8) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(max(2, n // 5), dim))
    return (centers[rng.integers(0, len(centers), n)] + 0.4 * rng.normal(size=(n, dim))).astype(np.float32)


def _euclidean(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a, b = a.astype(np.float64), b.astype(np.float64)
    return np.sqrt(((a[:, None] - b[None]) ** 2).sum(-1))


params = st.fixed_dictionaries(
    {
        "nq": st.integers(1, 8),
        "ng": st.integers(1, 24),
        "k1": st.integers(1, 25),
        "k2": st.integers(1, 12),
        "lambda_value": st.sampled_from([0.0, 0.3, 0.5, 1.0]),
        "seed": st.integers(0, 2**32 - 1),
    }
)


@settings(max_examples=120, deadline=None)
@given(params)
def test_re_ranking_equals_the_dense_reference(p):
    feats = _features(p["seed"], p["nq"] + p["ng"])
    q, g = feats[: p["nq"]], feats[p["nq"] :]
    q_g, q_q, g_g = _euclidean(q, g), _euclidean(q, q), _euclidean(g, g)
    k1, k2, lam = p["k1"], p["k2"], p["lambda_value"]
    expected = reference.reference_rerank(q_g, q_q, g_g, k1=k1, k2=k2, lambda_value=lam)
    got = re_ranking(q_g, q_q, g_g, k1=k1, k2=k2, lambda_value=lam)
    assert got.shape == (p["nq"], p["ng"]) and got.dtype == np.float32
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5)


@settings(max_examples=60, deadline=None)
@given(params)
def test_fused_distance_equals_the_dense_reference(p):
    feats = _features(p["seed"], p["nq"] + p["ng"])
    q, g = feats[: p["nq"]], feats[p["nq"] :]
    k1, k2, lam = p["k1"], p["k2"], p["lambda_value"]
    expected = reference.reference_rerank(_euclidean(q, g), _euclidean(q, q), _euclidean(g, g), k1, k2, lam)
    got = distance(q, g, metric="euclidean", rerank=True, k1=k1, k2=k2, lambda_value=lam)
    np.testing.assert_allclose(got.numpy(), expected, rtol=0, atol=1e-5)
