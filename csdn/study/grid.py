"""What a study trains: variants x seeds x dataset splits, each run an ordinary ``csdn train`` run folder.

* A :class:`Variant` is a name plus what it changes: a paper ablation (:data:`csdn.models.factory.ABLATIONS`)
  and/or ``key=value`` config overrides.
* Seeds set ``runtime.seed``. Splits are RegDB's training splits (``data.trial``; each run is evaluated on its own
  split in both search directions); SYSU-MM01 and LLCM have one training set, and every run is evaluated on the
  gallery trials the study names (default all ten).
* :func:`plan_runs` resolves every run's configuration (preset <- study overrides <- variant <- seed/split/run
  folder) into a :class:`RunSpec`; :func:`check_plan` compares it with the plan a study folder already records, so
  a continued study never mixes runs of different settings.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..engine.config import TrainConfig, apply_overrides, config_to_dict
from ..engine.presets import PRESETS, apply_ablation, get_preset
from ..engine.schedules import fit_schedules

__all__ = ["RUNTIME_FREE", "RunSpec", "Variant", "check_plan", "flat_config", "parse_numbers", "plan_runs"]

#: Config fields that may differ between an interrupted study and its continuation (execution only).
RUNTIME_FREE = ("runtime.device", "runtime.progress", "runtime.log_every", "runtime.log_lines", "runtime.tensorboard")
#: Config fields a study sets itself for every run.
STUDY_KEYS = ("runtime.seed", "data.trial", "runtime.output_dir", "model.variant", "model.integrator")


@dataclass(frozen=True)
class Variant:
    """One row of a study: a name, an optional paper ablation and config overrides.

    Args:
        name: Shown in tables and used in run folder names (letters, digits, ``-``, ``_``, ``.``).
        ablation: A :data:`csdn.models.factory.ABLATIONS` name (``baseline``, ``csdn_add``, ...), or ``None``.
        overrides: ``key=value`` config overrides of this variant, e.g. ``("stage3.lr=1e-3",)``.
    """

    name: str
    ablation: str | None = None
    overrides: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.name or not all(c.isalnum() or c in "-_." for c in self.name):
            raise ValueError(f"variant name {self.name!r} is invalid: use letters, digits, '-', '_' or '.'")
        object.__setattr__(self, "overrides", tuple(self.overrides))


@dataclass
class RunSpec:
    """One training run of a study (picklable: it travels to worker processes and Slurm jobs).

    Attributes:
        name: ``<variant>/seed<s>[/trial<t>]`` (the run folder under the study folder).
        variant, seed, split: The cell and replicate (``split``: RegDB training split, else ``None``).
        config: The resolved configuration (nested dict, as a run's ``config.yaml``).
        trials: Gallery trials to evaluate (``None``: all the dataset's).
    """

    name: str
    variant: str
    seed: int
    split: int | None
    config: dict[str, Any] = field(repr=False)
    trials: list[int] | None = None

    @property
    def run_dir(self) -> Path:
        """The run folder (``runtime.output_dir``)."""
        return Path(self.config["runtime"]["output_dir"])


def parse_numbers(spec: str | int | Sequence[int], what: str) -> list[int]:
    """``"1-10"``, ``"1,3,5"``, ``"2-4,8"``, an int or a list of ints -> sorted unique ints.

    Raises:
        ValueError: naming ``what`` (the option) and the expected syntax.
    """
    if isinstance(spec, int):
        return [spec]
    if not isinstance(spec, str):
        return sorted({int(x) for x in spec})
    out: set[int] = set()
    try:
        for part in (p.strip() for p in spec.split(",") if p.strip()):
            low, sep, high = part.partition("-")
            out.update(range(int(low), int(high) + 1) if sep else [int(low)])
    except ValueError:
        raise ValueError(f"{what} {spec!r} is invalid: expected numbers and ranges, e.g. 1-10 or 1,3,5") from None
    if not out:
        raise ValueError(f"{what} {spec!r} is invalid: it names no number; expected e.g. 1-10 or 1,3,5")
    return sorted(out)


def flat_config(config: dict[str, Any], skip: Sequence[str] = ()) -> dict[str, Any]:
    """``{"section.key": value}`` of a nested config dict, without the keys in ``skip``."""
    flat = {f"{s}.{k}": v for s, values in config.items() for k, v in values.items()}
    return {k: v for k, v in flat.items() if k not in skip}


def _resolve(
    preset: str, dataset: str, root: str, variant: Variant, extra: list[str], overrides: Sequence[str]
) -> TrainConfig:
    """Preset <- study overrides <- variant (ablation, overrides) <- run keys; schedules fitted as ``csdn train``."""
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; valid presets: {', '.join(PRESETS)}")
    cfg = get_preset(preset)
    if variant.ablation:
        cfg = apply_ablation(cfg, variant.ablation)
    items = [*overrides, *variant.overrides]
    cfg = apply_overrides(cfg, [*items, *extra, f"data.root={root}", f"data.dataset={dataset}"], fit=False)
    return fit_schedules(get_preset(preset), cfg, [item.partition("=")[0].strip() for item in items])


def plan_runs(
    out: str | Path,
    root: str | Path,
    *,
    dataset: str,
    preset: str | None = None,
    variants: Sequence[Variant] = (Variant("csdn"),),
    seeds: Sequence[int] = (1,),
    splits: Sequence[int] | None = None,
    trials: Sequence[int] | None = None,
    overrides: Sequence[str] = (),
    layout: str | None = None,
) -> list[RunSpec]:
    """Every run of the grid, configuration resolved (see the module docstring).

    Args:
        out: The study folder; run folders go below it.
        root: Dataset folder.
        dataset: ``regdb``, ``sysu``, ``llcm``, ``csv`` or a registered name.
        preset: Starting configuration (default: the dataset's preset, else ``sysu``'s hyper-parameters).
        variants: The study's rows.
        seeds: Training seeds.
        splits: RegDB training splits (default ``[1]``); must be ``None`` for other datasets.
        trials: Gallery trials each run is evaluated on (SYSU-MM01/LLCM; default all).
        overrides: ``key=value`` overrides shared by every run.
        layout: Run folder name under ``out`` (``str.format`` fields ``variant``, ``seed``, ``split``); default
            ``{variant}/seed{seed}/trial{split}`` for RegDB, ``{variant}/seed{seed}`` otherwise.

    Raises:
        ValueError: on duplicate variant names, splits for a dataset without training splits, a study key in
            ``overrides``, or an invalid configuration.
    """
    names = [v.name for v in variants]
    if len(set(names)) != len(names) or not names:
        raise ValueError(f"variant names must be unique and at least one, got {names}")
    for item in [*overrides, *(o for v in variants for o in v.overrides)]:
        if item.partition("=")[0].strip() in STUDY_KEYS:
            raise ValueError(f"override {item!r} is not allowed: the study sets {item.partition('=')[0].strip()} "
                             "itself (use variants, seeds and splits)")  # fmt: skip
    if dataset != "regdb" and splits is not None:
        raise ValueError(f"dataset {dataset} has one training set: splits are RegDB's; use trials for its galleries")
    if not seeds:
        raise ValueError("a study needs at least one seed")
    preset = preset or (dataset if dataset in PRESETS else "sysu")
    layout = layout or ("{variant}/seed{seed}/trial{split}" if dataset == "regdb" else "{variant}/seed{seed}")
    runs = []
    for variant in variants:
        for split in list(splits or [1]) if dataset == "regdb" else [None]:
            for seed in seeds:
                name = layout.format(variant=variant.name, seed=seed, split=split)
                extra = [f"runtime.seed={seed}", f"runtime.output_dir={Path(out) / name}"]
                extra += [f"data.trial={split}"] if split is not None else []
                cfg = _resolve(preset, dataset, str(root), variant, extra, overrides)
                runs.append(RunSpec(name, variant.name, seed, split, config_to_dict(cfg),
                                    None if trials is None else list(trials)))  # fmt: skip
    if len({r.name for r in runs}) != len(runs):
        raise ValueError(f"layout {layout!r} gives two runs the same folder: include every axis that varies")
    return runs


def _differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    return [f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)]


def check_plan(path: Path, runs: Sequence[RunSpec]) -> None:
    """Refuse to continue a study whose recorded runs were planned with another configuration.

    Runs the file does not list yet (e.g. more seeds) are welcome; a recorded run whose resolved configuration
    differs (execution-only keys aside) is refused with the first differences.
    """
    if not path.is_file():
        return
    recorded = {r["name"]: r["config"] for r in json.loads(path.read_text(encoding="utf-8")).get("runs", [])}
    for run in runs:
        if run.name in recorded:
            diffs = _differences(flat_config(recorded[run.name], RUNTIME_FREE), flat_config(run.config, RUNTIME_FREE))
            if diffs:
                raise ValueError(
                    f"{path.parent} holds a study run with other settings ({run.name}: {'; '.join(diffs[:4])}); "
                    "use the same options or another output folder"
                )


def plan_record(runs: Sequence[RunSpec], options: dict[str, Any]) -> dict[str, Any]:
    """The JSON-ready plan: the study's options and every run's resolved configuration."""
    return {"options": options, "runs": [dataclasses.asdict(r) for r in runs]}
