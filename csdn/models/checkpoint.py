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

import dataclasses
import hashlib
import logging
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import torch

from .._io import atomic_open
from .._untrusted import check_tensor_sizes, first_line, printable, quoted, regular_file
from .csdn import CSDN
from .factory import clip_skeleton, csdn_from_config, model_config_from_dict
from .official import csdn_from_official, is_official_state_dict
from .schema import check_model_record, check_shapes

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
    shape and raw bytes (lists and tuples alike, since a file may give one back as the other); a sparse COO tensor
    by its coalesced indices and values. The digest is therefore the same after a save/load round trip whatever
    the map location, and any changed key, byte, dtype, shape or nesting changes it. Tensors are hashed one at a
    time from a CPU copy.

    Raises:
        ValueError: for a tensor csdn files never hold (a sparse layout other than COO, a quantized or meta tensor).
    """
    digest = hashlib.sha256()
    _hash_into(digest, value)
    return digest.hexdigest()


def _hash_tensor(digest: Any, value: torch.Tensor) -> None:
    if value.layout == torch.sparse_coo:
        value = value.detach().to("cpu").coalesce()
        digest.update(f"C{value.dtype}{tuple(value.shape)}:".encode())
        _hash_tensor(digest, value.indices())
        _hash_tensor(digest, value.values())
        return
    if value.layout != torch.strided or value.is_quantized or value.is_meta:
        kind = "meta" if value.is_meta else "quantized" if value.is_quantized else str(value.layout)
        raise ValueError(f"a {kind} tensor cannot be hashed; csdn files hold dense (or sparse COO) tensors only")
    flat = value.detach().to("cpu").resolve_conj().resolve_neg().contiguous().reshape(-1)
    digest.update(f"T{flat.dtype}{tuple(value.shape)}:".encode())
    digest.update(flat.view(torch.uint8).numpy())  # raw bytes, no copy; works for every dtype (bf16 too)


def _hash_into(digest: Any, value: Any) -> None:
    if isinstance(value, torch.Tensor):
        _hash_tensor(digest, value)
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
    with atomic_open(path, sync=True) as handle:  # on disk before the rename makes it visible; never via a link
        torch.save(payload, handle)
    return path


def load_checkpoint(
    path: str | os.PathLike, map_location: Any = "cpu", *, format: str = CHECKPOINT_FORMAT
) -> dict[str, Any]:
    """Load a file written by :func:`save_checkpoint` with ``weights_only=True``, checking its tag and digest.

    The one reader of every csdn file. The file is read on the CPU and its digest checked before the tensors go
    where ``map_location`` says (a device or device string such as ``"cuda:1"``; a function or dict as
    ``torch.load`` takes them is applied by ``torch.load`` and the result hashed), so the check never depends on
    the device. Only ``"meta"`` (a cheap look at the structure that reads no tensor data) skips it. Tensors that
    declare more bytes than the file holds are refused first. Files written before digests existed load with a
    warning.

    Raises:
        FileNotFoundError: if ``path`` does not exist.
        ValueError: if ``path`` is not a regular file (a folder, FIFO, link loop), is not a csdn file of that format
            (e.g. a raw state dict or a CLIP file), or its content does not match its digest (the file was
            corrupted after it was written).
    """
    path = regular_file(path, "checkpoint")
    device = None if callable(map_location) or isinstance(map_location, dict) else torch.device(map_location or "cpu")
    load_at = map_location if device is None else "meta" if device.type == "meta" else "cpu"
    try:
        state = torch.load(path, map_location=load_at, weights_only=True)
    except Exception as exc:  # unpickling errors come in many types; report them as one clear message
        raise ValueError(
            f"checkpoint {quoted(path)} could not be read as a csdn checkpoint ({first_line(exc)})"
        ) from None
    check_tensor_sizes(state, path)
    if not isinstance(state, dict) or state.get("format") != format:
        what = "training checkpoint" if format == CHECKPOINT_FORMAT else f"{format} file"
        raise ValueError(
            f"checkpoint {quoted(path)} is not a csdn {what} (no format={format!r} entry); "
            "pass a file written by `csdn train`"
        )
    stored = state.pop(DIGEST_KEY, None)
    if load_at != "meta":
        _verify_digest(path, state, stored)
    if device is not None and device.type not in ("cpu", "meta"):
        state = _to_device(state, device)
    return state


def _to_device(value: Any, device: torch.device) -> Any:
    if isinstance(value, torch.Tensor):
        return value.to(device)
    if isinstance(value, dict):
        return {key: _to_device(item, device) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_to_device(item, device) for item in value)
    return value


_HEX_DIGEST = re.compile(r"[0-9a-f]{64}")


def _verify_digest(path: Path, state: dict[str, Any], stored: Any) -> None:
    if stored is None:
        renamed = [key for key, value in state.items() if isinstance(value, str) and _HEX_DIGEST.fullmatch(value)]
        if renamed:
            raise ValueError(
                f"{quoted(path)} has no {DIGEST_KEY!r} entry but {quoted(renamed[0], 80)} holds a sha256 digest: its "
                "entries were renamed after it was written; restore the file from a copy or recreate it"
            )
        logger.warning("%s has no content digest (written by an older csdn); its integrity cannot be checked", path)
        return
    try:
        actual = content_digest(state)
    except ValueError as error:
        raise ValueError(f"{quoted(path)} cannot be verified: {error}") from None
    if actual != stored:
        raise ValueError(
            f"{quoted(path)} is corrupted: its content does not match the sha256 digest written with it "
            f"(stored {printable(stored, 12)}, found {actual[:12]}...); restore the file from a copy or recreate it"
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
        ValueError: if ``path`` is a folder, FIFO or link loop.
    """
    regular_file(path, "checkpoint")
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
    path: str | os.PathLike,
    device: str | torch.device = "cpu",
    *,
    clip: str | os.PathLike | None = None,
    trust_code: bool = False,
) -> tuple[CSDN, dict[str, Any]]:
    """Rebuild the model saved in a csdn training checkpoint or final model, in eval mode.

    The record is validated first (:func:`csdn.models.schema.check_model_record`: types, required entries,
    ``num_classes`` and the CLIP architecture against the tensors' own shapes), so a malformed file is one
    ``ValueError`` before anything is built. The skeleton comes from the checkpoint's CLIP architecture record,
    then every tensor is loaded strictly from the checkpoint, so the original CLIP weights are not needed.
    A checkpoint never chooses a file: one written before that record existed is rebuilt through the CLIP weights
    the caller passes as ``clip`` (read as data only unless ``trust_code``), never through the file or download
    its config names.

    Args:
        path: ``final.pt``/``last.pt`` written by ``csdn train``.
        device: Where the model is loaded.
        clip: Only for a checkpoint without a CLIP architecture record: the CLIP weights it was trained from (an
            official name or a local file; ``--clip`` on the command line).
        trust_code: Let that CLIP file, if a TorchScript archive the data-only reader refuses, run its own code.

    Returns:
        ``(model, checkpoint_dict)``; the run's configuration is ``checkpoint_dict["config"]`` (plain values).

    Raises:
        FileNotFoundError: if ``path`` (or ``clip``) is missing.
        ValueError: if it is not a csdn checkpoint, is malformed, its weights do not fit the model its config
            describes, or it has no CLIP architecture record and no ``clip`` is given.
    """
    where = os.fspath(path)
    state = load_checkpoint(path)
    check_model_record(state, where)
    config = state["config"]
    model_cfg = model_config_from_dict(config.get("model", {}))
    image_size = (config["data"]["height"], config["data"]["width"])
    seed, num_classes = config["runtime"]["seed"], state["num_classes"]
    arch = state.get(CLIP_ARCH_KEY)
    if arch is None:  # checkpoints from before the architecture record
        if clip is None:
            raise ValueError(
                f"checkpoint {quoted(where)} has no CLIP architecture record (written by an older csdn): pass the "
                "CLIP weights it was trained from, --clip PATH_OR_NAME (Python: clip=...); csdn never opens a file "
                "or starts a download because a checkpoint names it"
            )
        logger.warning("%s has no CLIP architecture record (older csdn): rebuilding it with the CLIP %s", where, clip)
        model_cfg = dataclasses.replace(model_cfg, clip=os.fspath(clip))
        model = csdn_from_config(model_cfg, num_classes, image_size, seed, device, trust_code=trust_code)
    else:
        if clip is not None:
            logger.warning("%s records its CLIP architecture: the CLIP %s passed for it is not used", where, clip)
        skeleton = clip_skeleton(arch, where)
        model = csdn_from_config(model_cfg, num_classes, image_size, seed, device, clip=skeleton, clip_arch=arch)
    check_shapes(model.state_dict(), state["model"], where)
    result = model.load_state_dict(state["model"], strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise ValueError(
            f"checkpoint {quoted(where)} does not fit the model its config describes: "
            f"missing {printable(result.missing_keys[:5], 300)}, "
            f"unexpected {printable(result.unexpected_keys[:5], 300)}"
        )
    return model.eval(), state


def load_model_file(
    path: str | os.PathLike,
    device: str | torch.device = "cpu",
    image_size: tuple[int, int] = (288, 144),
    *,
    clip: str | os.PathLike | None = None,
    trust_code: bool = False,
) -> tuple[CSDN, tuple[int, int]]:
    """A model for inference from a csdn checkpoint (rebuilt exactly) or an official CSDN checkpoint.

    Args:
        path: ``csdn train`` checkpoint (``final.pt``/``last.pt``) or official ``model_<epoch>.pth``.
        device: Where the model is loaded.
        image_size: Input ``(H, W)`` an official checkpoint was trained at (csdn checkpoints record theirs).
        clip: For a csdn checkpoint without a CLIP architecture record: the CLIP weights it was trained from (see
            :func:`load_csdn`); never needed otherwise.
        trust_code: Let that CLIP file run its own code (see :func:`load_csdn`).

    Returns:
        ``(model in eval mode, its training input (H, W))``.

    Raises:
        FileNotFoundError: if ``path`` does not exist.
        ValueError: if the file is neither kind of checkpoint (an empty file included), or is malformed.
    """
    path = os.fspath(path)
    try:
        load_checkpoint(path, map_location="meta")  # cheap format check; FileNotFoundError for a missing file
    except ValueError as not_csdn:
        if not regular_file(path, "checkpoint").stat().st_size:
            raise ValueError(
                f"checkpoint {quoted(path)} is empty (0 bytes); the copy or the save was cut short"
            ) from None
        try:
            model, report = csdn_from_official(path, image_size=image_size, device=device)
        except Exception as not_official:  # EOFError, RuntimeError, ...: reported with its first line
            raise ValueError(
                f"checkpoint {quoted(path)} is neither a csdn training checkpoint nor an official CSDN checkpoint "
                f"({not_csdn}; as an official checkpoint: {first_line(not_official)})"
            ) from None
        logger.info("loaded official CSDN checkpoint %s at %dx%d: %s", path, *image_size, str(report).splitlines()[0])
        return model, image_size
    model, state = load_csdn(path, device, clip=clip, trust_code=trust_code)
    data = state["config"]["data"]
    size = (data["height"], data["width"])
    logger.info(
        "loaded %s (%s, %dx%d input)",
        path,
        printable(model_config_from_dict(state["config"].get("model", {})).clip, 80),
        *size,
    )
    return model, size
