"""Write an evaluation report (``index.html``) and an index page over several reports.

A report folder holds ``index.html`` (self-contained: inline CSS, every image embedded as a ``data:`` URI, so
it opens from disk with no server and no network and can be mailed as one file) plus the figures as PNG files
for reuse in papers. All inserted text is escaped (:mod:`csdn.report.html`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .._io import atomic_write_text
from ..evaluation.results import NO_STD, MetricSummary
from .analysis import CameraMatrix, HardQuery, ROCCurve, camera_matrix, distance_distributions, hardest_queries
from .analysis import roc_curve as _roc_curve
from .html import Markup, definition_list, image_data_uri, join, render_page, table, tag, thumbnail_data_uri

__all__ = ["SplitAnalysis", "analyse_split", "write_report", "write_index", "HEADLINE"]

logger = logging.getLogger(__name__)

HEADLINE = ("rank1", "rank5", "rank10", "rank20", "mAP", "mINP")
_NAMES = {"rank1": "rank-1", "rank5": "rank-5", "rank10": "rank-10", "rank20": "rank-20"}


@dataclass
class SplitAnalysis:
    """Everything the report shows about one split (one setting, one trial) beyond the headline numbers."""

    setting: str
    trial: int
    protocol: str
    query: Sequence[Any]  # csdn.data.Sample (path, pid, cam, modality)
    gallery: Sequence[Any]
    cameras: CameraMatrix
    matching: np.ndarray
    non_matching: np.ndarray
    roc: ROCCurve
    hard: list[HardQuery]
    topk: int = 10


def analyse_split(distmat: Any, split: Any, *, num: int = 8, topk: int = 10) -> SplitAnalysis:
    """Run every analysis of :mod:`csdn.report.analysis` on ``split`` (a :class:`csdn.data.TestSplit`).

    Args:
        distmat: ``(Q, G)`` distances of the split's queries to its gallery (as the evaluator computed them).
        split: The split (its samples' pids and cams, its protocol).
        num: Lowest-AP queries listed.
        topk: Ranked gallery items shown per listed query.
    """
    ids = ([s.pid for s in split.query], [s.pid for s in split.gallery])
    cams = ([s.cam for s in split.query], [s.cam for s in split.gallery])
    matching, non_matching = distance_distributions(distmat, *ids, *cams, protocol=split.protocol)
    return SplitAnalysis(
        setting=split.name,
        trial=split.trial,
        protocol=split.protocol,
        query=split.query,
        gallery=split.gallery,
        cameras=camera_matrix(distmat, *ids, *cams, protocol=split.protocol),
        matching=matching,
        non_matching=non_matching,
        roc=_roc_curve(matching, non_matching),
        hard=hardest_queries(distmat, *ids, *cams, protocol=split.protocol, num=num, topk=topk),
        topk=topk,
    )


def _pct(mean: float | None, std: float | None = None) -> str:
    """``mean ± std`` in percent; ``—`` for a missing standard deviation (trials that do not differ) or value."""
    if mean is None:
        return NO_STD
    return f"{100 * mean:.2f} ± " + (NO_STD if std is None else f"{100 * std:.2f}")


def results_table(summary: Mapping[str, Mapping[str, MetricSummary]]) -> Markup:
    """Per-setting ``mean ± std`` over trials (percent) of every headline metric (``—``: no std, see the notes)."""
    header = ["setting", "trials", *(_NAMES.get(m, m) for m in HEADLINE)]
    rows = [
        [name, int(stats["mAP"]["trials"]), *(_pct(stats[m]["mean"], stats[m]["std"]) for m in HEADLINE)]
        for name, stats in summary.items()
    ]
    return table(header, rows)


def operating_points_table(report: Any) -> Markup:
    """TPR at FPR 1e-4, 1e-3 and 1e-2 per setting (percent, mean ± std over trials; ``—``: not measurable)."""
    points = report.operating_points()
    keys = list(next(iter(points.values())))
    rows = [[name, *(_pct(p[k]["mean"], p[k]["std"]) for k in keys)] for name, p in points.items()]
    return table(["setting", *(f"TPR@FPR={k}" for k in keys)], rows)


def _results_section(report: Any, cmc: Path) -> list[Markup]:
    notes = [tag("p", line, class_="note") for line in report.notes()]
    return [
        tag("h2", "Results"),
        tag("p", report.caption() + ".", class_="note"),
        results_table(report.summary()),
        *notes,
        tag("h2", "TPR at fixed FPR"),
        tag(
            "p",
            "Verification view of the same rankings: the share of genuine (same-identity) query-gallery pairs "
            "accepted by the distance threshold that lets at most the given share of impostor pairs through "
            "(pairs the protocol removes left out; — where a split has fewer than 1 / FPR impostor pairs).",
            class_="note",
        ),
        operating_points_table(report),
        tag("h2", "CMC curves"),
        tag("img", src=image_data_uri(cmc), alt="CMC curves", class_="plot"),
    ]


def _matrix_table(cameras: CameraMatrix, values: np.ndarray, what: str) -> Markup:
    head = tag("tr", tag("th", f"{what}: query cam \\ gallery cam", class_="name"),
               *(tag("th", f"cam {c}") for c in cameras.gallery_cams))  # fmt: skip
    rows = []
    for i, q_cam in enumerate(cameras.query_cams):
        cells = []
        for j in range(len(cameras.gallery_cams)):
            v = values[i, j]
            if np.isnan(v):
                cells.append(tag("td", "—", title="no valid query (pairs removed by the protocol or no match)"))
            else:
                colour = f"background: hsl({120 * v:.0f}, 65%, 82%)"
                cells.append(tag("td", f"{100 * v:.1f}", style=colour, title=f"{cameras.num_valid[i, j]} queries"))
        rows.append(tag("tr", tag("td", f"cam {q_cam}", class_="name"), *cells))
    return tag("table", tag("thead", head), tag("tbody", *rows), class_="matrix")


def _thumb(sample: Any, caption: Markup, cls: str) -> Markup:
    uri = thumbnail_data_uri(sample.path)
    image = tag("img", src=uri, alt=f"id {sample.pid}") if uri else tag("div", "missing", class_="missing")
    return tag("figure", image, tag("figcaption", caption), class_=cls, title=os.fspath(sample.path))


def _hard_queries_section(analysis: SplitAnalysis) -> Markup:
    blocks = []
    for hard in analysis.hard:
        q = analysis.query[hard.index]
        items = [_thumb(q, join([tag("b", "query"), tag("br"), f"id {q.pid} cam {q.cam}"], ""), "query")]
        for rank, (g, d, ok) in enumerate(zip(hard.ranked, hard.distances, hard.correct, strict=True), start=1):
            sample = analysis.gallery[int(g)]
            caption = join([f"{rank}. ", tag("span", "✓" if ok else "✗", class_="mark"), tag("br"),
                            f"id {sample.pid}", tag("br"), f"d {d:.3f}"], "")  # fmt: skip
            items.append(_thumb(sample, caption, "right" if ok else "wrong"))
        title = f"query {hard.index}: id {q.pid}, camera {q.cam}, AP {100 * hard.ap:.1f}%"
        blocks.append(
            join([tag("h3", title, style="font-size:0.95em;margin:14px 0 0"), tag("div", *items, class_="ranked")])
        )
    return join(blocks)


def _analysis_section(analysis: SplitAnalysis, out_dir: Path) -> Markup:
    from .plots import plot_distances

    plot = plot_distances(analysis.matching, analysis.non_matching, analysis.roc, out_dir / "distances.png")
    where = f"{analysis.setting}, trial {analysis.trial} ({analysis.protocol} protocol rules)"
    cams = analysis.cameras
    return join([
        tag("h2", "Query camera x gallery camera"),
        tag("p", f"{where}: rank-1 and mAP (percent) of each camera's queries against each camera's gallery "
                 "items; — marks blocks without a valid query.", class_="note"),  # fmt: skip
        tag("div", _matrix_table(cams, cams.rank1, "rank-1"), _matrix_table(cams, cams.mAP, "mAP"),
            class_="figures"),  # fmt: skip
        tag("h2", "Matching and non-matching distances"),
        tag("p", f"{where}: {analysis.matching.size} matching and {analysis.non_matching.size} non-matching "
                 f"query-gallery pairs; ROC AUC {analysis.roc.auc:.3f}.", class_="note"),  # fmt: skip
        tag("img", src=image_data_uri(plot), alt="distance histograms and ROC curve", class_="plot"),
        tag("h2", f"The {len(analysis.hard)} queries with the lowest AP"),
        tag("p", f"{where}: each query (blue) and its top-{analysis.topk} ranked gallery items (fewer when "
                 "the protocol leaves fewer), green ✓ = same identity, red ✗ = another identity.", class_="note"),
        _hard_queries_section(analysis),
    ])  # fmt: skip


def _labels(config: Mapping[str, Any]) -> Markup:
    rerank, flip = bool(config.get("rerank")), bool(config.get("flip", True))
    return join([
        tag("span", "re-ranked (k-reciprocal)" if rerank else "not re-ranked", class_="badge on" if rerank else
            "badge off"),
        tag("span", "flip: on (features of the flipped image added)" if flip else "flip: off",
            class_="badge on" if flip else "badge off"),
        tag("span", f"metric: {config.get('metric', '?')}", class_="badge"),
    ], " ")  # fmt: skip


def write_report(
    out_dir: str | os.PathLike,
    report: Any,
    analysis: SplitAnalysis | None = None,
    provenance: Mapping[str, Any] | None = None,
    *,
    title: str | None = None,
) -> Path:
    """Write ``out_dir/index.html`` (and its figures as PNGs next to it).

    Args:
        out_dir: Report folder (created).
        report: A :class:`csdn.evaluation.EvaluationReport` (headline table and CMC curves).
        analysis: From :func:`analyse_split` (camera matrix, distances, ROC, lowest-AP queries); optional.
        provenance: ``{label: value}`` shown at the end (see :func:`csdn.report.provenance`).
        title: Page title (default: the dataset).

    Returns:
        The path of ``index.html``.

    Raises:
        ImportError: without matplotlib (extra ``viz``: ``pip install "csdn[viz]"``).
    """
    from ..viz import plot_cmc

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    curves = {}
    for name in report.settings():
        rows = [r for r in report.records if r.setting == name]
        curves[name] = np.mean([r.cmc for r in rows], axis=0)
    cmc = plot_cmc(curves, out_dir / "cmc.png", title="CMC (mean over trials)")
    body = _results_section(report, cmc)
    if analysis is not None:
        body.append(_analysis_section(analysis, out_dir))
    if provenance:
        body += [tag("h2", "Provenance"), definition_list(provenance)]
    page = render_page(title or f"Evaluation report: {report.dataset}", _labels(report.config), join(body))
    path = atomic_write_text(out_dir / "index.html", page)
    logger.info("report written to %s", path)
    return path


def write_index(
    path: str | os.PathLike,
    entries: Sequence[Mapping[str, Any]],
    *,
    title: str,
    note: str = "",
    columns: Sequence[str] = (),
    chart: str | os.PathLike | None = None,
    provenance: Mapping[str, Any] | None = None,
) -> Path:
    """An index page linking several reports (``csdn ablate`` writes one over its variants).

    Args:
        path: The HTML file to write.
        entries: ``{"name", "href" (relative to ``path``'s folder), column: text, ...}`` per report.
        title: Page title.
        note: A sentence under the title.
        columns: Entry keys shown as table columns after the name.
        chart: A PNG embedded above the table.
        provenance: ``{label: value}`` shown at the end.
    """
    path = Path(path)
    rows = [[tag("a", e["name"], href=e["href"]), *(e.get(c, "") for c in columns)] for e in entries]
    body = [tag("p", note, class_="note"), table(["report", *columns], rows)]
    if chart is not None:
        body.append(tag("img", src=image_data_uri(chart), alt="comparison chart", class_="plot"))
    if provenance:
        body += [tag("h2", "Provenance"), definition_list(provenance)]
    return atomic_write_text(path, render_page(title, "", join(body)))
