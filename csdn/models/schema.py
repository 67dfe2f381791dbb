"""Validation of a model record (``model``, ``config``, ``num_classes``, ``clip_arch``) before any model is built.

A checkpoint's metadata says how large a model to build; its tensors say how large the model it holds is. Both
come from the file, so :func:`check_model_record` makes them agree before anything is allocated: every entry has
the type it must have, ``num_classes`` and ``n_ctx`` match the tensors that hold them, and every field of the CLIP
architecture record matches the shape of the tensor it determines (the CLIP skeleton is first built on the
``meta`` device, which allocates nothing). A mismatch is one ``ValueError`` naming the file, the entry and both
values; :func:`check_shapes` compares a built model's tensors with the file's before they are loaded.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import MISSING, fields
from typing import Any, NoReturn

import torch

from .._untrusted import printable, quoted
from ..clip import CLIP
from .factory import ModelConfig

__all__ = ["check_model_record", "check_shapes", "TOKENIZER_VOCAB", "MAX_IMAGE_SIDE"]

TOKENIZER_VOCAB = 49408  # token ids of csdn.clip.tokenize (CLIP's BPE vocabulary): the text side's vocab_size
MAX_IMAGE_SIDE = 8192  # largest data.height/width a checkpoint may declare (the positional embedding grows with it)

_ARCH_INTS = ("embed_dim", "context_length", "vocab_size", "transformer_width", "transformer_heads",
              "transformer_layers", "vision_width")  # fmt: skip
_ARCH_KEYS = {*_ARCH_INTS, "vision_layers", "vision_patch_size", "image_resolution", "last_stride"}
_STEM = re.compile(r"^visual\.(conv[123]|bn[123])\.")
_NOT_KEPT = ("token_embedding.weight", "logit_scale")  # CLIP tensors CSDN does not keep


def _fail(where: str, message: str) -> NoReturn:
    raise ValueError(f"checkpoint {quoted(where)} {message}; it was not written by this csdn or is damaged")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _entry(where: str, container: Mapping, key: str, kind: type | tuple, name: str) -> Any:
    if key not in container:
        _fail(where, f"has no {name} entry")
    value = container[key]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        expected = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        _fail(where, f"has a {type(value).__name__} as {name}, expected a {expected}")
    return value


def check_model_record(state: Mapping[str, Any], where: str) -> None:
    """Raise a one-line ``ValueError`` naming ``where`` unless ``state`` is a model record the code can build.

    Checks types and required keys (``model`` a dict of tensors; ``config`` a dict with ``data.height``/``width``,
    ``runtime.seed`` and a well-typed ``model`` section; ``num_classes`` a positive int; ``clip_arch`` absent or
    a dict of CLIP arguments), then sizes against the tensors (see the module docstring).
    """
    tensors = _entry(where, state, "model", dict, "'model'")
    bad = next((k for k, v in tensors.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)), None)
    if bad is not None:
        _fail(where, f"has a non-tensor entry {quoted(bad, 80)} in 'model'")
    config = _entry(where, state, "config", dict, "'config'")
    data = _entry(where, config, "data", dict, "'config.data'")
    for side in ("height", "width"):
        value = _entry(where, data, side, int, f"'config.data.{side}'")
        if not 1 <= value <= MAX_IMAGE_SIDE:
            _fail(where, f"declares config.data.{side}={value}, outside 1..{MAX_IMAGE_SIDE}")
    _entry(where, _entry(where, config, "runtime", dict, "'config.runtime'"), "seed", int, "'config.runtime.seed'")
    _check_model_section(config.get("model", {}), where)
    num_classes = _entry(where, state, "num_classes", int, "'num_classes'")
    _check_counts(tensors, num_classes, config.get("model", {}), where)
    arch = state.get("clip_arch")
    if arch is not None:
        _check_arch(_entry(where, state, "clip_arch", dict, "'clip_arch'"), tensors, data, where)


def _check_model_section(section: Any, where: str) -> None:
    if not isinstance(section, dict):
        _fail(where, f"has a {type(section).__name__} as 'config.model', expected a dict")
    for field in fields(ModelConfig):
        if field.name in section and field.default is not MISSING:
            value, default = section[field.name], field.default
            ok = isinstance(value, type(default)) and not (isinstance(value, bool) and not isinstance(default, bool))
            ok = ok or (isinstance(default, float) and _is_int(value))
            if not ok:
                _fail(where, f"has config.model.{field.name}={quoted(value, 80)}, expected a {type(default).__name__}")


def _check_counts(tensors: Mapping[str, torch.Tensor], num_classes: int, section: Mapping, where: str) -> None:
    """``num_classes`` and ``n_ctx`` against the tensors sized by them (the classifier, the prompt contexts)."""
    classifier = tensors.get("head_global.classifier.weight")
    if classifier is None or classifier.dim() != 2:
        _fail(where, "has no 2-d tensor head_global.classifier.weight in 'model'")
    if num_classes != classifier.shape[0]:
        _fail(where, f"declares num_classes={num_classes} but its classifier has {classifier.shape[0]} rows")
    n_ctx = section.get("n_ctx", ModelConfig.n_ctx)
    for key, ctx in tensors.items():
        if key.startswith("prompt_learners.") and key.endswith(".ctx") and tuple(ctx.shape[:2]) != (num_classes, n_ctx):
            _fail(where, f"declares num_classes={num_classes}, n_ctx={n_ctx} but {key} has shape {tuple(ctx.shape)}")


def _clip_key(key: str, is_vit: bool) -> str:
    """The key of a CSDN checkpoint tensor that holds CLIP tensor ``key`` (the visible stem holds the stem)."""
    if key.startswith("visual."):
        if is_vit and key == "visual.conv1.weight":
            return "image_encoder.stems.visible.weight"
        if not is_vit and _STEM.match(key):
            return "image_encoder.stems.visible." + key[len("visual.") :]
        return "image_encoder." + key[len("visual.") :]
    return "text_encoder." + key


def _blocks(tensors: Mapping[str, torch.Tensor], prefix: str) -> int:
    return len({k[len(prefix) :].split(".")[0] for k in tensors if k.startswith(prefix)})


def _check_arch(arch: dict, tensors: Mapping[str, torch.Tensor], data: Mapping, where: str) -> None:
    """Every CLIP argument against the tensors it sizes; the skeleton is built on ``meta`` (no memory)."""
    unknown, missing = sorted(set(arch) - _ARCH_KEYS, key=str), sorted(set(_ARCH_KEYS) - set(arch) - {"last_stride"})
    if unknown or missing:
        _fail(where, f"has a clip_arch record with unknown {printable(unknown, 80)} / missing {missing} fields")
    if not all(_is_int(arch[k]) and arch[k] > 0 for k in _ARCH_INTS):
        _fail(where, f"has a clip_arch record whose {', '.join(_ARCH_INTS)} are not all positive ints")
    is_vit = arch["vision_patch_size"] is not None
    layers = arch["vision_layers"]
    expected_layers = (
        _blocks(tensors, "image_encoder.transformer.resblocks.")
        if is_vit
        else [_blocks(tensors, f"image_encoder.layer{i}.") for i in range(1, 5)]
    )
    counts = {
        "vision_layers": (layers, expected_layers),
        "transformer_layers": (arch["transformer_layers"], _blocks(tensors, "text_encoder.transformer.resblocks.")),
        "vocab_size": (arch["vocab_size"], TOKENIZER_VOCAB),
        "image_resolution": (arch["image_resolution"], [data["height"], data["width"]]),
    }
    for name, (declared, actual) in counts.items():
        if declared != actual:
            _fail(where, f"declares clip_arch.{name}={printable(declared, 80)} but its tensors/config say {actual}")
    # the record's values are checked above and by CLIP itself (its TypeError/ValueError become the message)
    kwargs: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in arch.items()}
    try:
        with torch.device("meta"):
            skeleton = CLIP(**kwargs)
    except (TypeError, ValueError, RuntimeError) as error:
        _fail(where, f"has an invalid clip_arch record ({printable(error, 120)})")
    for key, value in skeleton.state_dict().items():
        if key in _NOT_KEPT or key.startswith("transformer.attn_mask"):
            continue
        held = tensors.get(_clip_key(key, is_vit))
        if held is None or held.shape != value.shape:
            found = "no such tensor" if held is None else f"shape {tuple(held.shape)}"
            _fail(where, f"declares a CLIP whose {key} has shape {tuple(value.shape)}, but the file holds {found}")


def check_shapes(expected: Mapping[str, torch.Tensor], held: Mapping[str, torch.Tensor], where: str) -> None:
    """One line for tensors of ``held`` (the file) whose shapes differ from the built model's ``expected``."""
    wrong = [f"{k}: file {tuple(v.shape)} vs model {tuple(expected[k].shape)}" for k, v in held.items()
             if k in expected and v.shape != expected[k].shape]  # fmt: skip
    if wrong:
        more = f" (and {len(wrong) - 3} more)" if len(wrong) > 3 else ""
        _fail(where, f"does not fit the model its config describes: {printable('; '.join(wrong[:3]), 400)}{more}")
