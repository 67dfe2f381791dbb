"""``csdn ablate``'s outputs: evaluation of each trained variant, the table (Markdown, JSON), chart and index page."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from .._io import atomic_write_text

__all__ = ["TABLE_METRICS", "evaluate_variants", "write_study"]

logger = logging.getLogger("csdn.cli")

#: The ablation table's columns (the paper reports rank-1, rank-10, mAP and mINP).
TABLE_METRICS = ("rank1", "rank10", "mAP", "mINP")
_LABELS = {"rank1": "rank-1", "rank10": "rank-10", "mAP": "mAP", "mINP": "mINP"}


def evaluate_variants(
    engine: SimpleNamespace, dataset: Any, finals: dict[str, Path], device: Any, trials: int | None, *, report: bool
) -> dict[str, Any]:
    """Evaluate every variant's final checkpoint with the full protocol; write ``eval.json`` and its report.

    Returns:
        ``{variant: EvaluationReport}``.
    """
    from .reporting import make_evaluator

    results = {}
    for variant, final in finals.items():
        run_dir = final.parents[1]
        wanted = list(dataset.trials if trials is None else dataset.trials[:trials])
        earlier = _earlier_evaluation(run_dir, final, wanted, report)
        if earlier is not None:
            logger.info("%s: reusing %s (newer than %s)", variant, run_dir / "eval.json", final.name)
            if earlier.chance is None:  # written before eval.json carried the chance level
                from ..evaluation import chance_level

                earlier.chance = chance_level(dataset, earlier.config.get("settings", dataset.test_settings()), wanted)
            results[variant] = earlier
            continue
        model, cfg = engine.load(final, device)
        evaluator = make_evaluator(dataset, cfg, device)
        logger.info("%s: evaluating %s", variant, final)
        results[variant] = evaluator.run(model, trials, chance=True)
        results[variant].to_json(run_dir / "eval.json")
        if report:
            from ..report import build_report

            build_report(run_dir / "report", evaluator, model, results[variant], checkpoint=final,
                         title=f"{variant}: {dataset.name} evaluation", variant=variant)  # fmt: skip
    return results


def _earlier_evaluation(run_dir: Path, final: Path, trials: list[int], report: bool) -> Any | None:
    """The ``eval.json`` of an earlier call if it is newer than ``final`` and covers the same trials, else None."""
    from ..evaluation.results import EvaluationReport

    path = run_dir / "eval.json"
    needed = [path, run_dir / "report" / "index.html"] if report else [path]
    if not all(p.is_file() and p.stat().st_mtime_ns >= final.stat().st_mtime_ns for p in needed):
        return None
    data = json.loads(path.read_text(encoding="utf-8"))
    if sorted({r["trial"] for r in data["records"]}) != sorted(trials):  # e.g. an earlier --trials 1
        return None
    return EvaluationReport.from_dict(data)


def _cell(stats: dict[str, float | None]) -> str:
    std = "—" if stats["std"] is None else f"{100 * stats['std']:.2f}"  # None: the trials do not differ
    return f"{100 * stats['mean']:.2f} ± {std}"


def _rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for variant, report in results.items():
        for setting, stats in report.summary().items():
            rows.append({"variant": variant, "setting": setting, **{m: stats[m] for m in TABLE_METRICS}})
    return rows


def _markdown(plan: dict[str, Any], rows: list[dict[str, Any]], chart: Path | None, results: dict[str, Any]) -> str:
    first = next(iter(results.values()))
    lines = [
        f"# Ablation study: {plan['dataset']}",
        "",
        f"Every variant trained from preset `{plan['preset']}` with seed {plan['seed']} on `{plan['root']}`"
        + (f" with `--set {' '.join(plan['overrides'])}`" if plan["overrides"] else "")
        + f". Each table: {first.caption().partition(': ')[2]}.",
    ]
    if chart is not None:
        lines += ["", f"![rank-1 and mAP of each variant]({chart.name})"]
    for setting in dict.fromkeys(r["setting"] for r in rows):
        lines += ["", f"## {setting}", "", "| variant | " + " | ".join(_LABELS[m] for m in TABLE_METRICS) + " |",
                  "|---|" + "---:|" * len(TABLE_METRICS)]  # fmt: skip
        for row in (r for r in rows if r["setting"] == setting):
            lines.append(f"| {row['variant']} | " + " | ".join(_cell(row[m]) for m in TABLE_METRICS) + " |")
        lines += _setting_notes(setting, results)
    return "\n".join(lines) + "\n"


def _setting_notes(setting: str, results: dict[str, Any]) -> list[str]:
    """The lines under a setting's table: why a standard deviation is missing, and the chance level."""
    notes = [f"{variant}: no standard deviation, {reason}." for variant, report in results.items()
             if (reason := report.no_std_reason(setting)) is not None]  # fmt: skip
    if len(notes) == len(results) > 1:  # the same data and trials for all: say it once
        notes = [f"All variants: no standard deviation, {next(iter(results.values())).no_std_reason(setting)}."]
    chance = next((r.chance for r in results.values() if r.chance is not None and setting in r.chance.values), None)
    if chance is not None:
        v = chance.values[setting]
        notes.append(f"Chance level ({chance.method}): rank-1 {100 * v['rank1']:.2f}, mAP {100 * v['mAP']:.2f}.")
    return ["", *(f"- {n}" for n in notes)] if notes else []


def write_study(
    out: Path, plan: dict[str, Any], results: dict[str, Any], *, report: bool, device: Any = None
) -> list[Path]:
    """Write ``ablation.json``, ``ablation.md``, the chart ``ablation.png`` and ``index.html`` (with reports).

    Returns:
        The paths written.
    """
    rows = _rows(results)
    headline = rows[0]["setting"]
    written = []
    chart = None
    if report:
        from ..report.plots import plot_ablation

        bars = {r["variant"]: {m: r[m]["mean"] for m in ("rank1", "mAP")} | {f"{m}_std": r[m]["std"]
                for m in ("rank1", "mAP")} for r in rows if r["setting"] == headline}  # fmt: skip
        chart = plot_ablation(bars, out / "ablation.png", title=headline)
        written.append(chart)
    data = {"plan": plan, "metrics": list(TABLE_METRICS), "headline_setting": headline, "rows": rows}
    written.append(atomic_write_text(out / "ablation.json", json.dumps(data, indent=2) + "\n"))
    written.append(atomic_write_text(out / "ablation.md", _markdown(plan, rows, chart, results)))
    if report:
        from ..report import provenance, write_index

        entries = [
            {
                "name": r["variant"],
                "href": f"{r['variant']}/report/index.html",
                **{_LABELS[m]: _cell(r[m]) for m in TABLE_METRICS},
            }
            for r in rows
            if r["setting"] == headline
        ]
        extra = {"dataset root": plan["root"], "seed": plan["seed"], "preset": plan["preset"],
                 "overrides": " ".join(plan["overrides"]) or "-"}  # fmt: skip
        info = provenance(device=device, **extra)
        written.append(write_index(
            out / "index.html", entries, title=f"Ablation study: {plan['dataset']}", chart=chart,
            note=f"{headline}: {next(iter(results.values())).caption().partition(': ')[2]}; every variant shares "
            f"seed, data and schedule. {' '.join(_setting_notes(headline, results)[1:]).replace('- ', '')} "
            "Open a variant for its full report; ablation.md has every setting.",
            columns=[_LABELS[m] for m in TABLE_METRICS], provenance=info,
        ))  # fmt: skip
    return written
