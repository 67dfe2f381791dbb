"""Evaluation wiring of the CLI: build the protocol evaluator for a run, estimate chance level, print results."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from ..data.base import VIReIDDataset
from ..data.samples import TestSplit
from ..engine.config import TrainConfig
from ..engine.trainer import EvaluateFn
from ..evaluation import VIReIDEvaluator, evaluate
from ..evaluation.evaluator import EvaluationReport
from ..evaluation.features import FLIP_DEFAULT

__all__ = ["make_evaluator", "validation_callback", "protocol_callback", "chance_level", "print_report"]


def make_evaluator(
    dataset: VIReIDDataset,
    cfg: TrainConfig,
    device: torch.device | str | None,
    *,
    rerank: bool = False,
    flip: bool = FLIP_DEFAULT,
    batch_size: int = 128,
) -> VIReIDEvaluator:
    """The dataset's full protocol (every reported setting x every trial) at the run's input size."""
    return VIReIDEvaluator(
        dataset,
        height=cfg.data.height,
        width=cfg.data.width,
        batch_size=batch_size,
        num_workers=cfg.data.num_workers,
        device=device,
        flip=flip,
        rerank=rerank,
    )


def validation_callback(evaluator: VIReIDEvaluator, split: TestSplit) -> EvaluateFn:
    """A trainer ``evaluate(model, trials)`` function scoring a held-out validation split (``trials`` unused).

    Returns ``{"heldout_rank1", "heldout_mAP", "heldout_mINP"}`` in percent, the units of the final table, named
    so the training log and ``metrics.jsonl`` cannot be mistaken for test-set numbers.
    """

    def evaluate_validation(model: torch.nn.Module, trials: int) -> dict[str, float]:
        record = evaluator.evaluate_split(model, split)
        return {f"heldout_{m}": 100 * getattr(record, m) for m in ("rank1", "mAP", "mINP")}

    return evaluate_validation


def protocol_callback(evaluator: VIReIDEvaluator) -> EvaluateFn:
    """A trainer ``evaluate(model, trials)`` function on the test protocol's first setting (no held-out ids).

    Returns ``{"test_rank1", "test_mAP", "test_mINP"}`` in percent (means over the first ``trials`` trials).
    """
    scores = evaluator.training_callback()

    def evaluate_protocol(model: torch.nn.Module, trials: int) -> dict[str, float]:
        values = scores(model, trials)
        return {f"test_{m}": 100 * values[m] for m in ("rank1", "mAP", "mINP")}

    return evaluate_protocol


def chance_level(evaluator: VIReIDEvaluator, trials: int | None = None, draws: int = 20) -> dict[str, dict[str, float]]:
    """Rank-1 / mAP of random rankings under the same protocol (mean over trials and ``draws`` random matrices).

    Returns:
        ``{setting name: {"rank1": ..., "mAP": ...}}`` as fractions.
    """
    generator = torch.Generator().manual_seed(0)
    dataset = evaluator.dataset
    run_trials = evaluator.trials if trials is None else evaluator.trials[:trials]
    out: dict[str, dict[str, float]] = {}
    for setting in evaluator.settings:
        rank1, mean_ap = [], []
        for trial in run_trials:
            split = dataset.test(**setting, trial=trial)
            ids = ([s.pid for s in split.query], [s.pid for s in split.gallery])
            cams = ([s.cam for s in split.query], [s.cam for s in split.gallery])
            for _ in range(max(1, draws // len(run_trials))):
                dist = torch.rand(len(split.query), len(split.gallery), generator=generator)
                # rank-1 and mAP only: a rank-1 CMC (no "CMC clipped" line per random draw on a small gallery)
                result = evaluate(dist, *ids, *cams, protocol=split.protocol, max_rank=1)
                rank1.append(result.rank(1))
                mean_ap.append(result.mAP)
        out[split.name] = {"rank1": float(np.mean(rank1)), "mAP": float(np.mean(mean_ap))}
    return out


def print_report(
    report: EvaluationReport,
    json_path: str | os.PathLike | None = None,
    chance: dict[str, dict[str, float]] | None = None,
    out: Callable[[str], Any] = print,
    verbose: bool = False,
) -> None:
    """Print the metrics table (mean ± std over trials, percent), the chance level if given, and save JSON.

    With ``verbose``, the per-trial results are printed before the table.
    """
    if verbose:
        out(report.to_trial_table())
    out(report.to_table())
    if chance:
        for name, values in chance.items():
            out(f"chance level ({name}, random ranking): rank-1 {100 * values['rank1']:.2f}%, "
                f"mAP {100 * values['mAP']:.2f}%")  # fmt: skip
    if json_path is not None:
        report.to_json(json_path)
        out(f"results written to {json_path}")
