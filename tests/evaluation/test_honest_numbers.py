"""Honest numbers: the trials evaluated, a standard deviation only where trials differ, the chance level, TPR@FPR."""

from __future__ import annotations

import json
import logging
import re

import numpy as np
import pytest
import torch

from csdn.data import SYSUMM01, build_test_transform
from csdn.evaluation import EvaluationReport, TrialRecord, VIReIDEvaluator, evaluate
from csdn.evaluation.roc import pair_distances, roc_curve, tpr_at_fpr


@pytest.fixture(scope="module")
def evaluator(tiny_sysu):
    return VIReIDEvaluator(SYSUMM01(tiny_sysu), transform=build_test_transform(32, 16))


@pytest.fixture(scope="module")
def report(evaluator):
    from .conftest import PoolingModel

    return evaluator.run(PoolingModel(), trials=3, chance=True)


def test_provenance_lists_exactly_the_trials_evaluated(report, evaluator):
    assert report.config["trials"] == [0, 1, 2] == report.trials()
    assert report.config["protocol_trials"] == list(range(10))
    data = json.loads(json.dumps(report.to_dict()))
    assert data["config"]["trials"] == [0, 1, 2]
    assert evaluator.config()["trials"] == list(range(10))  # the evaluator itself still runs all by default


def test_dataset_prints_as_name_and_root(report, tiny_sysu, tmp_path):
    assert str(SYSUMM01(tiny_sysu)) == f"SYSU-MM01 at {tiny_sysu}"
    assert report.dataset == f"SYSU-MM01 at {tiny_sysu}" == report.to_dict()["dataset"]
    assert report.to_table().splitlines()[0].startswith(f"SYSU-MM01 at {tiny_sysu}: ")
    assert "SYSUMM01(" not in report.to_table()


def test_no_standard_deviation_where_trials_draw_the_same_images(report):
    summary = report.summary()
    single, multi = summary["sysu all-search single-shot"], summary["sysu all-search multi-shot"]
    assert single["mAP"]["std"] is not None  # one random image per folder: the trials differ
    assert multi["mAP"]["std"] is None  # 2 images per folder, 10 drawn: every trial has them all
    assert report.no_std_reason("sysu all-search multi-shot") == "its 3 trials drew the same query and gallery images"
    assert report.to_dict()["no_std"]["sysu all-search multi-shot"].startswith("its 3 trials")
    assert "sysu all-search single-shot" not in report.to_dict()["no_std"]


def _record(trial: int, digest: str, mean_ap: float) -> TrialRecord:
    return TrialRecord("csv infrared->visible", trial, "market", "infrared", "visible", 4, 8, 4, 0.5, 0.5, 0.5, 0.5,
                       mean_ap, 0.3, [0.5] * 8, split_digest=digest)  # fmt: skip


def test_single_trial_reasons_say_which():
    one = EvaluationReport("CSV at x", [_record(0, "a", 0.4)], {"protocol_trials": [0]})
    assert one.no_std_reason("csv infrared->visible") == (
        "a single trial: the dataset's protocol has one (fixed query and gallery lists)"
    )
    row = one.to_table().splitlines()[3]
    assert row.count("± ") == row.count("—") == 6 and not re.search(r"± +\d", row)  # every metric: no spread
    cut = EvaluationReport("SYSU-MM01 at x", [_record(0, "a", 0.4)], {"protocol_trials": list(range(10))})
    assert cut.no_std_reason("csv infrared->visible") == "only 1 of the protocol's 10 trials evaluated"
    differ = EvaluationReport("x", [_record(0, "a", 0.4), _record(1, "b", 0.6)])
    assert differ.no_std_reason("csv infrared->visible") is None
    assert differ.summary()["csv infrared->visible"]["mAP"]["std"] == pytest.approx(0.1)


def test_chance_level_is_printed_with_its_method_and_matches_the_analytic_rank1(report, evaluator):
    lines = report.to_table().splitlines()
    chance = [line for line in lines if line.startswith("chance level of ")]
    assert [c.split(" (")[0].removeprefix("chance level of ") for c in chance] == report.settings()
    assert all("permutation estimate: mean over 18 random rankings" in c for c in chance)  # 6 draws x 3 trials
    assert lines[-len(chance) :] == chance  # right under the table
    # a random ranking's rank-1 is, per query, (same-identity kept items) / (kept items): the analytic mean
    split = evaluator.dataset.test(mode="all", shot="single", trial=0)
    q = np.array([(s.pid, s.cam) for s in split.query])
    g = np.array([(s.pid, s.cam) for s in split.gallery])
    kept = ~((q[:, 1, None] == 3) & (g[None, :, 1] == 2))  # SYSU: camera-3 queries skip camera-2 items
    analytic = np.mean(((q[:, 0, None] == g[None, :, 0]) & kept).sum(1) / kept.sum(1))
    assert report.chance.values["sysu all-search single-shot"]["rank1"] == pytest.approx(analytic, abs=0.04)
    saved = json.loads(json.dumps(report.to_dict()))
    assert saved["chance"]["method"].startswith("permutation") and saved["chance"]["draws"] == 18
    again = EvaluationReport.from_dict(saved)
    assert again.chance.values == report.chance.values and again.to_table() == report.to_table()


