"""re_ranking vs a dense numpy re-implementation of the standard k-reciprocal algorithm (conftest.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from csdn.evaluation.rerank import MatrixRows, k_reciprocal_rerank, re_ranking


def _dists(nq, ng, dim=8, seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(max(2, (nq + ng) // 6), dim))
    feats = centers[rng.integers(0, len(centers), nq + ng)] + 0.4 * rng.normal(size=(nq + ng, dim))
    d = np.sqrt(((feats[:, None] - feats[None]) ** 2).sum(-1))
    return d[:nq, nq:], d[:nq, :nq], d[nq:, nq:]


@pytest.mark.parametrize(
    "nq,ng,k1,k2,lam",
    [
        (12, 40, 20, 6, 0.3),  # paper defaults
        (10, 35, 20, 1, 0.3),  # no local query expansion
        (10, 35, 20, 6, 0.0),  # Jaccard only
        (3, 5, 20, 6, 0.3),  # fewer items than k1
        (8, 30, 5, 3, 0.5),  # odd k1: round(2.5) = 2
        (8, 30, 3, 2, 1.0),  # original distance only
    ],
)
def test_matches_dense_reference(nq, ng, k1, k2, lam, dense_rerank):
    q_g, q_q, g_g = _dists(nq, ng, seed=nq + ng + k1)
    expected = dense_rerank(q_g, q_q, g_g, k1, k2, lam)
    got = re_ranking(q_g, q_q, g_g, k1=k1, k2=k2, lambda_value=lam)
    assert got.dtype == np.float32 and got.shape == (nq, ng)
    np.testing.assert_allclose(got, expected, atol=1e-5, rtol=0)


def test_small_blocks_torch_sparse_path_and_float32_input(monkeypatch, dense_rerank):
    q_g, q_q, g_g = _dists(9, 31, seed=4)
    expected = dense_rerank(q_g, q_q, g_g)
    monkeypatch.setattr("csdn.evaluation.rerank._BLOCK_ELEMENTS", 50)
    monkeypatch.setattr("csdn.evaluation._kreciprocal._BLOCK_ELEMENTS", 50)
    monkeypatch.setattr("csdn.evaluation._kreciprocal._PAIR_BUDGET", 40)
    got = re_ranking(*(torch.from_numpy(x).float() for x in (q_g, q_q, g_g)))
    np.testing.assert_allclose(got, expected, atol=1e-5, rtol=0)


def test_many_blocks_with_the_grouped_neighbour_search(monkeypatch, dense_rerank):
    """Search, encoding and Jaccard in many blocks, on rows long enough for the grouped threshold (>= 128)."""
    q_g, q_q, g_g = _dists(60, 140, seed=7)
    expected = dense_rerank(q_g, q_q, g_g)
    monkeypatch.setattr("csdn.evaluation.rerank._BLOCK_ELEMENTS", 4000)  # 20 rows per block
    monkeypatch.setattr("csdn.evaluation._kreciprocal._BLOCK_ELEMENTS", 4000)
    monkeypatch.setattr("csdn.evaluation._kreciprocal._PAIR_BUDGET", 500)
    np.testing.assert_allclose(re_ranking(q_g, q_q, g_g), expected, atol=1e-5, rtol=0)


@pytest.mark.parametrize("k1", [2, 7, 20])
def test_cpu_and_accelerator_expansions_agree(k1):
    """The numpy pair-based expansion (CPU) and the dense-mask one (accelerators) give the same sets, on CPU."""
    from csdn.evaluation._kreciprocal import _expanded_pairs_numpy, _expansion_mask, _reciprocal
    from csdn.evaluation._ops import nonzero_2d, smallest_k

    q_g, q_q, g_g = _dists(50, 90, seed=k1)
    d = torch.from_numpy(np.block([[q_q, q_g], [q_g.T, g_g]]))
    n, half_k = d.shape[0], int(np.around(k1 / 2.0)) + 1
    nbrs = smallest_k(d, k1 + 1)
    recip, half = _reciprocal(nbrs, 30), nbrs[:, :half_k].contiguous()
    half_recip = _reciprocal(half, 30)
    index = nbrs.numpy().astype(np.int32)
    np_recip, np_half = _reciprocal(index, 30), index[:, :half_k].copy()
    np_half_recip = _reciprocal(np_half, 30)
    assert np.array_equal(np_recip, recip.numpy()) and np.array_equal(np_half_recip, half_recip.numpy())
    for s, e in ((0, 37), (37, n)):
        rows, cols = nonzero_2d(_expansion_mask(s, e, nbrs, recip, half, half_recip, n))
        np_rows, np_cols = _expanded_pairs_numpy(s, e, index, np_recip, np_half, np_half_recip, n)
        assert rows.numel() > (e - s)
        assert np.array_equal(np_rows, rows.numpy()) and np.array_equal(np_cols, cols.numpy())


def test_shared_mass_is_a_sum_of_minima(monkeypatch):
    """Both query-gallery joins (numpy on CPU, torch for accelerators) = a literal sum of minima, in several blocks."""
    from csdn.evaluation._kreciprocal import _shared_mass_torch, shared_mass

    rng = np.random.default_rng(3)
    nq, n = 13, 40
    dense = np.where(rng.random((n, n)) < 0.2, rng.random((n, n)), 0.0).astype(np.float32)
    expected = np.minimum(dense[:nq, None, :], dense[None, nq:, :]).sum(-1)  # (Nq, Ng)
    rows, cols = np.nonzero(dense)
    coo = (torch.from_numpy(rows), torch.from_numpy(cols), torch.from_numpy(dense[rows, cols]))
    monkeypatch.setattr("csdn.evaluation._kreciprocal._PAIR_BUDGET", 30)
    for join in (shared_mass, _shared_mass_torch):
        got = join(coo, nq, n)
        assert got.dtype == torch.float32 and got.shape == (nq, n - nq)
        np.testing.assert_allclose(got.numpy(), expected, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_inputs(dtype, dense_rerank):
    q_g, q_q, g_g = (torch.from_numpy(x).to(dtype) for x in _dists(8, 30, seed=5))
    got = re_ranking(q_g, q_q, g_g)
    np.testing.assert_array_equal(k_reciprocal_rerank(MatrixRows(q_g, q_q, g_g)).numpy(), got)  # the public source too
    if dtype == torch.float16:  # the reference squares float16 distances in float16
        expected = dense_rerank(*(x.numpy() for x in (q_g, q_q, g_g)))
    else:
        expected = dense_rerank(*(x.float().numpy() for x in (q_g, q_q, g_g)))
    np.testing.assert_allclose(got, expected, atol=1e-5, rtol=0)


def test_pair_blocks_cover_the_queries_within_both_budgets(monkeypatch):
    from csdn.evaluation._kreciprocal import _pair_blocks

    monkeypatch.setattr("csdn.evaluation._kreciprocal._PAIR_BUDGET", 10)
    monkeypatch.setattr("csdn.evaluation._kreciprocal._BLOCK_ELEMENTS", 12)
    pairs = np.array([3, 0, 4, 25, 1, 1, 1, 1, 1, 2])  # one row alone exceeds the pair budget
    blocks = _pair_blocks(np.cumsum(pairs), len(pairs), ng=4)  # at most 12 // 4 = 3 rows per block
    # rows 0-2: 7 pairs (row 3 would pass 10); row 3 alone (25 > 10); rows 4-6: the 3-row limit; rows 7-9: the rest
    assert blocks == [(0, 3), (3, 4), (4, 7), (7, 10)]


def test_reciprocity_check_memory_is_one_block():
    """The CPU reciprocity check reduces each (step, K, K) comparison at once instead of keeping them all."""
    import tracemalloc

    from csdn.evaluation._kreciprocal import _reciprocal

    n, k, step = 20_000, 21, 500
    nbrs = np.random.default_rng(0).integers(0, n, (n, k)).astype(np.int32)
    tracemalloc.start()
    out = _reciprocal(nbrs, step)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert out.shape == (n, k) and peak < n * k * k // 3  # all blocks at once: n k^2 bytes (8.8 MB) and more
    expected = np.array([[i in nbrs[j] for j in row] for i, row in enumerate(nbrs[:200])])
    np.testing.assert_array_equal(out[:200], expected)


@pytest.mark.parametrize("backend", ["scipy", "torch"])
@pytest.mark.parametrize("k1,k2", [(20, 6), (3, 10), (1, 4), (2, 40)])
def test_sparse_backends_and_k2_beyond_k1(backend, k1, k2, dense_rerank):
    """Both query-expansion products give the reference, also for k2 > k1 + 1 (and k2 > N)."""
    q_g, q_q, g_g = _dists(7, 25, seed=k1 + k2)
    mats = [torch.from_numpy(x) for x in (q_g, q_q, g_g)]
    got = k_reciprocal_rerank(MatrixRows(*mats), k1=k1, k2=k2, sparse_backend=backend)
    np.testing.assert_allclose(got.numpy(), dense_rerank(q_g, q_q, g_g, k1, k2), atol=1e-5, rtol=0)
    np.testing.assert_allclose(re_ranking(q_g, q_q, g_g, k1=k1, k2=k2), got.numpy(), atol=1e-6, rtol=0)


def test_sparse_backend_errors():
    source = MatrixRows(*(torch.from_numpy(x) for x in _dists(3, 4)))
    with pytest.raises(ValueError, match="argument sparse_backend"):
        k_reciprocal_rerank(source, sparse_backend="cupy")


def test_errors():
    q_g, q_q, g_g = _dists(3, 4)
    with pytest.raises(ValueError, match="g_g_dist must have shape"):
        re_ranking(q_g, q_q, g_g[:3])
    with pytest.raises(ValueError, match="k1 must be a positive integer"):
        re_ranking(q_g, q_q, g_g, k1=0)
    with pytest.raises(ValueError, match="lambda_value must be a number in"):
        re_ranking(q_g, q_q, g_g, lambda_value=2)
    bad = q_q.copy()
    bad[0, 1] = np.nan
    with pytest.raises(ValueError, match="q_q_dist contains NaN"):
        re_ranking(q_g, bad, g_g)
    with pytest.raises(ValueError, match="non-empty 2-D"):
        re_ranking(np.zeros((0, 3)), np.zeros((0, 0)), g_g[:3, :3])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_values_of_the_transposed_layout_on_asymmetric_inputs(dtype):
    """values(i, j) is entry (j, i) of [[q_q, q_g], [q_g^T, g_g]], squared, in every quadrant (numpy and torch)."""
    rng = np.random.default_rng(3)
    nq, ng = 4, 5
    q_g, q_q, g_g = (torch.from_numpy(rng.uniform(0.1, 2.0, size=s)).to(dtype) for s in [(nq, ng), (nq, nq), (ng, ng)])
    source = MatrixRows(q_g, q_q, g_g)
    rows, cols = (t.reshape(-1) for t in torch.meshgrid(torch.arange(nq + ng), torch.arange(nq + ng), indexing="ij"))
    perm = torch.from_numpy(rng.permutation(rows.numel()))  # quadrants interleaved
    rows, cols = rows[perm], cols[perm]
    expected = []
    for i, j in zip(rows.tolist(), cols.tolist(), strict=True):  # literal lookup in the combined matrix
        if j < nq:
            v = q_q[j, i] if i < nq else q_g[j, i - nq]
        else:
            v = q_g[i, j - nq] if i < nq else g_g[j - nq, i - nq]
        expected.append(float(v) ** 2)
    got = source.values(rows, cols)
    assert got.dtype == torch.float32
    np.testing.assert_allclose(got.numpy(), np.float32(expected), rtol=1e-6, atol=0)
    torch_path = source._gather(rows, cols, q_q, q_g, g_g, torch.empty(rows.shape, dtype=dtype))
    np.testing.assert_allclose(torch_path.square().float().numpy(), np.float32(expected), rtol=1e-6, atol=0)
