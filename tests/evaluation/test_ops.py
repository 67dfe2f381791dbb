"""csdn.evaluation._ops: numpy-backed kernels against literal numpy/torch definitions."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from csdn.evaluation._ops import _smallest_k_given_kth, copy_transposed, nonzero_2d, smallest_k, sort_rows


@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("k", [1, 5, 21, 40])
def test_smallest_k_is_a_stable_argsort_prefix(ties, k):
    rng = np.random.default_rng(k + 10 * ties)
    x = rng.random((30, 40))
    if ties:
        x = np.round(x * 6)  # many equal values, also straddling the cut
    for rows in (torch.from_numpy(x), torch.from_numpy(x).float()):
        expected = np.argsort(rows.numpy(), axis=1, kind="stable")[:, :k]
        np.testing.assert_array_equal(smallest_k(rows, k).numpy(), expected)


@pytest.mark.parametrize("k", [1, 4, 13])
def test_sync_free_tie_selection_is_a_stable_argsort_prefix(k):
    """The accelerator tie fix-up (no host round trip), run on CPU: lowest-index tied entries, (value, index) order."""
    x = torch.from_numpy(np.round(np.random.default_rng(k).random((40, 30)) * 4))
    expected = np.argsort(x.numpy(), axis=1, kind="stable")[:, :k]
    kth = torch.from_numpy(np.sort(x.numpy(), axis=1)[:, k - 1 : k])
    np.testing.assert_array_equal(_smallest_k_given_kth(x, kth, k).numpy(), expected)


@pytest.mark.parametrize("num", [129, 700, 4104])
@pytest.mark.parametrize("k", [1, 6, 21, 31])
def test_group_minimum_threshold_on_adversarial_rows(num, k):
    """Orders that defeat a threshold from group minima (groups: j mod G) still give the exact answer."""
    rng = np.random.default_rng(num + k)
    base = rng.random(num)
    in_group0 = np.arange(num) % 64 == 0
    rows = np.stack(
        [
            base,
            np.sort(base),  # ascending: group minima are the first G entries
            np.sort(base)[::-1],  # descending: the last G entries, plus the tail folded into the first groups
            np.where(in_group0, base * 1e-3, base + 1.0),  # the smallest values all in one group
            np.where(in_group0, base + 1.0, base * 1e-3),  # one group of large values, every other group small
            np.round(base * 3),  # few distinct values: ties everywhere, also at the cut
            np.full(num, 0.5),  # one value
        ]
    )
    strided = torch.from_numpy(np.ascontiguousarray(rows.T)).T  # the same rows as a transposed view
    for x in (torch.from_numpy(rows), torch.from_numpy(rows).float(), strided):
        expected = np.argsort(x.numpy(), axis=1, kind="stable")[:, :k]
        np.testing.assert_array_equal(smallest_k(x, k).numpy(), expected)


def test_nonzero_and_sort_rows():
    rng = np.random.default_rng(0)
    mask = torch.from_numpy(rng.random((7, 9)) > 0.6)
    rows, cols = nonzero_2d(mask)
    ref = mask.nonzero()
    assert torch.equal(rows, ref[:, 0]) and torch.equal(cols, ref[:, 1])
    x = torch.from_numpy(rng.random((5, 8)))
    assert torch.equal(sort_rows(x), torch.sort(x, dim=1).values)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_copy_transposed_in_tiles(monkeypatch, dtype):
    monkeypatch.setattr("csdn.evaluation._ops._TILE", 3)  # several tiles and a partial last one
    src = torch.arange(70, dtype=dtype).view(10, 7)[:, 1:6]  # a column slab, as MatrixRows passes
    dst = torch.full((5, 12), -1.0, dtype=dtype)
    copy_transposed(dst[:, 1:11], src)
    assert torch.equal(dst[:, 1:11], src.T) and bool((dst[:, 0] == -1).all() and (dst[:, 11] == -1).all())
