"""Mutation testing of one area of csdn with mutmut: do the tests of the area catch small plausible bugs?

``python tools/mutation.py AREA [AREA ...]`` (data, engine, evaluation, report, safety; ``list`` shows them) copies
``csdn/``, ``tests/`` and ``pyproject.toml`` into ``build/mutation/AREA[-AREA...]/``, appends a ``[tool.mutmut]``
section naming the areas' modules and tests (mutmut reads its settings from ``pyproject.toml`` only), runs
``mutmut run`` on the areas' selected functions there, and prints every mutant that was not killed. Several
areas in one call share mutmut's start-up (one pass of their tests to map tests to functions); each mutant runs
only the tests that reach its function. ``mutmut show NAME`` (run in
``build/mutation/AREA/``) prints a mutant's diff. A developer command (``pip install -e .[dev]``), not a CI job:
each area takes minutes on two cores. See docs/development.md, "Mutation testing", for the survivors judged
harmless and why.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import NamedTuple

ROOT = Path(__file__).resolve().parents[1]


class Area(NamedTuple):
    """Modules to mutate, the tests run against them and the functions (mutmut name globs) whose mutants run."""

    modules: tuple[str, ...]
    tests: tuple[str, ...]
    functions: tuple[str, ...]


AREAS = {
    "data": Area(
        ("csdn/data/transforms.py", "csdn/data/images.py"),
        ("tests/data/test_transforms.py", "tests/data/test_image_modes.py"),
        ("csdn.data.transforms.*ChannelRandomErasing*", "csdn.data.transforms.x__grey*",
         "csdn.data.transforms.x__channel_op*", "csdn.data.transforms.*ChannelAdapGray*",
         "csdn.data.images.x_to_8bit*"),
    ),
    "engine": Area(
        ("csdn/engine/feature_bank.py", "csdn/engine/inputs.py"),
        ("tests/engine/test_feature_bank.py", "tests/engine/test_trainer.py::test_holdout_validation_split",
         "tests/engine/test_trainer.py::test_sampled_bank_split_is_one_official_identity_sampler_epoch"),
        ("csdn.engine.feature_bank.x_extraction_steps*", "csdn.engine.feature_bank.x__batch_order*",
         "csdn.engine.feature_bank.x__share*", "csdn.engine.feature_bank.x__scatter_rows*",
         "csdn.engine.inputs.x_holdout_validation*"),
    ),
    "evaluation": Area(
        ("csdn/evaluation/metrics.py",),
        ("tests/evaluation/test_metrics.py",),
        ("csdn.evaluation.metrics.x__positives*", "csdn.evaluation.metrics.x__tied_ahead*",
         "csdn.evaluation.metrics.x__match_ranks*", "csdn.evaluation.metrics.x__chunk_metrics*"),
    ),
    "report": Area(
        ("csdn/report/html.py", "csdn/_progress.py"),
        ("tests/report/test_writer.py", "tests/test_progress.py"),
        ("csdn.report.html.x_escape*", "csdn.report.html.x_join*", "csdn.report.html.x_tag*",
         "csdn._progress.x_format_seconds*"),
    ),
    "safety": Area(
        ("csdn/_io.py",),
        ("tests/test_io.py",),
        ("csdn._io.*",),
    ),
}  # fmt: skip


def _config(area: Area) -> str:
    quoted = lambda items: "[" + ", ".join(f'"{x}"' for x in items) + "]"  # noqa: E731
    return (
        "\n[tool.mutmut]\n"
        'source_paths = ["csdn"]\n'
        f"only_mutate = {quoted(area.modules)}\n"
        f"pytest_add_cli_args_test_selection = {quoted(area.tests)}\n"
        'pytest_add_cli_args = ["-p", "no:cacheprovider", "-q", "-x"]\n'
        "use_git_change_detection = false\n"
        'process_isolation = "forkserver"\n'  # torch is not fork-safe after pytest has run in the parent
    )


def prepare(name: str, area: Area) -> Path:
    """A fresh ``build/mutation/NAME`` holding the sources, the tests and the area's mutmut configuration."""
    work = ROOT / "build" / "mutation" / name
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for folder in ("csdn", "tests"):
        shutil.copytree(ROOT / folder, work / folder, ignore=ignore)
    (work / "pyproject.toml").write_text((ROOT / "pyproject.toml").read_text() + _config(area))
    return work


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("areas", nargs="+", choices=[*AREAS, "list"], metavar="AREA")
    parser.add_argument("--max-children", type=int, default=2, help="mutants run in parallel (default 2)")
    parser.add_argument("--timeout", type=float, default=600, help="stop mutmut after this many seconds")
    args = parser.parse_args(argv)
    if "list" in args.areas:
        for name, area in AREAS.items():
            print(f"{name}: {' '.join(area.modules)} <- {' '.join(area.tests)}")
        return 0
    chosen = [AREAS[name] for name in dict.fromkeys(args.areas)]
    area = Area(*(tuple(x for part in field for x in part) for field in zip(*chosen, strict=True)))
    work = prepare("-".join(dict.fromkeys(args.areas)), area)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # mutmut puts its mutants/ copy first
    mutmut = [sys.executable, "-m", "mutmut"]
    try:
        subprocess.run([*mutmut, "run", "--max-children", str(args.max_children), *area.functions], cwd=work,
                       env=env, timeout=args.timeout, stdout=subprocess.DEVNULL, check=False)  # fmt: skip
    except subprocess.TimeoutExpired:
        print(f"stopped after {args.timeout:.0f} s; the results below are partial", file=sys.stderr)
    results = subprocess.run([*mutmut, "results"], cwd=work, env=env, capture_output=True, text=True, check=False)
    shown = [line for line in results.stdout.splitlines() if not line.endswith(": not checked")]  # other areas
    print("\n".join(shown) if shown else "no surviving mutant")
    print(f"(in {work}: `mutmut show NAME` prints a mutant, `mutmut results --all true` every verdict)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
