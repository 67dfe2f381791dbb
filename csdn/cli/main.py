"""The ``csdn`` command line: ``train``, ``eval``, ``extract``, ``data stats``, ``export`` and ``demo``.

Also runs as ``python -m csdn`` and under ``torchrun --nproc_per_node=N -m csdn train ...`` (DDP). This is the
only module that wires the layers together (the trainer receives the evaluator as a callable). User mistakes
(missing folder, unknown dataset, bad ``--set`` key, foreign checkpoint) print one ``csdn: error: ...`` line on
stderr and exit with status 2; ``CSDN_DEBUG=1`` shows the traceback instead. Ctrl-C exits with status 130 and
SIGTERM (what schedulers send) with 143, each after one line; a training run keeps its last checkpoint.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .._modality import modality_argument
from .._progress import StderrLogHandler
from .._untrusted import error_line
from .options import add_clip, add_metric_option, add_plugin_option, add_trust_code, load_plugin_options

__all__ = ["main", "build_parser"]

logger = logging.getLogger("csdn.cli")

EXAMPLES = """examples:
  csdn demo                                              # synthetic data, tiny CLIP, all stages, real protocol
  csdn train --dataset sysu --root data/SYSU-MM01 --set runtime.output_dir=runs/sysu
  csdn train --dataset sysu --root data/SYSU-MM01 --ablation baseline --set stage3.epochs=60
  torchrun --nproc_per_node=4 -m csdn train --dataset llcm --root data/LLCM
  csdn eval --root data/SYSU-MM01 --checkpoint runs/sysu/checkpoints/final.pt --json results.json
  csdn eval --root data/SYSU-MM01 --checkpoint final.pt --plot plots/   # ranked lists, CMC, PCA, Grad-CAM
  csdn extract --checkpoint final.pt --images gallery/ --modality visible --out gallery.pt
  csdn data stats data/SYSU-MM01
  csdn eval --root data/SYSU-MM01 --checkpoint final.pt --report report/     # HTML report (viz extra)
  csdn ablate --dataset sysu --root data/SYSU-MM01 --out runs/ablation       # the paper's ablation study
