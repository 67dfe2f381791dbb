"""CMC curves of several runs on one plot."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from .._optional import require
from ._common import new_figure, save_figure

__all__ = ["plot_cmc"]


def _curve(name: str, run: Any) -> tuple[np.ndarray, float | None]:
    """``run`` is a CMC array of fractions or anything with ``.cmc`` (and optionally ``.mAP``)."""
    cmc = np.asarray(getattr(run, "cmc", run), dtype=np.float64)
    if cmc.ndim != 1 or cmc.size == 0:
        raise ValueError(f"run {name!r}: the CMC must be a non-empty 1-D array of fractions, got shape {cmc.shape}")
    if np.any(cmc < 0) or np.any(cmc > 1) or np.any(np.diff(cmc) < -1e-12):
        raise ValueError(f"run {name!r}: a CMC holds non-decreasing fractions in [0, 1] (not percentages)")
    mean_ap = getattr(run, "mAP", None)
    return cmc, None if mean_ap is None else float(mean_ap)


def plot_cmc(
    runs: Mapping[str, Any],
    out: str | os.PathLike,
    *,
    max_rank: int | None = 20,
    title: str = "CMC",
) -> Path:
    """Plot the CMC curves of several runs (e.g. model variants, or with/without re-ranking) and write a PNG.

    Args:
        runs: ``{name: result}`` where each result is a CMC array of fractions (``cmc[k]`` = rank-(k+1)
            accuracy) or an object with ``.cmc`` (and ``.mAP``, shown in the legend), such as
            :class:`csdn.evaluation.EvaluationResult`.
        out: PNG path (written atomically).
        max_rank: Ranks shown (clipped to each curve's length); ``None`` shows everything.
        title: Axes title.

    Returns:
        ``out`` as a Path.

    Raises:
        ValueError: for no runs or a malformed CMC.
        ImportError: without matplotlib (extra ``viz``).
    """
    if not runs:
        raise ValueError("runs is empty: pass {name: cmc or EvaluationResult}")
    figure = new_figure(6.0, 4.2)
    axis = figure.subplots()
    for name, run in runs.items():
        cmc, mean_ap = _curve(name, run)
        cmc = cmc[:max_rank] if max_rank else cmc
        ranks = np.arange(1, cmc.size + 1)
        label = f"{name}: R1 {100 * cmc[0]:.1f}%" + (f", mAP {100 * mean_ap:.1f}%" if mean_ap is not None else "")
        axis.plot(ranks, 100 * cmc, marker="o", markersize=3, label=label)
    axis.set_xlabel("rank")
    axis.set_ylabel("matching rate (%)")
    axis.set_ylim(0, 101)
    axis.set_xlim(0.5, max(axis.get_xlim()[1], 1.5))
    axis.xaxis.set_major_locator(require("matplotlib.ticker", "viz").MaxNLocator(integer=True))
    axis.grid(alpha=0.3)
    axis.legend(loc="lower right", fontsize=8)
    axis.set_title(title)
    return save_figure(figure, out)
