"""``csdn ablate``: the paper's ablation study in one command, resumable, under one seed, data and schedule.

Every chosen variant (``csdn.models.factory.ABLATIONS``; default all five) is trained from the same preset and
``--set`` overrides into its own run folder ``OUT/<variant>/``; a variant whose ``checkpoints/final.pt`` exists
is skipped, one with only ``checkpoints/last.pt`` resumes from it. ``OUT/ablation_plan.json`` records what the
variants share (dataset, root, seed, schedule: the whole configuration except the ablation switches and the run
folder); a later call with different options, or a run folder trained with another configuration, is refused.
Then rank 0 evaluates every variant with the dataset's full protocol and writes ``OUT/ablation.{md,json,png}``,
a report per variant (``OUT/<variant>/report/index.html``) and ``OUT/index.html`` linking them.

Under ``torchrun`` every rank trains (as ``csdn train``); only rank 0 evaluates and writes.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from .._io import atomic_write_text
from .options import add_plugin_option, add_trust_code

__all__ = ["VARIANTS", "add_ablate_parser", "cmd_ablate"]

logger = logging.getLogger("csdn.cli")

#: The paper's ablation rows, from the image-only baseline to the full model.
VARIANTS = ("baseline", "clip_vireid", "csdn_add", "csdn_none", "csdn")
#: Config fields allowed to differ between variants (the ablation switches and the run folder).
VARIANT_KEYS = ("model.variant", "model.integrator", "runtime.output_dir")
#: Config fields that may change between an interrupted call and its continuation (execution only).
RUNTIME_FREE = ("runtime.device", "runtime.progress", "runtime.log_every", "runtime.tensorboard")


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
    add_trust_code(p)
    add_plugin_option(p)
    p.set_defaults(func=cmd_ablate)


# ------------------------------------------------------------------------------------------- engine adapter


def _engine(trust_code: bool = False) -> SimpleNamespace:
    """The only place ``csdn ablate`` touches the training engine (adapt here when the engine changes).

    Returns a namespace of plain functions:
        ``config(args, variant, run_dir) -> TrainConfig``; ``as_dict(cfg) -> nested dict``;
        ``saved_config(checkpoint) -> nested dict``; ``train(cfg, dataset, resume, dist_info) -> final path``;
        ``load(checkpoint, device) -> (model, cfg)``; ``dist_info()``, ``device(cfg, info)``,
        ``init(device, info)``, ``cleanup()``, ``preflight(cfg, dataset)`` (raises before any training when the
        data cannot feed ``cfg``). ``trust_code``: as ``--trust-code`` (CLIP archives with code).
    """
    from ..engine import Trainer, build_csdn, config_to_dict, load_checkpoint, load_trained_model
    from ..engine.distributed import cleanup_distributed, dist_info_from_env, init_distributed, resolve_device
    from ..engine.preflight import preflight
    from .runs import resolve_train_config

    def config(args: argparse.Namespace, variant: str, run_dir: Path) -> Any:
        ns = argparse.Namespace(
            preset=args.preset,
            dataset=args.dataset,
            root=args.root,
            config=None,
            ablation=variant,
            overrides=[*args.overrides, f"runtime.output_dir={run_dir}"],
        )
        return resolve_train_config(ns)

    def train(cfg: Any, dataset: Any, resume: bool, info: Any) -> Path:
        device = resolve_device(cfg.runtime.device, info)
        model = build_csdn(cfg, dataset.train.num_classes, device, trust_code=trust_code)
        return Trainer(cfg, model, dataset.train, dist_info=info).fit(resume=resume)

    def load(path: Path, device: Any) -> tuple[Any, Any]:
        model, cfg, _ = load_trained_model(path, device, trust_code=trust_code)
        return model, cfg

    return SimpleNamespace(
        config=config, as_dict=config_to_dict, saved_config=lambda path: load_checkpoint(path)["config"],
        train=train, load=load, dist_info=dist_info_from_env, device=resolve_device, init=init_distributed,
        cleanup=cleanup_distributed, preflight=preflight,
    )  # fmt: skip


# ------------------------------------------------------------------------------------------------ the study


def _flat(config: dict[str, Any], skip: tuple[str, ...] = ()) -> dict[str, Any]:
    flat = {f"{s}.{k}": v for s, values in config.items() for k, v in values.items()}
    return {k: v for k, v in flat.items() if k not in skip}


def _differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    return [f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)]


def _plan(args: argparse.Namespace, configs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """What every variant shares; raises if the resolved configurations differ beyond the ablation switches."""
    shared = {v: _flat(c, VARIANT_KEYS + RUNTIME_FREE) for v, c in configs.items()}
    first, reference = next(iter(shared.items()))
    for variant, flat in shared.items():
        diffs = _differences(reference, flat)
        if diffs:  # cannot happen with the presets; guards a future ablation that changes more than the model
            raise ValueError(f"variants {first} and {variant} differ beyond the ablation: {'; '.join(diffs[:5])}")
    return {
        "dataset": reference["data.dataset"],
        "root": str(Path(reference["data.root"]).resolve()),
        "seed": reference["runtime.seed"],
        "preset": args.preset or args.dataset or "sysu",
        "overrides": list(args.overrides),
        "shared_config": {k: v for k, v in reference.items() if k != "data.root"},
    }


def _check_plan(out: Path, plan: dict[str, Any]) -> None:
    path = out / "ablation_plan.json"
    if not path.is_file():
        return
    old = json.loads(path.read_text(encoding="utf-8"))
    diffs = _differences({"root": old.get("root"), **old.get("shared_config", {})},
                         {"root": plan["root"], **plan["shared_config"]})  # fmt: skip
    if diffs:
        raise ValueError(
            f"{out} holds a study run with other settings ({'; '.join(diffs[:4])}): every variant must share seed, "
            "data and schedule; use the same options or another --out"
        )


def _state(engine: SimpleNamespace, run_dir: Path, cfg_dict: dict[str, Any]) -> str:
    """``"finished"``, ``"interrupted"`` or ``"new"``; raises if the folder's checkpoint has another config."""
    ckpt = run_dir / "checkpoints"
    existing = next((p for p in (ckpt / "final.pt", ckpt / "last.pt") if p.is_file()), None)
    if existing is None:
        return "new"
    skip = ("runtime.output_dir", *RUNTIME_FREE)
    diffs = _differences(_flat(engine.saved_config(existing), skip), _flat(cfg_dict, skip))
    if diffs:
        raise ValueError(
            f"{existing} was trained with another configuration ({'; '.join(diffs[:4])}); the study needs the same "
            "seed, data and schedule for every variant: use the original options or another --out"
        )
    return "finished" if existing.name == "final.pt" else "interrupted"


