"""Where the numbers of a report come from: checkpoint and digest, data, code and library versions, device, date."""

from __future__ import annotations

import datetime
import hashlib
import os
import platform
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from .._version import __version__
from ..evaluation.results import trial_list

__all__ = ["sha256_file", "git_commit", "provenance"]


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def git_commit() -> str | None:
    """The commit of the csdn source checkout, or ``None`` (installed wheel, no git)."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=Path(__file__).resolve().parent, capture_output=True, text=True,
            timeout=5, check=False,
        )  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    return (out.stdout.strip() or None) if out.returncode == 0 else None


def _dataset_lines(dataset: Any, trials: Sequence[int] | None) -> dict[str, str]:
    stats = dataset.stats()
    evaluated = stats["trials"] if trials is None else list(trials)
    lines = {
        "dataset": str(stats["name"]),
        "dataset root": str(Path(stats["root"]).resolve()),
        "training split": f"{stats['train_ids']} ids, {stats['train_visible']} visible + "
        f"{stats['train_infrared']} infrared images",
        "trials evaluated": ", ".join(str(t) for t in evaluated),
    }
    if sorted(evaluated) != sorted(stats["trials"]):
        lines["trials evaluated"] += f" (the protocol has {trial_list(stats['trials'])})"
    for row in stats["test"]:
        lines[f"test: {row['setting']}"] = (
            f"{row['query']} queries ({row['query_ids']} ids), {row['gallery']} gallery images "
            f"({row['gallery_ids']} ids), first trial"
        )
    return lines


def provenance(
    *,
    checkpoint: str | os.PathLike | None = None,
    dataset: Any = None,
    device: Any = None,
    trials: Sequence[int] | None = None,
    **extra: Any,
) -> dict[str, str | None]:
    """``{label: value}`` describing an evaluation, in display order.

    Args:
        checkpoint: The evaluated checkpoint file (its absolute path and SHA-256 are recorded).
        dataset: The dataset reader (its root and split statistics are recorded).
        device: Where the model ran.
        trials: The trials evaluated (default: all of the dataset's protocol).
        **extra: More ``label=value`` pairs appended at the end.
    """
    out: dict[str, str | None] = {}
    if checkpoint is not None:
        out["checkpoint"] = str(Path(checkpoint).resolve())
        out["checkpoint sha256"] = sha256_file(checkpoint)
    if dataset is not None:
        out.update(_dataset_lines(dataset, trials))
    out.update({
        "csdn version": __version__,
        "git commit": git_commit(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "device": None if device is None else str(device),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC"),
    })  # fmt: skip
    out.update({k: None if v is None else str(v) for k, v in extra.items()})
    return out
