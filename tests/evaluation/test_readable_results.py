"""Readable results: one parseable table (mean ± std, percent), re-ranking labels, warnings once, short reprs."""

from __future__ import annotations

import json
import logging
import re

import numpy as np
import pytest
import torch

from csdn.cli.reporting import print_report, protocol_callback, validation_callback
from csdn.data import SYSUMM01, build_test_transform
from csdn.data.samples import Sample, TrainSplit
from csdn.data.samples import TestSplit as _TestSplit  # not collected by pytest
from csdn.evaluation import VIReIDEvaluator, evaluate

CELL = r"(\d+\.\d\d) ±\s+(\d+\.\d\d|—)"
ROW = re.compile(r"^(?P<name>\S.*?)\s+(?P<trials>\d+)\s+" + r"\s+".join([CELL] * 6) + r"$")


def _evaluator(root, **options):
    return VIReIDEvaluator(SYSUMM01(root), transform=build_test_transform(32, 16), **options)


@pytest.fixture(scope="module")
def plain_report(tiny_sysu):
    from .conftest import PoolingModel

    return _evaluator(tiny_sysu).run(PoolingModel(), trials=3)


def test_the_table_parses_to_the_trial_means_and_stds(plain_report):
    lines = plain_report.to_table().splitlines()
    assert lines[0] == (
        f"{plain_report.dataset}: CMC rank-k accuracy, mAP and mINP in percent, mean ± standard deviation over "
        "trials 0-2"
    )
    assert lines[1].split() == ["setting", "trials", "rank-1", "rank-5", "rank-10", "rank-20", "mAP", "mINP"]
    rows = [ROW.match(line) for line in lines[3:7]]
    assert all(rows) and [m["name"] for m in rows] == plain_report.settings()
    for match in rows:
        records = [r for r in plain_report.records if r.setting == match["name"]]
        assert int(match["trials"]) == len(records) == 3
        cells = match.groups()[2:]
        same_draw = "multi-shot" in match["name"]  # 2 images per folder: every trial draws all of them
        for i, metric in enumerate(("rank1", "rank5", "rank10", "rank20", "mAP", "mINP")):
            values = [100 * getattr(r, metric) for r in records]
            mean = sum(values) / 3
            std = (sum((v - mean) ** 2 for v in values) / 3) ** 0.5  # population std over trials
            assert float(cells[2 * i]) == pytest.approx(mean, abs=0.006), metric
            if same_draw:
                assert cells[2 * i + 1] == "—", metric
            else:
                assert float(cells[2 * i + 1]) == pytest.approx(std, abs=0.006), metric
    assert lines[7:] == [
        f"— sysu {mode}-search multi-shot: no standard deviation, its 3 trials drew the same query and gallery images"
        for mode in ("all", "indoor")
    ]


def test_per_trial_lines_only_when_verbose(plain_report):
    quiet, verbose = [], []
    print_report(plain_report, out=quiet.append)
    print_report(plain_report, out=verbose.append, verbose=True)
    assert quiet == [plain_report.to_table()]
    trial_lines = verbose[0].splitlines()[1:]
    assert len(trial_lines) == len(plain_report.records) == 4 * 3
    first = plain_report.records[0]
    assert trial_lines[0].split()[-4:] == [str(first.trial), f"{100 * first.rank1:.2f}", f"{100 * first.mAP:.2f}",
                                           f"{100 * first.mINP:.2f}"]  # fmt: skip


def test_re_ranked_results_are_labelled(tiny_sysu, plain_report, tmp_path):
    from .conftest import PoolingModel

    reranked = _evaluator(tiny_sysu, rerank=True, k1=4, k2=2).run(PoolingModel(), trials=1)
    assert "re-ranked (k-reciprocal, k1=4, k2=2, lambda=0.3)" in reranked.to_table().splitlines()[0]
    assert "re-ranked" not in plain_report.to_table()
    reranked.to_json(tmp_path / "r.json")
    plain_report.to_json(tmp_path / "p.json")
    data, plain = (json.loads((tmp_path / f"{n}.json").read_text()) for n in "rp")
    assert data["reranked"] is True and "re-ranked" in data["label"] and "fractions" in data["label"]
    assert plain["reranked"] is False and "re-ranked" not in plain["label"]


