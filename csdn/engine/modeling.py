"""Build the CSDN model a configuration describes, and rebuild a trained one from its checkpoint."""

from __future__ import annotations

import os
from typing import Any

import torch

from ..clip import tiny_state_dict
from ..models import CSDN, GeM
from .checkpoint import load_checkpoint
from .config import TrainConfig, config_from_dict

__all__ = ["build_model", "load_trained_model"]


def _clip_source(cfg: TrainConfig) -> Any:
    name = cfg.model.clip
    if name.startswith("tiny-"):
        arch = name.removeprefix("tiny-")
        if arch not in ("RN", "ViT"):
            raise ValueError(f"model.clip={name!r} is invalid: the tiny CLIPs are 'tiny-RN' and 'tiny-ViT'")
        return tiny_state_dict(arch, seed=cfg.model.clip_seed)
    return name


def build_model(cfg: TrainConfig, num_classes: int, device: str | torch.device = "cpu") -> CSDN:
    """A freshly initialised :class:`~csdn.models.CSDN` for ``cfg`` (deterministic for ``cfg.runtime.seed``).

    ``model.clip`` names the CLIP weights (``csdn.clip.load`` name or path; ``"tiny-RN"``/``"tiny-ViT"`` build a
    random tiny CLIP without any download). Initialisation draws from a forked RNG seeded with
    ``runtime.seed``, so the global random state is left as it was.
    """
    m = cfg.model
    shared = m.variant == "clip_vireid"
    integrator = m.integrator if m.variant == "csdn" else "none"
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.runtime.seed)
        model = CSDN.from_clip(
            _clip_source(cfg),
            num_classes,
            image_size=(cfg.data.height, cfg.data.width),
            last_stride=m.last_stride,
            stem_relu=m.stem,
            gem_p=m.gem_p,
            n_ctx=m.n_ctx,
            template=m.template,
            shared_prompts=shared,
            integrator=integrator,
            integrator_dropout=m.integrator_dropout,
            device=device,
            generator=torch.Generator().manual_seed(cfg.runtime.seed),
        )
    for module in model.modules():
        if isinstance(module, GeM):
            module.eps = m.gem_eps
    return model


def load_trained_model(
    path: str | os.PathLike, device: str | torch.device = "cpu"
) -> tuple[CSDN, TrainConfig, dict[str, Any]]:
    """Rebuild the model saved in a ``csdn train`` checkpoint (``final.pt`` or ``last.pt``), in eval mode.

    Returns:
        ``(model, config, checkpoint_dict)``.

    Raises:
        FileNotFoundError: if ``path`` is missing.
        ValueError: if it is not a csdn checkpoint or its weights do not fit the model its config describes.
    """
    state = load_checkpoint(path)
    if "model" not in state or "config" not in state or "num_classes" not in state:
        raise ValueError(f"checkpoint {os.fspath(path)!r} has no model/config/num_classes entries")
    cfg = config_from_dict(state["config"])
    model = build_model(cfg, int(state["num_classes"]), device)
    result = model.load_state_dict(state["model"], strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise ValueError(
            f"checkpoint {os.fspath(path)!r} does not fit the model its config describes: "
            f"missing {result.missing_keys[:5]}, unexpected {result.unexpected_keys[:5]}"
        )
    return model.eval(), cfg, state
