"""The study's statistics on hand-checked small cases: a known difference is found, a null difference is not."""

import numpy as np
import pytest
from scipy import stats as scipy_stats

from csdn.study.stats import bootstrap_interval, paired_comparison, query_values, sign_flip_pvalue, spread


def _units(values):
    return [(np.arange(len(v)), np.asarray(v, dtype=float)) for v in values]


def test_sign_flip_pvalue_by_hand_and_as_scipy():
    # terms 1, 1, 1: of the 8 sign patterns only +++ reaches 3, so one-sided 1/8 and two-sided 2/8
    assert sign_flip_pvalue(np.ones(3)) == pytest.approx(0.25)
    assert sign_flip_pvalue(np.array([1.0, -1.0, 1.0, -1.0])) == 1.0  # observed 0: every pattern is as extreme
    terms = np.random.default_rng(0).normal(0.4, 1.0, 11)  # exact: 2^11 patterns
    reference = scipy_stats.permutation_test((terms,), np.sum, permutation_type="samples", vectorized=False)
    assert sign_flip_pvalue(terms) == pytest.approx(reference.pvalue)


def test_single_unit_interval_is_the_percentile_bootstrap_over_queries():
    x = np.random.default_rng(1).random(300)
    low, high = bootstrap_interval([x], resamples=4000)
    ref = scipy_stats.bootstrap((x,), np.mean, method="percentile", n_resamples=4000, rng=np.random.default_rng(2))
    assert low == pytest.approx(ref.confidence_interval.low, abs=0.006)
    assert high == pytest.approx(ref.confidence_interval.high, abs=0.006)
    assert low < x.mean() < high


def test_several_units_widen_the_interval_by_their_spread():
    rng = np.random.default_rng(3)
    same = [rng.random(200) for _ in range(4)]
    shifted = [u + offset for u, offset in zip(same, (-0.2, -0.1, 0.1, 0.2), strict=True)]  # run-to-run spread
    width = np.diff(bootstrap_interval(same))[0]
    assert np.diff(bootstrap_interval(shifted))[0] > 2 * width  # a query-only bootstrap would not see the runs


def test_a_known_difference_is_found():
    rng = np.random.default_rng(4)
    base = [rng.random(60) for _ in range(3)]
    better = [b + 0.1 + rng.normal(0, 0.05, 60) for b in base]
    result = paired_comparison(_units(better), _units(base))
    assert result.difference == pytest.approx(np.mean([np.mean(b - a) for a, b in zip(base, better, strict=True)]))
    assert 0 < result.low < 0.1 < result.high and result.p_value < 0.001
    assert result.units == 3 and result.queries == 180


def test_a_null_difference_is_not_found():
    rng = np.random.default_rng(5)
    base = [rng.random(60) for _ in range(3)]
    same = [b + rng.normal(0, 0.05, 60) for b in base]  # noise only
    result = paired_comparison(_units(same), _units(base))
    assert result.low < 0 < result.high and result.p_value > 0.05
    identical = paired_comparison(_units(base), _units(base))
    assert identical.difference == 0 and identical.p_value == 1.0


def test_paired_comparison_refuses_other_queries():
    with pytest.raises(ValueError, match="same queries"):
        paired_comparison([(np.arange(3), np.zeros(3))], [(np.arange(1, 4), np.zeros(3))])


def test_query_values_average_trials_where_a_query_has_a_match():
    common = {"setting": "s", "num_query": 3}
    records = [
        {**common, "trial": 0, "num_valid": 3, "query_ap": [1.0, 0.5, 0.2], "query_rank1": [1, 0, 0],
         "invalid_queries": []},
        {**common, "trial": 1, "num_valid": 2, "query_ap": [0.0, 0.4], "query_rank1": [0, 1], "invalid_queries": [1]},
    ]  # fmt: skip
    positions, ap = query_values(records, "mAP")
    assert positions.tolist() == [0, 1, 2] and ap == pytest.approx([0.5, 0.5, 0.3])
    assert query_values(records, "rank1")[1] == pytest.approx([0.5, 0.0, 0.5])
    with pytest.raises(ValueError, match="older csdn"):
        query_values([{**records[0], "query_ap": []}], "mAP")
    assert spread([0.5]) is None and spread([1.0, 3.0]) == pytest.approx(np.sqrt(2))
