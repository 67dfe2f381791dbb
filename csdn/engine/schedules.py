"""Learning-rate schedules that fit their stage: what happens when a stage's epochs change under its schedule.

A stage's schedule is its ``warmup_epochs`` (stages 1-3) and ``milestones`` (stage 3); it *fits* ``epochs`` when
the warm-up ends before the last epoch (``warmup_epochs < epochs`` or no warm-up) and every milestone is an epoch
the stage reaches (``milestone < epochs``). A schedule that does not fit is never kept silently:

* **Scaled** when it is unambiguous: the epochs were set (``--set``, a config file, :func:`apply_overrides`)
  below the starting configuration's, the schedule keys were *not* set, and the starting schedule fits its own
  epochs. Then each of those keys is scaled by ``new epochs / old epochs`` (rounded half up), and one line is
  logged, e.g. ``stage3.epochs 120 -> 3: scaled stage3.warmup_epochs 10 -> 0, stage3.milestones (40, 70) ->
  (1, 2)``. Keys that were set are kept as given.
* **Refused** (``ValueError`` naming the keys to set) when the scaled schedule would still not fit or would merge
  or zero its milestones (e.g. ``stage3.epochs=1`` leaves no epoch for a decay).
* **Warned about** when the keys were set explicitly but do not fit (you asked for it), or the configuration was
  built directly: the trainer logs a warning per stage when it starts (:func:`schedule_problems`).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable
from typing import Any

from .config import TrainConfig

__all__ = ["fit_schedules", "schedule_problems"]

logger = logging.getLogger(__name__)

_STAGES = ("stage1", "stage2", "stage3")


def _keys(name: str) -> tuple[str, ...]:
    return ("warmup_epochs", "milestones") if name == "stage3" else ("warmup_epochs",)


def _fits(key: str, value: Any, epochs: int) -> bool:
    if epochs == 0:
        return True  # the stage does not train
    if key == "warmup_epochs":
        return value == 0 or value < epochs
    return all(m < epochs for m in value)


def _scale(value: Any, factor: float) -> Any:
    if isinstance(value, tuple):
        return tuple(int(m * factor + 0.5) for m in value)
    return int(value * factor + 0.5)


def schedule_problems(cfg: TrainConfig, stages: Iterable[int] = (1, 2, 3)) -> list[str]:
    """One message per schedule key of the given stages that does not fit its stage's epochs (empty if all fit)."""
    problems = []
    for index in stages:
        name = f"stage{index}"
        section = getattr(cfg, name)
        for key in _keys(name):
            value = getattr(section, key)
            if not _fits(key, value, section.epochs):
                effect = "the learning rate never decays" if key == "milestones" else "the warm-up never ends"
                problems.append(
                    f"{name}.{key}={value!r} does not fit {name}.epochs={section.epochs}: {effect} "
                    f"(set {name}.{key} below {section.epochs})"
                )
    return problems


def fit_schedules(base: TrainConfig, cfg: TrainConfig, explicit: Iterable[str]) -> TrainConfig:
    """Scale the schedules of the stages whose epochs were set below ``base``'s (the rule in the module docstring).

    Args:
        base: The starting configuration (a preset), whose schedules are scaled.
        cfg: The configuration after the user's settings.
        explicit: Dotted keys the user set (``"stage3.epochs"``, ``"stage3.milestones"``, ...).

    Returns:
        ``cfg``, with the unset schedule keys of such stages scaled (one INFO line per stage).

    Raises:
        ValueError: When a scaled schedule still cannot fit, naming the keys to set.
    """
    explicit = set(explicit)
    for name in _STAGES:
        old, new = getattr(base, name), getattr(cfg, name)
        implicit = [key for key in _keys(name) if f"{name}.{key}" not in explicit]
        if (
            f"{name}.epochs" not in explicit
            or not 0 < new.epochs < old.epochs
            or all(_fits(key, getattr(new, key), new.epochs) for key in implicit)
            or not all(_fits(key, getattr(old, key), old.epochs) for key in _keys(name))
        ):
            continue
        factor = new.epochs / old.epochs
        scaled = {key: _scale(getattr(old, key), factor) for key in implicit}
        milestones = scaled.get("milestones", ())
        ok = all(_fits(key, value, new.epochs) for key, value in scaled.items())
        ok = ok and all(m >= 1 for m in milestones) and len(set(milestones)) == len(milestones)
        if not ok:
            given = ", ".join(f"{name}.{key}={getattr(old, key)!r}" for key in implicit)
            hints = {"milestones": f"{name}.milestones= for no decay", "warmup_epochs": f"{name}.warmup_epochs=0"}
            raise ValueError(
                f"{name}.epochs={new.epochs} is too short for {given} (set for {old.epochs} epochs) and they cannot be "
                f"scaled proportionally: set {' and '.join(f'{name}.{key}' for key in implicit)} for "
                f"{new.epochs} epochs (e.g. {', '.join(hints[key] for key in implicit)})"
            )
        changes = ", ".join(f"{name}.{key} {getattr(old, key)!r} -> {scaled[key]!r}" for key in implicit)
        logger.info("%s.epochs %d -> %d: scaled %s", name, old.epochs, new.epochs, changes)
        cfg = dataclasses.replace(cfg, **{name: dataclasses.replace(new, **scaled)})
    return cfg
