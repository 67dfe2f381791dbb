"""``csdn ablate``'s extras over ``csdn study``: an HTML report per variant and the bar chart."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

__all__ = ["write_variant_reports", "write_chart"]

logger = logging.getLogger("csdn.cli")


def _report_is_current(run_dir: Path) -> bool:
    index, evaluation = run_dir / "report" / "index.html", run_dir / "eval.json"
    return index.is_file() and index.stat().st_mtime_ns >= evaluation.stat().st_mtime_ns


def write_variant_reports(runs: list[Any], device: Any, trust_code: bool = False) -> None:
    """Build ``<run>/report/index.html`` from each run's ``eval.json`` and final model (skipped when current)."""
    from ..data import open_dataset
    from ..engine import load_trained_model
    from ..evaluation.evaluator import EvaluationReport, TrialRecord
    from ..report import build_report
    from .reporting import make_evaluator

    for run in runs:
        if not (run.run_dir / "eval.json").is_file() or _report_is_current(run.run_dir):
            continue
        final = run.run_dir / "checkpoints" / "final.pt"
        model, cfg, _ = load_trained_model(final, device, trust_code=trust_code)
        dataset = open_dataset(cfg.data.dataset, cfg.data.root, **({"trial": cfg.data.trial}
                               if cfg.data.dataset == "regdb" else {}))  # fmt: skip
        data = json.loads((run.run_dir / "eval.json").read_text(encoding="utf-8"))
        report = EvaluationReport(data["dataset"], [TrialRecord(**r) for r in data["records"]], data["config"])
        evaluator = make_evaluator(dataset, cfg, device)
        evaluator.trials = tuple(sorted({r.trial for r in report.records}))
        logger.info("%s: writing its report", run.variant)
        build_report(run.run_dir / "report", evaluator, model, report, checkpoint=final,
                     title=f"{run.variant}: {dataset.name} evaluation", variant=run.variant)  # fmt: skip


def write_chart(out: Path, results: dict[str, Any]) -> Path | None:
    """``ablation.png``: rank-1 and mAP of every variant in the first setting (error bars: std over runs, if any)."""
    from ..report.plots import plot_ablation

    if not results["settings"]:
        return None
    headline = results["settings"][0]
    bars = {c["variant"]: {m: c[m]["mean"] for m in ("rank1", "mAP")} | {f"{m}_std": c[m]["std"] or 0.0
            for m in ("rank1", "mAP")} for c in results["cells"] if c["setting"] == headline}  # fmt: skip
    return plot_ablation(bars, out / "ablation.png", title=headline)
