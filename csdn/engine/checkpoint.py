"""Checkpoints: one self-contained file per save, written atomically, loadable with ``weights_only=True``.

A checkpoint is a nested dict of tensors and plain Python values (``dict``/``list``/``tuple``/``str``/``int``/
``float``/``bool``/``None``) only, so ``torch.load(path, weights_only=True)`` reads it without executing code.
:func:`capture_rng_state` / :func:`restore_rng_state` turn the Python, NumPy, torch (CPU) and CUDA generator
states, plus any explicit ``torch.Generator`` the run owns, into such values, which is what lets a resumed run
continue bit-exactly.
"""

from __future__ import annotations

import contextlib
import os
import random
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .._io import atomic_path

__all__ = [
    "CHECKPOINT_FORMAT",
    "FEATURES_FORMAT",
    "save_checkpoint",
    "load_checkpoint",
    "capture_rng_state",
    "restore_rng_state",
    "check_plain",
    "seed_global_rngs",
    "deterministic_algorithms",
]

CHECKPOINT_FORMAT = "csdn-checkpoint-v1"  # stored under "format"; identifies a csdn training checkpoint
FEATURES_FORMAT = "csdn-features-v1"  # format tag of feature files (stage-1/2 caches, ``csdn extract`` output)

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


def save_checkpoint(state: Mapping[str, Any], path: str | os.PathLike, *, format: str = CHECKPOINT_FORMAT) -> Path:
    """Write ``state`` (plus ``format``) to ``path`` atomically: temp file in the same folder, fsync, rename.

    A crash or SIGKILL during the write leaves the previous file at ``path`` intact. ``format`` tags the
    content (training checkpoints use :data:`CHECKPOINT_FORMAT`, feature files :data:`FEATURES_FORMAT`).

    Raises:
        TypeError: if ``state`` holds anything but tensors and plain Python values.
    """
    path = Path(path)
    payload = {"format": format, **state}
    check_plain(payload)
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        torch.save(payload, handle)
        handle.flush()
        os.fsync(handle.fileno())  # on disk before the rename makes it visible
    return path


def load_checkpoint(
    path: str | os.PathLike, map_location: str | torch.device = "cpu", *, format: str = CHECKPOINT_FORMAT
) -> dict[str, Any]:
    """Load a file written by :func:`save_checkpoint` with ``weights_only=True``, checking its ``format`` tag.

    Raises:
        FileNotFoundError: if ``path`` does not exist.
        ValueError: if the file is not a csdn training checkpoint (e.g. a raw state dict or a CLIP file).
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
    return state


# ----------------------------------------------------------------------------------------------------- RNG states


def capture_rng_state(generators: Mapping[str, torch.Generator] | None = None) -> dict[str, Any]:
    """Snapshot the global Python/NumPy/torch/CUDA generators and the named explicit generators.

    Returns:
        A dict of tensors and plain values (checkpoint-safe); pass it to :func:`restore_rng_state`.
    """
    version, internal, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {
        "python": [version, list(internal), gauss],
        "numpy": [str(kind), torch.from_numpy(np.asarray(keys, dtype=np.int64)), int(pos), int(has_gauss), cached],
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() and torch.cuda.is_initialized() else [],
        "generators": {name: gen.get_state() for name, gen in (generators or {}).items()},
    }
    return state


def restore_rng_state(state: Mapping[str, Any], generators: Mapping[str, torch.Generator] | None = None) -> None:
    """Restore what :func:`capture_rng_state` captured (CUDA states only where CUDA is available).

    Raises:
        ValueError: if a named generator has no saved state.
    """
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    saved = state.get("generators", {})
    for name, gen in (generators or {}).items():
        if name not in saved:
            raise ValueError(f"checkpoint has no state for generator {name!r} (saved: {', '.join(saved) or 'none'})")
        gen.set_state(saved[name])


def seed_global_rngs(seed: int) -> None:
    """Seed Python's, NumPy's and torch's global generators (what dropout and in-process augmentations draw from)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


@contextlib.contextmanager
def deterministic_algorithms(enabled: bool, device: torch.device | None = None) -> Iterator[None]:
    """Within the block, ``torch.use_deterministic_algorithms(True)`` and no cuDNN benchmarking when ``enabled``;
    the previous settings are restored on exit.

    Raises:
        ValueError: on CUDA without ``CUBLAS_WORKSPACE_CONFIG`` (cuBLAS needs it for deterministic results).
    """
    if not enabled:
        yield
        return
    if device is not None and device.type == "cuda" and not os.environ.get("CUBLAS_WORKSPACE_CONFIG"):
        raise ValueError(
            "runtime.deterministic=true on CUDA needs CUBLAS_WORKSPACE_CONFIG=:4096:8 in the environment before "
            "CUDA starts (the csdn command line sets it); or set runtime.deterministic=false"
        )
    previous = (torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.benchmark)
    torch.use_deterministic_algorithms(True)
    torch.backends.cudnn.benchmark = False
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous[0])
        torch.backends.cudnn.benchmark = previous[1]
