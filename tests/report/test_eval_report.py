"""`csdn eval --report DIR` end to end on a tiny synthetic SYSU-MM01 and a tiny trained checkpoint."""

import hashlib
import json
import sys

from csdn.cli import main

from .test_writer import parse


def test_eval_report_page(eval_report, trained, sysu_root, tmp_path, capsys):
    text = (eval_report / "index.html").read_text(encoding="utf-8")
    page = parse(text)
    shown = "".join(page.text)
    for heading in ("Results", "CMC curves", "Query camera x gallery camera", "Matching and non-matching distances",
                    "queries with the lowest AP", "Provenance"):  # fmt: skip
        assert heading in shown, heading
    assert "not re-ranked" in shown and "flip: on" in shown
    assert hashlib.sha256(trained.read_bytes()).hexdigest() in shown  # the checkpoint digest
    assert str(sysu_root.resolve()) in shown and "torch" in shown
    for setting in ("sysu all-search single-shot", "sysu indoor-search multi-shot"):
        assert setting in shown
    # the same numbers as the JSON written by the same command
    stats = json.loads((eval_report.parent / "eval.json").read_text())["summary"]["sysu all-search single-shot"]
    assert f"{100 * stats['mAP']['mean']:.2f} ± {100 * stats['mAP']['std']:.2f}" in shown
    # camera matrix: IR query cams 3, 6 x visible gallery cams 1, 2, 4, 5; cam 3 never meets cam 2
    assert "cam 3" in shown and "cam 6" in shown and "cam 5" in shown and "—" in shown
    images = [a["src"] for name, a in page.tags if name == "img"]
    figures = [a["class"] for name, a in page.tags if name == "figure"]
    assert figures.count("query") == 8 and len(figures) > 8 * 6  # 8 queries with their top-10 kept items
    assert len(images) == 2 + len(figures) and all(s.startswith("data:image/") for s in images)  # no thumbnail lost


def test_report_folder_is_checked_before_evaluating(trained, sysu_root, tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("x")
    refusals = (("file", "is a file"), ("full", "non-empty folder (files that are not a report); pass --force"))
    for target, phrase in refusals:
        code = main(
            ["eval", "--root", str(sysu_root), "--checkpoint", str(trained), "--report", str(tmp_path / target)]
        )
        out, err = capsys.readouterr()
        assert code == 2 and out == "" and phrase in err.splitlines()[-1]  # nothing evaluated, nothing printed
    assert (tmp_path / "full" / "keep.txt").read_text() == "x"


def test_report_without_matplotlib_is_refused_first(trained, sysu_root, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    code = main(["eval", "--root", str(sysu_root), "--checkpoint", str(trained), "--report", str(tmp_path / "r")])
    out, err = capsys.readouterr()
    assert code == 2 and out == ""
    assert err.splitlines()[-1].endswith("it comes with the 'viz' extra: pip install 'csdn[viz]'")
    assert not (tmp_path / "r").exists()
