"""The csdn file schema: what each kind of file holds, its format tag, how it is saved, read and recognised,
and how a model is rebuilt from it (documented for users in ``docs/checkpoints.md``).

Every file csdn writes is one nested dict of tensors and plain Python values (``dict``/``list``/``tuple``/``str``/
``int``/``float``/``bool``/``None``), tagged with a ``"format"`` entry, written atomically by
:func:`save_checkpoint` and read back with ``torch.load(weights_only=True)`` by :func:`load_checkpoint`, so
loading runs no code. The kinds:

* training checkpoint (``checkpoints/last.pt``, :data:`CHECKPOINT_FORMAT`, ``stage`` an int): the model record
  plus ``stage``, ``epoch``, ``optimizer``, ``scheduler``, ``scaler``, ``rng_ranks``, ``text_banks``, ``sampler``;
  everything needed to resume (:func:`training_checkpoint`);
* final model (``checkpoints/final.pt``, :data:`CHECKPOINT_FORMAT`, ``stage == "final"``): the model record only
  (:func:`final_checkpoint`);
* feature file (:data:`FEATURES_FORMAT`): stage-1/2 feature caches and ``csdn extract`` output;
* an official CSDN checkpoint (``model_<epoch>.pth`` of the authors' code, a raw state dict) is recognised and
  rebuilt by :func:`csdn.models.csdn_from_official`; any other file is foreign.

The model record (:func:`model_record`) is ``model`` (state dict), ``num_classes``, ``config`` (the run's full
configuration as plain values) and ``clip_arch`` (the CLIP constructor arguments,
:func:`csdn.models.factory.clip_architecture`), from which :func:`load_csdn` rebuilds the model without the CLIP
weights file.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import torch

from .._io import atomic_path
from .csdn import CSDN
from .factory import clip_skeleton, csdn_from_config, model_config_from_dict
from .official import csdn_from_official, is_official_state_dict

__all__ = [
    "CHECKPOINT_FORMAT",
    "FEATURES_FORMAT",
    "CLIP_ARCH_KEY",
    "DIGEST_KEY",
    "check_plain",
    "content_digest",
    "save_checkpoint",
    "load_checkpoint",
    "model_record",
    "training_checkpoint",
    "final_checkpoint",
    "checkpoint_kind",
    "load_csdn",
    "load_model_file",
]

logger = logging.getLogger(__name__)

CHECKPOINT_FORMAT = "csdn-checkpoint-v1"  # stored under "format"; identifies a csdn training checkpoint/final model
FEATURES_FORMAT = "csdn-features-v1"
"""Format tag of feature files (stage-1/2 caches, ``csdn extract`` output)."""
CLIP_ARCH_KEY = "clip_arch"  # entry holding the CLIP constructor arguments of the trained model
DIGEST_KEY = "sha256"  # entry holding the digest of every other entry (:func:`content_digest`), checked on load

_PLAIN_SCALARS = (str, int, float, bool, type(None))


def check_plain(value: Any, where: str = "checkpoint") -> None:
    """Raise ``TypeError`` naming the first entry of ``value`` that is not a tensor or plain Python value."""
    if isinstance(value, (torch.Tensor, *_PLAIN_SCALARS)):
        return
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, (str, int)):
                raise TypeError(f"{where} has a key of type {type(key).__name__}; only str/int keys are allowed")
            check_plain(item, f"{where}[{key!r}]")
        return
    if isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            check_plain(item, f"{where}[{index}]")
        return
    raise TypeError(
        f"{where} is a {type(value).__module__}.{type(value).__qualname__}; checkpoints hold only tensors and "
        "plain Python values (convert it, e.g. with config_to_dict or .tolist())"
    )


def content_digest(value: Any) -> str:
    """SHA-256 (hex) of a nested dict of tensors and plain values, independent of how it is serialised.

    Every entry is hashed with its type: keys in order, strings/numbers by their ``repr``, tensors by dtype,
    shape and raw bytes (lists and tuples alike, since a file may give one back as the other). The digest is
    therefore the same after a save/load round trip whatever the map location, and any changed byte of any
    tensor or value changes it. Tensors are hashed one at a time from a CPU copy.
    """
    digest = hashlib.sha256()
    _hash_into(digest, value)
    return digest.hexdigest()


def _hash_into(digest: Any, value: Any) -> None:
    if isinstance(value, torch.Tensor):
        flat = value.detach().to("cpu").contiguous().reshape(-1)
        digest.update(f"T{flat.dtype}{tuple(value.shape)}:".encode())
        digest.update(flat.view(torch.uint8).numpy())  # raw bytes, no copy; works for every dtype (bf16 too)
    elif isinstance(value, Mapping):
        digest.update(f"D{len(value)}:".encode())
        for key, item in value.items():
            _hash_into(digest, key)
            _hash_into(digest, item)
    elif isinstance(value, (list, tuple)):
        digest.update(f"L{len(value)}:".encode())
        for item in value:
            _hash_into(digest, item)
    else:  # plain scalar (check_plain guarantees it); the type name keeps 1, 1.0, True and "1" apart
        text = repr(value).encode()
        digest.update(f"S{type(value).__name__}{len(text)}:".encode() + text)


def save_checkpoint(state: Mapping[str, Any], path: str | os.PathLike, *, format: str = CHECKPOINT_FORMAT) -> Path:
    """Write ``state`` (plus ``format`` and its digest) to ``path`` atomically: temp file, fsync, rename.

    The one writer of every csdn file. A crash or SIGKILL during the write leaves the previous file at ``path``
    intact. ``format`` tags the content (:data:`CHECKPOINT_FORMAT` or :data:`FEATURES_FORMAT`);
    :data:`DIGEST_KEY` holds :func:`content_digest` of everything else, which :func:`load_checkpoint` checks.

    Raises:
        TypeError: if ``state`` holds anything but tensors and plain Python values.
    """
    path = Path(path)
    payload = {"format": format, **{k: v for k, v in state.items() if k != DIGEST_KEY}}
    check_plain(payload)
    payload[DIGEST_KEY] = content_digest(payload)
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        torch.save(payload, handle)
        handle.flush()
        os.fsync(handle.fileno())  # on disk before the rename makes it visible
    return path


def load_checkpoint(
    path: str | os.PathLike, map_location: str | torch.device = "cpu", *, format: str = CHECKPOINT_FORMAT
) -> dict[str, Any]:
    """Load a file written by :func:`save_checkpoint` with ``weights_only=True``, checking its tag and digest.

    The one reader of every csdn file. The digest is checked unless ``map_location`` is ``"meta"`` (a cheap look
    at the structure that reads no tensor data). Files written before digests existed load with a warning.

    Raises:
        FileNotFoundError: if ``path`` does not exist.
        ValueError: if the file is not a csdn file of that format (e.g. a raw state dict or a CLIP file), or its
            content does not match its digest (the file was corrupted after it was written).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {str(path)!r} does not exist")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # unpickling errors come in many types; report them as one clear message
        raise ValueError(f"checkpoint {str(path)!r} could not be read as a csdn checkpoint: {exc}") from None
    if not isinstance(state, dict) or state.get("format") != format:
        what = "training checkpoint" if format == CHECKPOINT_FORMAT else f"{format} file"
        raise ValueError(
            f"checkpoint {str(path)!r} is not a csdn {what} (no format={format!r} entry); "
            "pass a file written by `csdn train`"
        )
    stored = state.pop(DIGEST_KEY, None)
    if str(map_location) != "meta":
        _verify_digest(path, state, stored)
    return state


