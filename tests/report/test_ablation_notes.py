"""ablation.md says what its numbers are: caption in words, "—" where trials do not differ (and why), chance level."""

from csdn.cli.ablate_results import write_study
from csdn.evaluation import ChanceLevel, EvaluationReport, TrialRecord


def _record(setting, trial, mean_ap, digest):
    return TrialRecord(setting, trial, "sysu", "infrared", "visible", 3, 4, 3, 0.5, 0.6, 0.7, 0.8, mean_ap, 0.2,
                       [0.5] * 20, split_digest=digest)  # fmt: skip


def _report(offset):
    records = [_record("sysu all-search single-shot", t, 0.4 + offset + 0.1 * t, f"s{t}") for t in (0, 1)]
    records += [_record("sysu all-search multi-shot", t, 0.5 + offset, "same") for t in (0, 1)]
    chance = ChanceLevel({"sysu all-search single-shot": {"rank1": 0.125, "mAP": 0.2},
                          "sysu all-search multi-shot": {"rank1": 0.13, "mAP": 0.21}}, draws=20)  # fmt: skip
    return EvaluationReport("SYSU-MM01 at synth/sysu", records, {"trials": [0, 1]}, chance)


def test_ablation_markdown_has_words_notes_and_chance(tmp_path):
    plan = {"dataset": "sysu", "preset": "demo", "seed": 1, "root": "synth/sysu", "overrides": []}
    write_study(tmp_path, plan, {"baseline": _report(0.0), "csdn": _report(0.1)}, report=False)
    md = (tmp_path / "ablation.md").read_text()
    assert "mean ± standard deviation over trials 0, 1" in md and "mean ± std over" not in md
    single, multi = md.split("## sysu all-search single-shot")[1].split("## sysu all-search multi-shot")
    assert "| baseline | 50.00 ± 0.00 | 70.00 ± 0.00 | 45.00 ± 5.00 | 20.00 ± 0.00 |" in single
    assert "no standard deviation" not in single
    assert "| baseline | 50.00 ± — | 70.00 ± — | 50.00 ± — | 20.00 ± — |" in multi
    assert "- All variants: no standard deviation, its 2 trials drew the same query and gallery images." in multi
    assert "- Chance level (permutation estimate: mean over 20 random rankings under the same protocol): rank-1 " \
           "12.50, mAP 20.00." in single  # fmt: skip
    assert "rank-1 13.00, mAP 21.00." in multi
