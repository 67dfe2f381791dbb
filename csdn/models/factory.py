"""Build a CSDN from its ``model`` configuration: the CLIP weights it names, the ablation's components.

:class:`ModelConfig` is the ``model`` section of a training configuration (``csdn.engine.TrainConfig.model``);
it lives here because rebuilding a trained model for inference needs it and must not need the training engine.
:func:`csdn_from_config` is the one place a configuration turns into a model; its CLIP architecture record
(:func:`clip_architecture`) is what a checkpoint stores so the model can be rebuilt without the CLIP file.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, Literal

import torch

from ..clip import CLIP, infer_config, tiny_state_dict
from .csdn import CSDN, read_clip_weights

__all__ = [
    "ModelConfig",
    "ABLATIONS",
    "Ablation",
    "resolve_ablation",
    "model_config_from_dict",
    "clip_state_dict",
    "clip_architecture",
    "csdn_from_config",
]


@dataclass
class ModelConfig:
    """What to build: the CLIP backbone and the CSDN components on top of it."""

    clip: str = "RN50"  # CLIP name (csdn.clip.available_models()), local checkpoint path, or "tiny-RN"/"tiny-ViT"
    clip_seed: int = 0  # seed of the random tiny CLIP (only used when clip is "tiny-RN"/"tiny-ViT")
    last_stride: int = 1  # stride of the ResNet layer4; 1 gives an 18x9 map at 288x144 (official)
    stem: Literal["official", "clip"] = "official"  # "official": one ReLU after bn3; "clip": ReLU after each bn
    n_ctx: int = 4  # learnable context tokens per identity in each prompt
    template: str = "A photo of a X X X X person."  # prompt template with n_ctx "X" placeholders
    variant: Literal["csdn", "clip_vireid", "baseline"] = "csdn"  # ablation: full model / shared prompts / no text
    integrator: Literal["attention", "add", "none"] = "attention"  # text fusion: SII attention, t_vis+t_ir, none
    integrator_dropout: float = 0.1  # dropout inside the semantic integrator's q/k/v projections
    gem_p: float = 3.0  # initial (learnable) exponent of GeM pooling
    gem_eps: float = 1e-6  # clamp value inside GeM pooling


ABLATIONS: dict[str, dict[str, str]] = {
    "csdn": {"variant": "csdn", "integrator": "attention"},  # the full model
    "csdn_add": {"variant": "csdn", "integrator": "add"},  # fused text = t_vis + t_ir, nothing to learn in stage 2
    "csdn_none": {"variant": "csdn", "integrator": "none"},  # each modality aligned with its own prompts
    "clip_vireid": {"variant": "clip_vireid", "integrator": "none"},  # one shared prompt learner, no fusion
    "baseline": {"variant": "baseline", "integrator": "none"},  # image side only: ID + WRT + MSEL
}
"""The paper's ablations by name: the ``model`` settings each one switches (see :func:`resolve_ablation`)."""


@dataclass(frozen=True)
class Ablation:
    """What a ``model`` configuration's ``variant``/``integrator`` mean for the model and its training.

    Attributes:
        stages: The training stages that run, in order (1: prompts, 2: integrator, 3: image side).
        shared_prompts: One prompt learner for both modalities.
        integrator: The text fusion the model is built with (``"none"``: no fusion).
        use_text: Stage 3 scores against identity text features (the HSE terms).
    """

    stages: tuple[int, ...]
    shared_prompts: bool
    integrator: str
    use_text: bool


def resolve_ablation(model: ModelConfig) -> Ablation:
    """The one interpretation of ``model.variant``/``model.integrator``: stages and model settings.

    The baseline has no text side (stage 3 only); only the learnable ``attention`` integrator has a stage 2.
    """
    use_text = model.variant != "baseline"
    integrator = model.integrator if model.variant == "csdn" else "none"
    stages = (1, 2, 3) if integrator == "attention" else (1, 3) if use_text else (3,)
    return Ablation(stages, model.variant == "clip_vireid", integrator, use_text)


