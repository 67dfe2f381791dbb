"""What a new user meets in the first hour: CSV separators, modality names, the config file's format, the
features' norm and shape, and the distance metric on the command line."""

import json
import re
from pathlib import Path

import pytest
import torch

from csdn.cli.main import build_parser, main
from csdn.data import CSVDataset, Modality
from csdn.data.synthetic import make_csv
from csdn.evaluation.features import encode_images
from csdn.inference import FeatureExtractor

DOCS = Path(__file__).resolve().parents[2] / "docs"


@pytest.fixture(scope="module")
def csv_root(tmp_path_factory):
    return make_csv(tmp_path_factory.mktemp("csv"), num_train_ids=2, num_test_ids=2, images_per_cam=1, seed=4)


def rewrite(root: Path, delimiter: str, modality_names: dict[str, str] | None = None) -> Path:
    """The same lists with another separator (and other modality names)."""
    for name in ("train", "query", "gallery"):
        lines = (Path(root) / f"{name}.csv").read_text().splitlines()
        for old, new in (modality_names or {}).items():
            lines = [re.sub(f",{old}$", f",{new}", line) for line in lines]
        (Path(root) / f"{name}.csv").write_text("\n".join(line.replace(",", delimiter) for line in lines) + "\n")
    return root


@pytest.mark.parametrize("delimiter", [";", "\t", "|"])
def test_csv_lists_with_another_separator_read_the_same(csv_root, tmp_path, delimiter):
    import shutil

    copy = Path(shutil.copytree(csv_root, tmp_path / "copy"))
    reference = CSVDataset(csv_root)
    other = CSVDataset(rewrite(copy, delimiter))
    assert [s[1:] for s in other.train.visible] == [s[1:] for s in reference.train.visible]
    assert len(other.test().gallery) == len(reference.test().gallery) > 0


def test_a_header_no_separator_splits_names_the_separators(csv_root, tmp_path):
    import shutil

    copy = Path(shutil.copytree(csv_root, tmp_path / "copy"))
    (copy / "train.csv").write_text("path;pid;cam;modalty\nimages/x.jpg;1;1;visible\n")
    with pytest.raises(ValueError, match=r"train.csv line 1: bad header.*separated by ',' or ';' or '\\t' or '\|'"):
        CSVDataset(copy)


def test_modality_aliases_come_from_one_table(csv_root, tmp_path):
    import shutil

    from csdn._modality import ALIASES

    assert ALIASES == {"rgb": "visible", "ir": "infrared", "nir": "infrared", "thermal": "infrared"}
    for alias, name in ALIASES.items():
        assert Modality.parse(alias.upper()).value == name
    with pytest.raises(ValueError, match=r"Valid values are 'visible', 'infrared' \(or 'rgb' for 'visible'"):
        Modality.parse("day")
    copy = Path(shutil.copytree(csv_root, tmp_path / "copy"))
    renamed = CSVDataset(rewrite(copy, ",", {"visible": "RGB", "infrared": "thermal"}))
    assert [s.modality for s in renamed.train.infrared] == ["infrared"] * len(CSVDataset(csv_root).train.infrared)
    args = build_parser().parse_args(
        ["extract", "--checkpoint", "c", "--images", "i", "--out", "o", "--modality", "nir"]
    )
    assert args.modality == "infrared"


def test_docs_name_config_json_wherever_they_name_config_yaml():
    files = [*DOCS.glob("*.md"), DOCS.parent / "README.md"]
    for path in files:
        for paragraph in re.split(r"\n\s*\n", path.read_text()):
            if "config.yaml" in paragraph and "run" in paragraph:
                assert "config.json" in paragraph, f"{path.name}: {paragraph[:200]}"


def test_features_norm_and_shape_are_what_the_docstrings_say(tiny_model):
    images = torch.rand(3, 3, 64, 32)
    plain = encode_images(tiny_model, images, "visible", flip=False)
    flipped = encode_images(tiny_model, images, "visible", flip=True)
    assert flipped.shape == (3, 2 * tiny_model.embed_dim)
    torch.testing.assert_close(plain.norm(dim=1), torch.full((3,), 2**0.5))
    torch.testing.assert_close(flipped.norm(dim=1), torch.full((3,), 2.0))
    doc = FeatureExtractor.__doc__
    assert "torch.Size([2, 6144]), tensor([2., 2.])" in doc and "norm 2" in doc  # RN50: embed_dim 3072
    assert "its norm is ``sqrt(2)``" in tiny_model.encode_image.__doc__


def test_metric_option_on_eval_and_extract(tiny_checkpoint, csv_root, tmp_path, capsys):
    path, _ = tiny_checkpoint
    for metric in ("euclidean", "cosine"):
        out = tmp_path / f"{metric}.json"
        argv = ["-q", "eval", "--checkpoint", path, "--root", csv_root, "--dataset", "csv", "--json", out]
        assert main([*map(str, argv), "--metric", metric]) == 0
        assert json.loads(out.read_text())["config"]["metric"] == metric
    images = Path(csv_root) / "images"
    norms = {}
    for metric in (None, "cosine", "euclidean"):
        out = tmp_path / f"feats-{metric}.pt"
        extra = ["--metric", metric] if metric else []
        argv = ["-q", "extract", "--checkpoint", str(path), "--images", str(images), "--modality", "ir", "--out"]
        assert main([*argv, str(out), *extra]) == 0
        saved = torch.load(out, weights_only=True)
        assert saved.get("metric") == metric and saved["modality"] == "infrared"
        norms[metric] = saved["features"].norm(dim=1)
    torch.testing.assert_close(norms["cosine"], torch.ones_like(norms["cosine"]))
    torch.testing.assert_close(norms[None], torch.full_like(norms[None], 2.0))  # the model's rows, flip on
    torch.testing.assert_close(norms["euclidean"], norms[None])
    capsys.readouterr()
