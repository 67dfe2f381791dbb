"""Where a study's runs execute, each through an existing engine (no scheduler of our own).

* :class:`LocalExecutor` (default): one run after the other in this process.
* :class:`ProcessExecutor`: a :class:`concurrent.futures.ProcessPoolExecutor` (``spawn``) of ``workers`` processes,
  each with a torch thread budget; with ``gpus`` (e.g. ``[0, 1, 2, 3]``) one worker per GPU, each seeing only
  its own (``CUDA_VISIBLE_DEVICES``).
* :class:`SubmititExecutor`: Slurm through ``submitit`` (extra ``slurm``): one job array per study call, per-run
  resources, and requeue on preemption or time-out (submitit's ``checkpoint`` protocol) resuming from ``last.pt``.
  ``cluster="local"`` runs the same jobs as local processes (submitit's ``LocalExecutor``; used by the tests).

Every executor yields :class:`~csdn.study.runner.RunOutcome` objects as runs finish. Two executors working on the
same study folder never train the same run: each run claims its folder first, and a claimed run is reported
``busy`` and left to its holder.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from .grid import RunSpec
from .runner import RunOutcome, execute_run

__all__ = ["LocalExecutor", "ProcessExecutor", "SubmititExecutor", "StudyExecutor"]


class StudyExecutor:
    """Base class: ``map(runs)`` yields one :class:`RunOutcome` per run, in completion order."""

    #: Runs that execute at the same time.
    parallel: int = 1

    def map(self, runs: Sequence[RunSpec]) -> Iterator[RunOutcome]:
        raise NotImplementedError

    def describe(self) -> str:
        """One line for the study log."""
        return type(self).__name__


class LocalExecutor(StudyExecutor):
    """Run after run in this process.

    Args:
        threads: torch CPU threads (``None``: unchanged).
        trust_code: Let CLIP TorchScript archives run their own code.
        dist_info: Under ``torchrun`` (process group initialised): every rank trains each run, rank 0 evaluates.
    """

    def __init__(self, threads: int | None = None, trust_code: bool = False, dist_info: Any = None) -> None:
        self.threads, self.trust_code, self.dist_info = threads, trust_code, dist_info

    def map(self, runs: Sequence[RunSpec]) -> Iterator[RunOutcome]:
        for run in runs:
            yield execute_run(run, self.threads, trust_code=self.trust_code, dist_info=self.dist_info)

    def describe(self) -> str:
        return "local, sequential"


def _init_worker(devices: Any, threads: int) -> None:
    """Process-pool initialiser: a thread budget, one GPU (if the pool has a device queue), a quiet console."""
    import logging

    os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = str(threads)
    if devices is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = str(devices.get())
    import torch

    torch.set_num_threads(threads)
    logging.getLogger("csdn").addHandler(logging.NullHandler())  # per-run logs go to each run's train.log


class ProcessExecutor(StudyExecutor):
    """Runs in parallel worker processes.

    Args:
        workers: Worker processes (default: one per GPU in ``gpus``, else 2).
        threads: torch CPU threads per worker (default: CPU cores // workers, at least 1).
        gpus: GPU indices, one worker each (each worker sees only its GPU as ``cuda:0``).
        trust_code: Let CLIP TorchScript archives run their own code.
    """

    def __init__(self, workers: int | None = None, threads: int | None = None, gpus: Sequence[int] | None = None,
                 trust_code: bool = False) -> None:  # fmt: skip
        self.trust_code = trust_code
        if gpus is not None and workers is not None and workers != len(gpus):
            raise ValueError(f"workers={workers} but {len(gpus)} GPUs given: one worker per GPU")
        self.gpus = list(gpus) if gpus is not None else None
        self.parallel = workers or (len(self.gpus) if self.gpus else 2)
        if self.parallel < 1:
            raise ValueError(f"workers={workers} is invalid: expected at least 1")
        self.threads = threads or max(1, (os.cpu_count() or 1) // self.parallel)

    def map(self, runs: Sequence[RunSpec]) -> Iterator[RunOutcome]:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor, as_completed

        context = multiprocessing.get_context("spawn")  # no forked torch state
        devices = None
        if self.gpus is not None:
            devices = context.Queue()
            for gpu in self.gpus:
                devices.put(gpu)
        with ProcessPoolExecutor(self.parallel, mp_context=context, initializer=_init_worker,
                                 initargs=(devices, self.threads)) as pool:  # fmt: skip
            futures = [pool.submit(execute_run, run, trust_code=self.trust_code) for run in runs]
            for future in as_completed(futures):
                yield future.result()

    def describe(self) -> str:
        where = f"one per GPU {self.gpus}" if self.gpus else f"{self.threads} CPU thread(s) each"
        return f"local, {self.parallel} worker processes, {where}"


class _SubmittedRun:
    """The callable a submitit job runs; on preemption/time-out submitit calls :meth:`checkpoint` to requeue it."""

    def __init__(self, run: RunSpec, threads: int | None, trust_code: bool = False) -> None:
        self.run, self.threads, self.trust_code = run, threads, trust_code

    def __call__(self) -> RunOutcome:
        return execute_run(self.run, self.threads, trust_code=self.trust_code)

    def checkpoint(self, *args: Any, **kwargs: Any) -> Any:
        """Requeue the same run: it resumes from the ``last.pt`` its interrupted job left."""
        from submitit.helpers import DelayedSubmission

        return DelayedSubmission(_SubmittedRun(self.run, self.threads, self.trust_code))


class SubmititExecutor(StudyExecutor):
    """Slurm (or local processes) through submitit: one job array per call, one array task per run.

    Args:
        folder: submitit's folder for job scripts, logs and pickles (e.g. ``OUT/slurm``).
        cluster: ``"slurm"``, ``"local"`` (local processes, for tests) or ``None`` (Slurm if available, else local).
        parallel: Array tasks running at once (``slurm_array_parallelism``).
        threads: torch CPU threads per run (default: ``cpus_per_task``).
        trust_code: Let CLIP TorchScript archives run their own code.
        **resources: Per-run resources for ``update_parameters``, e.g. ``timeout_min=600, gpus_per_node=1,
            cpus_per_task=8, slurm_partition="gpu", mem_gb=32``.
    """

    def __init__(self, folder: str | os.PathLike, cluster: str | None = None, parallel: int = 16,
                 threads: int | None = None, trust_code: bool = False, **resources: Any) -> None:  # fmt: skip
        from .._optional import require

        require("submitit", "slurm")
        self.folder, self.cluster, self.parallel = Path(folder), cluster, parallel
        self.resources = {"timeout_min": 24 * 60, "cpus_per_task": 8, "gpus_per_node": 1, **resources}
        self.threads = threads or self.resources.get("cpus_per_task")
        self.trust_code = trust_code

    def _executor(self) -> Any:
        import submitit

        executor = submitit.AutoExecutor(folder=self.folder, cluster=self.cluster)
        executor.update_parameters(name="csdn-study", slurm_array_parallelism=self.parallel, **self.resources)
        return executor

    def map(self, runs: Sequence[RunSpec]) -> Iterator[RunOutcome]:
        from submitit.helpers import as_completed

        executor = self._executor()
        with executor.batch():  # one job array
            jobs = [executor.submit(_SubmittedRun(run, self.threads, self.trust_code)) for run in runs]
        for job in as_completed(jobs, poll_frequency=1):
            yield job.result()

    def describe(self) -> str:
        return f"submitit ({self.cluster or 'auto'}), job array in {self.folder}, {self.resources}"