def model_config_from_dict(data: Mapping[str, Any]) -> ModelConfig:
    """The :class:`ModelConfig` of a saved configuration's ``model`` section (plain values, as checkpoints hold)."""
    known = {f.name for f in fields(ModelConfig)}
    return ModelConfig(**{k: v for k, v in data.items() if k in known})


def clip_state_dict(model: ModelConfig, *, trust_code: bool = False) -> Mapping[str, torch.Tensor]:
    """The CLIP weights ``model.clip`` names: a tiny random CLIP, an official name (downloaded) or a local file.

    Files are read as data only unless ``trust_code`` (see :func:`csdn.models.csdn.read_clip_weights`).

    Raises:
        ValueError: for an unknown tiny CLIP name.
        FileNotFoundError: if the name is neither an official model nor an existing file.
    """
    name = model.clip
    if name.startswith("tiny-"):
        arch = name.removeprefix("tiny-")
        if arch not in ("RN", "ViT"):
            raise ValueError(f"model.clip={name!r} is invalid: the tiny CLIPs are 'tiny-RN' and 'tiny-ViT'")
        return tiny_state_dict(arch, seed=model.clip_seed)
    return read_clip_weights(name, argument="model.clip", trust_code=trust_code)


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


def clip_skeleton(arch: Mapping[str, Any], where: str) -> CLIP:
    """A CLIP with the recorded architecture ``arch`` whose weights are loaded afterwards (global RNG untouched).

    Raises:
        ValueError: naming ``where`` (the checkpoint) if the record is not valid CLIP arguments.
    """
    kwargs: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in arch.items()}
    try:
        with torch.random.fork_rng(devices=[]):  # the skeleton's random weights must not consume global draws
            return CLIP(**kwargs)
    except (TypeError, ValueError) as error:
        raise ValueError(f"checkpoint {where!r} has an invalid 'clip_arch' record {dict(arch)}: {error}") from None


def csdn_from_config(
    model: ModelConfig,
    num_classes: int,
    image_size: tuple[int, int],
    seed: int,
    device: str | torch.device = "cpu",
    *,
    clip: CLIP | None = None,
    clip_arch: Mapping[str, Any] | None = None,
    trust_code: bool = False,
) -> CSDN:
    """A freshly initialised CSDN for ``model`` (deterministic for ``seed``; the global RNG is left as it was).

    Args:
        model: What to build (the ablation's ``variant``/``integrator`` choose the text components).
        num_classes: Training identities ``C``.
        image_size: Training input ``(H, W)``.
        seed: Seed of the initialisation (prompt contexts, heads, integrator).
        device: Device of the returned model.
        clip: A CLIP skeleton to build from (rebuilding a checkpoint, ``clip_arch`` given); default: the weights
            ``model.clip`` names.
        clip_arch: The architecture record of ``clip`` (default: computed from the CLIP weights).
        trust_code: Let a CLIP TorchScript archive that the data-only reader refuses run its own code.

    Returns:
        The model, whose ``clip_arch`` is its CLIP architecture record.
    """
    if clip is None:
        state = clip_state_dict(model, trust_code=trust_code)
        clip_arch = clip_architecture(state, image_size, model.last_stride)
        source: Any = state
    else:
        source = clip
    ablation = resolve_ablation(model)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return CSDN.from_clip(
            source,
            num_classes,
            image_size=image_size,
            last_stride=model.last_stride,
            stem_relu=model.stem,
            gem_p=model.gem_p,
            gem_eps=model.gem_eps,
            n_ctx=model.n_ctx,
            template=model.template,
            shared_prompts=ablation.shared_prompts,
            integrator=ablation.integrator,
            integrator_dropout=model.integrator_dropout,
            device=device,
            generator=torch.Generator().manual_seed(seed),
            clip_arch=clip_arch,
        )
