"""Progress lines scale with the epoch: a short epoch still logs ``runtime.log_lines`` lines (issue 20, item 6)."""

import logging
import re

import pytest

from csdn.engine import apply_overrides, get_preset
from csdn.engine.logs import IterationLog
from csdn.engine.tracking import MetricsLogger


def _logged_iterations(caplog, iterations, log_every, log_lines):
    log = IterationLog(MetricsLogger(None), log_every, bar=False, stage_epochs={3: 1}, log_lines=log_lines)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="csdn.engine.logs"):
        log.start_epoch(3, 0, iterations, lr=0.1)
        for i in range(iterations):
            log.step(i, {"loss": 1.0}, samples=4)
    return [int(m.group(1)) for r in caplog.records if (m := re.search(r" iter (\d+)/", r.getMessage()))]


@pytest.mark.parametrize(
    ("iterations", "log_every", "log_lines", "expected"),
    [
        (8, 50, 4, [2, 4, 6, 8]),  # short epoch: four even lines instead of none
        (10, 50, 5, [2, 4, 6, 8, 10]),
        (7, 50, 3, [3, 6]),  # ceil(7 / 3) = 3 iterations apart
        (200, 50, 3, [50, 100, 150, 200]),  # long epoch: every log_every (at least log_lines lines)
        (8, 50, 0, []),  # log_lines off: the old fixed interval only
        (8, 0, 4, []),  # log_every 0: iteration lines off
    ],
)
def test_lines_per_epoch(caplog, iterations, log_every, log_lines, expected):
    assert _logged_iterations(caplog, iterations, log_every, log_lines) == expected


def test_the_default_reports_a_short_run_and_is_validated():
    cfg = get_preset("sysu")
    assert cfg.runtime.log_lines == 5 and cfg.runtime.log_every == 50
    with pytest.raises(ValueError, match="runtime.log_lines=-1 is invalid"):
        apply_overrides(cfg, ["runtime.log_lines=-1"])
