"""csdn.evaluation._ops: numpy-backed kernels against literal numpy/torch definitions."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from csdn.evaluation._ops import nonzero_2d, smallest_k, sort_rows


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


def test_nonzero_and_sort_rows():
    rng = np.random.default_rng(0)
    mask = torch.from_numpy(rng.random((7, 9)) > 0.6)
    rows, cols = nonzero_2d(mask)
    ref = mask.nonzero()
    assert torch.equal(rows, ref[:, 0]) and torch.equal(cols, ref[:, 1])
    x = torch.from_numpy(rng.random((5, 8)))
    assert torch.equal(sort_rows(x), torch.sort(x, dim=1).values)
