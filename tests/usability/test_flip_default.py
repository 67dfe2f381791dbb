"""One flip default, read by every entry point: extractor, evaluator, export, and the extract/eval/export CLI."""

import ast
import inspect
import textwrap

import numpy as np
import pytest
import torch

from csdn.cli import build_parser
from csdn.cli.reporting import make_evaluator
from csdn.evaluation import VIReIDEvaluator
from csdn.evaluation.features import FLIP_DEFAULT, encode_images, extract_features
from csdn.inference import FeatureExtractor

from .conftest import IMAGE_SIZE


def _default(function, name="flip"):
    """The default of ``name`` if the source writes it as ``FLIP_DEFAULT`` (not a literal that happens to agree)."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(function)))
    arguments = next(node for node in ast.walk(tree) if isinstance(node, ast.FunctionDef)).args
    positional = [*arguments.posonlyargs, *arguments.args]
    pairs = [
        *zip(positional[len(positional) - len(arguments.defaults) :], arguments.defaults, strict=True),
        *zip(arguments.kwonlyargs, arguments.kw_defaults, strict=True),
    ]
    return next(ast.unparse(default) for arg, default in pairs if arg.arg == name)


def test_flip_is_on_by_default():
    assert FLIP_DEFAULT is True  # the official test always flips


@pytest.mark.parametrize("value", [True, False])
def test_every_entry_point_reads_the_one_default(monkeypatch, value):
    import csdn.evaluation.features as features

    export = pytest.importorskip("csdn.export")
    functions = [FeatureExtractor.__init__, VIReIDEvaluator.__init__, extract_features, encode_images, make_evaluator]
    for function in (*functions, export.export_onnx, export.verify_onnx, export.ImageEncoderExport.__init__):
        assert _default(function) == "FLIP_DEFAULT", function.__qualname__
        assert inspect.signature(function).parameters["flip"].default is FLIP_DEFAULT
    # the CLI parsers read the constant when they are built: change it and the defaults follow
    monkeypatch.setattr(features, "FLIP_DEFAULT", value)
    monkeypatch.setattr("csdn.export.cli.FLIP_DEFAULT", value)
    parser = build_parser()
    common = ["--checkpoint", "c.pt", "--modality", "visible", "--out", "o"]
    assert parser.parse_args(["extract", *common, "--images", "d"]).flip is value
    assert parser.parse_args(["eval", "--checkpoint", "c.pt", "--root", "r"]).flip is value
    assert parser.parse_args(["export", *common]).flip is value
    assert parser.parse_args(["extract", *common, "--images", "d", "--no-flip"]).flip is False
    assert parser.parse_args(["export", *common, "--flip"]).flip is True


def test_the_default_changes_the_features(tiny_model):
    images = np.random.default_rng(0).integers(0, 256, (2, *IMAGE_SIZE, 3), dtype=np.uint8)
    default = FeatureExtractor(tiny_model, modality="infrared", image_size=IMAGE_SIZE)(list(images))
    plain = FeatureExtractor(tiny_model, modality="infrared", image_size=IMAGE_SIZE, flip=False)(list(images))
    assert default.shape[1] == 2 * plain.shape[1]  # concat of the image's and the mirror's embedding
    torch.testing.assert_close(default[:, : plain.shape[1]], plain)
    assert not torch.allclose(default[:, plain.shape[1] :], plain, atol=1e-4)  # the mirror embeds differently