def _verify_digest(path: Path, state: dict[str, Any], stored: Any) -> None:
    if stored is None:
        logger.warning("%s has no content digest (written by an older csdn); its integrity cannot be checked", path)
        return
    actual = content_digest(state)
    if actual != stored:
        raise ValueError(
            f"{str(path)!r} is corrupted: its content does not match the sha256 digest written with it "
            f"(stored {str(stored)[:12]}..., found {actual[:12]}...); restore the file from a copy or recreate it"
        )


# ------------------------------------------------------------------------------------------- what files hold


def model_record(model: CSDN, config: Mapping[str, Any]) -> dict[str, Any]:
    """The entries every csdn model file holds: weights, ``num_classes``, ``config`` and the CLIP record."""
    return {
        "model": model.state_dict(),
        "config": dict(config),
        "num_classes": int(model.num_classes),
        CLIP_ARCH_KEY: model.clip_arch,  # lets load_csdn skip the CLIP weights file
    }


def final_checkpoint(model: CSDN, config: Mapping[str, Any]) -> dict[str, Any]:
    """The content of ``final.pt``: the model after the last epoch (``stage == "final"``)."""
    return {"stage": "final", **model_record(model, config)}


def training_checkpoint(
    model: CSDN, config: Mapping[str, Any], *, stage: int, epoch: int, **resume_state: Any
) -> dict[str, Any]:
    """The content of ``last.pt``: the model record, ``stage``/``epoch`` (epochs done) and the resume state.

    Args:
        resume_state: ``optimizer``, ``scheduler``, ``scaler`` (state dicts), ``rng_ranks`` (every rank's RNG
            streams), ``text_banks`` (``{modality: (C, D)}`` CPU tensors) and ``sampler`` (``seed``,
            ``next_epoch`` in stage 3).
    """
    return {"stage": stage, "epoch": epoch, **model_record(model, config), **resume_state}


# ------------------------------------------------------------------------------------ recognising, rebuilding

Kind = Literal["training", "final", "official", "foreign"]


