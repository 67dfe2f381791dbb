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
from collections.abc import Callable, Iterable
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
    "is_fast_parameter",
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


def is_fast_parameter(name: str) -> bool:
    """Official rule for the 2x learning rate: classifier weights, plus (SPEC §1) the GeM exponent ``p``."""
    parts = name.split(".")
    return any("classifier" in part for part in parts) or (parts[-1] == "p" and any("gem" in x.lower() for x in parts))


def param_groups(
    named_parameters: Iterable[tuple[str, nn.Parameter]],
    lr: float,
    weight_decay: float,
    fast_lr_mult: float = 1.0,
    is_fast: Callable[[str], bool] = is_fast_parameter,
) -> list[dict]:
    """Adam parameter groups over the trainable parameters: a base group and, if any, a ``fast_lr_mult`` group.

    Frozen parameters (``requires_grad=False``) are left out. Each group carries ``name`` ("base"/"fast") and
    ``param_names`` for logging.

    Raises:
        ValueError: if no parameter is trainable.
    """
    base: list[tuple[str, nn.Parameter]] = []
    fast: list[tuple[str, nn.Parameter]] = []
    for name, param in named_parameters:
        if param.requires_grad:
            (fast if fast_lr_mult != 1.0 and is_fast(name) else base).append((name, param))
    groups = []
    for label, members, group_lr in (("base", base, lr), ("fast", fast, lr * fast_lr_mult)):
        if members:
            groups.append(
                {
                    "params": [p for _, p in members],
                    "param_names": [n for n, _ in members],
                    "lr": group_lr,
                    "weight_decay": weight_decay,
                    "name": label,
                }
            )
    if not groups:
        raise ValueError("no trainable parameters for this stage: every parameter has requires_grad=False")
    return groups


def build_prompt_stage_optimizer(
    named_parameters: Iterable[tuple[str, nn.Parameter]], cfg: PromptStageConfig
) -> tuple[torch.optim.Adam, torch.optim.lr_scheduler.LambdaLR]:
    """Adam + warm-up/cosine schedule for stage 1 (prompt learners) or stage 2 (integrator)."""
    optimizer = torch.optim.Adam(param_groups(named_parameters, cfg.lr, cfg.weight_decay))
    lambdas = [
        WarmupCosine(g["lr"], max(cfg.epochs, 1), cfg.warmup_epochs, cfg.warmup_lr_init, cfg.lr_min)
        for g in optimizer.param_groups
    ]
    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, lambdas)


def build_image_stage_optimizer(
    named_parameters: Iterable[tuple[str, nn.Parameter]], cfg: ImageStageConfig
) -> tuple[torch.optim.Adam, torch.optim.lr_scheduler.LambdaLR]:
    """Adam (2x lr for classifiers and GeM p) + warm-up/multi-step schedule for stage 3."""
    optimizer = torch.optim.Adam(param_groups(named_parameters, cfg.lr, cfg.weight_decay, cfg.fast_lr_mult))
    rule = WarmupMultiStep(tuple(cfg.milestones), cfg.gamma, cfg.warmup_epochs, cfg.warmup_factor)
    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, rule)