"""


class UserError(ValueError):
    """A mistake in the command line itself (reported like every other user error)."""


class Terminated(KeyboardInterrupt):
    """SIGTERM (what schedulers send) arrived: the command stops as on Ctrl-C, with exit status 143."""


def _raise_terminated(signum: int, frame: Any) -> None:
    raise Terminated()


# ------------------------------------------------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    """The ``csdn`` argument parser (sub-commands set ``func``)."""
    from .ablate import add_ablate_parser
    from .study import add_study_parser
    from .synth import add_synth_parser

    parser = argparse.ArgumentParser(
        prog="csdn",
        description="CSDN (CLIP-Driven Semantic Discovery Network) for visible-infrared person re-identification.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    parser.add_argument("-q", "--quiet", action="store_true", help="only print warnings and results")
    parser.add_argument("-v", "--verbose", action="store_true", help="also print per-trial results")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    _add_train(sub)
    _add_eval(sub)
    _add_extract(sub)
    data = sub.add_parser("data", help="dataset utilities").add_subparsers(dest="data_command", required=True)
    stats = data.add_parser("stats", help="print split statistics of a dataset folder")
    stats.add_argument("root", help="dataset folder (SYSU-MM01, RegDB, LLCM or CSV-list layout)")
    stats.add_argument(
        "--dataset", metavar="NAME", help="sysu, regdb, llcm, csv or a registered name (default: detected)"
    )
    add_plugin_option(stats)
    stats.set_defaults(func=_cmd_data_stats)
    add_synth_parser(data)
    _add_demo(sub)
    add_ablate_parser(sub)
    add_study_parser(sub)
    try:
        from ..export import add_export_parser
    except ImportError:  # the export extra is optional
        pass
    else:
        add_export_parser(sub)
    return parser


def _add_train(sub: Any) -> None:
    p = sub.add_parser("train", help="train CSDN (three stages)", description="Train CSDN; see docs for the config.")
    p.add_argument(
        "--dataset", metavar="NAME", help="sysu, regdb, llcm, csv or a registered name (default: the preset's)"
    )
    p.add_argument("--root", required=True, help="dataset folder in its public layout")
    p.add_argument("--config", help="YAML/JSON config file (partial files are merged onto the preset)")
    p.add_argument(
        "--preset",
        help="starting configuration: sysu, regdb, llcm (official procedure), sysu-clean, regdb-clean, llcm-clean "
        "(cleaned-up procedure) or demo (default: the dataset's)",
    )
    p.add_argument("--ablation", help="csdn, csdn_add, csdn_none, clip_vireid or baseline")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override one config field, e.g. --set stage3.epochs=60 (repeatable)")  # fmt: skip
    p.add_argument("--resume", action="store_true", help="continue the run in runtime.output_dir")
    p.add_argument("--no-eval", action="store_true", help="skip the final evaluation on the test protocol")
    p.add_argument("--print-config", action="store_true", help="print the resolved config (YAML or JSON) and exit")
    add_trust_code(p)
    add_plugin_option(p)
    p.set_defaults(func=_cmd_train)


def _add_eval(sub: Any) -> None:
    from .report_cmd import add_report_option

    p = sub.add_parser("eval", help="evaluate a checkpoint with the dataset's full protocol")
    p.add_argument("--checkpoint", required=True, help="checkpoint written by csdn train (final.pt or last.pt)")
    p.add_argument("--root", required=True, help="dataset folder")
    p.add_argument(
        "--dataset", metavar="NAME", help="sysu, regdb, llcm, csv or a registered name (default: the checkpoint's)"
    )
    p.add_argument("--trials", type=int, help="number of trials to average (default: all the protocol has)")
    p.add_argument("--rerank", action="store_true", help="k-reciprocal re-ranking")
    p.add_argument("--json", help="also write the results to this JSON file")
    p.add_argument("--plot", metavar="DIR", help="also write ranked lists, CMC, PCA, Grad-CAM PNGs here (viz extra)")
    add_report_option(p)
    _add_inference_options(p)
    add_plugin_option(p)
    p.set_defaults(func=_cmd_eval)


def _add_extract(sub: Any) -> None:
    p = sub.add_parser("extract", help="embed images with a trained model")
    p.add_argument("--checkpoint", required=True, help="checkpoint written by csdn train")
    p.add_argument("--images", required=True, help="a folder of images or a text file with one path per line")
    p.add_argument("--modality", required=True, type=modality_argument,
                   help="which stem to use: visible or infrared (also rgb, ir, nir, thermal)")  # fmt: skip
    p.add_argument("--out", required=True, help="output .pt file: {'features': (N, D), 'paths': [...], ...}")
    p.add_argument("--skip-bad-images", action="store_true",
                   help="skip unreadable images (listed as 'skipped' in the output) instead of stopping")  # fmt: skip
    _add_inference_options(p)
    p.set_defaults(func=_cmd_extract)


def _add_inference_options(p: argparse.ArgumentParser) -> None:
    """Options shared by the commands that run a trained model over images (``eval``, ``extract``)."""
    from ..evaluation.features import FLIP_DEFAULT

    p.add_argument("--flip", action=argparse.BooleanOptionalAction, default=FLIP_DEFAULT,
                   help="add the flipped image's features (the official test; default: on)")  # fmt: skip
    add_metric_option(p)
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N")
    p.add_argument("--batch-size", type=int, default=128, help="images per forward pass")
    add_clip(p)
    add_trust_code(p)


def _add_demo(sub: Any) -> None:
    p = sub.add_parser("demo", help="train and evaluate on a synthetic SYSU-MM01 in a few minutes on CPU")
    p.add_argument("--dir", help="working folder for the dataset and the run (default: a new temporary folder)")
    p.add_argument("--quick", action="store_true", help="smaller data and fewer epochs (under a minute)")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1, robust on busy machines)")
    p.set_defaults(func=_cmd_demo)


# ----------------------------------------------------------------------------------------------------- commands


def _cmd_train(args: argparse.Namespace) -> int:
    from ..data import open_dataset
    from ..engine.build import build_csdn
    from ..engine.distributed import cleanup_distributed, dist_info_from_env, init_distributed, resolve_device
    from ..engine.inputs import holdout_validation
    from ..engine.preflight import preflight
    from ..engine.run_dir import claim_run_folder
    from ..engine.trainer import Trainer
    from .paths import check_output_dir
    from .reporting import log_file_writer, make_evaluator, print_report, protocol_callback, validation_callback
    from .runs import resolve_train_config

    cfg = resolve_train_config(args)
    if args.print_config:
        print(_config_text(cfg), end="")
        return 0
    check_output_dir(cfg.runtime.output_dir, "runtime.output_dir")
    info = dist_info_from_env()
    device = resolve_device(cfg.runtime.device, info)
    if not info.is_main:
        logging.getLogger("csdn").setLevel(logging.WARNING)
    dataset = open_dataset(cfg.data.dataset, cfg.data.root, **_reader_kwargs(cfg.data.dataset, cfg.data.trial))
    preflight(cfg, dataset)  # data vs config (num_ids, batch sizes, trials): one line before anything is written
    init_distributed(device, info)
    file_handler = None
    try:
        with claim_run_folder(cfg.runtime.output_dir, is_main=info.is_main):  # exclusive; a failed start leaves nothing
            file_handler = _log_to_file(Path(cfg.runtime.output_dir) / "train.log", info.is_main)
            train, validation = dataset.train, None
            if cfg.data.val_ids > 0:
                train, validation = holdout_validation(train, cfg.data.val_ids, cfg.runtime.seed)
            model = build_csdn(cfg, train.num_classes, device, trust_code=args.trust_code)
            evaluator = make_evaluator(dataset, cfg, device) if info.is_main else None
            periodic = None
            if evaluator is not None and cfg.runtime.eval_every > 0:
                periodic = validation_callback(evaluator, validation) if validation else protocol_callback(evaluator)
            final = Trainer(cfg, model, train, evaluate=periodic, dist_info=info).fit(resume=args.resume)
            if evaluator is not None:
                print(f"final model: {final}")
                if not args.no_eval:
                    report = evaluator.run(model.eval(), chance=True)
                    out = log_file_writer(file_handler)  # train.log ends with the results table too
                    print_report(report, Path(cfg.runtime.output_dir) / "eval.json", out, verbose=args.verbose)
    finally:
        cleanup_distributed()
        if file_handler is not None:
            logging.getLogger("csdn").removeHandler(file_handler)
            file_handler.close()
    return 0


def _cmd_eval(args: argparse.Namespace) -> int:
    from ..data import open_dataset
    from ..engine.build import load_trained_model
    from ..engine.distributed import resolve_device
    from .report_cmd import check_report_option, write_eval_report
    from .reporting import make_evaluator, print_report

    if args.trials is not None and args.trials < 1:
        raise ValueError(f"--trials {args.trials} is invalid: expected a number of trials >= 1")
    if args.plot:  # fail before the evaluation, not after it
        from .._optional import require

        require("matplotlib", "viz")
    check_report_option(args)
    device = resolve_device(args.device)
    model, cfg, _ = load_trained_model(args.checkpoint, device, clip=args.clip, trust_code=args.trust_code)
    name = args.dataset or cfg.data.dataset
    dataset = open_dataset(name, args.root, **_reader_kwargs(name, cfg.data.trial))
    evaluator = make_evaluator(
        dataset, cfg, device, rerank=args.rerank, flip=args.flip, batch_size=args.batch_size,
        metric=args.metric or "cosine",
    )  # fmt: skip
    report = evaluator.run(model, args.trials, chance=True)
    print_report(report, args.json, verbose=args.verbose)
    if args.plot:
        from ..viz import plot_evaluation

        written = plot_evaluation(args.plot, evaluator, model, report, image_size=(cfg.data.height, cfg.data.width))
        print(f"plots written to {args.plot}: {', '.join(path.name for path in written.values())}")
    write_eval_report(args, evaluator, model, report)
    return 0


def _cmd_extract(args: argparse.Namespace) -> int:
    import torch

    from ..engine.distributed import resolve_device
    from ..inference import FeatureExtractor
    from ..models.checkpoint import FEATURES_FORMAT, save_checkpoint

    paths = _image_list(args.images)
    extractor = FeatureExtractor(
        args.checkpoint, device=resolve_device(args.device), modality=args.modality, batch_size=args.batch_size,
        flip=args.flip, trust_code=args.trust_code, clip=args.clip,
    )  # fmt: skip
    features = extractor(paths, progress=True, skip_bad=args.skip_bad_images)
    skipped, left_out = [s.path for s in extractor.skipped], {s.index for s in extractor.skipped}
    kept = [p for i, p in enumerate(paths) if i not in left_out]
    if args.metric == "cosine":  # unit-length rows: dot product = cosine similarity
        features = torch.nn.functional.normalize(features, dim=1)
    state = {"features": features.contiguous(), "paths": kept, "modality": args.modality, "flip": args.flip}
    if args.metric is not None:
        state["metric"] = args.metric
    if args.skip_bad_images:
        state["skipped"] = skipped  # the files left out, so a later run can tell
    save_checkpoint(state, args.out, format=FEATURES_FORMAT)  # atomic; torch.load(..., weights_only=True)
    print(f"wrote {args.out}: {tuple(features.shape)} {args.modality} features of {len(kept)} images")
    if skipped:
        more = f" (and {len(skipped) - 3} more, listed under 'skipped' in {args.out})" if len(skipped) > 3 else ""
        print(f"skipped {len(skipped)} unreadable images: {', '.join(skipped[:3])}{more}")
    return 0


def _cmd_data_stats(args: argparse.Namespace) -> int:
    from ..data import open_dataset

    print(open_dataset(args.dataset, args.root).describe())
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    if args.threads < 1:
        raise ValueError(f"--threads {args.threads} is invalid: expected a number of threads >= 1")
    run_demo(args.dir, quick=args.quick, threads=args.threads, out=print)
    return 0


# ------------------------------------------------------------------------------------------------------ helpers


def _config_text(cfg: Any) -> str:
    """``cfg`` as YAML (as in a run's ``config.yaml``), or as JSON without PyYAML."""
    import json

    from ..engine.config import config_to_dict

    try:
        import yaml
    except ImportError:
        return json.dumps(config_to_dict(cfg), indent=2) + "\n"
    return yaml.safe_dump(config_to_dict(cfg), sort_keys=False)


def _reader_kwargs(name: str, trial: int) -> dict[str, Any]:
    return {"trial": trial} if name == "regdb" else {}


def _image_list(spec: str) -> list[str]:
    from ..data.images import list_images

    path = Path(spec)
    if path.is_dir():
        return list_images(path)
    if not path.is_file():
        raise FileNotFoundError(f"--images {spec!r} is neither a folder nor a text file listing images")
    lines = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    if not lines:
        raise ValueError(f"--images {spec!r} lists no image; expected one path per line")
    base = path.parent
    return [str(p if Path(p).is_absolute() else base / p) for p in lines]


def _log_to_file(path: Path, enabled: bool) -> logging.Handler | None:
    if not enabled:
        return None
    from ..engine.logs import RunFileHandler

    handler = RunFileHandler(path)  # train.log: never through a link, removed with the run if its start fails
    logging.getLogger("csdn").addHandler(handler)
    return handler


def _configure_logging(quiet: bool) -> None:
    # -q quiets the console only: a run's train.log keeps its INFO lines (and so exists, even under -q)
    root = logging.getLogger("csdn")
    console = [h for h in root.handlers if isinstance(h, StderrLogHandler)]
    if not console:
        console = [StderrLogHandler()]  # the stderr of the moment (tests redirect it), above progress bars
        root.addHandler(console[0])
    for handler in console:
        handler.setLevel(logging.WARNING if quiet else logging.NOTSET)
    root.setLevel(logging.INFO)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("csdn")
    except PackageNotFoundError:
        return "unknown"


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``csdn`` console script; returns the exit status."""
    args = build_parser().parse_args(argv)
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # lets runtime.deterministic=true work on CUDA
    _configure_logging(args.quiet)
    from ..engine.trainer import NonFiniteLossError
    from .paths import check_outputs, output_error_message

    previous = _handle_sigterm(_raise_terminated)
    try:
        load_plugin_options(args)  # --plugin: readers registered before --dataset is looked up
        check_outputs(args)  # before any work: eval, extract, export, demo (train checks its resolved output_dir)
        return int(args.func(args) or 0)
    except NonFiniteLossError as error:
        print(f"csdn: error: {error}", file=sys.stderr)
        return 1
    except (ValueError, FileNotFoundError, NotADirectoryError, ImportError) as error:
        if os.environ.get("CSDN_DEBUG"):
            raise
        print(f"csdn: error: {error_line(error)}", file=sys.stderr)
        return 2
    except Terminated:
        print(
            "csdn: terminated by SIGTERM; a training run keeps its last checkpoint (continue with --resume)",
            file=sys.stderr,
        )
        return 143  # 128 + SIGTERM, the status a shell reports for a process SIGTERM ended
    except OSError as error:
        output_message = output_error_message(error)
        if output_message is None or os.environ.get("CSDN_DEBUG"):
            raise
        print(f"csdn: error: {output_message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("csdn: interrupted", file=sys.stderr)
        return 130
    finally:
        _handle_sigterm(previous)


def _handle_sigterm(handler: Any) -> Any:
    """Install ``handler`` for SIGTERM and return the previous one (nothing off the main thread or without it)."""
    import signal
    import threading

    if handler is None or not hasattr(signal, "SIGTERM") or threading.current_thread() is not threading.main_thread():
        return None
    return signal.signal(signal.SIGTERM, handler)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
