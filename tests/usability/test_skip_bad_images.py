"""A folder of user images: unreadable files stop the run unless skipped explicitly, and skipped files are
reported (log line, ``extractor.skipped``, ``skipped`` in the ``csdn extract`` output)."""

import logging

import numpy as np
import PIL.Image
import pytest
import torch

from csdn.cli import main
from csdn.inference import FeatureExtractor

from .conftest import IMAGE_SIZE


@pytest.fixture
def folder(tmp_path):
    rng = np.random.default_rng(0)
    good = []
    for i in range(5):
        path = tmp_path / "imgs" / f"{i}_ok.png"
        path.parent.mkdir(exist_ok=True)
        PIL.Image.fromarray(rng.integers(0, 256, (*IMAGE_SIZE, 3), dtype=np.uint8)).save(path)
        good.append(str(path))
    (tmp_path / "imgs" / "1_bad.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    (tmp_path / "imgs" / "3_bad.png").write_text("not a png")
    paths = sorted(str(p) for p in (tmp_path / "imgs").iterdir())
    return paths, good


def test_without_the_option_an_unreadable_file_stops_the_run(tiny_model, folder):
    paths, _ = folder
    with pytest.raises(ValueError, match=r"1_bad.jpg"):
        FeatureExtractor(tiny_model, image_size=IMAGE_SIZE)(paths)


def test_skip_bad_leaves_them_out_and_reports_them(tiny_model, folder, caplog):
    paths, good = folder
    extractor = FeatureExtractor(tiny_model, image_size=IMAGE_SIZE, batch_size=2)
    with caplog.at_level(logging.WARNING, logger="csdn.inference"):
        features = extractor(paths, skip_bad=True)
    assert [(s.index, s.path.rsplit("/", 1)[-1]) for s in extractor.skipped] == [(1, "1_bad.jpg"), (4, "3_bad.png")]
    torch.testing.assert_close(features, extractor(good))  # the good rows, in input order
    assert "skipped 2 of 7 unreadable images" in caplog.text and "1_bad.jpg" in caplog.text
    extractor(good, skip_bad=True)
    assert extractor.skipped == []
    with pytest.raises(ValueError, match="none of the 2 images could be read"):
        extractor([p for p in paths if p.endswith(("_bad.jpg", "_bad.png"))], skip_bad=True)


def test_csdn_extract_skip_bad_images(capsys, tiny_checkpoint, folder, tmp_path):
    paths, good = folder
    args = ["-q", "extract", "--checkpoint", str(tiny_checkpoint[0]), "--images", str(tmp_path / "imgs"),
            "--modality", "visible"]  # fmt: skip
    assert main([*args, "--out", str(tmp_path / "a.pt")]) == 2
    assert "1_bad.jpg" in capsys.readouterr().err and not (tmp_path / "a.pt").exists()
    assert main([*args, "--out", str(tmp_path / "b.pt"), "--skip-bad-images"]) == 0
    out = capsys.readouterr().out
    assert "skipped 2 unreadable images" in out and "1_bad.jpg" in out
    saved = torch.load(tmp_path / "b.pt", weights_only=True)
    assert saved["paths"] == good and saved["features"].shape[0] == 5
    assert [p.rsplit("/", 1)[-1] for p in saved["skipped"]] == ["1_bad.jpg", "3_bad.png"]
