"""VIReIDEvaluator and extract_features on a tiny synthetic SYSU-MM01 tree with a fake pooling model."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from csdn.data import SYSUMM01, build_test_transform, load_image
from csdn.evaluation import VIReIDEvaluator, distance, evaluate, extract_features


def _literal_features(model, samples, modality, transform):
    """One image at a time: cat(f(x), f(mirror(x)))."""
    rows = []
    with torch.no_grad():
        for s in samples:
            x = transform(load_image(s.path))[None]
            rows.append(torch.cat([model.encode_image(x, modality), model.encode_image(x.flip(-1), modality)], 1))
    return torch.cat(rows)


def test_extract_features_flip_modes(tiny_sysu, pooling_model):
    transform = build_test_transform(32, 16)
    samples = SYSUMM01(tiny_sysu).test().query[:5]
    expected = _literal_features(pooling_model, samples, "infrared", transform)
    pooling_model.train()
    got = extract_features(pooling_model, samples, "infrared", transform, batch_size=2)
    assert pooling_model.training  # mode restored
    assert got.shape == (5, 48) and got.dtype == torch.float32
    torch.testing.assert_close(got, expected)
    summed = extract_features(pooling_model, samples, "infrared", transform, flip_mode="sum")
    torch.testing.assert_close(summed, expected[:, :24] + expected[:, 24:])
    plain = extract_features(pooling_model, samples, "infrared", transform, flip=False)
    torch.testing.assert_close(plain, expected[:, :24])


def test_extract_features_errors(tiny_sysu, pooling_model):
    samples = SYSUMM01(tiny_sysu).test().query[:2]
    with pytest.raises(ValueError, match="Valid values are"):
        extract_features(pooling_model, samples, "uv")
    with pytest.raises(ValueError, match="samples is empty"):
        extract_features(pooling_model, [], "visible")
    with pytest.raises(ValueError, match="encode_image"):
        extract_features(torch.nn.Linear(2, 2), samples, "visible")


def test_evaluator_matches_independent_computation(tiny_sysu, pooling_model, tmp_path):
    dataset = SYSUMM01(tiny_sysu)
    transform = build_test_transform(32, 16)
    evaluator = VIReIDEvaluator(dataset, trials=(0, 1, 2), transform=transform, batch_size=7)
    report = evaluator.run(pooling_model)
    assert len(report.records) == 4 * 3  # (all, indoor) x (single, multi) x 3 trials
    assert report.settings() == [
        "sysu all-search single-shot",
        "sysu indoor-search single-shot",
        "sysu all-search multi-shot",
        "sysu indoor-search multi-shot",
    ]
    # each distinct image is embedded once per run (query set shared by all settings and trials)
    distinct = {(s.path, "infrared") for s in dataset.test().query}
    for setting in dataset.test_settings():
        for trial in (0, 1, 2):
            distinct |= {(s.path, "visible") for s in dataset.test(**setting, trial=trial).gallery}
    assert sum(pooling_model.seen) == 2 * len(distinct)  # x2: the flipped copies
    # every record equals evaluate() on literally computed features (inner product of the 48-d vectors)
    for record in report.records[::5]:
        setting = {"mode": record.setting.split()[1].split("-")[0], "shot": record.setting.split()[2].split("-")[0]}
        split = dataset.test(**setting, trial=record.trial)
        qf = _literal_features(pooling_model, split.query, "infrared", transform)
        gf = _literal_features(pooling_model, split.gallery, "visible", transform)
        qf, gf = torch.nn.functional.normalize(qf, dim=1), torch.nn.functional.normalize(gf, dim=1)
        res = evaluate(
            -(qf @ gf.T),
            [s.pid for s in split.query],
            [s.pid for s in split.gallery],
            [s.cam for s in split.query],
            [s.cam for s in split.gallery],
            protocol="sysu",
        )
        assert record.mAP == pytest.approx(res.mAP, abs=1e-6)
        assert record.rank1 == pytest.approx(res.rank1, abs=1e-6)
    summary = report.summary()["sysu all-search single-shot"]
    maps = [r.mAP for r in report.records if r.setting == "sysu all-search single-shot"]
    assert summary["mAP"]["mean"] == pytest.approx(np.mean(maps))
    assert summary["mAP"]["std"] == pytest.approx(np.std(maps))
    table = report.to_table()
    assert "sysu indoor-search multi-shot" in table and "mINP" in table
    out = tmp_path / "sub" / "eval.json"
    report.to_json(out)
    data = json.loads(out.read_text())
    assert len(data["records"]) == 12 and data["config"]["flip"] is True
    assert [p.name for p in out.parent.iterdir()] == ["eval.json"]  # no temporary file left


def test_rerank_option_and_training_callback(tiny_sysu, pooling_model):
    """rerank=True scores evaluate(distance(q, g, rerank=True)) on literally computed features, and differs from
    rerank=False."""
    dataset, transform = SYSUMM01(tiny_sysu), build_test_transform(32, 16)
    options = {"settings": [{"mode": "all", "shot": "single"}], "transform": transform, "k1": 4, "k2": 2}
    reranked = VIReIDEvaluator(dataset, rerank=True, lambda_value=0.0, **options).run(pooling_model, trials=2)
    plain = VIReIDEvaluator(dataset, rerank=False, **options).run(pooling_model, trials=2)
    assert [r.trial for r in reranked.records] == [0, 1]
    for record in reranked.records:
        split = dataset.test(mode="all", shot="single", trial=record.trial)
        qf = _literal_features(pooling_model, split.query, "infrared", transform)
        gf = _literal_features(pooling_model, split.gallery, "visible", transform)
        dist = distance(qf, gf, metric="cosine", rerank=True, k1=4, k2=2, lambda_value=0.0)
        res = evaluate(dist, *([s.pid for s in x] for x in (split.query, split.gallery)),
                       *([s.cam for s in x] for x in (split.query, split.gallery)), protocol="sysu")  # fmt: skip
        assert (record.mAP, record.rank1, record.mINP) == pytest.approx((res.mAP, res.rank1, res.mINP), abs=1e-6)
    assert [(r.mAP, r.mINP) for r in reranked.records] != [(r.mAP, r.mINP) for r in plain.records]
    evaluator = VIReIDEvaluator(dataset, rerank=True, **options)
    scores = evaluator.training_callback()(pooling_model, 1)
    assert set(scores) == {"rank1", "rank5", "rank10", "rank20", "mAP", "mINP"}
    assert scores["mAP"] == pytest.approx(evaluator.run(pooling_model, trials=1).records[0].mAP)


def test_evaluator_errors(tiny_sysu):
    dataset = SYSUMM01(tiny_sysu)
    with pytest.raises(ValueError, match="argument metric"):
        VIReIDEvaluator(dataset, metric="hamming")
    with pytest.raises(ValueError, match="argument flip_mode"):
        VIReIDEvaluator(dataset, flip_mode="max")


@pytest.mark.parametrize("name", ["regdb", "llcm"])
def test_other_datasets_run_all_settings(name, tmp_path, pooling_model):
    from csdn.data import LLCM, RegDB
    from csdn.data.synthetic import make_llcm, make_regdb

    if name == "regdb":
        dataset = RegDB(make_regdb(tmp_path, num_ids=6, images_per_id=2, image_size=(32, 16), num_trials=2))
        trials = (1, 2)  # RegDB trials are its split files; one reader evaluates any of them
    else:
        dataset = LLCM(make_llcm(tmp_path, num_train_ids=2, num_test_ids=4, images_per_cam=1, image_size=(32, 16)))
        trials = (0, 1)
    report = VIReIDEvaluator(dataset, trials=trials, transform=build_test_transform(32, 16)).run(pooling_model)
    assert len(report.settings()) == 2 and len(report.records) == 4
    assert {r.protocol for r in report.records} == {name}
    assert {r.trial for r in report.records} == set(trials)
