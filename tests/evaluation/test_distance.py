"""csdn.evaluation.distance: metrics, fused re-ranking from features, query expansion, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from csdn.evaluation.fused import distance


def _feats(n, dim=16, seed=0, centers=5):
    rng = np.random.default_rng(seed)
    c = rng.normal(size=(centers, dim))
    return (c[rng.integers(0, centers, n)] + 0.5 * rng.normal(size=(n, dim))).astype(np.float32)


def _np_dist(a, b, metric):
    a, b = a.astype(np.float64), b.astype(np.float64)
    if metric == "cosine":
        a = a / np.linalg.norm(a, axis=1, keepdims=True)
        b = b / np.linalg.norm(b, axis=1, keepdims=True)
        return 1 - a @ b.T
    return np.sqrt(((a[:, None] - b[None]) ** 2).sum(-1))


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_plain_distances(metric):
    q, g = _feats(7, seed=1), _feats(11, seed=2)
    got = distance(q, g, metric=metric)
    assert isinstance(got, torch.Tensor) and got.shape == (7, 11)
    np.testing.assert_allclose(got.numpy(), _np_dist(q, g, metric), atol=1e-5)


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
@pytest.mark.parametrize("k1,k2,lam", [(20, 6, 0.3), (6, 1, 0.0), (3, 10, 0.3)])
def test_fused_rerank_matches_dense_reference(metric, k1, k2, lam, dense_rerank, monkeypatch):
    monkeypatch.setattr("csdn.evaluation.rerank._BLOCK_ELEMENTS", 300)  # several blocks
    monkeypatch.setattr("csdn.evaluation._kreciprocal._BLOCK_ELEMENTS", 300)
    monkeypatch.setattr("csdn.evaluation.fused._PRODUCT_ELEMENTS", 300)  # several search blocks (7 rows)
    q, g = _feats(10, seed=3), _feats(33, seed=4)
    expected = dense_rerank(_np_dist(q, g, metric), _np_dist(q, q, metric), _np_dist(g, g, metric), k1, k2, lam)
    got = distance(q, g, metric=metric, rerank=True, k1=k1, k2=k2, lambda_value=lam)
    np.testing.assert_allclose(got.numpy(), expected, atol=1e-5)


def test_low_precision_search_is_close():
    q, g = _feats(10, seed=5), _feats(40, seed=6)
    full = distance(q, g, rerank=True)
    fast = distance(q, g, rerank=True, search_dtype="bfloat16")
    # neighbours of near-ties may change; the ranking of each query must stay essentially the same
    same_top1 = (full.argmin(1) == fast.argmin(1)).float().mean()
    assert same_top1 >= 0.9
    assert torch.allclose(full, fast, atol=0.05)


def test_average_query_expansion():
    q, g = _feats(4, seed=7), _feats(9, seed=8)
    got = distance(q, g, metric="euclidean", query_expansion=2)
    d = _np_dist(q, g, "euclidean")
    nearest = np.argsort(d, axis=1)[:, :2]
    expanded = (q + g[nearest].sum(1)) / 3  # mean of the query and its 2 nearest gallery items
    np.testing.assert_allclose(got.numpy(), _np_dist(expanded, g, "euclidean"), atol=1e-4)


def test_errors():
    q, g = _feats(3), _feats(4)
    with pytest.raises(ValueError, match="Unknown value 'manhattan' for argument metric"):
        distance(q, g, metric="manhattan")
    with pytest.raises(ValueError, match="dimension 16 but gallery_feats 8"):
        distance(q, g[:, :8])
    with pytest.raises(ValueError, match="non-empty 2-D"):
        distance(q[:0], g)
    bad = q.copy()
    bad[0, 0] = np.inf
    with pytest.raises(ValueError, match="query_feats contains NaN"):
        distance(bad, g)
    with pytest.raises(ValueError, match="argument search_dtype"):
        distance(q, g, rerank=True, search_dtype="int8")
    with pytest.raises(ValueError, match="k2 must be a positive integer"):
        distance(q, g, rerank=True, k2=0)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_fused_rerank_matches_cpu():
    q, g = _feats(20, seed=9), _feats(60, seed=10)
    cpu = distance(q, g, rerank=True)
    gpu = distance(q, g, rerank=True, device="cuda")
    assert gpu.device.type == "cuda"
    torch.testing.assert_close(gpu.cpu(), cpu, atol=1e-5, rtol=0)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_neighbour_search_never_waits_for_the_host():
    """The fused search loop (matmuls, topk, tie fix-up) runs without a device-to-host synchronisation."""
    from csdn.evaluation.fused import FeatureRows

    q, g = (torch.from_numpy(_feats(n, seed=s)) for n, s in ((30, 11), (90, 12)))
    cpu_nbrs, cpu_max = FeatureRows(q, g, "euclidean").neighbours(21)
    source = FeatureRows(q.cuda(), g.cuda(), "euclidean")
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        nbrs, row_max = source.neighbours(21)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert torch.equal(nbrs.cpu(), cpu_nbrs)
    torch.testing.assert_close(row_max.cpu(), cpu_max, rtol=1e-5, atol=1e-5)
