"""A training configuration's model: build it fresh, or rebuild a trained one with its configuration.

Thin wrappers over :func:`csdn.models.factory.csdn_from_config` and :func:`csdn.models.checkpoint.load_csdn`
(where the model is built and where the checkpoint schema lives) that speak :class:`TrainConfig`.
"""

from __future__ import annotations

import os
from typing import Any

import torch

from ..models import CSDN
from ..models.checkpoint import load_csdn
from ..models.factory import csdn_from_config
from .config import TrainConfig, config_from_dict

__all__ = ["build_csdn", "load_trained_model"]


def build_csdn(
    cfg: TrainConfig, num_classes: int, device: str | torch.device = "cpu", *, trust_code: bool = False
) -> CSDN:
    """A freshly initialised :class:`~csdn.models.CSDN` for ``cfg`` (deterministic for ``cfg.runtime.seed``).

    ``model.clip`` names the CLIP weights (``csdn.clip.load`` name or path; ``"tiny-RN"``/``"tiny-ViT"`` build a
    random tiny CLIP without any download). Initialisation draws from a forked RNG seeded with
    ``runtime.seed``, so the global random state is left as it was. The model's ``clip_arch`` records the CLIP
    architecture for checkpoints. A CLIP file is read as data only unless ``trust_code`` (``--trust-code``) lets
    a TorchScript archive that the data-only reader refuses run its own code.

    Raises:
        FileNotFoundError: if ``model.clip`` is neither an official name nor an existing file.
    """
    size = (cfg.data.height, cfg.data.width)
    return csdn_from_config(cfg.model, num_classes, size, cfg.runtime.seed, device, trust_code=trust_code)


def load_trained_model(
    path: str | os.PathLike,
    device: str | torch.device = "cpu",
    *,
    clip: str | os.PathLike | None = None,
    trust_code: bool = False,
) -> tuple[CSDN, TrainConfig, dict[str, Any]]:
    """Rebuild the model saved in a ``csdn train`` checkpoint (``final.pt`` or ``last.pt``), in eval mode.

    See :func:`csdn.models.checkpoint.load_csdn` (also for ``clip``, the CLIP weights of a checkpoint without a CLIP
    architecture record, and ``trust_code``); this also parses the run's configuration.

    Returns:
        ``(model, config, checkpoint_dict)``.

    Raises:
        FileNotFoundError: if ``path`` (or ``clip``) is missing.
        ValueError: if it is not a csdn checkpoint or its weights do not fit the model its config describes.
    """
    model, state = load_csdn(path, device, clip=clip, trust_code=trust_code)
    return model, config_from_dict(state["config"]), state
