"""A study's results from its runs' ``eval.json`` files: cells with mean, std and CI, paired comparisons, files.

Written to the study folder: ``<stem>.json`` (every number, each run's values, the method), ``<stem>.md`` (the
tables with the method in words) and ``index.html`` (the same, linking every run's ``eval.json``).
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .._io import atomic_write_text
from ..evaluation.chance import ChanceLevel
from .grid import RunSpec
from .stats import METHOD, bootstrap_interval, paired_comparison, query_values, spread

__all__ = ["METRICS", "CI_METRICS", "collect", "table_text", "write_results"]

#: Table columns (fractions in eval.json; percent on the page); rank-1 and mAP also get intervals and comparisons.
METRICS = ("rank1", "mAP", "rank10", "mINP")
CI_METRICS = ("rank1", "mAP")
_LABELS = {"rank1": "rank-1", "rank10": "rank-10", "mAP": "mAP", "mINP": "mINP"}
RESAMPLES, PERMUTATIONS = 2000, 9999


def _load(run: RunSpec) -> dict[str, Any] | None:
    path = run.run_dir / "eval.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def _cell(runs: list[tuple[RunSpec, dict[str, Any]]], setting: str) -> dict[str, Any]:
    per_run = []
    for run, data in runs:
        stats = data["summary"][setting]
        per_run.append({"name": run.name, "seed": run.seed, "split": run.split,
                        **{m: stats[m]["mean"] for m in METRICS}})  # fmt: skip
    cell: dict[str, Any] = {"runs": len(per_run), "per_run": per_run}
    for metric in METRICS:
        values = [r[metric] for r in per_run]
        cell[metric] = {"mean": float(np.mean(values)), "std": spread(values), "ci": None}
    for metric in CI_METRICS:
        units = [query_values([r for r in data["records"] if r["setting"] == setting], metric)[1] for _, data in runs]
        cell[metric]["ci"] = list(bootstrap_interval(units, resamples=RESAMPLES))
    return cell


def _comparisons(cells_runs: dict[str, list[tuple[RunSpec, dict]]], setting: str) -> list[dict[str, Any]]:
    out = []
    for a, b in itertools.combinations(cells_runs, 2):
        runs_a = {(r.seed, r.split): d for r, d in cells_runs[a]}
        runs_b = {(r.seed, r.split): d for r, d in cells_runs[b]}
        shared = sorted(set(runs_a) & set(runs_b), key=str)
        if not shared:
            continue
        entry: dict[str, Any] = {"setting": setting, "a": b, "b": a, "runs": len(shared)}
        for metric in CI_METRICS:
            units_a, units_b = ([query_values([r for r in runs[k]["records"] if r["setting"] == setting], metric)
                                 for k in shared] for runs in (runs_a, runs_b))  # fmt: skip
            c = paired_comparison(units_b, units_a, resamples=RESAMPLES, permutations=PERMUTATIONS)
            entry[metric] = {"difference": c.difference, "ci": [c.low, c.high], "p": c.p_value, "queries": c.queries}
        out.append(entry)
    return out


def collect(runs: Sequence[RunSpec]) -> dict[str, Any]:
    """Cells and comparisons of every run that has an ``eval.json`` (the others are listed as missing).

    Returns:
        ``{"settings": [...], "cells": [{variant, setting, runs, per_run, <metric>: {mean, std, ci}}],
        "comparisons": [{setting, a, b, runs, rank1/mAP: {difference, ci, p, queries}}], "missing": [...]}``;
        comparisons are ``a - b`` for every pair of variants (later variant minus earlier one).
    """
    loaded = [(run, _load(run)) for run in runs]
    done = [(run, data) for run, data in loaded if data is not None]
    settings = list(dict.fromkeys(s for _, data in done for s in data["summary"]))
    variants = list(dict.fromkeys(run.variant for run in runs))
    cells, comparisons = [], []
    for setting in settings:
        by_variant = {v: [(r, d) for r, d in done if r.variant == v and setting in d["summary"]] for v in variants}
        by_variant = {v: rs for v, rs in by_variant.items() if rs}
        cells += [{"variant": v, "setting": setting, **_cell(rs, setting)} for v, rs in by_variant.items()]
        comparisons += _comparisons(by_variant, setting)
    method = METHOD.format(resamples=RESAMPLES, permutations=PERMUTATIONS)
    return {"settings": settings, "cells": cells, "comparisons": comparisons, "method": method,
            "chance": _chance(done), "missing": [run.name for run, data in loaded if data is None]}  # fmt: skip


def _chance(done: list[tuple[RunSpec, dict[str, Any]]]) -> dict[str, str]:
    """``{setting: "chance level (method): rank-1 x%, mAP y%"}`` from the first run whose ``eval.json`` has one."""
    for _, data in done:
        chance = ChanceLevel.from_dict(data.get("chance"))
        if chance is not None:
            return dict(zip(chance.values, chance.lines(), strict=True))
    return {}


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.2f}"


def _cell_text(stats: dict[str, Any]) -> str:
    text = f"{_pct(stats['mean'])} ± {_pct(stats['std'])}"
    return text + (f" [{_pct(stats['ci'][0])}, {_pct(stats['ci'][1])}]" if stats["ci"] else "")


def _diff_text(stats: dict[str, Any]) -> str:
    p = stats["p"]
    return f"{100 * stats['difference']:+.2f} [{100 * stats['ci'][0]:+.2f}, {100 * stats['ci'][1]:+.2f}], " + (
        f"p={p:.2g}" if p >= 1e-3 else "p<0.001"
    )


def _tables(results: dict[str, Any]) -> list[tuple[str, list[str], list[list[str]]]]:
    """``(title, header, rows)`` of every table: one per setting, then the paired comparisons."""
    out = []
    header = ["variant", "runs", *(_LABELS[m] for m in METRICS)]
    for setting in results["settings"]:
        rows = [[c["variant"], str(c["runs"]), *(_cell_text(c[m]) for m in METRICS)]
                for c in results["cells"] if c["setting"] == setting]  # fmt: skip
        out.append((setting, header, rows))
    if results["comparisons"]:
        rows = [[c["setting"], f"{c['a']} - {c['b']}", str(c["runs"]), *(_diff_text(c[m]) for m in CI_METRICS)]
                for c in results["comparisons"]]  # fmt: skip
        out.append(("paired differences", ["setting", "variants", "runs", "rank-1", "mAP"], rows))
    return out


def table_text(results: dict[str, Any]) -> str:
    """The tables as aligned plain text (what ``csdn study`` prints at the end)."""
    lines = ["percent: mean ± std over runs [95% bootstrap CI]"]
    for title, header, rows in _tables(results):
        widths = [max(len(x) for x in col) for col in zip(header, *rows, strict=True)]
        lines += ["", title, "  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))]
        lines += ["  ".join(x.ljust(w) for x, w in zip(row, widths, strict=True)) for row in rows]
        lines += [results["chance"][title]] if title in results.get("chance", {}) else []
    if results["missing"]:
        lines += ["", f"not finished yet: {', '.join(results['missing'])}"]
    return "\n".join(lines)


def _markdown(title: str, results: dict[str, Any]) -> str:
    lines = [f"# {title}", "", "Percent: mean ± std over runs [95% bootstrap CI]. Method: " + results["method"]]
    for name, header, rows in _tables(results):
        lines += ["", f"## {name}", "", "| " + " | ".join(header) + " |", "|---" * len(header) + "|"]
        lines += ["| " + " | ".join(row) + " |" for row in rows]
        lines += ["", f"- {results['chance'][name]}."] if name in results.get("chance", {}) else []
    if results["missing"]:
        lines += ["", f"Not finished yet: {', '.join(results['missing'])}."]
    return "\n".join(lines) + "\n"


def _html(title: str, results: dict[str, Any], runs: Sequence[RunSpec], out: Path, options: dict) -> str:
    from ..report.html import definition_list, join, render_page, table, tag

    body = [tag("p", "Percent: mean ± std over runs [95% bootstrap CI].", class_="note"), tag("h2", "Method"),
            tag("p", results["method"])]  # fmt: skip
    for name, header, rows in _tables(results):
        body += [tag("h2", name), table(header, rows)]
        if name in results.get("chance", {}):
            body.append(tag("p", results["chance"][name], class_="note"))
    links = []
    for r in runs:  # a run's report if it has one, else its eval.json
        target = next((p for p in (r.run_dir / "report" / "index.html", r.run_dir / "eval.json") if p.is_file()), None)
        name = r.name if target is None else tag("a", r.name, href=target.relative_to(out).as_posix())
        links.append([name, r.variant, str(r.seed), "-" if r.split is None else str(r.split)])
    body += [tag("h2", "Runs"), table(["run", "variant", "seed", "split"], links), tag("h2", "Study"),
             definition_list({k: str(v) for k, v in options.items()})]  # fmt: skip
    return render_page(title, "", join(body))


def write_results(out: Path, runs: Sequence[RunSpec], options: dict[str, Any], stem: str = "study",
                  title: str = "Study") -> tuple[dict[str, Any], list[Path]]:  # fmt: skip
    """Collect the results and write ``<stem>.json``, ``<stem>.md`` and ``index.html`` in ``out``.

    Returns:
        ``(results, paths written)``.
    """
    results = collect(runs)
    written = [
        atomic_write_text(out / f"{stem}.json", json.dumps({"options": options, **results}, indent=2) + "\n"),
        atomic_write_text(out / f"{stem}.md", _markdown(title, results)),
        atomic_write_text(out / "index.html", _html(title, results, runs, out, options)),
    ]
    return results, written