def test_chance_is_opt_in_and_absent_from_the_table_then(evaluator):
    from .conftest import PoolingModel

    plain = evaluator.run(PoolingModel(), trials=1, settings=[evaluator.settings[0]])
    assert plain.chance is None and "chance level" not in plain.to_table()


def test_tpr_at_fpr_exact_operating_points():
    impostor = np.arange(1, 1001) / 1000.0  # 1000 impostor pairs: 0.001 ... 1.0
    genuine = np.array([0.0005, 0.0015, 0.0095, 0.0105, 0.5])
    # FPR <= 1e-3 lets 1 impostor through: threshold below 0.002 -> 2 of 5 genuine; 1e-2: below 0.011 -> 4 of 5
    assert tpr_at_fpr(genuine, impostor) == {"1e-4": None, "1e-3": 0.4, "1e-2": 0.8}
    # an impostor tied with a genuine pair takes it along: the threshold must stay below both
    assert tpr_at_fpr([0.1, 0.3, 0.3, 0.5], np.full(100, 0.3), targets=[0.01]) == {"1e-2": 0.25}
    with pytest.raises(ValueError, match="FPR targets must lie in"):
        tpr_at_fpr(genuine, impostor, targets=[0.0])


def test_tpr_at_fpr_agrees_with_the_roc_curve():
    """The operating point is the ROC's best TPR at FPR <= target, on overlapping distributions of many sizes."""
    for seed in range(20):
        rng = np.random.default_rng(seed)
        q_pids, g_pids = rng.integers(0, 3, 40), rng.integers(0, 3, 20 + 5 * seed)
        dist = rng.random((40, g_pids.size)) - 0.2 * (q_pids[:, None] == g_pids[None, :])
        genuine, impostor = pair_distances(dist, q_pids, g_pids, protocol="regdb")
        roc, points = roc_curve(genuine, impostor), tpr_at_fpr(genuine, impostor)
        for key, fpr in (("1e-4", 1e-4), ("1e-3", 1e-3), ("1e-2", 1e-2)):
            if impostor.size * fpr < 1:
                assert points[key] is None, (seed, key)
            else:
                assert points[key] == pytest.approx(roc.tpr[roc.fpr <= fpr + 1e-12].max()), (seed, key)


def test_records_and_json_carry_tpr_at_fpr(report, evaluator):
    from .conftest import PoolingModel

    record = report.records[0]
    split = evaluator.dataset.test(**evaluator.settings[0], trial=0)
    _, _, dist = evaluator.split_distances(PoolingModel(), split)
    ids = ([s.pid for s in split.query], [s.pid for s in split.gallery])
    cams = ([s.cam for s in split.query], [s.cam for s in split.gallery])
    assert record.tpr_at_fpr == tpr_at_fpr(*pair_distances(dist, *ids, *cams, protocol="sysu"))
    assert record.tpr_at_fpr["1e-4"] is None  # a few hundred impostor pairs cannot measure 1e-4
    points = report.to_dict()["tpr_at_fpr"]["sysu all-search single-shot"]
    assert set(points) == {"1e-4", "1e-3", "1e-2"}
    rows = [r for r in report.records if r.setting == "sysu all-search single-shot"]
    assert points["1e-2"]["mean"] == pytest.approx(np.mean([r.tpr_at_fpr["1e-2"] for r in rows]))


def test_clipped_cmc_note_names_its_setting(evaluator, caplog):
    from .conftest import PoolingModel

    with caplog.at_level(logging.INFO, logger="csdn.evaluation"):
        evaluator.run(PoolingModel(), trials=1)
    clipped = [r.getMessage() for r in caplog.records if "CMC clipped" in r.getMessage()]
    assert clipped and all(m.startswith("sysu ") and "-shot: gallery has only" in m for m in clipped)
    assert evaluate(torch.rand(2, 3), [1, 2], [1, 2, 3], protocol="regdb").cmc.size == 3
