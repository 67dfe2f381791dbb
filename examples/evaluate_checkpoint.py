"""Evaluate a trained CSDN checkpoint with a dataset's full protocol (the pipeline behind ``csdn eval``).

A checkpoint from ``csdn train`` (or examples/train_sysu.py)::

    python examples/evaluate_checkpoint.py --checkpoint runs/sysu/checkpoints/final.pt --root data/SYSU-MM01 \
        --rerank --json results.json --plot plots/

No data (synthetic SYSU-MM01 and an untrained tiny model saved in the checkpoint format; seconds on a CPU)::

    python examples/evaluate_checkpoint.py --synthetic --quick

The evaluator runs every setting a paper reports (SYSU-MM01: all/indoor search x single/multi-shot) over every
gallery trial (10 for SYSU-MM01 and LLCM) and prints mean +- std; see docs/protocols.md for what each does.
"""

from __future__ import annotations

import argparse
import importlib.util
import tempfile
from pathlib import Path

from csdn.data import open_dataset
from csdn.data.synthetic import make_sysu
from csdn.engine import build_csdn, config_to_dict, get_preset, load_trained_model, save_checkpoint
from csdn.engine.distributed import resolve_device
from csdn.evaluation import VIReIDEvaluator
from csdn.models.checkpoint import final_checkpoint


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", help="checkpoint written by `csdn train` (final.pt)")
    parser.add_argument("--root", help="dataset folder (SYSU-MM01, RegDB or LLCM layout; detected)")
    parser.add_argument("--synthetic", action="store_true", help="synthetic SYSU-MM01 + an untrained tiny model")
    parser.add_argument("--quick", action="store_true", help="one trial per setting (CI)")
    parser.add_argument("--rerank", action="store_true", help="also evaluate with k-reciprocal re-ranking")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N")
    parser.add_argument("--json", help="write the results (every trial, mean and std) to this JSON file")
    parser.add_argument("--plot", help="write ranked lists, CMC, PCA and Grad-CAM PNGs here (needs csdn[viz])")
    args = parser.parse_args(argv)
    if not args.synthetic and not (args.checkpoint and args.root):
        parser.error("pass --checkpoint and --root, or --synthetic")
    return args


def synthetic_checkpoint(folder: Path) -> tuple[Path, Path]:
    """Write a small synthetic SYSU-MM01 and save an untrained tiny model as a `csdn train` checkpoint."""
    root = make_sysu(folder / "sysu-synthetic", num_train_ids=6, num_val_ids=2, num_test_ids=6, images_per_cam=2)
    cfg = get_preset("demo")
    model = build_csdn(cfg, num_classes=8)
    state = final_checkpoint(model, config_to_dict(cfg))  # what `csdn train` writes as final.pt
    return Path(root), save_checkpoint(state, folder / "untrained.pt")


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if not args.synthetic:
        evaluate_checkpoint(Path(args.checkpoint), Path(args.root), args)
        return
    with tempfile.TemporaryDirectory(prefix="csdn-eval-") as tmp:
        root, checkpoint = synthetic_checkpoint(Path(tmp))
        evaluate_checkpoint(checkpoint, root, args)


def evaluate_checkpoint(checkpoint: Path, root: Path, args: argparse.Namespace) -> None:
    # The checkpoint carries its configuration: the model is rebuilt exactly and loaded strictly.
    device = resolve_device(args.device)
    model, cfg, _ = load_trained_model(checkpoint, device)
    dataset = open_dataset(None, root)  # layout detected: SYSU-MM01, RegDB or LLCM
    print(dataset.describe())

    trials = 1 if args.quick else None
    runs = {"plain": False, "re-ranked": True} if args.rerank else {"plain": False}
    for name, rerank in runs.items():
        # flip=True (default) concatenates the mirrored image's embedding: the official 6144-d test feature.
        evaluator = VIReIDEvaluator(dataset, height=cfg.data.height, width=cfg.data.width, device=device, rerank=rerank)
        report = evaluator.run(model, trials, chance=True)
        print(f"\n[{name}]\n{report.to_table()}")
        if args.json:
            report.to_json(Path(args.json).with_stem(f"{Path(args.json).stem}-{name}") if args.rerank else args.json)
    if args.plot:
        if importlib.util.find_spec("matplotlib") is None:
            raise SystemExit("--plot needs matplotlib: pip install 'csdn[viz]'")
        from csdn.viz import plot_evaluation

        written = plot_evaluation(args.plot, evaluator, model, report, image_size=(cfg.data.height, cfg.data.width))
        print("plots:", ", ".join(str(p) for p in written.values()))


if __name__ == "__main__":
    main()
