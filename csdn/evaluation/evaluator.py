"""Run a model over a dataset's full test protocol: every reported setting x every trial, mean and std.

Example::

    from csdn.data import SYSUMM01
    from csdn.evaluation import VIReIDEvaluator

    evaluator = VIReIDEvaluator(SYSUMM01("data/SYSU-MM01"), device=device)  # e.g. "cuda" or "cpu"
    report = evaluator.run(model)             # anything with encode_image(images, modality)
    print(report.to_table())
    report.to_json("runs/sysu/eval.json")

Features are cached by (image path, modality) during a run, so the query set (identical across trials) and
gallery images drawn by several trials are embedded once.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from ..data.base import VIReIDDataset
from ..data.samples import Sample, TestSplit
from .chance import chance_level
from .features import FLIP_DEFAULT, FLIP_MODES, extract_features
from .fused import METRICS, distance
from .metrics import evaluate
from .results import EvaluationReport, TrialRecord
from .roc import pair_distances, tpr_at_fpr

__all__ = ["EvaluationReport", "TrialRecord", "VIReIDEvaluator"]

logger = logging.getLogger(__name__)


class _OnceFilter(logging.Filter):
    """Lets each distinct message (logger and text) of the logger ``name`` and its children through once."""

    def __init__(self, name: str) -> None:
        super().__init__()
        self.seen: set[tuple[str, str]] = set()
        self.prefix = name + "."

    def filter(self, record: logging.LogRecord) -> bool:
        if not (record.name + ".").startswith(self.prefix):
            return True
        key = (record.name, record.getMessage())
        if key in self.seen:
            return False
        self.seen.add(key)
        return True


@contextlib.contextmanager
def log_once(logger_: logging.Logger) -> Iterator[None]:
    """Within the block, each distinct message of ``logger_`` and its children is emitted once.

    A filter on a logger only sees records created at that logger, so the filter goes on the handlers that
    records of ``logger_``'s children reach (those of ``logger_`` and its ancestors).
    """
    filters: list[tuple[logging.Handler, logging.Filter]] = []
    current: logging.Logger | None = logger_
    while current is not None:
        filters.extend((handler, _OnceFilter(logger_.name)) for handler in current.handlers)  # one per handler
        current = current.parent if current.propagate else None
    for handler, once in filters:
        handler.addFilter(once)
    try:
        yield
    finally:
        for handler, once in filters:
            handler.removeFilter(once)


class VIReIDEvaluator:
    """Evaluate any model with ``encode_image(images, modality)`` on a dataset's test protocol.

    Args:
        dataset: A reader (``SYSUMM01``, ``RegDB``, ``LLCM`` or any :class:`csdn.data.VIReIDDataset`).
        settings: Settings to run (dicts passed to ``dataset.test``); default ``dataset.test_settings()``.
        trials: Trials to run; default ``dataset.trials`` (SYSU/LLCM: 0..9; RegDB: the reader's split).
        transform: PIL image -> tensor; default ``build_test_transform(height, width)``.
        height: Test input height for the default transform.
        width: Test input width for the default transform.
        batch_size: Images per forward pass.
        num_workers: DataLoader workers.
        device: Where images are sent (default: the model's device).
        flip: Flip test-time augmentation (official: on, features concatenated).
        flip_mode: ``"concat"`` (official CSDN, 2x dimension) or ``"sum"``.
        metric: ``"cosine"`` (ranks like the official inner product for CSDN's constant-norm features) or
            ``"euclidean"``.
        rerank: k-reciprocal re-ranking of every query-gallery distance matrix.
        k1: Re-ranking: neighbours of the k-reciprocal sets.
        k2: Re-ranking: neighbours of the query expansion.
        lambda_value: Re-ranking: weight of the original distance.
        max_rank: CMC length.

    Raises:
        ValueError: On unknown options.
    """

    def __init__(
        self,
        dataset: VIReIDDataset,
        settings: Sequence[dict] | None = None,
        trials: Sequence[int] | None = None,
        *,
        transform: Callable[[Any], torch.Tensor] | None = None,
        height: int = 288,
        width: int = 144,
        batch_size: int = 64,
        num_workers: int = 0,
        device: str | torch.device | None = None,
        flip: bool = FLIP_DEFAULT,
        flip_mode: str = "concat",
        metric: str = "cosine",
        rerank: bool = False,
        k1: int = 20,
        k2: int = 6,
        lambda_value: float = 0.3,
        max_rank: int = 20,
    ) -> None:
        if metric not in METRICS:
            raise ValueError(f"Unknown value {metric!r} for argument metric. Valid values are {list(METRICS)}.")
        if flip_mode not in FLIP_MODES:
            raise ValueError(
                f"Unknown value {flip_mode!r} for argument flip_mode. Valid values are {list(FLIP_MODES)}."
            )
        self.dataset = dataset
        self.settings = [dict(s) for s in (settings if settings is not None else dataset.test_settings())]
        self.trials = tuple(trials if trials is not None else dataset.trials)
        if not self.settings or not self.trials:
            raise ValueError("settings and trials must not be empty.")
        if transform is None:
            from ..data.transforms import build_test_transform  # torchvision on first use, not at import

            transform = build_test_transform(height, width)
        self.transform = transform
        self.batch_size, self.num_workers, self.device = batch_size, num_workers, device
        self.flip, self.flip_mode, self.metric = flip, flip_mode, metric
        self.rerank, self.k1, self.k2, self.lambda_value = rerank, k1, k2, lambda_value
        self.max_rank = max_rank

    def config(self) -> dict[str, Any]:
        """The options of this evaluator (recorded in reports)."""
        keys = ("flip", "flip_mode", "metric", "rerank", "k1", "k2", "lambda_value", "max_rank", "batch_size")
        return {
            "settings": self.settings,
            "trials": list(self.trials),
            "protocol_trials": list(self.dataset.trials),
            **{k: getattr(self, k) for k in keys},
        }

    def _features(self, model: nn.Module, samples: list[Sample], modality: str, cache: dict) -> torch.Tensor:
        """Features of ``samples`` (N, D), embedding only those not in ``cache`` (keyed by path and modality)."""
        missing = list({(s.path, modality): s for s in samples if (s.path, modality) not in cache}.values())
        if missing:
            feats = extract_features(
                model, missing, modality, self.transform, self.batch_size, self.device, self.flip, self.flip_mode,
                self.num_workers,
            )  # fmt: skip
            cache.update({(s.path, modality): f for s, f in zip(missing, feats, strict=True)})
        return torch.stack([cache[(s.path, modality)] for s in samples])

    def split(self, setting: int = 0, trial: int | None = None) -> TestSplit:
        """The test split of the ``setting``-th configured setting and ``trial`` (default: the first configured)."""
        return self.dataset.test(**self.settings[setting], trial=self.trials[0] if trial is None else trial)

    def split_distances(
        self, model: nn.Module, split: TestSplit, cache: dict | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Embed one split and compare it with this evaluator's options (flip, metric, re-ranking).

        Returns:
            ``(query features (Q, D), gallery features (G, D), distances (Q, G))``; smaller is closer.
        """
        cache = {} if cache is None else cache
        qf = self._features(model, split.query, split.query_modality, cache)
        gf = self._features(model, split.gallery, split.gallery_modality, cache)
        dist = distance(
            qf, gf, self.metric, self.rerank, self.k1, self.k2, self.lambda_value,
            device=self.device if self.device is not None else None,
        )  # fmt: skip
        return qf, gf, dist

    def evaluate_split(self, model: nn.Module, split: TestSplit, cache: dict | None = None) -> TrialRecord:
        """Metrics of one :class:`~csdn.data.TestSplit` (one setting, one trial), TPR@FPR included."""
        _, _, dist = self.split_distances(model, split, cache)
        ids = ([s.pid for s in split.query], [s.pid for s in split.gallery])
        cams = ([s.cam for s in split.query], [s.cam for s in split.gallery])
        if len(split.gallery) < self.max_rank:  # the note names the setting (evaluate() alone cannot)
            logger.info(
                "%s: gallery has only %d items: CMC clipped to rank %d", split.name, len(split.gallery),
                len(split.gallery),
            )  # fmt: skip
        res = evaluate(dist, *ids, *cams, protocol=split.protocol, max_rank=min(self.max_rank, len(split.gallery)))
        assert res.first is not None  # evaluate() always fills it
        digest = hashlib.sha256()  # of the images drawn, not their order (which only breaks exact ties)
        for path in (*sorted(s.path for s in split.query), None, *sorted(s.path for s in split.gallery)):
            digest.update(b"|" if path is None else f"{path}\0".encode())
        return TrialRecord(
            setting=split.name,
            trial=split.trial,
            protocol=split.protocol,
            query_modality=split.query_modality,
            gallery_modality=split.gallery_modality,
            num_query=len(split.query),
            num_gallery=len(split.gallery),
            num_valid=res.num_valid,
            **{f"rank{k}": res.rank(k) for k in (1, 5, 10, 20)},
            mAP=res.mAP,
            mINP=res.mINP,
            cmc=[float(x) for x in res.cmc],
            split_digest=digest.hexdigest()[:16],
            tpr_at_fpr=tpr_at_fpr(*pair_distances(dist, *ids, *cams, protocol=split.protocol)),
            query_ap=[round(float(x), 6) for x in res.ap],
            query_rank1=[int(x == 0) for x in res.first],
            invalid_queries=[int(i) for i in np.flatnonzero(~res.valid)],
        )

    def run(
        self,
        model: nn.Module,
        trials: int | Sequence[int] | None = None,
        settings: Sequence[dict] | None = None,
        *,
        chance: bool = False,
    ) -> EvaluationReport:
        """Evaluate ``model`` on every setting and trial.

        Args:
            model: Module with ``encode_image(images, modality)``.
            trials: Override the trials: a sequence of trial ids, or an int n for the first n configured trials.
            settings: Override the settings.
            chance: Also estimate the chance level of the same settings and trials
                (:func:`csdn.evaluation.chance.chance_level`), printed under the table.

        Returns:
            An :class:`EvaluationReport` whose ``config["trials"]`` lists exactly the trials evaluated.
        """
        run_trials = self.trials if trials is None else (self.trials[:trials] if isinstance(trials, int) else trials)
        if len(run_trials) == 0:
            raise ValueError(f"trials selects no trial (configured: {list(self.trials)}).")
        cache: dict = {}
        records = []
        run_settings = self.settings if settings is None else [dict(s) for s in settings]
        with log_once(logging.getLogger("csdn.evaluation")):  # e.g. "CMC clipped" once, not once per trial
            for setting in run_settings:
                for trial in run_trials:
                    records.append(self._run_one(model, setting, trial, cache))
        config = {**self.config(), "settings": run_settings, "trials": [int(t) for t in run_trials]}
        level = chance_level(self.dataset, run_settings, list(run_trials)) if chance else None
        return EvaluationReport(dataset=str(self.dataset), records=records, config=config, chance=level)

    def _run_one(self, model: nn.Module, setting: dict, trial: int, cache: dict) -> TrialRecord:
        record = self.evaluate_split(model, self.dataset.test(**setting, trial=trial), cache)
        logger.debug(
            "%s trial %d: rank1 %.2f%% mAP %.2f%% mINP %.2f%%",
            record.setting, trial, 100 * record.rank1, 100 * record.mAP, 100 * record.mINP,
        )  # fmt: skip
        return record

    def training_callback(self, setting: int = 0) -> Callable[[nn.Module, int], dict[str, float]]:
        """An ``evaluate(model, trials) -> {"rank1", "mAP", "mINP", ...}`` function for the trainer.

        It runs the ``setting``-th configured setting on the first ``trials`` trials and returns the means.
        """
        if not 0 <= setting < len(self.settings):
            raise ValueError(f"setting must index the {len(self.settings)} configured settings, got {setting}.")

        def callback(model: nn.Module, trials: int) -> dict[str, float]:
            report = self.run(model, max(1, int(trials)), settings=[self.settings[setting]])
            stats = next(iter(report.summary().values()))
            return {m: s["mean"] for m, s in stats.items()}

        return callback
