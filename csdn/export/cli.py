"""``csdn export``: the command-line front end of :func:`csdn.export.export_onnx`, for ``csdn/cli.py`` to mount.

``csdn/cli.py`` wires it with::

    from csdn.export import add_export_parser
    add_export_parser(subparsers)          # adds the "export" sub-command, sets args.func = run_export
    ...
    return args.func(args)                 # user errors raise ValueError / FileNotFoundError / ImportError
"""

from __future__ import annotations

import argparse
import logging

from .._modality import modality_argument
from ..evaluation.features import FLIP_DEFAULT

__all__ = ["add_export_parser", "run_export"]

logger = logging.getLogger(__name__)

EXAMPLE = "csdn export --checkpoint runs/sysu/checkpoints/final.pt --modality infrared --out ir_encoder.onnx"


def add_export_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``export`` sub-command to ``subparsers`` (from ``parser.add_subparsers()``); returns its parser.

    The parser sets ``func=run_export``, so the CLI's dispatcher can call ``args.func(args)``.
    """
    parser = subparsers.add_parser(
        "export",
        help="export one modality's image encoder to ONNX (needs the 'onnx' extra)",
        description="Export the image encoder of one modality of a trained CSDN checkpoint to ONNX with a dynamic "
        "batch dimension. Input: preprocessed images (batch, 3, H, W); output: embeddings (batch, D).",
        epilog=f"example: {EXAMPLE}",
    )
    parser.add_argument(
        "--checkpoint", required=True,
        help="checkpoint written by `csdn train` (e.g. final.pt) or by the official CSDN code (model_<epoch>.pth)",
    )  # fmt: skip
    parser.add_argument("--modality", required=True, type=modality_argument,
                        help="whose stem to export: visible or infrared (also rgb, ir, nir, thermal)")  # fmt: skip
    parser.add_argument("--out", required=True, help="destination .onnx file (written atomically)")
    parser.add_argument(
        "--image-size", type=int, nargs=2, metavar=("H", "W"), default=None,
        help="input size (default: the csdn checkpoint's training size; 288 144 for official checkpoints)",
    )  # fmt: skip
    parser.add_argument(
        "--flip", action=argparse.BooleanOptionalAction, default=FLIP_DEFAULT,
        help="bake flip test-time augmentation into the graph (the official test; default: on)",
    )  # fmt: skip
    parser.add_argument(
        "--flip-mode", choices=["concat", "sum"], default="concat",
        help="with --flip: concatenate (official, doubles D) or sum the two embeddings",
    )  # fmt: skip
    parser.add_argument("--opset", type=int, default=None, help="ONNX opset (default: the exporter's)")
    parser.add_argument("--legacy", action="store_true", help="use the TorchScript exporter instead of torch.export")
    parser.add_argument("--verify", action="store_true", help="compare onnxruntime with torch on a random batch")
    parser.add_argument(
        "--clip", metavar="PATH_OR_NAME",
        help="only for an old checkpoint without a CLIP architecture record: the CLIP weights it was trained from",
    )  # fmt: skip
    parser.add_argument(
        "--trust-code", action="store_true",
        help="with --clip: let that CLIP file run its own code (torch.jit.load); only for files you trust",
    )  # fmt: skip
    parser.set_defaults(func=run_export)
    return parser


def run_export(args: argparse.Namespace) -> int:
    """Run ``csdn export`` from parsed arguments; returns the exit code (0).

    Raises:
        FileNotFoundError, ValueError: for user mistakes (missing checkpoint, not a csdn checkpoint).
        ImportError: when the ``onnx`` extra is not installed (the message names it).
        RuntimeError: when ``--verify`` finds onnxruntime and torch disagree by more than 1e-4.
    """
    from ..inference import load_model
    from .onnx_export import export_onnx, verify_onnx

    size = tuple(args.image_size) if args.image_size else None
    model, trained_size = load_model(args.checkpoint, image_size=size, clip=args.clip, trust_code=args.trust_code)
    size = tuple(args.image_size) if args.image_size else trained_size
    if size is None:
        raise ValueError(f"{args.checkpoint} records no input size: pass --image-size H W")
    path = export_onnx(
        model, args.out, args.modality, image_size=size, flip=args.flip, flip_mode=args.flip_mode, opset=args.opset,
        dynamo=not args.legacy,
    )  # fmt: skip
    print(f"wrote {path} ({args.modality} image encoder, input (batch, 3, {size[0]}, {size[1]}))")
    if args.verify:
        diff = verify_onnx(path, model, args.modality, flip=args.flip, flip_mode=args.flip_mode)
        if diff > 1e-4:
            raise RuntimeError(f"onnxruntime and torch differ by {diff:.2e} (> 1e-4) on a random batch")
        print(f"verified with onnxruntime: max |onnx - torch| = {diff:.2e}")
    return 0
