"""Load checkpoints of the official CSDN code (github.com/nengdong96/CSDN, ``network/model.py``).

The official training script saves ``nn.DataParallel(Model).state_dict()``, so keys start with ``module.``.
Its ``Model`` names map to ours as follows (``i`` a stem position in its ``nn.Sequential``):

==========================================  ===============================================================
official                                    csdn
==========================================  ===============================================================
``image_encoder1.{0..5}.*``                 ``image_encoder.stems.visible.{conv1,bn1,conv2,bn2,conv3,bn3}.*``
``image_encoder2.{0..5}.*``                 ``image_encoder.stems.infrared.{...}.*``
``image_encoder.{0..3}.*``                  ``image_encoder.layer{1..4}.*``
``attnpool.*``                              ``image_encoder.attnpool.*``
``classifier.GEM.p``                        ``image_encoder.gem.p``
``classifier.BN.*`` / ``.classifier.*``     ``head_global.bn.*`` / ``head_global.classifier.*``
``classifier2.BN.*`` / ``.classifier.*``    ``head_proj.bn.*`` / ``head_proj.classifier.*``
``prompt_learner1.{cls_ctx,token_*}``       ``prompt_learners.visible.{ctx,token_*}``
``prompt_learner2.{cls_ctx,token_*}``       ``prompt_learners.infrared.{ctx,token_*}``
``text_encoder.*``                          ``text_encoder.*``
``attention_fusion.embedding_{q,k,v}.0.*``  ``integrator.{q,k,v}_proj.0.*``
``attention_fusion.embedding_common.0.*``   ``integrator.out_proj.*``
==========================================  ===============================================================

Official checkpoints do not contain the HSE text bank (the official script recomputes it before stage 3),
so ``hse.*`` is reported as "not in official checkpoints" and left as is; call ``model.refresh_text_bank()`` if
the HSE head is needed.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

import csdn.clip as clip_pkg

from .._untrusted import check_tensor_sizes
from .csdn import CSDN

logger = logging.getLogger(__name__)

__all__ = [
    "OfficialLoadReport",
    "convert_official_state_dict",
    "is_official_state_dict",
    "load_official_checkpoint",
    "csdn_from_official",
]

_STEM = ("conv1", "bn1", "conv2", "bn2", "conv3", "bn3")
_STEMS = (("image_encoder1", "visible"), ("image_encoder2", "infrared"))
#: (official key pattern, csdn replacement), applied in order; the first full match wins.
_RULES: list[tuple[re.Pattern, str]] = [
    *((re.compile(rf"{old}\.{i}\.(.+)"), rf"image_encoder.stems.{new}.{name}.\1")
      for old, new in _STEMS for i, name in enumerate(_STEM)),
    *((re.compile(rf"image_encoder\.{i}\.(.+)"), rf"image_encoder.layer{i + 1}.\1") for i in range(4)),
    (re.compile(r"attnpool\.(.+)"), r"image_encoder.attnpool.\1"),
    (re.compile(r"classifier\.GEM\.p"), "image_encoder.gem.p"),
    (re.compile(r"classifier\.BN\.(.+)"), r"head_global.bn.\1"),
    (re.compile(r"classifier\.classifier\.(.+)"), r"head_global.classifier.\1"),
    (re.compile(r"classifier2\.BN\.(.+)"), r"head_proj.bn.\1"),
    (re.compile(r"classifier2\.classifier\.(.+)"), r"head_proj.classifier.\1"),
    (re.compile(r"prompt_learner1\.cls_ctx"), "prompt_learners.visible.ctx"),
    (re.compile(r"prompt_learner1\.(token_prefix|token_suffix)"), r"prompt_learners.visible.\1"),
    (re.compile(r"prompt_learner2\.cls_ctx"), "prompt_learners.infrared.ctx"),
    (re.compile(r"prompt_learner2\.(token_prefix|token_suffix)"), r"prompt_learners.infrared.\1"),
    (re.compile(r"text_encoder\.(.+)"), r"text_encoder.\1"),
    (re.compile(r"attention_fusion\.embedding_([qkv])\.0\.(weight|bias)"), r"integrator.\1_proj.0.\2"),
    (re.compile(r"attention_fusion\.embedding_common\.0\.(weight|bias)"), r"integrator.out_proj.\1"),
]  # fmt: skip
#: Our keys an official checkpoint must provide (what tells it apart from any other state dict).
_REQUIRED = (
    "head_global.classifier.weight",
    "image_encoder.attnpool.positional_embedding",
    "text_encoder.ln_final.weight",
)
#: Our keys that official checkpoints never contain.
_NOT_IN_OFFICIAL = ("hse.text_bank", "hse.text_bank_ready")


@dataclass
class OfficialLoadReport:
    """What happened when loading an official checkpoint.

    Attributes:
        loaded: Our keys filled from the checkpoint.
        missing: Our keys the checkpoint does not provide (excluding ``not_in_official``).
        unexpected: Checkpoint keys (official names) with no counterpart in the model.
        mismatched: ``"key: checkpoint shape vs model shape"`` for keys present in both with different shapes.
        not_in_official: Our keys official checkpoints never have (the HSE text bank), left unchanged.
    """

    loaded: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    mismatched: list[str] = field(default_factory=list)
    not_in_official: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when every model key was loaded and every checkpoint key was used."""
        return not (self.missing or self.unexpected or self.mismatched)

    def __str__(self) -> str:
        lines = [f"loaded {len(self.loaded)} tensors from the official checkpoint"]
        for name in ("missing", "unexpected", "mismatched", "not_in_official"):
            keys = getattr(self, name)
            if keys:
                shown = ", ".join(keys[:20]) + (f", ... ({len(keys) - 20} more)" if len(keys) > 20 else "")
                lines.append(f"{name} ({len(keys)}): {shown}")
        return "\n".join(lines)


