"""All plots of one evaluation in a folder: what ``csdn eval --plot DIR`` writes."""

from __future__ import annotations

import logging
import os
import random
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import nn

from ..data.images import preprocess
from ..data.samples import Sample
from ..evaluation.features import model_device
from ..inference import rank_distances
from .curves import plot_cmc
from .heatmap import activation_maps, plot_heatmaps
from .projection import plot_modality_projection
from .ranking import plot_ranked_lists

logger = logging.getLogger(__name__)

__all__ = ["plot_evaluation", "write_evaluation_plots"]


class _MeanCurve(NamedTuple):
    cmc: np.ndarray
    mAP: float


def plot_evaluation(
    out_dir: str | os.PathLike,
    evaluator: Any,
    model: nn.Module,
    report: Any | None = None,
    *,
    image_size: tuple[int, int] = (288, 144),
    setting: int = 0,
    trial: int | None = None,
    heatmaps: bool = True,
    **kwargs: Any,
) -> dict[str, Path]:
    """Plots of a :class:`csdn.evaluation.VIReIDEvaluator` run: what ``csdn eval --plot DIR`` writes.

    Ranked lists, projection and heatmaps use one split (``setting``-th setting, ``trial`` or the first
    configured trial), embedded with the evaluator's own options (flip, metric, re-ranking); the CMC plot shows
    the trial-mean curve of every setting in ``report``.

    Args:
        out_dir: Folder (created).
        evaluator: The evaluator that produced ``report`` (its dataset, transform and options are reused).
        model: The evaluated model.
        report: Its :class:`csdn.evaluation.EvaluationReport` (optional; gives ``cmc.png``).
        image_size: The model's input ``(H, W)`` (for the heatmaps' preprocessing).
        setting: Index into ``evaluator.settings``.
        trial: Trial of the split to show (default: the first configured one).
        heatmaps: Also draw Grad-CAM heatmaps (needs a CSDN-like model).
        **kwargs: Passed to :func:`write_evaluation_plots` (``topk``, ``max_queries``, ``seed``).

    Returns:
        ``{plot name: path}``.
    """
    split = evaluator.split(setting, trial)
    q_feats, g_feats, dist = evaluator.split_distances(model, split)
    results = None
    if report is not None:
        results = {}
        for name in report.settings():
            rows = [r for r in report.records if r.setting == name]
            results[name] = _MeanCurve(np.mean([r.cmc for r in rows], axis=0), float(np.mean([r.mAP for r in rows])))
    return write_evaluation_plots(
        out_dir, split.query, split.gallery, dist, results=results, query_feats=q_feats, gallery_feats=g_feats,
        model=model if heatmaps else None, image_size=image_size, label="re-ranked" if evaluator.rerank else "",
        **kwargs,
    )  # fmt: skip


