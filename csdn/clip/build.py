"""Build a ``CLIP`` from an OpenAI-keyed state dict, and tiny random state dicts for tests and demos."""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from typing import Any

import torch

from .model import CLIP, VisionTransformer
from .pos_embed import resize_pos_embed, square_grid, to_hw

logger = logging.getLogger(__name__)

# Scalars OpenAI's TorchScript archives carry, and derived buffers a traced csdn CLIP carries (TorchScript
# makes non-persistent buffers persistent); none of them are weights.
_NON_WEIGHT_KEYS = ("input_resolution", "context_length", "vocab_size", "transformer.attn_mask")

#: Tiny but real-architecture configurations (CLIP constructor arguments). Heads are always inferred
#: as ``width // 64`` (``32 * width // 64`` for the ResNet attention pool), as OpenAI's loader does.
TINY_CONFIGS: dict[str, dict[str, Any]] = {
    "RN": dict(
        embed_dim=32,
        image_resolution=224,  # 7x7 attention-pool grid, like RN50
        vision_layers=(1, 1, 1, 1),
        vision_width=8,  # layer4 has 256 channels, 4 attention-pool heads
        vision_patch_size=None,
        context_length=77,
        vocab_size=49408,
        transformer_width=64,  # 1 head
        transformer_layers=2,
    ),
    "ViT": dict(
        embed_dim=32,
        image_resolution=224,  # 14x14 patch grid, like ViT-B/16
        vision_layers=2,
        vision_width=64,  # 1 head
        vision_patch_size=16,
        context_length=77,
        vocab_size=49408,
        transformer_width=64,
        transformer_layers=2,
    ),
}


def _count_blocks(state_dict: Mapping[str, torch.Tensor], prefix: str) -> int:
    """Number of distinct block indices ``i`` among keys ``prefix + "i." + ...``."""
    return len({k[len(prefix) :].split(".")[0] for k in state_dict if k.startswith(prefix)})


