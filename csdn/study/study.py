"""A study: plan a grid of runs, record it, execute what is left, and report with uncertainty.

Example::

    from csdn.study import Study, Variant

    study = Study("runs/regdb-study", "data/RegDB", dataset="regdb", splits=range(1, 11), seeds=[1, 2],
                  variants=[Variant("csdn"), Variant("no-fusion", ablation="csdn_none")])
    results = study.run()          # resumable: call again after a kill, finished runs are not redone
    print(study.table(results))

The study folder holds ``study_plan.json`` (the options and every run's resolved configuration), ``study.log``
(one line per finished run: its cell, numbers, runs left, ETA), one ``csdn train`` run folder per run and the
results (:mod:`csdn.study.results`).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from .._io import atomic_write_text
from .executors import LocalExecutor, StudyExecutor
from .grid import RunSpec, Variant, check_plan, plan_record, plan_runs
from .results import table_text, write_results
from .runner import RunOutcome

__all__ = ["Study"]

logger = logging.getLogger(__name__)


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}h{rest // 60:02d}m" if hours else f"{rest // 60}m{rest % 60:02d}s"


class Study:
    """A resumable grid of training runs over variants x seeds x dataset splits (see the module docstring).

    Args:
        out: Study folder.
        root: Dataset folder.
        dataset: ``regdb``, ``sysu``, ``llcm``, ``csv`` or a registered name.
        variants: Rows of the study (:class:`Variant`); default the full model only.
        seeds: Training seeds.
        splits: RegDB training splits (e.g. ``range(1, 11)``, the ten-split protocol).
        trials: Gallery trials every run is evaluated on (SYSU-MM01/LLCM; default all).
        preset: Starting configuration (default the dataset's).
        overrides: ``key=value`` config overrides shared by every run.
        layout: Run folder names (see :func:`csdn.study.grid.plan_runs`).
        stem: Name of the plan/results files (``<stem>_plan.json``, ``<stem>.md``, ...).
        title: Title of the results page.
    """

    def __init__(self, out: str | Path, root: str | Path, *, dataset: str, variants: Sequence[Variant] = (),
                 seeds: Sequence[int] = (1,), splits: Sequence[int] | None = None,
                 trials: Sequence[int] | None = None, preset: str | None = None, overrides: Sequence[str] = (),
                 layout: str | None = None, stem: str = "study", title: str | None = None) -> None:  # fmt: skip
        self.out, self.stem = Path(out), stem
        self.title = title or f"Study: {dataset}"
        variants = list(variants) or [Variant("csdn")]
        self.options = {
            "dataset": dataset, "root": str(Path(root).resolve()), "preset": preset,
            "variants": [v.name for v in variants], "seeds": list(seeds),
            "splits": None if splits is None else list(splits), "trials": None if trials is None else list(trials),
            "overrides": list(overrides),
        }  # fmt: skip
        self.runs: list[RunSpec] = plan_runs(
            self.out, root, dataset=dataset, preset=preset, variants=variants, seeds=list(seeds),
            splits=None if splits is None else list(splits), trials=trials, overrides=overrides, layout=layout,
        )  # fmt: skip

    @property
    def plan_path(self) -> Path:
        return self.out / f"{self.stem}_plan.json"

    def record_plan(self) -> None:
        """Check the plan against the one the folder records (refusing other settings), then write it."""
        check_plan(self.plan_path, self.runs)
        known = []
        if self.plan_path.is_file():  # keep runs an earlier, larger call planned
            names = {r.name for r in self.runs}
            recorded = json.loads(self.plan_path.read_text(encoding="utf-8"))["runs"]
            known = [r for r in recorded if r["name"] not in names]
        record = plan_record(self.runs, self.options)
        record["runs"] = known + record["runs"]
        atomic_write_text(self.plan_path, json.dumps(record, indent=2) + "\n")

    def run(
        self,
        executor: StudyExecutor | None = None,
        out: Callable[[str], Any] | None = None,
        before_results: Callable[[], Any] | None = None,
        is_main: bool = True,
    ) -> dict[str, Any]:
        """Execute the runs not finished yet, then collect and write the results.

        Args:
            executor: Where runs execute (default :class:`~csdn.study.executors.LocalExecutor`).
            out: Called with each progress line (default: the ``csdn.study`` logger at INFO); every line also
                goes to ``study.log``.
            before_results: Called once the runs are done, before the results are written (e.g. per-run reports
                that the index page then links).
            is_main: ``False`` on ranks other than 0 under ``torchrun``: train only; no plan, log or results
                (the call returns ``{}``).

        Returns:
            The results (:func:`csdn.study.results.collect`).
        """
        from .runner import run_state

        executor = executor or LocalExecutor()
        check_plan(self.plan_path, self.runs)
        states = {run.name: run_state(run) for run in self.runs}  # refuses a folder of another configuration first
        todo = [run for run in self.runs if states[run.name] != "done"]
        check_data(run for run in todo if states[run.name] == "new")  # one line before any training, as csdn train
        if not is_main:
            for _ in executor.map(todo):
                pass
            return {}
        self.out.mkdir(parents=True, exist_ok=True)
        self.record_plan()
        say = self._progress(out)
        say(f"study {self.out}: {len(self.runs)} runs, {len(self.runs) - len(todo)} finished earlier, "
            f"{len(todo)} to run ({executor.describe()})")  # fmt: skip
        self._execute(executor, todo, say)
        if before_results is not None:
            before_results()
        results, written = write_results(self.out, self.runs, self.options, self.stem, self.title)
        say(f"results: {', '.join(str(p) for p in written)}")
        return results

    def _progress(self, out: Callable[[str], Any] | None) -> Callable[[str], None]:
        log = self.out / "study.log"

        def say(line: str) -> None:
            with log.open("a", encoding="utf-8") as handle:
                handle.write(time.strftime("%Y-%m-%d %H:%M:%S ") + line + "\n")
            (out or logger.info)(line)

        return say

    def _execute(self, executor: StudyExecutor, todo: list[RunSpec], say: Callable[[str], None]) -> None:
        cells = {run.name: run for run in todo}
        start, worked, left = time.perf_counter(), 0, len(todo)
        for outcome in executor.map(todo):
            left -= 1
            if outcome.status in ("trained", "resumed", "evaluated"):
                worked += 1
            elapsed = time.perf_counter() - start
            eta = f"ETA {_duration(elapsed / worked * left)}" if worked and left else ("done" if not left else "ETA ?")
            say(f"[{len(todo) - left}/{len(todo)}] {self._describe(cells[outcome.name], outcome)}; {left} runs left, "
                f"{eta}")  # fmt: skip

    @staticmethod
    def _describe(run: RunSpec, outcome: RunOutcome) -> str:
        cell = f"{run.variant} seed {run.seed}" + (f" split {run.split}" if run.split is not None else "")
        if outcome.status == "busy":
            return f"{cell}: held by another process, left to it ({outcome.message})"
        numbers = "; ".join(f"{setting} rank-1 {100 * v['rank1']:.2f}% mAP {100 * v['mAP']:.2f}%"
                            for setting, v in outcome.summary.items())  # fmt: skip
        return f"{cell}: {outcome.status} in {_duration(outcome.seconds)}: {numbers}"

    def table(self, results: dict[str, Any]) -> str:
        """The results as plain-text tables."""
        return table_text(results)


def check_data(runs: Iterable[RunSpec]) -> None:
    """Run :func:`csdn.engine.preflight.preflight` on every run before any of them trains.

    Raises:
        ValueError: the first run whose data cannot feed its configuration, named, with the preflight's line.
    """
    from ..data import open_dataset
    from ..engine import config_from_dict
    from ..engine.preflight import preflight

    datasets: dict[tuple[str, str, int], Any] = {}
    for run in runs:
        cfg = config_from_dict(run.config)
        key = (cfg.data.dataset, cfg.data.root, cfg.data.trial if cfg.data.dataset == "regdb" else 0)
        if key not in datasets:
            reader = {"trial": cfg.data.trial} if cfg.data.dataset == "regdb" else {}
            datasets[key] = open_dataset(cfg.data.dataset, cfg.data.root, **reader)
        try:
            preflight(cfg, datasets[key])
        except ValueError as error:
            raise ValueError(f"run {run.name}: {error}") from None
