"""`csdn ablate --preset demo` with tiny epochs on a synthetic SYSU-MM01: tables, reports, skip/resume, checks."""

import json
import logging
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


def test_ablate_tables_reports_skip_and_resume(sysu_root, tmp_path, capsys, caplog):
    pytest.importorskip("matplotlib")
    out = tmp_path / "study"
    assert ablate(sysu_root, out) == 0
    data = json.loads((out / "ablation.json").read_text())
    assert [(r["variant"], r["setting"]) for r in data["rows"]][:2] == [
        ("baseline", "sysu all-search single-shot"), ("baseline", "sysu indoor-search single-shot")]  # fmt: skip
    assert len(data["rows"]) == 2 * 4 and data["plan"]["seed"] == 1 and data["plan"]["root"] == str(sysu_root)
    for variant in ("baseline", "csdn_none"):  # each row = that variant's own evaluation
        summary = json.loads((out / variant / "eval.json").read_text())["summary"]
        row = next(r for r in data["rows"] if r["variant"] == variant and r["setting"] == "sysu all-search multi-shot")
        assert row["mAP"] == summary["sysu all-search multi-shot"]["mAP"]
        assert row["rank10"] == summary["sysu all-search multi-shot"]["rank10"]
        saved = json.loads((out / variant / "config.json").read_text()) if (out / variant / "config.json").exists() \
            else __import__("yaml").safe_load((out / variant / "config.yaml").read_text())  # fmt: skip
        assert saved["model"]["variant"] == ("baseline" if variant == "baseline" else "csdn")
        assert saved["runtime"]["seed"] == 1 and saved["stage3"]["epochs"] == 1
    md = (out / "ablation.md").read_text()
    assert "| variant | rank-1 | rank-10 | mAP | mINP |" in md and "![" in md and md.count("| csdn_none |") == 4
    index = parse((out / "index.html").read_text())
    links = [a["href"] for name, a in index.tags if name == "a"]
    assert links == ["baseline/report/index.html", "csdn_none/report/index.html"]
    assert all((out / link).is_file() for link in links)
    assert (out / "ablation.png").read_bytes()[:4] == b"\x89PNG"

    # second call: both finished -> no training; then an interrupted variant (final.pt gone) resumes
    finals = {v: out / v / "checkpoints" / "final.pt" for v in ("baseline", "csdn_none")}
    stamp = finals["baseline"].stat().st_mtime_ns
    finals["csdn_none"].unlink()
    caplog.set_level(logging.INFO, logger="csdn")
    assert ablate(sysu_root, out) == 0
    assert finals["baseline"].stat().st_mtime_ns == stamp  # not retrained
    assert finals["csdn_none"].is_file()
    messages = [r.getMessage() for r in caplog.records]
    assert "baseline: finished earlier" in "\n".join(messages) and "csdn_none: resuming" in messages, messages
    reused = [m for m in messages if "reusing" in m]
    assert len(reused) == 1 and reused[0].startswith("baseline: reusing")  # csdn_none's final.pt is new
    assert json.loads((out / "ablation.json").read_text())["rows"] == data["rows"]  # same weights, same numbers

    # the same study folder with another seed is refused before anything runs
    capsys.readouterr()
    assert ablate(sysu_root, out, "--set", "runtime.seed=3") == 2
    assert "holds a study run with other settings (runtime.seed: 1 -> 3)" in capsys.readouterr().err


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


def test_an_earlier_evaluation_is_reused_only_for_the_same_trials_and_a_newer_file(tmp_path):
    from csdn.cli.ablate_results import _earlier_evaluation
    from csdn.evaluation.evaluator import EvaluationReport

    from .test_writer import _record

    final = tmp_path / "checkpoints" / "final.pt"
    final.parent.mkdir()
    final.write_bytes(b"weights")
    EvaluationReport("d", [_record("s", 0, 0.5, 0.4), _record("s", 1, 0.7, 0.4)], {}).to_json(tmp_path / "eval.json")
    os.utime(final, ns=(1, 1))  # the checkpoint is older than the evaluation
    reused = _earlier_evaluation(tmp_path, final, [0, 1], report=False)
    assert reused is not None and reused.summary()["s"]["rank1"]["mean"] == pytest.approx(0.6)
    assert _earlier_evaluation(tmp_path, final, [0], report=False) is None  # other trials
    assert _earlier_evaluation(tmp_path, final, [0, 1], report=True) is None  # its report is missing
    os.utime(final)  # retrained after the evaluation
    os.utime(tmp_path / "eval.json", ns=(1, 1))
    assert _earlier_evaluation(tmp_path, final, [0, 1], report=False) is None