def test_re_ranked_plots_are_labelled(tiny_sysu, monkeypatch, tmp_path):
    pytest.importorskip("matplotlib")
    import csdn.viz.report as viz_report
    from csdn.viz import plot_evaluation

    from .conftest import PoolingModel

    titles = []
    monkeypatch.setattr(viz_report, "plot_cmc", lambda runs, out, title="CMC": titles.append(("cmc", title)))
    monkeypatch.setattr(viz_report, "plot_ranked_lists", lambda *a, title=None, **k: titles.append(("lists", title)))
    for rerank in (False, True):
        evaluator = _evaluator(tiny_sysu, rerank=rerank, k1=4, k2=2)
        report = evaluator.run(PoolingModel(), trials=1, settings=[evaluator.settings[0]])
        plot_evaluation(tmp_path / str(rerank), evaluator, PoolingModel(), report, heatmaps=False)
    assert [("re-ranked" in t) for _, t in titles] == [False, False, True, True]


def test_each_message_once_per_run(tiny_sysu, caplog):
    from .conftest import PoolingModel

    with caplog.at_level(logging.INFO, logger="csdn.evaluation"):
        _evaluator(tiny_sysu).run(PoolingModel(), trials=4)
    messages = [r.getMessage() for r in caplog.records if r.name.startswith("csdn.evaluation")]
    clipped = [m for m in messages if "CMC clipped" in m]
    assert clipped and len(clipped) == len(set(clipped))  # 4 settings x 4 trials, each distinct message once
    assert not [m for m in messages if " trial " in m]  # per-trial lines are debug-level
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="csdn.evaluation"):
        for _ in range(2):  # outside a run nothing is filtered
            evaluate(torch.rand(2, 3), [1, 2], [1, 2, 3], [1, 1], [2, 2, 2], protocol="regdb")
    assert sum("CMC clipped" in r.getMessage() for r in caplog.records) == 2


def test_training_time_evaluation_is_percent_and_labelled(tiny_sysu):
    from .conftest import PoolingModel

    evaluator, model = _evaluator(tiny_sysu), PoolingModel()
    split = evaluator.dataset.test(trial=0)
    record = evaluator.evaluate_split(model, split)
    heldout = validation_callback(evaluator, split)(model, 1)
    assert heldout == pytest.approx({"heldout_rank1": 100 * record.rank1, "heldout_mAP": 100 * record.mAP,
                                     "heldout_mINP": 100 * record.mINP})  # fmt: skip
    test = protocol_callback(evaluator)(model, 1)
    assert test == pytest.approx({"test_rank1": 100 * record.rank1, "test_mAP": 100 * record.mAP,
                                  "test_mINP": 100 * record.mINP})  # fmt: skip


def _samples(n, modality, cams):
    return [Sample(f"/data/img_{i:06d}.jpg", i % 500, cams[i % len(cams)], modality) for i in range(n)]


def test_reprs_are_short():
    query, gallery = _samples(4000, "infrared", (3, 6)), _samples(9000, "visible", (1, 2, 4, 5))
    split = _TestSplit(query, gallery, "sysu", "infrared", "visible", "sysu all-search single-shot", trial=3)
    text = repr(split)
    assert len(text) < 250 and "img_" not in text
    assert "<4000 images, 500 ids, cams [3, 6]>" in text and "<9000 images, 500 ids, cams [1, 2, 4, 5]>" in text
    train = TrainSplit([s._replace(label=s.pid) for s in gallery], [s._replace(label=s.pid) for s in query], 500)
    assert len(repr(train)) < 250 and "num_classes=500" in repr(train) and "img_" not in repr(train)
    result = evaluate(torch.rand(300, 900), np.arange(300) % 50, np.arange(900) % 50, protocol="regdb")
    assert len(repr(result)) < 200 and "queries=300" in repr(result) and f"mAP={result.mAP:.4f}" in repr(result)


def test_report_repr_is_short(plain_report):
    text = repr(plain_report)
    assert len(text) < 400 and "records=12" in text and "cmc" not in text and "reranked=False" in text
