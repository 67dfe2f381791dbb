"""Named configurations: dataset presets with the official settings, the CPU demo, and the paper's ablations.

Dataset presets (``sysu``, ``regdb``, ``llcm``) carry the official CSDN hyper-parameters (the authors' script
uses the same values for every dataset; only the reader and protocol change) and run the official procedure that
produced the paper's numbers: the three ``quirks.*`` switches (:data:`OFFICIAL_QUIRKS`) are on. The ``-clean``
presets (``sysu-clean``, ``regdb-clean``, ``llcm-clean``) are the same runs with the cleaned-up procedure (every
quirk off); that preset name is the one switch between the two. ``demo`` is a tiny setting that trains all three
stages on a synthetic SYSU-MM01-layout dataset in a few minutes on a laptop CPU (cleaned-up procedure).

Ablations (applied on top of any preset) rerun the paper's ablation study; their table and the one function that
interprets them (stages, model settings) live in :mod:`csdn.models.factory` (``ABLATIONS``, ``resolve_ablation``):

========================  =====================================================================================
``csdn``                  the full model (integrator ``attention``); nothing changes
``csdn_add``              fused text = visible + infrared prompt features (no learnable integrator, no stage 2)
``csdn_none``             no fusion: each modality is aligned with its own prompts (no stage 2)
``clip_vireid``           one prompt learner shared by both modalities, no integrator (no stage 2)
``baseline``              image side only: ID + WRT + MSEL, no text, no stages 1-2
========================  =====================================================================================
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from ..models.factory import ABLATIONS
from .config import (
    DataConfig,
    ImageStageConfig,
    ModelConfig,
    PromptStageConfig,
    QuirksConfig,
    RuntimeConfig,
    TrainConfig,
)

__all__ = ["PRESETS", "ABLATIONS", "OFFICIAL_QUIRKS", "CLEAN_SUFFIX", "get_preset", "apply_ablation"]

#: The official procedure (the authors' code, which produced the paper's numbers); see docs/reproduction.md.
OFFICIAL_QUIRKS = QuirksConfig(bn_train_extraction=True, dropout_text_bank=True, sampled_feature_bank=True)
#: Appended to a dataset preset's name: the same run with the cleaned-up procedure (every quirk off).
CLEAN_SUFFIX = "-clean"


def _dataset_preset(dataset: str, official: bool) -> Callable[[], TrainConfig]:
    name = dataset if official else dataset + CLEAN_SUFFIX

    def build() -> TrainConfig:
        return TrainConfig(
            data=DataConfig(dataset=dataset),
            quirks=dataclasses.replace(OFFICIAL_QUIRKS) if official else QuirksConfig(),
            runtime=RuntimeConfig(output_dir=f"runs/{name}"),
        )

    return build


def _demo() -> TrainConfig:
    return TrainConfig(
        model=ModelConfig(clip="tiny-RN", clip_seed=0),
        data=DataConfig(dataset="sysu", height=64, width=32, pad=4, num_workers=0, extract_batch_size=256),
        stage1=PromptStageConfig(epochs=6, batch_size=32, lr=3e-3, warmup_epochs=1, warmup_lr_init=1e-4),
        stage2=PromptStageConfig(epochs=4, batch_size=64, lr=3e-3, warmup_epochs=1, warmup_lr_init=1e-4),
        stage3=ImageStageConfig(
            epochs=20, num_ids=8, num_pos=4, lr=3e-3, warmup_epochs=2, warmup_factor=0.1, milestones=(15,)
        ),
        runtime=RuntimeConfig(output_dir="runs/demo", log_every=20),
    )


PRESETS: dict[str, Callable[[], TrainConfig]] = {
    **{dataset: _dataset_preset(dataset, official=True) for dataset in ("sysu", "regdb", "llcm")},
    **{dataset + CLEAN_SUFFIX: _dataset_preset(dataset, official=False) for dataset in ("sysu", "regdb", "llcm")},
    "demo": _demo,
}


def get_preset(name: str) -> TrainConfig:
    """Return a fresh :class:`TrainConfig` for preset ``name``.

    Raises:
        ValueError: for an unknown name, listing the valid ones.
    """
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; valid presets: {', '.join(PRESETS)}")
    return PRESETS[name]()


def apply_ablation(cfg: TrainConfig, name: str) -> TrainConfig:
    """Return a copy of ``cfg`` switched to ablation ``name`` (see the module docstring).

    Raises:
        ValueError: for an unknown name, listing the valid ones.
    """
    if name not in ABLATIONS:
        raise ValueError(f"unknown ablation {name!r}; valid ablations: {', '.join(ABLATIONS)}")
    changes: dict[str, Any] = dict(ABLATIONS[name])  # field -> value; ModelConfig checks each in __post_init__
    return dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, **changes))
