"""`csdn ablate --preset demo` with tiny epochs on a synthetic SYSU-MM01: tables, reports, skip/resume, checks."""

import json
import os

import pytest

from csdn.cli import build_parser, main
from csdn.cli.ablate import VARIANTS

from .conftest import TINY, as_sets
from .test_writer import parse


def ablate(root, out, *extra):
    return main(["ablate", "--preset", "demo", "--root", str(root), "--out", str(out), "--trials", "1",
                 "--variants", "baseline", "csdn_none", *as_sets(TINY), *map(str, extra)])  # fmt: skip


def test_default_variants_are_the_papers_five():
    args = build_parser().parse_args(["ablate", "--root", "r", "--out", "o"])
    assert args.variants == ["baseline", "clip_vireid", "csdn_add", "csdn_none", "csdn"] == list(VARIANTS)


def test_ablate_tables_reports_skip_and_resume(sysu_root, tmp_path, capsys):
    pytest.importorskip("matplotlib")
    out = tmp_path / "study"
    assert ablate(sysu_root, out) == 0
    stdout = capsys.readouterr().out
    data = json.loads((out / "ablation.json").read_text())
    assert data["settings"][:2] == ["sysu all-search single-shot", "sysu indoor-search single-shot"]
    assert [(c["variant"], c["setting"]) for c in data["cells"]][:2] == [
        ("baseline", "sysu all-search single-shot"), ("csdn_none", "sysu all-search single-shot")]  # fmt: skip
    assert len(data["cells"]) == 2 * 4 and data["options"]["seeds"] == [1] and data["options"]["root"] == str(sysu_root)
    for variant in ("baseline", "csdn_none"):  # each cell = that variant's own evaluation
        summary = json.loads((out / variant / "eval.json").read_text())["summary"]
        multi = "sysu all-search multi-shot"
        cell = next(c for c in data["cells"] if c["variant"] == variant and c["setting"] == multi)
        assert cell["mAP"]["mean"] == summary["sysu all-search multi-shot"]["mAP"]["mean"]
        assert cell["rank10"]["mean"] == summary["sysu all-search multi-shot"]["rank10"]["mean"]
        assert cell["runs"] == 1 and cell["mAP"]["std"] is None  # one run: no spread to measure
        assert cell["mAP"]["ci"][0] <= cell["mAP"]["mean"] <= cell["mAP"]["ci"][1]
        saved = json.loads((out / variant / "config.json").read_text()) if (out / variant / "config.json").exists() \
            else __import__("yaml").safe_load((out / variant / "config.yaml").read_text())  # fmt: skip
        assert saved["model"]["variant"] == ("baseline" if variant == "baseline" else "csdn")
        assert saved["runtime"]["seed"] == 1 and saved["stage3"]["epochs"] == 1
    assert len(data["comparisons"]) == 4 and data["comparisons"][0]["a"] == "csdn_none"
    md = (out / "ablation.md").read_text()
    assert "| variant | runs | rank-1 | mAP | rank-10 | mINP |" in md and md.count("| csdn_none |") == 4
    assert "| csdn_none - baseline |" in md
    index = parse((out / "index.html").read_text())
    links = [a["href"] for name, a in index.tags if name == "a"]
    assert links == ["baseline/report/index.html", "csdn_none/report/index.html"]
    assert all((out / link).is_file() for link in links)
    assert (out / "ablation.png").read_bytes()[:4] == b"\x89PNG"
    table = stdout.split("0 runs left, done", 1)[1]  # the table comes at the end
    assert "sysu all-search single-shot" in table and "csdn_none - baseline" in table

    # second call: both finished -> no training; then an interrupted variant (final.pt gone) resumes
    finals = {v: out / v / "checkpoints" / "final.pt" for v in ("baseline", "csdn_none")}
    stamp, report = finals["baseline"].stat().st_mtime_ns, (out / "baseline" / "report" / "index.html")
    report_stamp = report.stat().st_mtime_ns
    finals["csdn_none"].unlink()
    assert ablate(sysu_root, out) == 0
    stdout = capsys.readouterr().out
    assert finals["baseline"].stat().st_mtime_ns == stamp and report.stat().st_mtime_ns == report_stamp
    assert finals["csdn_none"].is_file()
    assert "2 runs, 1 finished earlier, 1 to run" in stdout and "[1/1] csdn_none seed 1: resumed in" in stdout
    again = json.loads((out / "ablation.json").read_text())
    assert again["cells"] == data["cells"] and again["comparisons"] == data["comparisons"]  # same weights

    # the same study folder with another seed is refused before anything runs
    assert ablate(sysu_root, out, "--set", "runtime.seed=3") == 2
    assert "holds a study run with other settings (baseline: runtime.seed: 1 -> 3" in capsys.readouterr().err


def test_ablate_refuses_the_ablation_keys_and_a_run_of_another_seed(sysu_root, tmp_path, capsys):
    from csdn.engine import apply_overrides, config_to_dict, get_preset, save_checkpoint

    out = tmp_path / "study"
    assert ablate(sysu_root, out, "--set", "model.integrator=add") == 2
    assert "ablate sets model.integrator itself" in capsys.readouterr().err
    # csdn_none's run folder holds a checkpoint of the same configuration but another seed
    cfg = apply_overrides(get_preset("demo"), [*TINY, "model.integrator=none", f"data.root={sysu_root}",
                                               "runtime.seed=7"])  # fmt: skip
    save_checkpoint({"model": {}, "config": config_to_dict(cfg), "num_classes": 1},
                    out / "csdn_none" / "checkpoints" / "last.pt")  # fmt: skip
    assert ablate(sysu_root, out, "--no-report") == 2
    err = capsys.readouterr().err.splitlines()[-1]
    assert "was trained with another configuration (runtime.seed: 7 -> 1)" in err, err
    assert not (out / "baseline").exists() and not (out / "ablation_plan.json").exists()  # refused before training


def test_an_evaluation_is_current_only_for_the_same_trials_a_newer_file_and_per_query_values(tmp_path):
    from csdn.evaluation.evaluator import EvaluationReport
    from csdn.study.runner import _evaluation_is_current

    from .test_writer import _record

    final = tmp_path / "checkpoints" / "final.pt"
    final.parent.mkdir()
    final.write_bytes(b"weights")
    records = [_record("s", 0, 0.5, 0.4), _record("s", 1, 0.7, 0.4)]
    for r in records:
        r.query_ap, r.query_rank1 = [0.4] * r.num_valid, [1] * r.num_valid
    EvaluationReport("d", records, {}).to_json(tmp_path / "eval.json")
    os.utime(final, ns=(1, 1))  # the checkpoint is older than the evaluation
    assert _evaluation_is_current(tmp_path, [0, 1]) and _evaluation_is_current(tmp_path, None)
    assert not _evaluation_is_current(tmp_path, [0])  # other trials
    EvaluationReport("d", [_record("s", 0, 0.5, 0.4)], {}).to_json(tmp_path / "eval.json")
    os.utime(final, ns=(1, 1))
    assert not _evaluation_is_current(tmp_path, [0])  # an eval.json without per-query values
    EvaluationReport("d", records, {}).to_json(tmp_path / "eval.json")
    os.utime(final)  # retrained after the evaluation
    os.utime(tmp_path / "eval.json", ns=(1, 1))
    assert not _evaluation_is_current(tmp_path, [0, 1])
