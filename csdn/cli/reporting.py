"""Evaluation wiring of the CLI: build the protocol evaluator for a run, print results (and copy them to a log)."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import Any

import torch

from ..data.base import VIReIDDataset
from ..data.samples import TestSplit
from ..engine.config import TrainConfig
from ..engine.trainer import EvaluateFn
from ..evaluation import VIReIDEvaluator
from ..evaluation.evaluator import EvaluationReport
from ..evaluation.features import FLIP_DEFAULT

__all__ = ["make_evaluator", "validation_callback", "protocol_callback", "print_report", "log_file_writer"]


def make_evaluator(
    dataset: VIReIDDataset,
    cfg: TrainConfig,
    device: torch.device | str | None,
    *,
    rerank: bool = False,
    flip: bool = FLIP_DEFAULT,
    batch_size: int = 128,
    metric: str = "cosine",
) -> VIReIDEvaluator:
    """The dataset's full protocol (every reported setting x every trial) at the run's input size, compared with
    ``metric`` (``"cosine"`` or ``"euclidean"``)."""
    return VIReIDEvaluator(
        dataset,
        height=cfg.data.height,
        width=cfg.data.width,
        batch_size=batch_size,
        num_workers=cfg.data.num_workers,
        device=device,
        flip=flip,
        metric=metric,
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


def print_report(
    report: EvaluationReport,
    json_path: str | os.PathLike | None = None,
    out: Callable[[str], Any] = print,
    verbose: bool = False,
) -> None:
    """Print the results table (caption, rows, notes and chance level: :meth:`EvaluationReport.to_table`), save JSON.

    With ``verbose``, the per-trial results are printed before the table.
    """
    if verbose:
        out(report.to_trial_table())
    out(report.to_table())
    if json_path is not None:
        report.to_json(json_path)
        out(f"results written to {json_path}")


def log_file_writer(handler: logging.Handler | None, out: Callable[[str], Any] = print) -> Callable[[str], None]:
    """``out`` that also appends each text to ``handler``'s log file (``train.log`` ends with the results table).

    The text goes to that handler only, not through the ``csdn`` logger, so the console does not show it twice.
    """

    def write(text: str) -> None:
        out(text)
        if handler is not None:
            message = "\n" + text if "\n" in text else text  # a table starts on its own line
            record = {"name": "csdn.cli", "levelno": logging.INFO, "levelname": "INFO", "msg": "%s", "args": (message,)}
            handler.handle(logging.makeLogRecord(record))

    return write
