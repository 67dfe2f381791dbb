"""Run bookkeeping: metrics as JSON lines, optional TensorBoard, run provenance, progress lines and bars,
the run's ``train.log`` and its epoch snapshots.

Only rank 0 writes; other ranks get no-op objects, so callers never branch on the rank.
"""

from __future__ import annotations

import json
import logging
import math
import os
import platform
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from .._io import atomic_write_text, make_dirs, note_created, open_append
from .._version import __version__
from ..models.checkpoint import save_checkpoint
from .config import TrainConfig, save_config
from .distributed import all_reduce_mean

__all__ = ["EpochMeter", "MetricsLogger", "run_provenance", "save_run_config", "write_run_files", "save_snapshot"]

logger = logging.getLogger(__name__)


def _plain_number(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        value = value.detach().item() if value.numel() == 1 else value.detach().tolist()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # JSON has no NaN/inf literal
    return value


class MetricsLogger:
    """Append one JSON object per event to ``metrics.jsonl`` (and TensorBoard scalars if asked and installed).

    Args:
        path: the ``.jsonl`` file; ``None`` makes every call a no-op (non-zero ranks).
        tensorboard_dir: folder for TensorBoard event files, or ``None``.
    """

    def __init__(self, path: str | os.PathLike | None, tensorboard_dir: str | os.PathLike | None = None) -> None:
        self.path = Path(path) if path is not None else None
        self._writer = None
        self._tensorboard_dir = None  # the writer is made at the first record: constructing a run creates nothing
        if self.path is not None and tensorboard_dir is not None:
            try:
                from torch.utils import tensorboard  # noqa: F401  (the writer itself is made at the first record)
            except ImportError:
                logger.warning("runtime.tensorboard is on but the tensorboard package is missing; skipping it")
            else:
                self._tensorboard_dir = Path(tensorboard_dir)

    def log(self, event: str, step: int | None = None, **values: Any) -> None:
        """Record ``values`` (numbers, strings, small tensors) under ``event`` (e.g. "stage3/epoch")."""
        if self.path is None:
            return
        record = {"time": round(time.time(), 3), "event": event, "step": step}
        record.update({k: _plain_number(v) for k, v in values.items()})
        with open_append(self.path) as handle:  # on first use: constructing a run creates no folder; never a link
            handle.write(json.dumps(record) + "\n")
        if self._tensorboard_dir is not None and self._writer is None:
            self._writer = _summary_writer(self._tensorboard_dir)
        if self._writer is not None and step is not None:
            for key, value in record.items():
                if key not in ("time", "event", "step") and isinstance(value, (int, float)):
                    self._writer.add_scalar(f"{event}/{key}", value, step)

    def close(self) -> None:
        """Flush and close the TensorBoard writer, if any."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None


def _summary_writer(folder: Path) -> Any:
    """A TensorBoard ``SummaryWriter`` on ``folder``, its folder and event file noted as this run's creations."""
    from torch.utils.tensorboard import SummaryWriter

    make_dirs(folder)
    writer = SummaryWriter(str(folder))
    event_file = getattr(getattr(writer.file_writer, "event_writer", None), "_file_name", None)
    if event_file is not None:  # tensorboard's EventFileWriter names its file there
        note_created(event_file)
    return writer


class EpochMeter:
    """Running means of named scalars (synchronised once per epoch across ranks)."""

    def __init__(self) -> None:
        self.sums: dict[str, float] = {}
        self.count = 0

    def update(self, values: Mapping[str, torch.Tensor]) -> None:
        for key, value in values.items():
            self.sums[key] = self.sums.get(key, 0.0) + float(value.detach())
        self.count += 1

    def means(self) -> dict[str, float]:
        """Per-key means over this epoch's steps (averaged over ranks), plus ``steps`` (this rank's count)."""
        means = {k: float(all_reduce_mean(torch.tensor(v / max(self.count, 1)))) for k, v in self.sums.items()}
        return {**means, "steps": self.count}


def _git_hash() -> str | None:
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def run_provenance(seed: int) -> dict[str, Any]:
    """Seed, library versions, git commit of the csdn checkout (if any), host and command line of this run."""
    import numpy
    import torchvision

    return {
        "seed": seed,
        "csdn": __version__,  # of the code running, installed or not
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "numpy": numpy.__version__,
        "python": platform.python_version(),
        "cuda": torch.version.cuda,
        "git_commit": _git_hash(),
        "host": platform.node(),
        "argv": list(sys.argv),
    }


def write_run_files(output_dir: str | os.PathLike, cfg: TrainConfig) -> dict[str, Any]:
    """Create the run folder with ``config.yaml`` (``config.json`` without PyYAML) and ``run.json`` (provenance)."""
    output_dir = Path(output_dir)
    make_dirs(output_dir)
    save_run_config(output_dir, cfg)
    provenance = run_provenance(cfg.runtime.seed)
    atomic_write_text(output_dir / "run.json", json.dumps(provenance, indent=2) + "\n")
    logger.info(
        "run folder %s (seed %s, csdn %s, torch %s, git %s)",
        output_dir, provenance["seed"], provenance["csdn"], provenance["torch"], (provenance["git_commit"] or "-")[:10],
    )  # fmt: skip
    return provenance


def save_run_config(output_dir: str | os.PathLike, cfg: TrainConfig) -> Path:
    """Write the run's configuration: ``config.yaml``, or ``config.json`` where PyYAML is not installed."""
    try:
        return save_config(cfg, Path(output_dir) / "config.yaml")
    except ValueError:  # PyYAML is optional
        return save_config(cfg, Path(output_dir) / "config.json")


def save_snapshot(state: Mapping[str, Any], folder: Path, stage: int, epoch: int, keep: int) -> Path | None:
    """Keep an epoch snapshot ``folder/epoch_<stage>_<epoch>.pt`` of a training checkpoint beside ``last.pt``.

    Only the ``keep`` most recent snapshots (by stage, then epoch) stay; older ones are deleted. ``keep=0`` writes
    none (``runtime.keep_last``).

    Args:
        state: The checkpoint just written to ``last.pt``.
        folder: The run's ``checkpoints/`` folder.
        stage: Its stage (1, 2, 3).
        epoch: Epochs of that stage done (1-based, as in the checkpoint).
        keep: Snapshots to keep.

    Returns:
        The snapshot's path, or ``None`` when ``keep`` is 0.
    """
    if keep <= 0:
        return None
    path = Path(folder) / f"epoch_{stage}_{epoch}.pt"
    save_checkpoint(dict(state), path)
    snapshots = []
    for candidate in Path(folder).glob("epoch_*_*.pt"):
        parts = candidate.stem.split("_")
        if len(parts) == 3 and parts[1].isdigit() and parts[2].isdigit():
            snapshots.append(((int(parts[1]), int(parts[2])), candidate))
    for _, old in sorted(snapshots)[:-keep]:
        old.unlink(missing_ok=True)
    return path
