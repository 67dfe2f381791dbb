"""What a training run tells its user while it runs: per-iteration progress lines and the run's ``train.log``.

Every ``runtime.log_every`` iterations :class:`IterationLog` logs one line (stage, epoch, iteration/total, the
mean of each loss term over those iterations, learning rate, images/s, data-loading time, the ETA of the stage
and of the run) through the ``csdn`` loggers -- so it reaches the console and ``train.log`` whether or not a
terminal is attached -- and records the same values as a ``stage{N}/iter`` event in ``metrics.jsonl`` (and
TensorBoard). On a terminal a tqdm bar also shows the running loss.

The run's ETA counts the current stage's remaining iterations at its measured pace, and each later stage's
epochs at the current stage's seconds per epoch (its pace is unknown until it starts): a ``~`` marks it as an
estimate until the last stage.

Example:
    >>> with run_log_handlers(run_dir / "train.log", enabled=True):  # console + train.log for the duration
    ...     trainer.fit()
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, TypeVar

from .._io import check_write_target, open_append
from .._progress import Progress, StderrLogHandler, format_seconds
from .tracking import MetricsLogger

__all__ = ["IterationLog", "RunFileHandler", "run_log_handlers"]

logger = logging.getLogger(__name__)
T = TypeVar("T")

_FILE_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"  # the same as ``csdn train``'s train.log


class IterationLog:
    """Per-iteration progress of a run: timing, window means of the loss terms, log lines, metrics records.

    Args:
        metrics: Where the ``stage{N}/iter`` records go (a no-op logger on non-zero ranks).
        log_every: Iterations between two lines/records at most (0 = none).
        bar: Show a tqdm bar with the running loss (only on a terminal; rank 0).
        stage_epochs: ``{stage index: epochs}`` of every stage the run trains, in order (for the run's ETA).
        log_lines: Lines per epoch at least, evenly spaced (0 = every ``log_every`` only): an epoch shorter than
            ``log_lines * log_every`` iterations logs every ``ceil(iterations / log_lines)`` iterations, so a short
            run still reports its progress.
    """

    def __init__(
        self, metrics: MetricsLogger, log_every: int, bar: bool, stage_epochs: Mapping[int, int], log_lines: int = 0
    ) -> None:
        self.metrics, self.log_every, self.bar, self.log_lines = metrics, log_every, bar, log_lines
        self._every = log_every
        self.stage_epochs = dict(stage_epochs)
        self._stage: int | None = None
        self._stage_time = self._stage_steps = 0.0
        self._progress: Progress | None = None

    def start_epoch(self, stage: int, epoch: int, iterations: int, lr: float) -> None:
        """Begin epoch ``epoch`` (0-based) of ``stage``, with ``iterations`` steps at learning rate ``lr``."""
        if stage != self._stage:  # the pace of a stage is measured from its own iterations only
            self._stage, self._stage_time, self._stage_steps = stage, 0.0, 0
        self.epoch, self.iterations, self.lr = epoch, iterations, lr
        self._every = self.log_every
        if self.log_every > 0 and self.log_lines > 0:
            self._every = min(self.log_every, max(1, -(-iterations // self.log_lines)))
        self._reset_window()
        desc = f"stage {stage} epoch {epoch + 1}/{self.stage_epochs.get(stage, epoch + 1)}"
        self._progress = Progress(iterations, desc, report=self.bar, lines=False, unit="it")
        self._mark = time.perf_counter()

    def _reset_window(self) -> None:
        self._sums: dict[str, float] = {}
        self._count = self._samples = 0
        self._data = self._busy = 0.0

    def timed(self, batches: Iterable[T]) -> Iterator[T]:
        """Yield ``batches``, timing how long each one takes to arrive (data loading)."""
        iterator = iter(batches)
        while True:
            tic = time.perf_counter()
            try:
                batch = next(iterator)
            except StopIteration:
                return
            self._data += time.perf_counter() - tic
            yield batch

    def step(self, iteration: int, losses: Mapping[str, float], samples: int) -> None:
        """Record iteration ``iteration`` (0-based) of the epoch: its loss terms and the samples it processed."""
        now = time.perf_counter()
        elapsed, self._mark = now - self._mark, now
        self._busy += elapsed
        self._stage_time += elapsed
        self._stage_steps += 1
        self._count += 1
        self._samples += samples
        for key, value in losses.items():
            self._sums[key] = self._sums.get(key, 0.0) + value
        if self._progress is not None:
            self._progress.update(1, loss=self._sums.get("loss", 0.0) / self._count)
        if self._every > 0 and (iteration + 1) % self._every == 0:
            self._emit(iteration)
            self._reset_window()

    def end_epoch(self) -> None:
        """Close the epoch's bar."""
        if self._progress is not None:
            self._progress.close()
            self._progress = None

    def _epochs_of(self, stage: int | None) -> int:
        return self.stage_epochs.get(stage, 0) if stage is not None else 0

    def eta(self, iteration: int) -> tuple[float, float]:
        """Seconds left in the current stage and in the run after iteration ``iteration`` of the current epoch."""
        pace = self._stage_time / max(self._stage_steps, 1)
        stage = self._stage
        left = (self._epochs_of(stage) - self.epoch - 1) * self.iterations + self.iterations - iteration - 1
        stage_left = max(left, 0) * pace
        later = sum(epochs for index, epochs in self.stage_epochs.items() if stage is not None and index > stage)
        return stage_left, stage_left + later * self.iterations * pace

    def _emit(self, iteration: int) -> None:
        count = max(self._count, 1)
        means = {key: total / count for key, total in self._sums.items()}
        stage_left, run_left = self.eta(iteration)
        rate = self._samples / max(self._busy, 1e-9)
        data = self._data / count
        estimate = "~" if run_left > stage_left else ""
        logger.info(
            "stage %d epoch %d/%d iter %d/%d %s lr=%.3g %.1f img/s data %.3fs eta %s run %s%s",
            self._stage, self.epoch + 1, self._epochs_of(self._stage), iteration + 1, self.iterations,
            " ".join(f"{k}={v:.4g}" for k, v in means.items()), self.lr, rate, data, format_seconds(stage_left),
            estimate, format_seconds(run_left),
        )  # fmt: skip
        self.metrics.log(
            f"stage{self._stage}/iter",
            step=self.epoch * self.iterations + iteration,
            epoch=self.epoch,
            iteration=iteration + 1,
            iterations=self.iterations,
            **means,
            lr=self.lr,
            images_per_s=round(rate, 3),
            data_s=round(data, 5),
            eta_stage_s=round(stage_left, 1),
            eta_run_s=round(run_left, 1),
        )


class RunFileHandler(logging.FileHandler):
    """A ``FileHandler`` that opens (and creates the folder of) its file only when the first record arrives.

    The file is opened with :func:`csdn._io.open_append`: never through a symbolic link, and noted as created by
    this run when it did not exist.
    """

    def __init__(self, path: Path) -> None:
        check_write_target(path)  # a link or a folder at train.log: one clear error before the run starts
        super().__init__(path, encoding="utf-8", delay=True)
        self.setFormatter(logging.Formatter(_FILE_FORMAT))

    def _open(self) -> Any:
        return open_append(self.baseFilename, encoding=self.encoding or "utf-8")  # never through a link; noted


def _writes_to(path: Path) -> bool:
    target = os.path.abspath(path)
    handlers = [*logging.getLogger("csdn").handlers, *logging.getLogger().handlers]
    return any(isinstance(h, logging.FileHandler) and h.baseFilename == target for h in handlers)


@contextlib.contextmanager
def run_log_handlers(path: str | os.PathLike, enabled: bool = True) -> Iterator[None]:
    """Log the ``csdn`` package to the console and to ``path`` (``train.log``) for the duration of the block.

    Handlers the user configured are never touched: a console handler (stderr) is added to the ``csdn`` logger
    only when neither it nor the root logger has any, and the file handler only when no handler of either
    already writes ``path`` (``csdn train`` adds its own for the whole command). The ``csdn`` logger is set to
    INFO for the block when it has no level of its own. Everything is restored on exit.

    Args:
        path: The log file (opened, and its folder created, at the first record).
        enabled: ``False`` does nothing (non-zero ranks of a distributed run).
    """
    package = logging.getLogger("csdn")
    added: list[logging.Handler] = []
    level = package.level
    if enabled:
        if not package.handlers and not logging.getLogger().handlers:
            added.append(StderrLogHandler())  # above the loss bar on a terminal
        if not _writes_to(Path(path)):
            added.append(RunFileHandler(Path(path)))
        if level == logging.NOTSET:
            package.setLevel(logging.INFO)
    for handler in added:
        package.addHandler(handler)
    try:
        yield
    finally:
        for handler in added:
            package.removeHandler(handler)
            handler.close()
        package.setLevel(level)
