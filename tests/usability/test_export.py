import argparse
import sys

import numpy as np
import pytest
import torch

from csdn.export import add_export_parser, export_onnx, onnx_metadata, verify_onnx

H, W = 64, 32


def _onnx_features(path, images: torch.Tensor) -> np.ndarray:
    ort = pytest.importorskip("onnxruntime")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {"images": images.numpy()})[0]


@pytest.fixture(scope="module")
def exported(tiny_model, tmp_path_factory):
    pytest.importorskip("onnx")
    pytest.importorskip("onnxscript")
    pytest.importorskip("onnxruntime")
    return export_onnx(
        tiny_model, tmp_path_factory.mktemp("onnx") / "ir.onnx", "infrared", image_size=(H, W), flip=False
    )


@pytest.mark.parametrize("batch", [1, 5])
def test_onnxruntime_matches_torch_for_any_batch(exported, tiny_model, batch):
    images = torch.randn(batch, 3, H, W, generator=torch.Generator().manual_seed(batch))
    with torch.no_grad():
        expected = tiny_model.encode_image(images, "infrared").numpy()
    got = _onnx_features(exported, images)
    assert got.shape == expected.shape == (batch, tiny_model.embed_dim)
    assert np.abs(got - expected).max() <= 1e-4


def test_graph_has_a_dynamic_batch_and_records_its_preprocessing(exported, tiny_model):
    import onnx

    graph = onnx.load(str(exported)).graph
    dims = graph.input[0].type.tensor_type.shape.dim
    assert graph.input[0].name == "images" and graph.output[0].name == "features"
    assert dims[0].dim_param and not dims[0].dim_value  # symbolic batch
    assert [d.dim_value for d in dims[1:]] == [3, H, W]
    meta = onnx_metadata(exported)
    assert meta["modality"] == "infrared" and meta["flip"] == "none"
    assert "0.485" in meta["input"] and f"{tiny_model.embed_dim})" in meta["output"]
    assert not [p for p in exported.parent.iterdir() if p.name != exported.name]  # no temp files left
    assert verify_onnx(exported, tiny_model, "infrared", flip=False) <= 1e-4


def test_legacy_exporter_with_flip(tiny_model, tmp_path):
    pytest.importorskip("onnx")
    path = export_onnx(tiny_model, tmp_path / "vis.onnx", "visible", image_size=(H, W), flip=True, dynamo=False)
    images = torch.randn(3, 3, H, W, generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        expected = torch.cat(
            [tiny_model.encode_image(images, "visible"), tiny_model.encode_image(images.flip(3), "visible")], 1
        )
    assert np.abs(_onnx_features(path, images) - expected.numpy()).max() <= 1e-4
    assert tiny_model.training is False


def test_failed_export_keeps_the_old_file_and_leaves_no_temp(tiny_model, tmp_path):
    pytest.importorskip("onnx")

    class Broken(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(1))

        def encode_image(self, images, modality):
            raise RuntimeError("boom")

    out = tmp_path / "model.onnx"
    out.write_bytes(b"old")
    with pytest.raises(RuntimeError, match="boom"):
        export_onnx(Broken(), out, "visible", image_size=(H, W))
    assert out.read_bytes() == b"old" and sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx"]


def test_missing_extra_is_named(tiny_model, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnx", None)  # makes `import onnx` raise ImportError
    with pytest.raises(ImportError, match=r"pip install 'csdn\[onnx\]'"):
        export_onnx(tiny_model, tmp_path / "x.onnx", "visible")
    assert not (tmp_path / "x.onnx").exists()


def test_cli_exports_a_checkpoint_at_its_training_size(tiny_checkpoint, tmp_path, capsys):
    pytest.importorskip("onnxscript")
    pytest.importorskip("onnxruntime")
    path, model = tiny_checkpoint
    parser = argparse.ArgumentParser(prog="csdn")
    add_export_parser(parser.add_subparsers(dest="command"))
    out = tmp_path / "sub" / "ir.onnx"
    args = parser.parse_args(
        ["export", "--checkpoint", str(path), "--modality", "infrared", "--out", str(out)] + ["--verify"]
    )
    assert args.func(args) == 0
    printed = capsys.readouterr().out
    assert "input (batch, 3, 48, 32)" in printed and "verified with onnxruntime" in printed
    images = torch.randn(2, 3, 48, 32, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():  # flip on by default: the image's and the mirror's embedding, concatenated
        expected = torch.cat(
            [model.encode_image(images, "infrared"), model.encode_image(images.flip(3), "infrared")], 1
        )
        expected = expected.numpy()
    assert np.abs(_onnx_features(out, images) - expected).max() <= 1e-4
    with pytest.raises(SystemExit):
        parser.parse_args(["export", "--checkpoint", str(path), "--modality", "uv", "--out", str(out)])
