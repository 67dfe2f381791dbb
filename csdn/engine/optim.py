"""Optimisers and learning-rate schedules of the three CSDN stages, built from ``torch.optim``.

Schedules are epoch-based ``LambdaLR`` multipliers (``scheduler.step()`` once per epoch, after the epoch):

* stages 1-2: linear warm-up from ``warmup_lr_init`` to ``lr`` over ``warmup_epochs``, then a half cosine from
  ``lr`` (at epoch 0) down to ``lr_min`` at epoch ``epochs`` (the official timm ``CosineLRScheduler`` with
  ``warmup_prefix=False``, one cycle);
* stage 3: linear warm-up from ``warmup_factor * lr`` to ``lr`` over ``warmup_epochs``, times ``gamma`` at each
  milestone (the official ``WarmupMultiStepLR``).

The multipliers are small picklable callables, so ``scheduler.state_dict()`` holds only plain Python values.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

import torch
from torch import nn

from .config import ImageStageConfig, PromptStageConfig

__all__ = [
    "WarmupCosine",
    "WarmupMultiStep",
    "param_groups",
    "build_prompt_stage_optimizer",
    "build_image_stage_optimizer",
]


@dataclass
class WarmupCosine:
    """LR multiplier ``lr(epoch) / base_lr`` for the stage-1/2 warm-up + cosine schedule.

    Args:
        base_lr: the group's peak learning rate.
        epochs: length of the cosine period (the stage's epochs).
        warmup_epochs: epochs of linear warm-up.
        warmup_lr_init: absolute learning rate at epoch 0.
        lr_min: absolute floor reached at ``epochs``.
    """

    base_lr: float
    epochs: int
    warmup_epochs: int
    warmup_lr_init: float
    lr_min: float

    def __call__(self, epoch: int) -> float:
        if epoch < self.warmup_epochs:
            lr = self.warmup_lr_init + epoch * (self.base_lr - self.warmup_lr_init) / self.warmup_epochs
        elif epoch >= self.epochs:
            lr = self.lr_min
        else:
            lr = self.lr_min + 0.5 * (self.base_lr - self.lr_min) * (1 + math.cos(math.pi * epoch / self.epochs))
        return lr / self.base_lr


@dataclass
class WarmupMultiStep:
    """LR multiplier for the stage-3 linear warm-up + multi-step decay.

    Args:
        milestones: increasing epochs at which the rate is multiplied by ``gamma``.
        gamma: decay factor.
        warmup_epochs: epochs of linear warm-up.
        warmup_factor: multiplier at epoch 0.
    """

    milestones: tuple[int, ...]
    gamma: float
    warmup_epochs: int
    warmup_factor: float

    def __call__(self, epoch: int) -> float:
        warmup = 1.0
        if epoch < self.warmup_epochs:
            alpha = epoch / self.warmup_epochs
            warmup = self.warmup_factor * (1 - alpha) + alpha
        return warmup * self.gamma ** bisect_right(self.milestones, epoch)


def param_groups(
    groups: Mapping[str, Iterable[nn.Parameter]],
    lr: float,
    weight_decay: float,
    lr_mults: Mapping[str, float] | None = None,
) -> list[dict]:
    """Adam parameter groups from named parameter lists (e.g. ``CSDN.stage_parameters(stage)``).

    Args:
        groups: group name -> parameters; frozen parameters (``requires_grad=False``) are left out and empty
            groups dropped.
        lr: base learning rate.
        weight_decay: weight decay of every group.
        lr_mults: group name -> learning-rate multiplier (default 1), e.g. ``{"heads": 2.0}`` in stage 3.

    Returns:
        A list of dicts with ``params``, ``lr``, ``weight_decay`` and ``name`` (the group name).

    Raises:
        ValueError: if no parameter is trainable.
    """
    lr_mults = dict(lr_mults or {})
    unknown = sorted(set(lr_mults) - set(groups))
    if unknown:
        raise ValueError(f"lr_mults names unknown groups {unknown}; groups are {sorted(groups)}")
    out = []
    for name, params in groups.items():
        trainable = [p for p in params if p.requires_grad]
        if trainable:
            out.append({"params": trainable, "lr": lr * lr_mults.get(name, 1.0), "weight_decay": weight_decay})
            out[-1]["name"] = name
    if not out:
        raise ValueError("no trainable parameters for this stage: every parameter has requires_grad=False")
    return out


def build_prompt_stage_optimizer(
    groups: Mapping[str, Iterable[nn.Parameter]], cfg: PromptStageConfig
) -> tuple[torch.optim.Adam, torch.optim.lr_scheduler.LambdaLR]:
    """Adam + warm-up/cosine schedule for stage 1 (prompt learners) or stage 2 (integrator)."""
    optimizer = torch.optim.Adam(param_groups(groups, cfg.lr, cfg.weight_decay))
    lambdas: list[Callable[[int], float]] = [
        WarmupCosine(g["lr"], max(cfg.epochs, 1), cfg.warmup_epochs, cfg.warmup_lr_init, cfg.lr_min)
        for g in optimizer.param_groups
    ]
    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, lambdas)


def build_image_stage_optimizer(
    groups: Mapping[str, Iterable[nn.Parameter]], cfg: ImageStageConfig, fast_groups: Iterable[str] = ("heads",)
) -> tuple[torch.optim.Adam, torch.optim.lr_scheduler.LambdaLR]:
    """Adam + warm-up/multi-step schedule for stage 3; ``fast_groups`` (classifiers + GeM p) get ``fast_lr_mult``."""
    mults = {name: cfg.fast_lr_mult for name in fast_groups if name in groups}
    optimizer = torch.optim.Adam(param_groups(groups, cfg.lr, cfg.weight_decay, mults))
    rule = WarmupMultiStep(tuple(cfg.milestones), cfg.gamma, cfg.warmup_epochs, cfg.warmup_factor)
    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, rule)
