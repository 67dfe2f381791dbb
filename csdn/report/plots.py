"""The report's figures (extra ``viz``): distance histograms with the ROC curve, and the ablation bar chart.

CMC curves come from :func:`csdn.viz.plot_cmc`. matplotlib is imported through :mod:`csdn.viz` helpers only when
a figure is drawn; without it an ImportError names the extra (``pip install "csdn[viz]"``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from ..viz._common import new_figure, save_figure
from .analysis import ROCCurve

__all__ = ["plot_distances", "plot_ablation"]

MATCH_COLOR, NON_MATCH_COLOR = "#2a9d3a", "#d33b2f"


def plot_distances(matching: np.ndarray, non_matching: np.ndarray, roc: ROCCurve, out: str | os.PathLike) -> Path:
    """Histograms of matching / non-matching distances (density) next to the ROC curve; writes a PNG."""
    figure = new_figure(9.0, 3.4)
    hist, curve = figure.subplots(1, 2, width_ratios=(1.5, 1))
    values = np.concatenate([matching, non_matching])
    bins = np.linspace(values.min(), values.max() if values.max() > values.min() else values.min() + 1, 41)
    hist.hist(non_matching, bins=bins, density=True, alpha=0.55, color=NON_MATCH_COLOR,
              label=f"non-matching ({non_matching.size})")  # fmt: skip
    hist.hist(matching, bins=bins, density=True, alpha=0.55, color=MATCH_COLOR, label=f"matching ({matching.size})")
    hist.set_xlabel("distance (smaller = closer)")
    hist.set_ylabel("density")
    hist.legend(fontsize=8)
    hist.set_title("query-gallery distances")
    curve.plot(roc.fpr, roc.tpr, color="#1f6fd1", label=f"AUC {roc.auc:.3f}")
    curve.plot([0, 1], [0, 1], color="#999999", linestyle="--", linewidth=0.8, label="chance")
    curve.set_xlabel("false-positive rate")
    curve.set_ylabel("true-positive rate")
    curve.set_xlim(0, 1)
    curve.set_ylim(0, 1.01)
    curve.legend(loc="lower right", fontsize=8)
    curve.set_title("ROC (match if distance ≤ t)")
    curve.grid(alpha=0.3)
    return save_figure(figure, out)


def plot_ablation(
    rows: Mapping[str, Mapping[str, float]],
    out: str | os.PathLike,
    metrics: Sequence[str] = ("rank1", "mAP"),
    title: str = "",
) -> Path:
    """Grouped bars: one group per variant, one bar per metric (percent), error bars = std over trials.

    Args:
        rows: ``{variant: {"rank1": mean, "rank1_std": std, "mAP": ..., ...}}`` as fractions.
        out: PNG path.
        metrics: Metrics drawn.
        title: Axes title (e.g. the evaluation setting).
    """
    if not rows:
        raise ValueError("rows is empty: nothing to plot")
    figure = new_figure(2.4 + 1.1 * len(rows), 3.6)
    axis = figure.subplots()
    x = np.arange(len(rows))
    width = 0.8 / len(metrics)
    for k, metric in enumerate(metrics):
        means = [100 * r[metric] for r in rows.values()]
        stds = [100 * (r.get(f"{metric}_std") or 0.0) for r in rows.values()]  # None (no spread): no error bar
        label = {"rank1": "rank-1", "rank10": "rank-10"}.get(metric, metric)
        bars = axis.bar(x + (k - (len(metrics) - 1) / 2) * width, means, width, yerr=stds, capsize=3, label=label)
        axis.bar_label(bars, fmt="%.1f", fontsize=7, padding=2)
    axis.set_xticks(x, list(rows), rotation=20)
    axis.set_ylabel("percent")
    axis.set_ylim(0, 105)
    axis.legend(fontsize=8)
    axis.grid(axis="y", alpha=0.3)
    axis.set_title(title, fontsize=9)
    return save_figure(figure, out)
