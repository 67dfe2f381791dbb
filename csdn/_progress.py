"""Progress of long loops (feature extraction, training epochs): a tqdm bar on a terminal, log lines elsewhere.

Private helper shared by every layer (evaluation must not import engine). A caller passes ``report``:
``True`` (the default display), ``False`` (silent) or a callable ``report(done, total)`` that receives the count
of items processed so far after every update (e.g. to drive a GUI or to silence output in a notebook).
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from typing import Any

__all__ = ["Progress", "ProgressReport", "StderrLogHandler"]

#: ``True`` (bar on a terminal, log lines every ``Progress.log_interval_s`` seconds otherwise), ``False`` (silent), or a
#: callable ``report(done, total)`` called after every update.
ProgressReport = bool | Callable[[int, int], None]


class Progress:
    """Reports the advance of a loop over ``total`` items.

    Args:
        total: Items the loop will process (images, iterations).
        desc: What is being done, e.g. ``"extracting 3803 infrared features"``.
        report: See :data:`ProgressReport`.
        log: Logger of the off-terminal lines (the caller's module logger).
        lines: Log a line every :attr:`log_interval_s` seconds off a terminal (``False`` when the caller logs).
        unit: Name of one item in the bar (``"img"``, ``"it"``).
    """

    #: seconds between two off-terminal progress lines
    log_interval_s: float = 10.0

    def __init__(
        self,
        total: int,
        desc: str,
        report: ProgressReport = True,
        log: logging.Logger | None = None,
        lines: bool = True,
        unit: str = "img",
    ) -> None:
        self.total, self.desc, self.done = total, desc, 0
        self.callback = report if callable(report) else None
        self.log = log or logging.getLogger(__name__)
        self.lines = lines and report is True
        self.bar: Any = None
        if report is True and sys.stderr.isatty():
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, desc=desc, unit=unit, leave=False, dynamic_ncols=True)
            self.lines = False
        self.start = self.last_line = time.perf_counter()

    def update(self, count: int = 1, **postfix: Any) -> None:
        """Add ``count`` processed items; ``postfix`` values (e.g. ``loss=0.52``) are shown beside the bar."""
        self.done += count
        if self.callback is not None:
            self.callback(self.done, self.total)
        if self.bar is not None:
            self.bar.update(count)
            if postfix:
                self.bar.set_postfix({k: f"{v:.4g}" if isinstance(v, float) else v for k, v in postfix.items()})
        now = time.perf_counter()
        if self.lines and now - self.last_line >= self.log_interval_s and self.done < self.total:
            self.last_line = now
            rate = self.done / max(now - self.start, 1e-9)
            eta = (self.total - self.done) / max(rate, 1e-9)
            self.log.info("%s: %d/%d (%.1f/s, eta %s)", self.desc, self.done, self.total, rate, format_seconds(eta))

    def close(self) -> None:
        """Remove the bar (nothing to do off a terminal)."""
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class StderrLogHandler(logging.Handler):
    """Log handler writing to whatever ``sys.stderr`` is at emit time, above any open progress bar.

    Writes through ``tqdm.write``, which clears the bars on the same stream, prints the line and redraws them, so a
    log line never lands inside a bar's line on a terminal (off a terminal it is a plain write). Lines are
    ``HH:MM:SS message`` unless another formatter is set.
    """

    def __init__(self, level: int = logging.NOTSET) -> None:
        super().__init__(level)
        self.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            from tqdm import tqdm

            tqdm.write(self.format(record), file=sys.stderr)
            sys.stderr.flush()  # as logging.StreamHandler: the line is out before the program goes on
        except Exception:  # logging must never break the caller
            self.handleError(record)


def format_seconds(seconds: float) -> str:
    """``H:MM:SS`` of a duration in seconds (rounded; negative durations count as 0)."""
    total = max(int(round(seconds)), 0)
    return f"{total // 3600}:{total % 3600 // 60:02d}:{total % 60:02d}"
