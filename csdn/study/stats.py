"""Uncertainty of a study's numbers: per-query values, a two-level bootstrap interval, paired comparisons.

A study cell (one variant, one evaluation setting) has *units*: its trained runs (one per seed and dataset split).
Each unit has one value per valid query (its AP, or 1/0 for a rank-1 hit), averaged over the gallery trials the
run was evaluated on (SYSU-MM01 and LLCM draw ten galleries for the same queries; RegDB has one per split).

* **Interval** (:func:`bootstrap_interval`): a percentile bootstrap that resamples at both levels: the units with
  replacement (only when there are several), then, independently for each drawn unit, its queries with
  replacement; the statistic is the mean over units of the mean over queries. With one unit this is the ordinary
  percentile bootstrap over queries (as :func:`scipy.stats.bootstrap` with ``method="percentile"``).
* **Paired comparison** (:func:`paired_comparison`): two variants evaluated on the same units (same seeds and
  splits, hence the same queries) give one difference per query; its mean gets the same two-level interval, and a
  two-sided permutation p-value flipping the sign of each query's difference at
  random (the null: on every query the two variants' results are exchangeable, runs held fixed).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "METHOD",
    "Comparison",
    "bootstrap_interval",
    "paired_comparison",
    "query_values",
    "sign_flip_pvalue",
    "spread",
]

#: How the numbers are made, in words (written on study.md and the index page).
METHOD = (
    "Mean over runs (seeds x splits) of each run's result, itself the mean over its gallery trials; std: sample "
    "standard deviation over runs (n-1; '—' with one run). 95% CI: percentile bootstrap ({resamples} resamples) "
    "drawing runs with replacement (when there are several), then each drawn run's queries with replacement "
    "(a query's value: its AP, or its rank-1 hit, averaged over the gallery trials). Paired differences: the same "
    "bootstrap on per-query differences between two variants over the same seeds, splits and queries; p: two-sided "
    "permutation test ({permutations} random sign flips of the per-query differences, runs held fixed)."
)
_KEYS = {"rank1": "query_rank1", "mAP": "query_ap"}


def query_values(records: Sequence[dict[str, Any]], metric: str) -> tuple[np.ndarray, np.ndarray]:
    """Per-query values of one run and setting, averaged over its gallery trials.

    Args:
        records: The run's ``eval.json`` records of one setting (one per gallery trial), with ``query_ap``,
            ``query_rank1`` and ``invalid_queries`` (written by :class:`csdn.evaluation.VIReIDEvaluator`).
        metric: ``"rank1"`` or ``"mAP"``.

    Returns:
        ``(positions, values)``: query positions (0-based, in the split's query order) with a match in at least
        one trial, shape (N,), and their values averaged over the trials where they have one, shape (N,).

    Raises:
        ValueError: if a record lacks per-query values (an ``eval.json`` of an older csdn: evaluate it again).
    """
    if metric not in _KEYS:
        raise ValueError(f"Unknown value {metric!r} for argument metric. Valid values are {list(_KEYS)}.")
    num_query = records[0]["num_query"]
    table = np.full((len(records), num_query), np.nan)
    for row, record in zip(table, records, strict=True):
        values = record.get(_KEYS[metric]) or []
        if len(values) != record["num_valid"]:
            raise ValueError(
                f"record {record['setting']!r} trial {record['trial']} has no per-query values; its eval.json was "
                "written by an older csdn: delete it and run the study again (the run is evaluated again, not trained)"
            )
        row[np.setdiff1d(np.arange(num_query), record.get("invalid_queries", []))] = values
    positions = np.flatnonzero(~np.isnan(table).all(axis=0))
    return positions, np.nanmean(table[:, positions], axis=0)


def spread(values: Sequence[float]) -> float | None:
    """Sample standard deviation (n-1) of ``values``; ``None`` for fewer than two (no measurement of spread)."""
    return float(np.std(values, ddof=1)) if len(values) > 1 else None


def _unit_replicates(values: np.ndarray, resamples: int, rng: np.random.Generator) -> np.ndarray:
    """Means of ``resamples`` bootstrap resamples of one unit's queries, shape (resamples,)."""
    out = np.empty(resamples)
    chunk = max(1, (1 << 22) // max(len(values), 1))  # bounded memory: chunk x N indices at a time
    for start in range(0, resamples, chunk):
        idx = rng.integers(0, len(values), size=(min(chunk, resamples - start), len(values)))
        out[start : start + len(idx)] = values[idx].mean(axis=1)
    return out


def bootstrap_interval(
    units: Sequence[np.ndarray], level: float = 0.95, resamples: int = 2000, seed: int = 0
) -> tuple[float, float]:
    """Two-level percentile bootstrap interval of the mean over units of the mean over queries.

    Args:
        units: One array of per-query values per unit (run), each shape (N_u,), N_u >= 1.
        level: Confidence level.
        resamples: Bootstrap resamples.
        seed: Seed of the private generator (the interval is reproducible).

    Returns:
        ``(low, high)``.
    """
    if not units or any(len(u) == 0 for u in units):
        raise ValueError("bootstrap_interval needs at least one unit, each with at least one query value.")
    rng = np.random.default_rng(seed)
    reps = np.stack([_unit_replicates(np.asarray(u, dtype=float), resamples, rng) for u in units])  # (U, B)
    if len(units) == 1:
        stats = reps[0]
    else:  # draw units with replacement; each drawn unit takes an independent query resample (a random column)
        pick = rng.integers(0, len(units), size=(resamples, len(units)))
        column = rng.integers(0, resamples, size=(resamples, len(units)))
        stats = reps[pick, column].mean(axis=1)
    alpha = (1 - level) / 2
    low, high = np.quantile(stats, [alpha, 1 - alpha])
    return float(low), float(high)


@dataclass
class Comparison:
    """Paired difference ``a - b`` of one metric (fractions) with its interval and permutation p-value."""

    difference: float
    low: float
    high: float
    p_value: float
    units: int
    queries: int


def paired_comparison(
    units_a: Sequence[tuple[np.ndarray, np.ndarray]],
    units_b: Sequence[tuple[np.ndarray, np.ndarray]],
    level: float = 0.95,
    resamples: int = 2000,
    permutations: int = 9999,
    seed: int = 0,
) -> Comparison:
    """Compare two variants over the same units and queries (see the module docstring).

    Args:
        units_a: ``(positions, values)`` of each unit of variant a (:func:`query_values`).
        units_b: The same for variant b, in the same unit order.
        level: Confidence level of the interval (as :func:`bootstrap_interval`).
        resamples: Bootstrap resamples (as :func:`bootstrap_interval`).
        seed: Seed of the resampling (as :func:`bootstrap_interval`).
        permutations: Random sign-flip resamples of the permutation test (exact when 2^N is not larger).

    Raises:
        ValueError: if the units or their queries differ between the two variants.
    """
    if len(units_a) != len(units_b) or not units_a:
        raise ValueError(f"paired comparison needs the same runs on both sides, got {len(units_a)} and {len(units_b)}")
    diffs = []
    for (pos_a, val_a), (pos_b, val_b) in zip(units_a, units_b, strict=True):
        if not np.array_equal(pos_a, pos_b):
            raise ValueError("paired comparison needs the same queries on both sides (same dataset, split, trials)")
        diffs.append(np.asarray(val_a, dtype=float) - np.asarray(val_b, dtype=float))
    low, high = bootstrap_interval(diffs, level, resamples, seed)
    flat = np.concatenate(diffs)
    weights = np.concatenate([np.full(len(d), 1.0 / (len(d) * len(diffs))) for d in diffs])  # mean of unit means
    p_value = sign_flip_pvalue(flat * weights, permutations, seed)
    return Comparison(float(np.sum(flat * weights)), low, high, p_value, len(diffs), len(flat))


def sign_flip_pvalue(terms: np.ndarray, permutations: int = 9999, seed: int = 0) -> float:
    """Two-sided p-value of ``sum(terms)`` under random sign flips of each term (paired permutation test).

    The same test as ``scipy.stats.permutation_test((terms,), np.sum, permutation_type="samples")`` (exact when
    ``2**len(terms) <= permutations``, else ``permutations`` random flips, p = (hits + 1) / (permutations + 1)), but
    computed as one matrix product per chunk, since the statistic is linear in the signs: seconds instead of
    minutes for the tens of thousands of queries of a ten-split study.

    Args:
        terms: The weighted per-query differences, shape (N,).
        permutations: Random resamples when the exact distribution is larger.
        seed: Seed of the private generator.
    """
    terms = np.asarray(terms, dtype=float)
    observed = float(terms.sum())
    if not np.any(terms):
        return 1.0  # every sign flip gives the same statistic
    exact = len(terms) < 63 and 2 ** len(terms) <= permutations
    tol = 1e-12 * max(abs(observed), 1e-300)
    greater = less = 0
    if exact:
        bits = (np.arange(2 ** len(terms))[:, None] >> np.arange(len(terms))) & 1
        null = (1 - 2 * bits) @ terms
        greater, less = int((null >= observed - tol).sum()), int((null <= observed + tol).sum())
        total, adjust = len(null), 0
    else:
        rng = np.random.default_rng(seed)
        chunk = max(1, (1 << 22) // len(terms))
        for start in range(0, permutations, chunk):
            signs = rng.integers(0, 2, size=(min(chunk, permutations - start), len(terms)), dtype=np.int8)
            null = (1 - 2 * signs.astype(np.float64)) @ terms
            greater += int((null >= observed - tol).sum())
            less += int((null <= observed + tol).sum())
        total, adjust = permutations, 1
    return float(min(1.0, 2 * min((greater + adjust) / (total + adjust), (less + adjust) / (total + adjust))))
