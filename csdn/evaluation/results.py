"""The results of an evaluation run: per-trial records, per-setting means, the table, the JSON.

What the numbers say is spelled out with them: the dataset by name and folder, the statistic and the trials
evaluated in words, a standard deviation only where the trials really differ (one trial, or trials that drew the
same query and gallery, print "—" and say why), the chance level next to the table (when computed), and TPR at
fixed FPRs (:mod:`csdn.evaluation.roc`) in the JSON.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, TypedDict

import numpy as np

from .._io import atomic_write_text
from .chance import ChanceLevel
from .roc import FPR_TARGETS, fpr_key

__all__ = ["EvaluationReport", "TrialRecord", "trial_list"]


class MetricSummary(TypedDict):
    """One metric of one setting over trials (:meth:`EvaluationReport.summary`): fractions; ``std`` is ``None``
    where the trials do not differ."""

    mean: float
    std: float | None
    trials: int


HEADLINE = ("rank1", "rank5", "rank10", "rank20", "mAP", "mINP")
_COLUMNS = ("rank-1", "rank-5", "rank-10", "rank-20", "mAP", "mINP")  # table headers of HEADLINE
#: A table cell without a standard deviation (see :meth:`EvaluationReport.no_std_reason`).
NO_STD = "—"


@dataclass
class TrialRecord:
    """Metrics of one setting on one trial (fractions in [0, 1]; ``cmc`` up to ``max_rank``).

    ``split_digest`` identifies the trial's query and gallery draw (equal digests: the same images); ``tpr_at_fpr``
    holds the ROC operating points (``{"1e-4": TPR or None, ...}``) of its genuine/impostor pair distances.
    """

    setting: str
    trial: int
    protocol: str
    query_modality: str
    gallery_modality: str
    num_query: int
    num_gallery: int
    num_valid: int
    rank1: float
    rank5: float
    rank10: float
    rank20: float
    mAP: float
    mINP: float
    cmc: list[float] = field(repr=False)
    split_digest: str = field(default="", repr=False)
    tpr_at_fpr: dict[str, float | None] = field(default_factory=dict, repr=False)
    #: Per valid query, in query order: AP and whether the first match is at rank 1 (0/1); for paired statistics.
    query_ap: list[float] = field(default_factory=list, repr=False)
    query_rank1: list[int] = field(default_factory=list, repr=False)
    #: Positions (0-based, in ``split.query``) of the queries without a true match (left out of the lists above).
    invalid_queries: list[int] = field(default_factory=list, repr=False)


def trial_list(trials: Sequence[int]) -> str:
    """``[0, 1, ..., 9]`` -> ``"0-9"``; other lists comma-separated (``"1"``, ``"0, 2, 5"``)."""
    values = sorted(set(trials))
    if len(values) > 2 and values == list(range(values[0], values[-1] + 1)):
        return f"{values[0]}-{values[-1]}"
    return ", ".join(map(str, values))


@dataclass
class EvaluationReport:
    """Per-trial records of an evaluation run, with per-setting mean and standard deviation.

    Attributes:
        dataset: The dataset by name and folder (``"SYSU-MM01 at data/SYSU-MM01"``).
        records: One :class:`TrialRecord` per (setting, trial), in run order.
        config: The evaluator's options (flip, metric, re-ranking, the trials evaluated, ...).
        chance: The chance level of the same settings and trials, when computed (``run(..., chance=True)``).
    """

    dataset: str
    records: list[TrialRecord]
    config: dict[str, Any] = field(default_factory=dict)
    chance: ChanceLevel | None = None

    def settings(self) -> list[str]:
        """Setting names in run order."""
        return list(dict.fromkeys(r.setting for r in self.records))

    def trials(self) -> list[int]:
        """The trials evaluated, sorted."""
        return sorted({r.trial for r in self.records})

    def _rows(self, setting: str) -> list[TrialRecord]:
        return [r for r in self.records if r.setting == setting]

    def no_std_reason(self, setting: str) -> str | None:
        """Why ``setting`` has no standard deviation over trials, or ``None`` when its trials really differ."""
        rows = self._rows(setting)
        if len(rows) == 1:
            available = len(self.config.get("protocol_trials", ()))
            if available > 1:
                return f"only 1 of the protocol's {available} trials evaluated"
            return "a single trial: the dataset's protocol has one (fixed query and gallery lists)"
        digests = {r.split_digest for r in rows}
        if "" not in digests and len(digests) == 1:
            return f"its {len(rows)} trials drew the same query and gallery images"
        return None

    def summary(self) -> dict[str, dict[str, MetricSummary]]:
        """``{setting: {metric: {"mean", "std", "trials"}}}`` over trials (fractions; population std).

        ``std`` is ``None`` where the trials do not differ (:meth:`no_std_reason`): a spread of zero there would
        not be a measurement.
        """
        out: dict[str, dict[str, MetricSummary]] = {}
        for name in self.settings():
            rows, spread = self._rows(name), self.no_std_reason(name) is None
            out[name] = {
                m: {
                    "mean": float(np.mean([getattr(r, m) for r in rows])),
                    "std": float(np.std([getattr(r, m) for r in rows])) if spread else None,
                    "trials": len(rows),
                }
                for m in HEADLINE
            }
        return out

    def operating_points(self) -> dict[str, dict[str, dict[str, float | None]]]:
        """``{setting: {"1e-4": {"mean", "std"}, ...}}``: TPR at each FPR target over trials (fractions).

        ``mean`` is ``None`` where a trial could not measure that FPR (too few impostor pairs); ``std`` as in
        :meth:`summary`.
        """
        out: dict[str, dict[str, dict[str, float | None]]] = {}
        for name in self.settings():
            rows, spread = self._rows(name), self.no_std_reason(name) is None
            out[name] = {}
            for key in (fpr_key(f) for f in FPR_TARGETS):
                values = [r.tpr_at_fpr.get(key) for r in rows]
                measured = [v for v in values if v is not None]
                known = len(measured) == len(values)
                out[name][key] = {
                    "mean": float(np.mean(measured)) if known else None,
                    "std": float(np.std(measured)) if known and spread else None,
                }
        return out

    @property
    def reranked(self) -> bool:
        """Whether the distances were k-reciprocal re-ranked (``config["rerank"]``)."""
        return bool(self.config.get("rerank", False))

    def caption(self, unit: str = "percent") -> str:
        """What the table shows, in words: dataset, metrics, unit, statistic, trials, re-ranking."""
        trials = self.trials()
        stat = (
            f"mean ± standard deviation over trials {trial_list(trials)}" if len(trials) > 1 else f"trial {trials[0]}"
        )
        text = f"{self.dataset}: CMC rank-k accuracy, mAP and mINP in {unit}, {stat}"
        if self.reranked:
            c = self.config
            text += f"; re-ranked (k-reciprocal, k1={c.get('k1')}, k2={c.get('k2')}, lambda={c.get('lambda_value')})"
        return text

    @property
    def label(self) -> str:
        """The caption (:meth:`caption`) in percent."""
        return self.caption()

    def notes(self) -> list[str]:
        """The lines under the table: why a setting has no standard deviation, and the chance level."""
        lines = []
        for name in self.settings():
            reason = self.no_std_reason(name)
            if reason is not None:
                lines.append(f"{NO_STD} {name}: no standard deviation, {reason}")
        return lines + (self.chance.lines() if self.chance is not None else [])

    def to_table(self) -> str:
        """One row per setting, one column per metric: ``mean ± std`` over trials, in percent.

        The first line is the caption (:meth:`caption`: dataset, what the numbers are, re-ranking); the notes
        (:meth:`notes`) follow the rows.
        """
        header = f"{'setting':<36} {'trials':>6} " + " ".join(f"{m:>15}" for m in _COLUMNS)
        lines = [self.caption(), header, "-" * len(header)]
        for name, stats in self.summary().items():
            cells = " ".join(
                f"{100 * s['mean']:7.2f} ± " + (f"{100 * s['std']:5.2f}" if s["std"] is not None else f"{NO_STD:>5}")
                for s in stats.values()
            )
            lines.append(f"{name:<36} {stats['mAP']['trials']:>6} {cells}")
        return "\n".join([*lines, *self.notes()])

    def to_trial_table(self) -> str:
        """One row per (setting, trial): rank-1, mAP and mINP in percent (what ``csdn eval -v`` prints)."""
        lines = [f"{'setting':<36} {'trial':>5} {'rank-1':>7} {'mAP':>7} {'mINP':>7}"]
        for r in self.records:
            lines.append(f"{r.setting:<36} {r.trial:>5} {100 * r.rank1:7.2f} {100 * r.mAP:7.2f} {100 * r.mINP:7.2f}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        settings = ", ".join(self.settings())
        return (
            f"EvaluationReport(dataset={self.dataset!r}, settings=[{settings}], records={len(self.records)}, "
            f"reranked={self.reranked})"
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict: dataset, caption, config, summary, TPR@FPR, chance level (fractions), every record."""
        return {
            "dataset": self.dataset,
            "reranked": self.reranked,
            "label": self.caption("fractions in [0, 1]"),
            "config": self.config,
            "summary": self.summary(),
            "no_std": {name: reason for name in self.settings() if (reason := self.no_std_reason(name))},
            "tpr_at_fpr": self.operating_points(),
            "chance": None if self.chance is None else self.chance.to_dict(),
            "records": [asdict(r) for r in self.records],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EvaluationReport:
        """Inverse of :meth:`to_dict` (reads older files too)."""
        records = [TrialRecord(**r) for r in data["records"]]
        return cls(data["dataset"], records, data.get("config", {}), ChanceLevel.from_dict(data.get("chance")))

    def to_json(self, path: str | os.PathLike) -> None:
        """Write :meth:`to_dict` as JSON atomically (temporary file in the same folder, then ``os.replace``)."""
        atomic_write_text(path, json.dumps(self.to_dict(), indent=2) + "\n")
