"""Regression test of `csdn demo`: the quick setting must learn far above chance under the real SYSU protocol."""

import logging

import torch

from csdn.cli.demo import DEMO_SETTINGS, run_demo


def test_quick_demo_learns_far_above_chance(tmp_path, caplog):
    lines = []
    caplog.set_level(logging.INFO, logger="csdn")
    threads = torch.get_num_threads()
    result = run_demo(tmp_path, quick=True, out=lines.append)
    assert torch.get_num_threads() == threads  # the demo's single-thread setting is undone
    assert DEMO_SETTINGS["quick"].test_ids == 10
    head = result.headline()
    # random rankings: with 10 gallery identities rank-1 chance is about 1/10
    assert 0.05 < head["chance_rank1"] < 0.15
    assert head["rank1"] >= 0.35 and head["rank1"] >= 3 * head["chance_rank1"]
    assert head["mAP"] >= 0.40 and head["mAP"] >= 2 * head["chance_mAP"]
    assert len(result.report.records) == 4 * 10  # all/indoor x single/multi-shot, 10 gallery trials each
    assert result.checkpoint.is_file() and (result.run_dir / "eval.json").is_file()
    text = "\n".join(lines)
    assert "chance level" in text and str(result.checkpoint) in text and "rank-1" in text
    clipped = [r for r in caplog.records if "CMC clipped" in r.getMessage()]
    assert len(clipped) == 1  # the 19-item gallery's note once, not once per trial and chance-level draw
