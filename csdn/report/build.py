"""One call from an evaluator run to a report folder: what ``csdn eval --report DIR`` does."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from torch import nn

from .provenance import provenance
from .writer import analyse_split, write_report

__all__ = ["build_report", "check_report_dir"]


def check_report_dir(path: str | os.PathLike, force: bool = False) -> Path:
    """Check, before any work, that a report can be written to folder ``path``, and that matplotlib is there.

    The overwrite policy of every ``csdn eval`` output (``--json`` too): an existing non-empty folder is refused
    unless ``force`` (``--force``), so an earlier report is never replaced by accident.

    Raises:
        ValueError: ``path`` is an existing file, or a non-empty folder and ``force`` is false.
        ImportError: without matplotlib, naming the extra (``pip install "csdn[viz]"``).
    """
    from .._optional import require

    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ValueError(f"--report {str(path)!r} is a file; pass a folder for index.html and its figures")
    if path.is_dir() and any(path.iterdir()) and not force:
        what = "an earlier report" if (path / "index.html").is_file() else "files that are not a report"
        raise ValueError(
            f"--report {str(path)!r} is a non-empty folder ({what}); pass --force to overwrite it, or a new or "
            "empty folder"
        )
    require("matplotlib", "viz")
    return path


def build_report(
    out_dir: str | os.PathLike,
    evaluator: Any,
    model: nn.Module,
    report: Any,
    *,
    checkpoint: str | os.PathLike | None = None,
    setting: int = 0,
    trial: int | None = None,
    num_queries: int = 8,
    topk: int = 10,
    title: str | None = None,
    **extra: Any,
) -> Path:
    """Write the report of an evaluation run into ``out_dir`` and return the path of its ``index.html``.

    The headline table and CMC curves come from ``report``; the camera matrix, the distance distributions and
    the lowest-AP queries from one split (``setting``-th setting, ``trial`` or the first configured trial),
    embedded and compared with the evaluator's own options (flip, metric, re-ranking).

    Args:
        out_dir: Report folder.
        evaluator: The :class:`csdn.evaluation.VIReIDEvaluator` that produced ``report``.
        model: The evaluated model.
        report: Its :class:`csdn.evaluation.EvaluationReport`.
        checkpoint: The checkpoint file the model came from (path and SHA-256 recorded).
        setting: Index into ``evaluator.settings`` of the analysed split.
        trial: Trial of the analysed split.
        num_queries: Lowest-AP queries shown.
        topk: Ranked gallery items shown per query.
        title: Page title.
        **extra: More provenance lines (``label=value``).
    """
    split = evaluator.split(setting, trial)
    _, _, dist = evaluator.split_distances(model, split)
    analysis = analyse_split(dist, split, num=num_queries, topk=topk)
    device = evaluator.device if evaluator.device is not None else next(model.parameters()).device
    info = provenance(checkpoint=checkpoint, dataset=evaluator.dataset, device=device, trials=report.trials(), **extra)
    if title is None:
        name = getattr(evaluator.dataset, "name", "dataset")
        where = "/".join(Path(checkpoint).parts[-3:]) if checkpoint is not None else None  # run/checkpoints/final.pt
        title = f"{name} evaluation: {where}" if where else f"{name} evaluation"
    return write_report(out_dir, report, analysis, info, title=title)