def _official_to_ours(key: str) -> str | None:
    for pattern, replacement in _RULES:
        match = pattern.fullmatch(key)
        if match:
            return match.expand(replacement)
    return None


def convert_official_state_dict(
    state_dict: Mapping[str, torch.Tensor],
) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Rename an official CSDN state dict to csdn names.

    Args:
        state_dict: Official keys, with or without the ``module.`` prefix of ``nn.DataParallel``.

    Returns:
        ``(converted, unknown)``: the renamed tensors and the official keys no rule matches.
    """
    converted, unknown = {}, []
    for key, value in state_dict.items():
        bare = key[len("module.") :] if key.startswith("module.") else key
        ours = _official_to_ours(bare)
        if ours is None:
            unknown.append(key)
        else:
            converted[ours] = value
    return converted, unknown


def is_official_state_dict(state_dict: Mapping[str, Any]) -> bool:
    """Whether ``state_dict`` (or its ``"state_dict"`` entry) holds the tensors of an official CSDN checkpoint."""
    if isinstance(state_dict.get("state_dict"), Mapping):
        state_dict = state_dict["state_dict"]
    converted, _ = convert_official_state_dict(state_dict)
    return all(key in converted for key in _REQUIRED)


def _read_checkpoint(checkpoint: str | os.PathLike | Mapping[str, torch.Tensor]) -> Mapping[str, torch.Tensor]:
    if isinstance(checkpoint, Mapping):
        return checkpoint
    if not os.path.isfile(checkpoint):
        raise FileNotFoundError(f"official CSDN checkpoint not found: {os.fspath(checkpoint)!r}")
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    check_tensor_sizes(state, checkpoint)
    if isinstance(state, Mapping) and "state_dict" in state and isinstance(state["state_dict"], Mapping):
        state = state["state_dict"]
    if not isinstance(state, Mapping):
        raise ValueError(f"{os.fspath(checkpoint)!r} does not hold a state dict (got {type(state).__name__})")
    return state


def load_official_checkpoint(
    model: CSDN, checkpoint: str | os.PathLike | Mapping[str, torch.Tensor], strict: bool = True
) -> OfficialLoadReport:
    """Load an official CSDN checkpoint into ``model`` (built with the official ResNet layout).

    Args:
        model: A :class:`~csdn.models.CSDN` with per-modality prompt learners and the attention integrator,
            built for the checkpoint's input size (e.g. ``CSDN.from_clip("RN50", 395)`` for SYSU-MM01).
        checkpoint: Path of a ``model_<epoch>.pth`` written by the official code, or its state dict.
        strict: Raise unless every model key (other than the HSE bank) is loaded and every checkpoint key used.

    Returns:
        :class:`OfficialLoadReport`; it is also logged.

    Raises:
        FileNotFoundError: If the path does not exist.
        ValueError: With the report, if ``strict`` and keys are missing, unexpected or of the wrong shape.
    """
    converted, unknown = convert_official_state_dict(_read_checkpoint(checkpoint))
    own = model.state_dict()
    report = OfficialLoadReport(unexpected=unknown, not_in_official=[k for k in _NOT_IN_OFFICIAL if k in own])
    to_load = {}
    for key, value in converted.items():
        if key not in own:
            report.unexpected.append(key)
        elif tuple(value.shape) != tuple(own[key].shape):
            report.mismatched.append(f"{key}: {tuple(value.shape)} vs {tuple(own[key].shape)}")
        else:
            to_load[key] = value
    for key in own:
        if key in to_load or key in report.not_in_official or any(m.startswith(key + ":") for m in report.mismatched):
            continue
        if key.endswith("num_batches_tracked"):  # very old checkpoints lack BatchNorm counters
            continue
        report.missing.append(key)
    report.loaded = sorted(to_load)
    if strict and not report.ok:
        raise ValueError(f"official checkpoint does not match the model (strict=True):\n{report}")
    model.load_state_dict(to_load, strict=False)
    (logger.info if report.ok else logger.warning)("%s", report)
    return report


def csdn_from_official(
    checkpoint: str | os.PathLike | Mapping[str, torch.Tensor],
    image_size: int | tuple[int, int] = (288, 144),
    device: str | torch.device = "cpu",
    vocab_size: int = 49408,
) -> tuple[CSDN, OfficialLoadReport]:
    """Build a CSDN from an official checkpoint alone (no CLIP weights needed).

    The checkpoint holds every tensor the model needs (the prompt learners keep their token embeddings as
    buffers), so the architecture is inferred from it and CLIP's token embedding, which CSDN does not keep,
    is a placeholder.

    Args:
        checkpoint: Official ``model_<epoch>.pth`` path or state dict.
        image_size: Input ``(H, W)`` the checkpoint was trained at (the attention-pool grid must match).
        device: Device of the returned model.
        vocab_size: CLIP vocabulary size of the placeholder token embedding.

    Returns:
        ``(model in eval mode, report)``.
    """
    state = _read_checkpoint(checkpoint)
    converted, _ = convert_official_state_dict(state)
    absent = [k for k in _REQUIRED if k not in converted]
    if absent:
        raise ValueError(f"not an official CSDN checkpoint: no tensors for {absent}")
    clip_state = {}
    for key, value in converted.items():
        if key.startswith("image_encoder.stems.visible."):
            clip_state["visual." + key[len("image_encoder.stems.visible.") :]] = value
        elif key.startswith("image_encoder.layer") or key.startswith("image_encoder.attnpool."):
            clip_state["visual." + key[len("image_encoder.") :]] = value
        elif key.startswith("text_encoder."):
            clip_state[key[len("text_encoder.") :]] = value
    channels = clip_state["visual.attnpool.positional_embedding"].shape[1]
    clip_state["visual.attnpool.positional_embedding"] = torch.zeros(50, channels)  # placeholder 7x7 grid
    clip_state["token_embedding.weight"] = torch.zeros(vocab_size, clip_state["ln_final.weight"].shape[0])
    clip_state["logit_scale"] = torch.zeros(())
    clip_model = clip_pkg.build_model(clip_state, image_size=image_size, last_stride=1)
    num_classes = converted["head_global.classifier.weight"].shape[0]
    model = CSDN.from_clip(clip_model, num_classes)
    report = load_official_checkpoint(model, state)
    return model.to(device).eval(), report
