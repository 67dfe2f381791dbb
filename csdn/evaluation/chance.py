"""Chance level of a protocol: what random rankings score under the same settings, trials and rules.

A tiny run's rank-1 of 15 % means nothing without it (with 8 gallery identities, chance rank-1 is about 12.5 %).
The estimate is a permutation one: ``draws`` uniformly random distance matrices per setting, spread over the
evaluated trials and scored by :func:`csdn.evaluation.evaluate` itself, so every removal rule and CMC variant is
the headline one. Every results table of csdn (``csdn train``/``eval``/``demo``, ``ablation.md``, the HTML
report) prints it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from .metrics import evaluate

__all__ = ["ChanceLevel", "chance_level"]


@dataclass
class ChanceLevel:
    """Rank-1 and mAP of random rankings per setting (fractions), and how they were estimated.

    Attributes:
        values: ``{setting name: {"rank1": ..., "mAP": ...}}``.
        draws: Random distance matrices per setting (spread evenly over the trials).
        method: How the values were obtained, in words (shown next to every table).
    """

    values: dict[str, dict[str, float]]
    draws: int
    method: str = field(default="")

    def __post_init__(self) -> None:
        if not self.method:
            self.method = f"permutation estimate: mean over {self.draws} random rankings under the same protocol"

    def lines(self) -> list[str]:
        """One line per setting, in percent: what the CLI prints under a results table."""
        return [
            f"chance level of {name} ({self.method}): rank-1 {100 * v['rank1']:.2f}%, mAP {100 * v['mAP']:.2f}%"
            for name, v in self.values.items()
        ]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: ``{"method", "draws", "settings": values}`` (fractions)."""
        return {"method": self.method, "draws": self.draws, "settings": self.values}

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> ChanceLevel | None:
        """Inverse of :meth:`to_dict` (``None`` stays ``None``: older ``eval.json`` files have no chance level)."""
        if not data:
            return None
        return cls(values=dict(data["settings"]), draws=int(data["draws"]), method=str(data["method"]))


def chance_level(
    dataset: Any, settings: Sequence[dict], trials: Sequence[int], draws: int = 20, seed: int = 0
) -> ChanceLevel:
    """Rank-1 / mAP of random rankings under ``dataset``'s protocol (mean over trials and random matrices).

    Args:
        dataset: A reader (``dataset.test(**setting, trial=t)`` gives each split).
        settings: The evaluated settings.
        trials: The evaluated trials.
        draws: Random ``(Q, G)`` matrices per setting, split evenly over ``trials`` (at least one per trial).
        seed: Seed of the random matrices (the estimate is reproducible).

    Returns:
        A :class:`ChanceLevel`.
    """
    if not trials:
        raise ValueError("trials must not be empty")
    generator = torch.Generator().manual_seed(seed)
    per_trial = max(1, draws // len(trials))
    values: dict[str, dict[str, float]] = {}
    for setting in settings:
        rank1, mean_ap = [], []
        for trial in trials:
            split = dataset.test(**setting, trial=trial)
            ids = ([s.pid for s in split.query], [s.pid for s in split.gallery])
            cams = ([s.cam for s in split.query], [s.cam for s in split.gallery])
            for _ in range(per_trial):
                dist = torch.rand(len(split.query), len(split.gallery), generator=generator)
                # rank-1 and mAP only: a rank-1 CMC (no "CMC clipped" line per random draw on a small gallery)
                result = evaluate(dist, *ids, *cams, protocol=split.protocol, max_rank=1)
                rank1.append(result.rank(1))
                mean_ap.append(result.mAP)
        values[split.name] = {"rank1": float(np.mean(rank1)), "mAP": float(np.mean(mean_ap))}
    return ChanceLevel(values, draws=per_trial * len(trials))
