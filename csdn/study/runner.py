"""One run of a study, in whatever process an executor chose: claim its folder, train or resume, evaluate.

:func:`execute_run` is a plain top-level function of a picklable :class:`~csdn.study.grid.RunSpec`, so a process
pool or a Slurm job can call it. It is idempotent: a run whose ``eval.json`` is newer than its ``final.pt`` and
covers the wanted gallery trials is skipped, one with ``final.pt`` only is evaluated, one with ``last.pt`` resumes
(a preempted Slurm job requeued by submitit lands here), and a folder another live process holds is left to it
(:func:`csdn.engine.run_dir.claim_run_folder`).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .grid import RUNTIME_FREE, RunSpec, flat_config

__all__ = ["RunOutcome", "execute_run", "run_state"]

logger = logging.getLogger(__name__)


@dataclass
class RunOutcome:
    """What :func:`execute_run` did: ``status`` is ``trained``, ``resumed``, ``evaluated`` (training was done),
    ``done`` (nothing left to do) or ``busy`` (another process holds the folder)."""

    name: str
    status: str
    seconds: float
    summary: dict[str, Any] = field(default_factory=dict)
    message: str = ""


def _evaluation_is_current(run_dir: Path, trials: list[int] | None) -> bool:
    """``eval.json`` newer than ``final.pt``, with per-query values and the wanted trials."""
    final, path = run_dir / "checkpoints" / "final.pt", run_dir / "eval.json"
    if not (path.is_file() and final.is_file() and path.stat().st_mtime_ns >= final.stat().st_mtime_ns):
        return False
    records = json.loads(path.read_text(encoding="utf-8")).get("records", [])
    if not records or any(len(r.get("query_ap", [])) != r["num_valid"] for r in records):
        return False  # written before per-query values existed
    return trials is None or sorted({r["trial"] for r in records}) == sorted(trials)


def run_state(run: RunSpec) -> str:
    """``"done"``, ``"evaluate"``, ``"resume"`` or ``"new"``.

    Raises:
        ValueError: if the folder's checkpoint was trained with another configuration.
    """
    from ..engine import load_checkpoint

    ckpt = run.run_dir / "checkpoints"
    existing = next((p for p in (ckpt / "final.pt", ckpt / "last.pt") if p.is_file()), None)
    if existing is None:
        return "new"
    skip = ("runtime.output_dir", *RUNTIME_FREE)
    saved = flat_config(load_checkpoint(existing)["config"], skip)
    wanted = flat_config(run.config, skip)
    diffs = [f"{k}: {saved.get(k)!r} -> {wanted.get(k)!r}" for k in sorted(set(saved) | set(wanted))
             if saved.get(k) != wanted.get(k)]  # fmt: skip
    if diffs:
        raise ValueError(
            f"{existing} was trained with another configuration ({'; '.join(diffs[:4])}); use the study's original "
            "options or another output folder"
        )
    if existing.name == "last.pt":
        return "resume"
    return "done" if _evaluation_is_current(run.run_dir, run.trials) else "evaluate"


def _summary(path: Path) -> dict[str, Any]:
    data = json.loads(path.read_text(encoding="utf-8"))
    return {s: {m: v["mean"] for m, v in stats.items()} for s, stats in data["summary"].items()}


def execute_run(
    run: RunSpec, threads: int | None = None, *, trust_code: bool = False, dist_info: Any = None
) -> RunOutcome:
    """Bring ``run`` to an evaluated final model (see the module docstring).

    Args:
        run: The run.
        threads: torch CPU threads for this run (``None``: leave as is).
        trust_code: Let CLIP TorchScript archives run their own code (``--trust-code``).
        dist_info: Under ``torchrun``, this process's :class:`~csdn.engine.distributed.DistInfo` (the process
            group initialised): every rank trains, rank 0 alone claims the folder and evaluates.

    Returns:
        A :class:`RunOutcome`; its ``summary`` is ``{setting: {metric: mean over trials}}`` (fractions).
    """
    import torch

    from ..data import open_dataset
    from ..engine import Trainer, build_csdn, config_from_dict, load_trained_model
    from ..engine.distributed import DistInfo, resolve_device
    from ..engine.run_dir import RunFolderBusyError, claim_run_folder
    from ..evaluation import VIReIDEvaluator

    if threads is not None:
        torch.set_num_threads(threads)
    info = dist_info or DistInfo(0, 1, 0)
    tic = time.perf_counter()
    state = run_state(run)
    if state == "done":
        return RunOutcome(run.name, "done", 0.0, _summary(run.run_dir / "eval.json"))
    cfg = config_from_dict(run.config)
    try:
        with claim_run_folder(run.run_dir, is_main=info.is_main):
            if info.world_size == 1:  # another executor may have finished it before we claimed it
                state = run_state(run)
                if state == "done":
                    return RunOutcome(run.name, "done", 0.0, _summary(run.run_dir / "eval.json"))
            reader = {"trial": cfg.data.trial} if cfg.data.dataset == "regdb" else {}
            dataset = open_dataset(cfg.data.dataset, cfg.data.root, **reader)
            device = resolve_device(cfg.runtime.device, info)
            final = run.run_dir / "checkpoints" / "final.pt"
            if state in ("new", "resume"):
                model = build_csdn(cfg, dataset.train.num_classes, device, trust_code=trust_code)
                final = Trainer(cfg, model, dataset.train, dist_info=info).fit(resume=state == "resume")
            if not info.is_main:
                return RunOutcome(run.name, {"new": "trained", "resume": "resumed"}.get(state, state), 0.0)
            model, _, _ = load_trained_model(final, device, trust_code=trust_code)
            evaluator = VIReIDEvaluator(
                dataset, trials=run.trials, height=cfg.data.height, width=cfg.data.width, batch_size=128,
                num_workers=cfg.data.num_workers, device=device,
            )  # fmt: skip
            evaluator.run(model, chance=True).to_json(run.run_dir / "eval.json")  # chance level: every table
    except RunFolderBusyError as error:
        return RunOutcome(run.name, "busy", time.perf_counter() - tic, message=str(error))
    status = {"new": "trained", "resume": "resumed", "evaluate": "evaluated"}[state]
    return RunOutcome(run.name, status, time.perf_counter() - tic, _summary(run.run_dir / "eval.json"))
