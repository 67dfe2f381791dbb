"""What `csdn train`/`csdn eval` write says what was measured: trials, chance, TPR@FPR, names, logs, overwrites."""

import json

import pytest

from csdn.cli import main

from .conftest import TINY, as_sets
from .test_writer import parse


def test_eval_json_records_the_trials_chance_and_operating_points(eval_report, sysu_root):
    data = json.loads((eval_report.parent / "eval.json").read_text())  # written by `csdn eval --trials 2`
    assert data["config"]["trials"] == [0, 1] and sorted({r["trial"] for r in data["records"]}) == [0, 1]
    assert data["dataset"] == f"SYSU-MM01 at {sysu_root}"
    assert data["chance"]["method"].startswith("permutation estimate")
    assert set(data["chance"]["settings"]) == set(data["summary"])
    for setting, points in data["tpr_at_fpr"].items():
        assert set(points) == {"1e-4", "1e-3", "1e-2"}, setting
        assert all(r["tpr_at_fpr"].keys() == points.keys() for r in data["records"])


def test_report_page_shows_the_trials_evaluated_chance_and_tpr(eval_report, sysu_root):
    shown = "".join(parse((eval_report / "index.html").read_text(encoding="utf-8")).text)
    assert "0, 1 (the protocol has 0-9)" in shown and "0, 1, 2" not in shown
    assert f"SYSU-MM01 at {sysu_root}: CMC rank-k accuracy, mAP and mINP in percent, mean ± standard deviation " \
           "over trials 0, 1" in shown  # fmt: skip
    assert "mean ± std over trials" not in shown and "SYSUMM01(" not in shown
    assert "chance level of sysu all-search single-shot (permutation estimate" in shown
    assert "TPR@FPR=1e-4" in shown and "TPR@FPR=1e-2" in shown
    assert "no standard deviation, its 2 trials drew the same query and gallery images" in shown  # multi-shot


def test_json_and_report_share_the_overwrite_policy(eval_report, trained, sysu_root, tmp_path, capsys):
    existing = tmp_path / "eval.json"
    existing.write_text("{}")
    base = ["eval", "--root", str(sysu_root), "--checkpoint", str(trained), "--trials", "1"]
    for extra, option in (
        (["--json", str(existing)], "--json"),
        (["--report", str(eval_report)], "--report"),  # an earlier report is not replaced silently either
    ):
        assert main([*base, *extra]) == 2
        out, err = capsys.readouterr()
        assert out == "" and err.startswith(f"csdn: error: {option} ") and "pass --force to overwrite it" in err
    assert existing.read_text() == "{}"
    pytest.importorskip("matplotlib")
    report = tmp_path / "report"
    report.mkdir()
    (report / "notes.txt").write_text("x")
    assert main(["-q", *base, "--json", str(existing), "--report", str(report), "--force"]) == 0
    assert json.loads(existing.read_text())["config"]["trials"] == [0]
    assert (report / "index.html").is_file()


def test_train_log_ends_with_the_results_table(sysu_root, tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["train", "--preset", "demo", "--root", str(sysu_root), *as_sets([*TINY, f"runtime.output_dir={out}"])]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    log = (out / "train.log").read_text(encoding="utf-8")
    table = json.loads((out / "eval.json").read_text())
    caption = f"SYSU-MM01 at {sysu_root}: CMC rank-k accuracy"
    assert caption in printed and caption in log
    tail = log[log.index(caption) :].splitlines()
    assert tail[-2].startswith("chance level of sysu indoor-search multi-shot (permutation estimate")
    assert tail[-1].endswith(f"results written to {out / 'eval.json'}")
    assert [line for line in printed.splitlines() if line.startswith("chance level")] == [
        line for line in tail if line.startswith("chance level")
    ]
    assert table["chance"] is not None


def test_fallback_preset_log_line_names_the_real_output_folder(tmp_path, capsys):
    target = tmp_path / "elsewhere"
    argv = ["train", "--dataset", "csv", "--root", str(tmp_path), "--set", f"runtime.output_dir={target}",
            "--print-config"]  # fmt: skip
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert f"dataset csv has no preset: using the sysu hyper-parameters, output in {target}" in err
    assert "runs/csv" not in err