def checkpoint_kind(path: str | os.PathLike) -> Kind:
    """Which kind of file ``path`` is (tensors are not read: loaded on the ``meta`` device).

    Raises:
        FileNotFoundError: if ``path`` does not exist.
    """
    try:
        state = load_checkpoint(path, map_location="meta")
    except ValueError:
        try:
            raw = torch.load(path, map_location="meta", weights_only=True)
        except Exception:  # not a torch file at all
            return "foreign"
        return "official" if isinstance(raw, Mapping) and is_official_state_dict(raw) else "foreign"
    return "final" if state.get("stage") == "final" else "training"


def load_csdn(
    path: str | os.PathLike, device: str | torch.device = "cpu", *, trust_code: bool = False
) -> tuple[CSDN, dict[str, Any]]:
    """Rebuild the model saved in a csdn training checkpoint or final model, in eval mode.

    The skeleton comes from the checkpoint's CLIP architecture record, then every tensor is loaded strictly from
    the checkpoint, so the original CLIP weights are not needed. Checkpoints written before that record existed
    are rebuilt through ``model.clip`` of their config (which must then still be available); that file is read as
    data only, the checkpoint's say-so never lets it run code: only the caller's ``trust_code`` does.

    Returns:
        ``(model, checkpoint_dict)``; the run's configuration is ``checkpoint_dict["config"]`` (plain values).

    Raises:
        FileNotFoundError: if ``path`` is missing (or, for an old checkpoint, the CLIP file of its config).
        ValueError: if it is not a csdn checkpoint or its weights do not fit the model its config describes.
    """
    where = os.fspath(path)
    state = load_checkpoint(path)
    if "model" not in state or "config" not in state or "num_classes" not in state:
        raise ValueError(f"checkpoint {where!r} has no model/config/num_classes entries")
    config = state["config"]
    model_cfg = model_config_from_dict(config.get("model", {}))
    image_size = (int(config["data"]["height"]), int(config["data"]["width"]))
    seed, num_classes = int(config["runtime"]["seed"]), int(state["num_classes"])
    arch = state.get(CLIP_ARCH_KEY)
    if arch is None:  # checkpoints from before the architecture record
        logger.warning(
            "%s has no CLIP architecture record (older csdn): rebuilding it from model.clip=%r of its config",
            where, model_cfg.clip,
        )  # fmt: skip
        model = csdn_from_config(model_cfg, num_classes, image_size, seed, device, trust_code=trust_code)
    else:
        skeleton = clip_skeleton(arch, where)
        model = csdn_from_config(model_cfg, num_classes, image_size, seed, device, clip=skeleton, clip_arch=arch)
    result = model.load_state_dict(state["model"], strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise ValueError(
            f"checkpoint {where!r} does not fit the model its config describes: "
            f"missing {result.missing_keys[:5]}, unexpected {result.unexpected_keys[:5]}"
        )
    return model.eval(), state


def load_model_file(
    path: str | os.PathLike,
    device: str | torch.device = "cpu",
    image_size: tuple[int, int] = (288, 144),
    *,
    trust_code: bool = False,
) -> tuple[CSDN, tuple[int, int]]:
    """A model for inference from a csdn checkpoint (rebuilt exactly) or an official CSDN checkpoint.

    Args:
        path: ``csdn train`` checkpoint (``final.pt``/``last.pt``) or official ``model_<epoch>.pth``.
        device: Where the model is loaded.
        image_size: Input ``(H, W)`` an official checkpoint was trained at (csdn checkpoints record theirs).
        trust_code: For a checkpoint without a CLIP architecture record: let the CLIP file its config names run
            its own code (see :func:`load_csdn`).

    Returns:
        ``(model in eval mode, its training input (H, W))``.

    Raises:
        FileNotFoundError: if ``path`` does not exist.
        ValueError: if the file is neither kind of checkpoint.
    """
    path = os.fspath(path)
    try:
        load_checkpoint(path, map_location="meta")  # cheap format check; FileNotFoundError for a missing file
    except ValueError as not_csdn:
        try:
            model, report = csdn_from_official(path, image_size=image_size, device=device)
        except (ValueError, RuntimeError, KeyError) as not_official:
            raise ValueError(
                f"checkpoint {path!r} is neither a csdn training checkpoint nor an official CSDN checkpoint "
                f"({not_csdn}; as an official checkpoint: {str(not_official).splitlines()[0]})"
            ) from None
        logger.info("loaded official CSDN checkpoint %s at %dx%d: %s", path, *image_size, str(report).splitlines()[0])
        return model, image_size
    model, state = load_csdn(path, device, trust_code=trust_code)
    data = state["config"]["data"]
    size = (int(data["height"]), int(data["width"]))
    logger.info("loaded %s (%s, %dx%d input)", path, state["config"]["model"]["clip"], *size)
    return model, size
