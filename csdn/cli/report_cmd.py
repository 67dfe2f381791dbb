"""``csdn eval ... --report DIR``: the option, the early output check, and the report writing.

Kept out of :mod:`csdn.cli.main` so that module only calls three functions.
"""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["add_report_option", "check_report_option", "write_eval_report"]


def add_report_option(parser: argparse.ArgumentParser) -> None:
    """Add ``--report DIR`` to a sub-command."""
    parser.add_argument(
        "--report", metavar="DIR",
        help="also write a self-contained HTML report (DIR/index.html: results, CMC, camera x camera matrix, "
        "distance histograms and ROC, lowest-AP queries, provenance; viz extra)",
    )  # fmt: skip
    parser.add_argument(
        "--force", action="store_true",
        help="overwrite an existing --json file and a non-empty --report folder (refused without it)",
    )  # fmt: skip


def check_report_option(args: argparse.Namespace) -> None:
    """Refuse a bad ``--report`` folder or a missing matplotlib before anything is evaluated."""
    if getattr(args, "report", None):
        from ..report import check_report_dir

        check_report_dir(args.report, force=getattr(args, "force", False))


def write_eval_report(args: argparse.Namespace, evaluator: Any, model: Any, report: Any) -> None:
    """Write the report of a finished ``csdn eval`` run into ``args.report`` (no-op without the option)."""
    if not getattr(args, "report", None):
        return
    from ..report import build_report

    path = build_report(args.report, evaluator, model, report, checkpoint=args.checkpoint)
    print(f"report written to {path}")