def infer_config(state_dict: Mapping[str, torch.Tensor]) -> dict[str, Any]:
    """Infer CLIP constructor arguments from the tensor shapes of an OpenAI-keyed state dict.

    Args:
        state_dict: OpenAI CLIP state dict (``visual.*``, ``transformer.*``, ``token_embedding.weight``, ...).

    Returns:
        Keyword arguments for :class:`~csdn.clip.model.CLIP` (square native input resolution).

    Raises:
        ValueError: If a key the inference needs is missing.
    """
    needed = ["text_projection", "positional_embedding", "token_embedding.weight", "ln_final.weight"]
    needed.append("visual.conv1.weight" if "visual.proj" in state_dict else "visual.layer1.0.conv1.weight")
    missing = [k for k in needed if k not in state_dict]
    if missing:
        raise ValueError(f"state_dict is not an OpenAI CLIP state dict: missing keys {missing}")
    if "visual.proj" in state_dict:  # ViT
        patch = state_dict["visual.conv1.weight"].shape[-1]
        grid = square_grid(state_dict["visual.positional_embedding"].shape[0] - 1)
        vision: dict[str, Any] = dict(
            vision_width=state_dict["visual.conv1.weight"].shape[0],
            vision_layers=_count_blocks(state_dict, "visual.transformer.resblocks."),
            vision_patch_size=patch,
            image_resolution=patch * grid[0],
        )
    else:  # ModifiedResNet
        grid = square_grid(state_dict["visual.attnpool.positional_embedding"].shape[0] - 1)
        vision = dict(
            vision_width=state_dict["visual.layer1.0.conv1.weight"].shape[0],
            vision_layers=tuple(_count_blocks(state_dict, f"visual.layer{i}.") for i in range(1, 5)),
            vision_patch_size=None,
            image_resolution=32 * grid[0],
        )
    width = state_dict["ln_final.weight"].shape[0]
    return dict(
        embed_dim=state_dict["text_projection"].shape[1],
        context_length=state_dict["positional_embedding"].shape[0],
        vocab_size=state_dict["token_embedding.weight"].shape[0],
        transformer_width=width,
        transformer_heads=max(width // 64, 1),
        transformer_layers=_count_blocks(state_dict, "transformer.resblocks."),
        **vision,
    )


def _resize_vision_pos_embed(state: dict[str, torch.Tensor], model: CLIP) -> None:
    """Resize the vision positional embedding in ``state`` (in place) to ``model``'s grid."""
    visual = model.visual
    if isinstance(visual, VisionTransformer):
        key, grid = "visual.positional_embedding", visual.grid_size
    else:
        key, grid = "visual.attnpool.positional_embedding", visual.attnpool.grid_size
    old = state[key]
    if old.shape[0] != grid[0] * grid[1] + 1:
        logger.info("resizing %s from %d tokens to grid %s (bilinear)", key, old.shape[0] - 1, grid)
        state[key] = resize_pos_embed(old, grid)


def build_model(
    state_dict: Mapping[str, torch.Tensor],
    *,
    image_size: int | tuple[int, int] | None = None,
    last_stride: int | None = None,
) -> CLIP:
    """Build an fp32 ``CLIP`` in eval mode from an OpenAI-keyed state dict, inferring the architecture.

    Args:
        state_dict: OpenAI CLIP state dict (any float dtype; copied to fp32, the input is not modified).
            The non-weight entries ``input_resolution``, ``context_length`` and ``vocab_size`` of OpenAI's
            TorchScript archives, and the causal mask ``transformer.attn_mask``, are ignored.
        image_size: Vision input ``(H, W)`` in pixels (or an int). None keeps the checkpoint's square size.
            When the token grid changes, the vision positional embedding is resized bilinearly
            (:func:`~csdn.clip.pos_embed.resize_pos_embed`).
        last_stride: ResNet layer4 stride (2 as in CLIP, 1 doubles the final map: RN50 at 288x144 gives an
            18x9 map). Only valid for ResNet checkpoints; None means 2.

    Returns:
        The model on the CPU, fp32, in eval mode.

    Raises:
        ValueError: If the state dict is not an OpenAI CLIP one, has missing/unexpected keys, or the options
            do not fit the architecture.
    """
    state = {k: v.detach().to(torch.float32 if v.is_floating_point() else v.dtype, copy=True)
             for k, v in state_dict.items() if k not in _NON_WEIGHT_KEYS}  # fmt: skip
    config = infer_config(state)
    if image_size is not None:
        config["image_resolution"] = to_hw(image_size, "image_size")
    if last_stride is not None:
        if config["vision_patch_size"] is not None:
            raise ValueError(f"last_stride applies to ResNet checkpoints only; got last_stride={last_stride} for a ViT")
        config["last_stride"] = last_stride
    with torch.device("meta"):  # no memory, no random init: every tensor comes from the state dict
        model = CLIP(**config)
    _resize_vision_pos_embed(state, model)
    counters = [name for name, _ in model.named_buffers() if name.endswith("num_batches_tracked")]
    state.update({name: torch.zeros((), dtype=torch.long) for name in counters if name not in state})  # old ckpts
    result = model.load_state_dict(state, strict=False, assign=True)
    if result.missing_keys or result.unexpected_keys:
        raise ValueError(
            f"state_dict does not match the inferred CLIP architecture: missing keys {result.missing_keys[:10]}, "
            f"unexpected keys {result.unexpected_keys[:10]}"
        )
    model.transformer.attn_mask = model.build_attention_mask()
    return model.eval()


def _random_tensor(key: str, shape: torch.Size, generator: torch.Generator) -> torch.Tensor:
    """A plausible random value for parameter/buffer ``key`` (LN/BN weights near 1, small biases, ...)."""
    if key.endswith("num_batches_tracked"):
        return torch.zeros(shape, dtype=torch.long)
    if key == "logit_scale":
        return torch.full(shape, math.log(1 / 0.07))
    noise = torch.randn(shape, generator=generator)
    if key.endswith("running_var"):
        return 0.5 + torch.rand(shape, generator=generator)
    if key.endswith("running_mean"):
        return 0.1 * noise
    if ("ln" in key or "bn" in key or "downsample.1" in key) and key.endswith("weight"):
        return 1.0 + 0.1 * noise
    if key.endswith("bias"):
        return 0.02 * noise
    if "embedding" in key:
        return 0.02 * noise if key.startswith("token") else 0.1 * noise
    if key in ("text_projection", "visual.proj") or key.endswith("weight"):
        fan_in = shape[0] if key in ("text_projection", "visual.proj") else math.prod(shape[1:])
        return noise / math.sqrt(fan_in)
    return 0.1 * noise


def tiny_state_dict(arch: str = "RN", seed: int = 0, **overrides: Any) -> dict[str, torch.Tensor]:
    """Random OpenAI-keyed state dict of a tiny but real-architecture CLIP, for tests and demos.

    Args:
        arch: ``"RN"`` (ModifiedResNet) or ``"ViT"``; see :data:`TINY_CONFIGS`.
        seed: Seed of the private ``torch.Generator`` (the global RNG is not touched).
        **overrides: Replacements for :data:`TINY_CONFIGS` fields (e.g. ``embed_dim=64``). Widths should be
            multiples of 64 (32 for the ResNet ``vision_width`` times 32), since heads are inferred as
            ``width // 64``.

    Returns:
        State dict (fp32, CPU) that :func:`build_model` and OpenAI-compatible loaders accept.

    Raises:
        ValueError: For an unknown ``arch`` or override name.
    """
    if arch not in TINY_CONFIGS:
        raise ValueError(f"Unknown value {arch!r} for argument arch. Valid values are {sorted(TINY_CONFIGS)}")
    unknown = sorted(set(overrides) - set(TINY_CONFIGS[arch]))
    if unknown:
        raise ValueError(f"Unknown tiny_state_dict overrides {unknown}. Valid names are {sorted(TINY_CONFIGS[arch])}")
    config = {**TINY_CONFIGS[arch], **overrides}
    width = config["transformer_width"]
    config["transformer_heads"] = max(width // 64, 1)
    with torch.device("meta"):
        shapes = {k: v.shape for k, v in CLIP(**config).state_dict().items()}
    generator = torch.Generator().manual_seed(seed)
    return {k: _random_tensor(k, shape, generator) for k, shape in sorted(shapes.items())}