def cmd_ablate(args: argparse.Namespace) -> int:
    """Run ``csdn ablate`` (see the module docstring)."""
    from ..data import open_dataset

    if args.trials is not None and args.trials < 1:
        raise ValueError(f"--trials {args.trials} is invalid: expected a number of trials >= 1")
    for item in args.overrides:
        if item.partition("=")[0].strip() in VARIANT_KEYS:
            raise ValueError(f"--set {item!r} is not allowed: ablate sets {item.partition('=')[0].strip()} itself")
    if not args.no_report:
        from .._optional import require

        require("matplotlib", "viz")  # before hours of training, not after
    engine = _engine(args.trust_code)
    out = Path(args.out)
    variants = list(dict.fromkeys(args.variants))
    cfgs = {v: engine.config(args, v, out / v) for v in variants}
    plan = _plan(args, {v: engine.as_dict(c) for v, c in cfgs.items()})
    _check_plan(out, plan)
    states = {v: _state(engine, out / v, engine.as_dict(cfgs[v])) for v in variants}
    info = engine.dist_info()
    first = cfgs[variants[0]]
    dataset = open_dataset(
        first.data.dataset, first.data.root, **({"trial": first.data.trial} if first.data.dataset == "regdb" else {})
    )
    for variant in (v for v in variants if states[v] != "finished"):  # before any training, as csdn train does
        try:
            engine.preflight(cfgs[variant], dataset)
        except ValueError as error:
            raise ValueError(f"variant {variant}: {error}") from None
    if info.is_main:
        atomic_write_text(out / "ablation_plan.json", json.dumps({**plan, "variants": variants}, indent=2) + "\n")
    device = engine.device(first.runtime.device, info)
    engine.init(device, info)
    try:
        finals = {}
        for variant in variants:
            final = out / variant / "checkpoints" / "final.pt"
            if states[variant] == "finished":
                logger.info("%s: finished earlier (%s), skipping its training", variant, final)
                finals[variant] = final
                continue
            logger.info("%s: %s", variant, "resuming" if states[variant] == "interrupted" else "training")
            finals[variant] = engine.train(cfgs[variant], dataset, states[variant] == "interrupted", info)
        if info.is_main:
            from .ablate_results import evaluate_variants, write_study

            results = evaluate_variants(engine, dataset, finals, device, args.trials, report=not args.no_report)
            for path in write_study(out, plan, results, report=not args.no_report, device=device):
                print(f"wrote {path}")
    finally:
        engine.cleanup()
    return 0
