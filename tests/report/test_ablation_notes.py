"""ablation.md / study.md say what their numbers are: "—" where nothing varies, and the chance level per setting."""

from csdn.evaluation import ChanceLevel, EvaluationReport, TrialRecord
from csdn.study.grid import RunSpec
from csdn.study.results import table_text, write_results

SETTINGS = ("sysu all-search single-shot", "sysu all-search multi-shot")


def _record(setting, trial, mean_ap):
    return TrialRecord(setting, trial, "sysu", "infrared", "visible", 4, 4, 4, 0.5, 0.6, 0.7, 0.8, mean_ap, 0.2,
                       [0.5] * 20, split_digest=f"s{trial}", query_ap=[mean_ap] * 4,
                       query_rank1=[1, 0, 1, 0])  # fmt: skip


def _run(tmp_path, variant, offset):
    run_dir = tmp_path / variant
    run_dir.mkdir()
    records = [_record(s, t, 0.4 + offset + 0.1 * t) for s in SETTINGS for t in (0, 1)]
    chance = ChanceLevel({SETTINGS[0]: {"rank1": 0.125, "mAP": 0.2}, SETTINGS[1]: {"rank1": 0.13, "mAP": 0.21}},
                         draws=20)  # fmt: skip
    EvaluationReport("SYSU-MM01 at synth/sysu", records, {"trials": [0, 1]}, chance).to_json(run_dir / "eval.json")
    return RunSpec(variant, variant, 1, None, {"runtime": {"output_dir": str(run_dir)}})


def test_ablation_markdown_has_dashes_and_the_chance_level_of_each_setting(tmp_path):
    runs = [_run(tmp_path, "baseline", 0.0), _run(tmp_path, "csdn", 0.1)]
    results, _ = write_results(tmp_path, runs, {}, stem="ablation", title="Ablation")
    md = (tmp_path / "ablation.md").read_text()
    single, multi = md.split(f"## {SETTINGS[0]}")[1].split(f"## {SETTINGS[1]}")
    assert "| baseline | 1 | 50.00 ± — " in single  # one run per cell: no standard deviation to show
    method = "permutation estimate: mean over 20 random rankings under the same protocol"
    assert f"- chance level of {SETTINGS[0]} ({method}): rank-1 12.50%, mAP 20.00%." in single
    assert f"chance level of {SETTINGS[1]} ({method}): rank-1 13.00%, mAP 21.00%." in multi.split("## paired")[0]
    assert f"chance level of {SETTINGS[1]}" in table_text(results)
    assert "rank-1 13.00%, mAP 21.00%" in (tmp_path / "index.html").read_text()