def write_evaluation_plots(
    out_dir: str | os.PathLike,
    query: Sequence[Any],
    gallery: Sequence[Any],
    distmat: torch.Tensor | np.ndarray,
    *,
    results: Mapping[str, Any] | None = None,
    query_feats: torch.Tensor | np.ndarray | None = None,
    gallery_feats: torch.Tensor | np.ndarray | None = None,
    model: nn.Module | None = None,
    image_size: tuple[int, int] = (288, 144),
    topk: int = 10,
    max_queries: int = 8,
    seed: int = 0,
    label: str = "",
) -> dict[str, Path]:
    """Write the standard plots of one query/gallery evaluation into ``out_dir``.

    Files (each only when its inputs are given):

    - ``ranked_lists.png``: ``max_queries`` queries (a seeded random choice) with their top-``topk`` gallery
      images, green = same identity, red = other.
    - ``cmc.png``: the CMC curves of ``results`` (``{name: EvaluationResult or cmc array}``).
    - ``projection.png``: PCA of the query and gallery embeddings, coloured by identity.
    - ``heatmaps_query.png`` / ``heatmaps_top1.png``: Grad-CAM of the chosen queries and of their top-1 gallery
      images, each explaining its similarity to the other (``model`` needed).

    Args:
        out_dir: Folder (created).
        query: Query samples (``csdn.data.Sample``: ``path``, ``pid``, ``modality``).
        gallery: Gallery samples.
        distmat: ``(Q, G)`` distances used for ranking (smaller = closer).
        results: Metrics to plot as CMC curves.
        query_feats: ``(Q, D)`` query embeddings for the projection.
        gallery_feats: ``(G, D)`` gallery embeddings.
        model: CSDN model for the heatmaps.
        image_size: The model's input ``(H, W)``.
        topk: Matches per ranked list.
        max_queries: Queries shown.
        seed: Seed of the query choice.
        label: Appended to the ranked lists' and the CMC plot's titles, e.g. ``"re-ranked"``.

    Returns:
        ``{plot name: path}`` of the files written.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    ranking = rank_distances(distmat, topk)
    chosen = sorted(random.Random(seed).sample(range(len(query)), min(max_queries, len(query))))
    q_pids = np.array([s.pid for s in query])
    g_pids = np.array([s.pid for s in gallery])
    written = {
        "ranked_lists": plot_ranked_lists(
            [query[i].path for i in chosen],
            [s.path for s in gallery],
            ranking.indices[chosen],
            out_dir / "ranked_lists.png",
            query_pids=q_pids[chosen],
            gallery_pids=g_pids,
            distances=ranking.distances[chosen],
            topk=topk,
            max_queries=max_queries,
            title=f"{query[0].modality} queries -> {gallery[0].modality} gallery" + (f" ({label})" if label else ""),
        )  # fmt: skip
    }
    if results:
        written["cmc"] = plot_cmc(results, out_dir / "cmc.png", title="CMC" + (f" ({label})" if label else ""))
    if query_feats is not None and gallery_feats is not None:
        pairs = {query[0].modality: (query_feats, q_pids), gallery[0].modality: (gallery_feats, g_pids)}
        if set(pairs) == {"visible", "infrared"}:
            (vis, vis_pids), (ir, ir_pids) = pairs["visible"], pairs["infrared"]
            written["projection"] = plot_modality_projection(
                vis, ir, out_dir / "projection.png", visible_pids=vis_pids, infrared_pids=ir_pids
            )
    if model is not None:
        top1 = ranking.indices[chosen, 0].tolist()
        written.update(_match_heatmaps(model, [query[i] for i in chosen], [gallery[j] for j in top1], image_size,
                                       out_dir))  # fmt: skip
    logger.info("wrote %s to %s", ", ".join(written), out_dir)
    return written


def _match_heatmaps(
    model: nn.Module, queries: Sequence[Sample], matches: Sequence[Sample], image_size: tuple[int, int], out_dir: Path
) -> dict[str, Path]:
    """Grad-CAM of each query w.r.t. its top-1 match's embedding and vice versa."""
    device = model_device(model)
    q_images = preprocess([s.path for s in queries], image_size).to(device)
    g_images = preprocess([s.path for s in matches], image_size).to(device)
    q_mod, g_mod = queries[0].modality, matches[0].modality
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            encode = model.encode_image  # duck-typed: any module with encode_image (a CSDN)
            q_emb, g_emb = encode(q_images, q_mod), encode(g_images, g_mod)  # type: ignore[operator]
    finally:
        model.train(was_training)
    q_maps = activation_maps(model, q_images, q_mod, reference=g_emb).cpu()
    g_maps = activation_maps(model, g_images, g_mod, reference=q_emb).cpu()
    q_titles = [f"id {s.pid}" for s in queries]
    g_titles = [f"id {s.pid}" + (" ok" if s.pid == q.pid else " x") for s, q in zip(matches, queries, strict=True)]
    return {
        "heatmaps_query": plot_heatmaps(q_images.cpu(), {"Grad-CAM": q_maps}, out_dir / "heatmaps_query.png",
                                        titles=q_titles, title=f"{q_mod} queries: evidence for their top-1 match"),
        "heatmaps_top1": plot_heatmaps(g_images.cpu(), {"Grad-CAM": g_maps}, out_dir / "heatmaps_top1.png",
                                       titles=g_titles, title=f"{g_mod} top-1 matches: evidence for their query"),
    }  # fmt: skip
