"""Studies: grids of ordinary training runs over variants x seeds x dataset splits, with their uncertainty.

Sits on top of the engine (training) and evaluation: :class:`Study` plans and records the grid, an executor
(:class:`LocalExecutor`, :class:`ProcessExecutor`, :class:`SubmititExecutor`) runs what is left, and
:mod:`csdn.study.results` reports mean ± std, bootstrap intervals and paired comparisons.
"""

from .executors import LocalExecutor as LocalExecutor
from .executors import ProcessExecutor as ProcessExecutor
from .executors import StudyExecutor as StudyExecutor
from .executors import SubmititExecutor as SubmititExecutor
from .grid import RunSpec as RunSpec
from .grid import Variant as Variant
from .grid import parse_numbers as parse_numbers
from .runner import RunOutcome as RunOutcome
from .runner import execute_run as execute_run
from .stats import bootstrap_interval as bootstrap_interval
from .stats import paired_comparison as paired_comparison
from .study import Study as Study

__all__ = [
    "LocalExecutor",
    "ProcessExecutor",
    "RunOutcome",
    "RunSpec",
    "Study",
    "StudyExecutor",
    "SubmititExecutor",
    "Variant",
    "bootstrap_interval",
    "execute_run",
    "paired_comparison",
    "parse_numbers",
]
