"""Helpers of the CLI commands: configuration resolution for ``csdn train``."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from ..engine.config import TrainConfig, apply_overrides, config_from_dict, config_to_dict
from ..engine.presets import PRESETS, apply_ablation, get_preset
from ..engine.schedules import fit_schedules

__all__ = ["resolve_train_config"]

logger = logging.getLogger("csdn.cli")


def _read_config_file(path: str) -> dict:
    from ..engine.config import load_config

    # validate the file on its own first (unknown keys, types), then merge only the keys it sets
    load_config(path)
    suffix = Path(path).suffix.lower()
    text = Path(path).read_text(encoding="utf-8")
    if suffix == ".json":
        return json.loads(text)
    import yaml

    return yaml.safe_load(text) or {}


def resolve_train_config(args: argparse.Namespace) -> TrainConfig:
    """Build the run config: preset <- ``--config`` file <- ``--ablation`` <- ``--set`` <- ``--dataset``/``--root``.

    A stage's epochs set (file or ``--set``) below the preset's schedule scale it, unless the schedule keys are
    set too (:mod:`csdn.engine.schedules`).

    Raises:
        ValueError: for an unknown preset/ablation, a bad config file or a bad ``--set`` item.
    """
    preset = args.preset or args.dataset or "sysu"
    fallback = args.preset is None and preset not in PRESETS  # csv or a registered reader: no preset of its own
    if fallback:
        dataset_name, preset = preset, "sysu"
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; valid presets: {', '.join(PRESETS)}")
    data = config_to_dict(get_preset(preset))
    explicit = []
    if fallback:
        data["runtime"]["output_dir"] = f"runs/{args.dataset}"
    if args.config:
        for section, values in _read_config_file(args.config).items():
            data[section].update(values)
            explicit += [f"{section}.{key}" for key in values]
    cfg = config_from_dict(data)
    if args.ablation:
        cfg = apply_ablation(cfg, args.ablation)
    extra = [f"data.root={args.root}"]
    if args.dataset:
        extra.append(f"data.dataset={args.dataset}")
    cfg = apply_overrides(cfg, [*args.overrides, *extra], fit=False)
    # a stage's epochs set below its schedule: scaled against the preset's unless the schedule was set too
    explicit += [item.partition("=")[0].strip() for item in args.overrides]
    cfg = fit_schedules(get_preset(preset), cfg, explicit)
    if fallback:  # logged once the output folder is known (a config file or --set may have moved it)
        logger.info(
            "dataset %s has no preset: using the sysu hyper-parameters, output in %s",
            dataset_name, cfg.runtime.output_dir,
        )  # fmt: skip
    return cfg
