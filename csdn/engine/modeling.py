"""Build the CSDN model a configuration describes, and rebuild a trained one from its checkpoint.

A model from :func:`build_model` carries ``clip_arch``: the CLIP constructor arguments it was built with
(architecture inferred from the CLIP weights, plus the training input size and layer4 stride), as plain Python
values. The trainer stores it in every checkpoint, so :func:`load_trained_model` rebuilds the model skeleton
from it and needs no CLIP weights file: the checkpoint holds every trained tensor.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import torch

from ..clip import CLIP, available_models, download, infer_config, read_state_dict, tiny_state_dict
from ..clip.pretrained import model_url
from ..models import CSDN, GeM
from .checkpoint import load_checkpoint
from .config import TrainConfig, config_from_dict

__all__ = ["CLIP_ARCH_KEY", "build_model", "clip_architecture", "load_trained_model"]

#: Checkpoint entry holding the CLIP constructor arguments of the trained model (see :func:`clip_architecture`).
CLIP_ARCH_KEY = "clip_arch"


def _clip_state_dict(cfg: TrainConfig) -> Mapping[str, torch.Tensor]:
    """The CLIP weights ``model.clip`` names: a tiny random CLIP, an official name (downloaded) or a local file."""
    name = cfg.model.clip
    if name.startswith("tiny-"):
        arch = name.removeprefix("tiny-")
        if arch not in ("RN", "ViT"):
            raise ValueError(f"model.clip={name!r} is invalid: the tiny CLIPs are 'tiny-RN' and 'tiny-ViT'")
        return tiny_state_dict(arch, seed=cfg.model.clip_seed)
    if name in available_models():
        return read_state_dict(download(model_url(name)))
    if not os.path.isfile(name):
        raise FileNotFoundError(
            f"model.clip={name!r} is neither an available CLIP model {available_models()} nor an existing "
            "CLIP checkpoint file"
        )
    return read_state_dict(name)


def clip_architecture(
    state_dict: Mapping[str, torch.Tensor], image_size: tuple[int, int], last_stride: int
) -> dict[str, Any]:
    """CLIP constructor arguments for ``state_dict``'s architecture at input ``image_size`` (plain values only).

    Args:
        state_dict: OpenAI-keyed CLIP state dict (only its shapes are read).
        image_size: Training input ``(H, W)`` in pixels.
        last_stride: ResNet layer4 stride (not recorded for a ViT, which has none).

    Returns:
        Keyword arguments of :class:`csdn.clip.CLIP` (ints, lists, ``None``), checkpoint-safe.
    """
    arch = infer_config(state_dict)
    arch = {k: list(v) if isinstance(v, (tuple, torch.Size)) else v for k, v in arch.items()}
    arch["image_resolution"] = [int(image_size[0]), int(image_size[1])]
    if arch["vision_patch_size"] is None:
        arch["last_stride"] = int(last_stride)
    return arch


def _clip_skeleton(arch: Mapping[str, Any], path: str) -> CLIP:
    """A randomly initialised CLIP with the recorded architecture ``arch`` (its weights are loaded afterwards)."""
    kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in arch.items()}
    try:
        return CLIP(**kwargs)
    except (TypeError, ValueError) as error:
        raise ValueError(f"checkpoint {path!r} has an invalid {CLIP_ARCH_KEY!r} record {dict(arch)}: {error}") from None


def _assemble(cfg: TrainConfig, num_classes: int, clip: Any, device: str | torch.device) -> CSDN:
    """CSDN from a CLIP (state dict or module) with the options of ``cfg``, initialised from ``runtime.seed``."""
    m = cfg.model
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.runtime.seed)
        model = CSDN.from_clip(
            clip,
            num_classes,
            image_size=(cfg.data.height, cfg.data.width),
            last_stride=m.last_stride,
            stem_relu=m.stem,
            gem_p=m.gem_p,
            n_ctx=m.n_ctx,
            template=m.template,
            shared_prompts=m.variant == "clip_vireid",
            integrator=m.integrator if m.variant == "csdn" else "none",
            integrator_dropout=m.integrator_dropout,
            device=device,
            generator=torch.Generator().manual_seed(cfg.runtime.seed),
        )
    for module in model.modules():
        if isinstance(module, GeM):
            module.eps = m.gem_eps
    return model


def build_model(cfg: TrainConfig, num_classes: int, device: str | torch.device = "cpu") -> CSDN:
    """A freshly initialised :class:`~csdn.models.CSDN` for ``cfg`` (deterministic for ``cfg.runtime.seed``).

    ``model.clip`` names the CLIP weights (``csdn.clip.load`` name or path; ``"tiny-RN"``/``"tiny-ViT"`` build a
    random tiny CLIP without any download). Initialisation draws from a forked RNG seeded with
    ``runtime.seed``, so the global random state is left as it was. The model's ``clip_arch`` attribute records
    the CLIP architecture (:func:`clip_architecture`) for checkpoints.

    Raises:
        FileNotFoundError: if ``model.clip`` is neither an official name nor an existing file.
    """
    state = _clip_state_dict(cfg)
    model = _assemble(cfg, num_classes, state, device)
    model.clip_arch = clip_architecture(state, (cfg.data.height, cfg.data.width), cfg.model.last_stride)
    return model


def load_trained_model(
    path: str | os.PathLike, device: str | torch.device = "cpu"
) -> tuple[CSDN, TrainConfig, dict[str, Any]]:
    """Rebuild the model saved in a ``csdn train`` checkpoint (``final.pt`` or ``last.pt``), in eval mode.

    The skeleton comes from the checkpoint's CLIP architecture record, then every tensor is loaded strictly from
    the checkpoint, so the original CLIP weights are not needed. Checkpoints written before that record existed
    are rebuilt through ``model.clip`` of their config (which must then still be available).

    Returns:
        ``(model, config, checkpoint_dict)``.

    Raises:
        FileNotFoundError: if ``path`` is missing (or, for an old checkpoint, the CLIP file of its config).
        ValueError: if it is not a csdn checkpoint or its weights do not fit the model its config describes.
    """
    state = load_checkpoint(path)
    if "model" not in state or "config" not in state or "num_classes" not in state:
        raise ValueError(f"checkpoint {os.fspath(path)!r} has no model/config/num_classes entries")
    cfg = config_from_dict(state["config"])
    arch = state.get(CLIP_ARCH_KEY)
    if arch is None:  # checkpoints from before the architecture record
        model = build_model(cfg, int(state["num_classes"]), device)
    else:
        with torch.random.fork_rng(devices=[]):  # the skeleton's random weights must not consume global draws
            skeleton = _clip_skeleton(arch, os.fspath(path))
        model = _assemble(cfg, int(state["num_classes"]), skeleton, device)
        model.clip_arch = dict(arch)
    result = model.load_state_dict(state["model"], strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise ValueError(
            f"checkpoint {os.fspath(path)!r} does not fit the model its config describes: "
            f"missing {result.missing_keys[:5]}, unexpected {result.unexpected_keys[:5]}"
        )
    return model.eval(), cfg, state
