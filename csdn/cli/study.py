"""``csdn study``: a grid of ordinary training runs over variants x seeds x dataset splits, with uncertainty.

Every run is a ``csdn train`` run folder under OUT (``<variant>/seed<s>[/trial<t>]``); OUT/study_plan.json
records the options and every run's resolved configuration, OUT/study.log one line per finished run. Calling
the same command again continues a stopped study: finished runs are never redone, an interrupted one resumes
from its last.pt. The results (OUT/study.{md,json}, OUT/index.html, and the table printed at the end) give each
cell's mean ± std over seeds and splits with a 95% bootstrap CI, and every pair of variants a paired difference
with its CI and permutation p-value.

RegDB: --trials names the training splits (one run per split and seed, both search directions evaluated);
SYSU-MM01 / LLCM: --trials names the gallery trials every run is evaluated on (default all ten).
"""

from __future__ import annotations

import argparse
from typing import Any

from .options import add_plugin_option, add_trust_code

__all__ = ["add_study_parser", "cmd_study"]

EXECUTORS = ("local", "processes", "slurm", "submitit-local")


def add_study_parser(sub: Any) -> None:
    """Register ``csdn study`` on the sub-command parser."""
    p = sub.add_parser(
        "study",
        help="a resumable grid of runs (variants x seeds x splits) with CIs and paired tests",
        description=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--protocol",
        "--dataset",
        dest="protocol",
        metavar="NAME",
        default=None,
        help="regdb (ten-split protocol), sysu, llcm, csv or a registered name (default: the preset's)",
    )
    p.add_argument("--root", required=True, help="dataset folder in its public layout")
    p.add_argument("--out", required=True, help="study folder (created; an existing study there is continued)")
    p.add_argument("--preset", help="starting configuration (sysu, regdb, llcm, *-clean, demo; default: the dataset's)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override one config field for every run (repeatable)")  # fmt: skip
    p.add_argument("--variants", nargs="+", default=[], metavar="ABLATION",
                   help="paper ablations to compare: baseline, clip_vireid, csdn_add, csdn_none, csdn")  # fmt: skip
    p.add_argument("--variant", dest="custom", action="append", nargs="+", default=[], metavar="NAME [KEY=VALUE]",
                   help="a variant of your own: a name then config overrides, e.g. --variant lr1e-3 stage3.lr=1e-3 "
                   "(ablation=NAME starts from a paper ablation; repeatable)")  # fmt: skip
    p.add_argument("--seeds", default="1", metavar="N|LIST",
                   help="seeds: a count N (seeds 1..N) or a list such as 1,5,9 or 1-3 (default 1)")  # fmt: skip
    p.add_argument("--trials", metavar="LIST", help="RegDB splits or SYSU/LLCM gallery trials, e.g. 1-10 or 0,1")
    p.add_argument("--executor", choices=EXECUTORS, default="local",
                   help="local (one run after the other, default), processes (--workers in parallel), slurm "
                   "(submitit job array), submitit-local (the same jobs as local processes)")  # fmt: skip
    p.add_argument("--workers", type=int, help="processes: parallel runs (default: one per --gpus entry, else 2)")
    p.add_argument("--threads", type=int, help="torch CPU threads per run")
    p.add_argument("--gpus", metavar="LIST", help="processes: GPU indices, one worker each, e.g. 0-3")
    p.add_argument("--slurm", dest="slurm", action="append", default=[], metavar="KEY=VALUE",
                   help="slurm: a submitit parameter per run, e.g. timeout_min=720, slurm_partition=gpu, "
                   "gpus_per_node=1, cpus_per_task=8, mem_gb=32 (repeatable)")  # fmt: skip
    p.add_argument("--parallel", type=int, default=16, help="slurm: array tasks running at once (default 16)")
    add_plugin_option(p)
    add_trust_code(p)
    p.set_defaults(func=cmd_study)


def _variants(args: argparse.Namespace) -> list[Any]:
    from ..models.factory import ABLATIONS
    from ..study import Variant

    variants = []
    for name in args.variants:
        if name not in ABLATIONS:
            raise ValueError(f"--variants {name!r} is not a paper ablation ({', '.join(ABLATIONS)}); "
                             "use --variant NAME KEY=VALUE for your own")  # fmt: skip
        variants.append(Variant(name, ablation=name))
    for name, *items in args.custom:
        ablation = next((i.partition("=")[2] for i in items if i.startswith("ablation=")), None)
        if ablation is not None and ablation not in ABLATIONS:
            raise ValueError(f"--variant {name}: ablation={ablation!r} is not one of {', '.join(ABLATIONS)}")
        bad = [i for i in items if "=" not in i]
        if bad:
            raise ValueError(f"--variant {name}: {bad[0]!r} is not KEY=VALUE")
        variants.append(
            Variant(name, ablation=ablation, overrides=tuple(i for i in items if not i.startswith("ablation=")))
        )
    return variants


def _seeds(spec: str) -> list[int]:
    from ..study import parse_numbers

    if spec.strip().isdigit():
        if int(spec) < 1:
            raise ValueError(f"--seeds {spec} is invalid: expected a count >= 1 or a list such as 1,5,9")
        return list(range(1, int(spec) + 1))
    return parse_numbers(spec, "--seeds")


def _executor(args: argparse.Namespace) -> Any:
    from ..study import LocalExecutor, ProcessExecutor, SubmititExecutor, parse_numbers

    if args.executor == "local":
        return LocalExecutor(args.threads, args.trust_code)
    if args.executor == "processes":
        gpus = parse_numbers(args.gpus, "--gpus") if args.gpus else None
        return ProcessExecutor(args.workers, args.threads, gpus, args.trust_code)
    resources: dict[str, Any] = {}
    for item in args.slurm:
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"--slurm {item!r} is not KEY=VALUE (e.g. timeout_min=720)")
        resources[key.strip()] = int(value) if value.strip().isdigit() else value.strip()
    cluster = "local" if args.executor == "submitit-local" else "slurm"
    return SubmititExecutor(f"{args.out}/submitit", cluster, args.parallel, args.threads, args.trust_code, **resources)


def cmd_study(args: argparse.Namespace) -> int:
    """Run ``csdn study`` (see the module docstring)."""
    from ..engine.presets import PRESETS, get_preset
    from ..study import Study, parse_numbers

    dataset = args.protocol or (get_preset(args.preset).data.dataset if args.preset in PRESETS else "sysu")
    trials = parse_numbers(args.trials, "--trials") if args.trials else None
    regdb = dataset == "regdb"
    study = Study(
        args.out, args.root, dataset=dataset, variants=_variants(args), seeds=_seeds(args.seeds),
        splits=trials if regdb else None, trials=None if regdb else trials, preset=args.preset,
        overrides=args.overrides, title=f"Study: {dataset}",
    )  # fmt: skip
    results = study.run(_executor(args), out=print)
    print()
    print(study.table(results))
    return 0
