import numpy as np
import pytest
import torch

from csdn.evaluation import re_ranking
from csdn.inference import search


def _cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return 1.0 - a @ b.T


def _loop_ranking(dist: np.ndarray, k: int) -> tuple[list[list[int]], list[list[float]]]:
    """Literal reference: for each query, sort gallery indices by (distance, index) and keep k."""
    indices, values = [], []
    for row in dist:
        order = sorted(range(len(row)), key=lambda j: (row[j], j))[:k]
        indices.append(order)
        values.append([row[j] for j in order])
    return indices, values


@pytest.fixture(scope="module")
def feats():
    rng = np.random.default_rng(0)
    q = rng.normal(size=(7, 16)).astype(np.float32)
    g = rng.normal(size=(30, 16)).astype(np.float32)
    g[10] = g[3]  # exact duplicates: ties must be broken by gallery index
    g[25] = 2 * g[3]  # same direction, same cosine distance
    return q, g


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_top_k_matches_a_literal_loop(feats, metric):
    q, g = feats
    dist = _cosine(q, g) if metric == "cosine" else np.linalg.norm(q[:, None] - g[None], axis=2)
    ref_idx, ref_val = _loop_ranking(dist, 5)
    result = search(torch.from_numpy(q), torch.from_numpy(g), topk=5, metric=metric)
    assert result.indices.dtype == torch.int64 and result.distances.dtype == torch.float32
    assert result.indices.shape == (7, 5) == result.distances.shape
    np.testing.assert_allclose(result.distances.numpy(), np.array(ref_val), atol=1e-5)
    # indices must agree except where two distances are equal up to float error (only the planted ties here)
    assert _same_up_to_ties(result, ref_idx, dist)


def _same_up_to_ties(result, ref_idx, dist) -> bool:
    for row, (got, ref) in enumerate(zip(result.indices.tolist(), ref_idx, strict=True)):
        if got != ref and not np.allclose(dist[row, got], dist[row, ref], atol=1e-6):
            return False
    return True


def test_ties_keep_gallery_order(feats):
    q, g = feats
    result = search(g[3], g, topk=3)  # a single (D,) query equal to gallery rows 3, 10 and (direction) 25
    assert result.indices.tolist() == [[3, 10, 25]]
    np.testing.assert_allclose(result.distances.numpy(), 0.0, atol=1e-6)


def test_topk_is_clipped_and_none_gives_the_full_ranking(feats):
    q, g = feats
    assert search(q, g, topk=100).indices.shape == (7, 30)
    full = search(q, g, topk=None)
    assert sorted(full.indices[0].tolist()) == list(range(30))
    assert torch.all(full.distances[:, 1:] >= full.distances[:, :-1])


def test_rerank_ranks_by_the_re_ranked_distance(feats):
    q, g = feats
    rng = np.random.default_rng(1)
    q = np.concatenate([q, g[:5] + 0.05 * rng.normal(size=(5, 16)).astype(np.float32)])
    expected = re_ranking(_cosine(q, g), _cosine(q, q), _cosine(g, g), k1=6, k2=3, lambda_value=0.3)
    result = search(q, g, topk=4, rerank=True, k1=6, k2=3)
    ref_idx, ref_val = _loop_ranking(expected, 4)
    np.testing.assert_allclose(result.distances.numpy(), np.array(ref_val), atol=1e-5)
    assert _same_up_to_ties(result, ref_idx, expected)


@pytest.mark.parametrize(
    ("query", "gallery", "kwargs", "phrase"),
    [
        (np.zeros((2, 4)), np.ones((3, 5)), {}, "same dimension"),
        (np.ones((2, 4)), np.ones((3, 4)), {"topk": 0}, "topk must be a positive int"),
        ([[1.0, 2.0]], np.ones((3, 2)), {}, "must be a torch tensor or numpy array"),
        (np.ones((0, 4)), np.ones((3, 4)), {}, "must have shape \\(N, D\\) with N >= 1"),
        (np.ones((2, 4)), np.ones((3, 4)), {"metric": "hamming"}, "Unknown value 'hamming' for argument metric"),
    ],
)
def test_bad_arguments_are_reported(query, gallery, kwargs, phrase):
    with pytest.raises(ValueError, match=phrase):
        search(query, gallery, **kwargs)
