"""``csdn ablate``: the paper's ablation study in one command, resumable: a preset of ``csdn study``.

Every chosen variant (``csdn.models.factory.ABLATIONS``; default all five) is trained from the same preset, seed
and ``--set`` overrides into its own run folder ``OUT/<variant>/`` by :class:`csdn.study.Study` (one seed, one
split, the local executor; under ``torchrun`` every rank trains each variant, rank 0 evaluates and writes): a
finished variant is skipped, one with only ``checkpoints/last.pt`` resumes from it, and ``OUT/ablation_plan.json``
records every run's configuration (a later call with other settings, or a run folder trained with another
configuration, is refused). The results are the study's (``OUT/ablation.{md,json}``, ``OUT/index.html``, the
table printed at the end; ``csdn study`` adds seeds and splits to the same grid), plus a report per variant
(``OUT/<variant>/report/index.html``) and the chart ``OUT/ablation.png``.
"""

from __future__ import annotations

import argparse
import logging
from typing import Any

from .options import add_plugin_option, add_trust_code

__all__ = ["VARIANTS", "add_ablate_parser", "cmd_ablate"]

logger = logging.getLogger("csdn.cli")

#: The paper's ablation rows, from the image-only baseline to the full model.
VARIANTS = ("baseline", "clip_vireid", "csdn_add", "csdn_none", "csdn")
#: Config fields allowed to differ between variants (the ablation switches and the run folder).
VARIANT_KEYS = ("model.variant", "model.integrator", "runtime.output_dir")


def add_ablate_parser(sub: Any) -> None:
    """Register ``csdn ablate`` on the sub-command parser."""
    p = sub.add_parser(
        "ablate",
        help="train and evaluate the paper's ablation variants; table, chart and reports",
        description=__doc__.split("\n\n")[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--dataset", metavar="NAME", help="sysu, regdb, llcm, csv or a registered name (default: the preset's)"
    )
    p.add_argument("--root", required=True, help="dataset folder in its public layout")
    p.add_argument("--out", required=True, help="study folder: one run folder per variant, tables, reports")
    p.add_argument("--variants", nargs="+", choices=VARIANTS, default=list(VARIANTS), metavar="VARIANT",
                   help=f"variants to run (default: all of {', '.join(VARIANTS)})")  # fmt: skip
    p.add_argument(
        "--preset",
        help="starting configuration: sysu, regdb, llcm (official procedure), sysu-clean, regdb-clean, llcm-clean "
        "(cleaned-up procedure) or demo (default: the dataset's)",
    )
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override one config field for every variant, e.g. --set stage3.epochs=60 (repeatable)",
    )
    p.add_argument("--trials", type=int, help="evaluation trials to average (default: all the protocol has)")
    p.add_argument("--no-report", action="store_true", help="skip the HTML reports (no viz extra needed)")
    add_plugin_option(p)
    add_trust_code(p)
    p.set_defaults(func=cmd_ablate)


def _seed_and_split(args: argparse.Namespace) -> tuple[str, int, int, list[str]]:
    """The dataset, seed and RegDB split the variants share (from the preset and ``--set``), and the other overrides."""
    from .runs import resolve_train_config

    ns = argparse.Namespace(preset=args.preset, dataset=args.dataset, root=args.root, config=None, ablation=None,
                            overrides=list(args.overrides))  # fmt: skip
    cfg = resolve_train_config(ns)
    rest = [o for o in args.overrides if o.partition("=")[0].strip() not in ("runtime.seed", "data.trial")]
    return cfg.data.dataset, cfg.runtime.seed, cfg.data.trial, rest


def cmd_ablate(args: argparse.Namespace) -> int:
    """Run ``csdn ablate`` (see the module docstring)."""
    from ..data import open_dataset
    from ..engine.distributed import cleanup_distributed, dist_info_from_env, init_distributed, resolve_device
    from ..study import LocalExecutor, Study, Variant

    if args.trials is not None and args.trials < 1:
        raise ValueError(f"--trials {args.trials} is invalid: expected a number of trials >= 1")
    for item in args.overrides:
        if item.partition("=")[0].strip() in VARIANT_KEYS:
            raise ValueError(f"--set {item!r} is not allowed: ablate sets {item.partition('=')[0].strip()} itself")
    if not args.no_report:
        from .._optional import require

        require("matplotlib", "viz")  # before hours of training, not after
    dataset, seed, split, overrides = _seed_and_split(args)
    trials = None
    if args.trials is not None and dataset != "regdb":
        trials = list(open_dataset(dataset, args.root).trials[: args.trials])
    study = Study(
        args.out, args.root, dataset=dataset, variants=[Variant(v, ablation=v) for v in dict.fromkeys(args.variants)],
        seeds=[seed], splits=[split] if dataset == "regdb" else None, trials=trials, preset=args.preset,
        overrides=overrides, layout="{variant}", stem="ablation", title=f"Ablation study: {dataset}",
    )  # fmt: skip

    def reports() -> None:
        if not args.no_report:
            from .ablate_results import write_variant_reports

            write_variant_reports(study.runs, resolve_device("auto"), args.trust_code)

    info = dist_info_from_env()  # under torchrun every rank trains each variant; rank 0 evaluates and writes
    device = resolve_device(study.runs[0].config["runtime"]["device"], info)
    init_distributed(device, info)
    try:
        executor = LocalExecutor(trust_code=args.trust_code, dist_info=info)
        results = study.run(executor, out=print, before_results=reports, is_main=info.is_main)
    finally:
        cleanup_distributed()
    if not info.is_main:
        return 0
    if not args.no_report:
        from .ablate_results import write_chart

        chart = write_chart(study.out, results)
        print(f"wrote {chart}")
    print()
    print(study.table(results))
    return 0
