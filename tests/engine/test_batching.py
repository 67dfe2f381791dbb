"""Stage-1/2 batch orders when the data is smaller than a batch: no empty batch, a clear refusal at the stage."""

import pytest
import torch

from csdn.engine.batching import paired_batches, shuffled_batches


@pytest.mark.parametrize(("items", "batch_size", "sizes"), [(3, 4, []), (0, 4, []), (4, 4, [4]), (9, 4, [4, 4])])
def test_only_full_batches_and_never_an_empty_one(items, batch_size, sizes):
    # the official code runs num_image // batch iterations: the rest (or everything, if fewer) is left out
    order = shuffled_batches(items, batch_size, torch.Generator().manual_seed(0))
    assert [b.numel() for b in order] == sizes
    labels = torch.arange(items) % 2
    pairs = paired_batches(labels, labels.flip(0), batch_size, torch.Generator().manual_seed(0)) if items else []
    assert [(v.numel(), i.numel()) for v, i in pairs] == [(n, n) for n in sizes]


def test_fewer_pairs_than_a_batch_give_no_batch():
    vis, ir = torch.tensor([0, 1, 1]), torch.tensor([1, 0])
    assert paired_batches(vis, ir, 4, torch.Generator().manual_seed(0)) == []


@pytest.mark.parametrize("batch_size", [0, -2, 2.0, True])
def test_a_batch_size_below_one_is_refused(batch_size):
    with pytest.raises(ValueError, match=rf"batch_size={batch_size!r} is invalid: expected a whole number >= 1"):
        shuffled_batches(5, batch_size, torch.Generator())
    with pytest.raises(ValueError, match="batch_size="):
        paired_batches(torch.tensor([0, 1]), torch.tensor([1, 0]), batch_size, torch.Generator())


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (  # 62 visible and 28 infrared images: one pair per visible image
            ["stage1.batch_size=200"],
            r"stage1.batch_size=200 is larger than the stage-1 feature bank \(62 pairs, one per image of the larger "
            r"modality\), so an epoch has no batch; set stage1.batch_size to at most 62 or train on more images",
        ),
        (
            ["stage1.batch_size=200", "quirks.sampled_feature_bank=true"],
            r"stage1.batch_size=200 is larger than the stage-1 feature bank \(64 identity-sampled visible/infrared ",
        ),
        (  # stage 1 trains; stage 2 stops at its start
            ["stage2.batch_size=100"],
            r"stage2.batch_size=100 is larger than the stage-2 feature bank \(90 visible and infrared features\)",
        ),
    ],
)
def test_a_stage_with_no_batch_fails_before_training_naming_the_key(tiny_cfg, sysu_train, overrides, message):
    from csdn.engine import Trainer, build_csdn

    cfg = tiny_cfg(*overrides)
    trainer = Trainer(cfg, build_csdn(cfg, sysu_train.num_classes), sysu_train)
    with pytest.raises(ValueError, match=message):
        trainer.fit()
    if overrides[0].startswith("stage1"):  # failed before its first epoch: a corrected rerun may use the folder
        assert not trainer.output_dir.exists()


def test_csdn_train_on_a_six_identity_csv_stops_at_stage_1_with_one_line(capsys, tmp_path):
    # the reproduction: `csdn data synth csv DIR --ids 6`, then `csdn train --dataset csv --preset demo`
    from csdn.cli import main

    data, out = tmp_path / "data", tmp_path / "run"
    assert main(["-q", "data", "synth", "csv", str(data), "--ids", "6"]) == 0
    capsys.readouterr()
    code = main(["-q", "train", "--dataset", "csv", "--root", str(data), "--preset", "demo", "--no-eval",
                 "--set", f"runtime.output_dir={out}", "--set", "runtime.progress=false"])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1, err
    # the preflight (csdn.engine.preflight) reports it before stage 1, with the stage's own batching functions
    assert err.startswith("csdn: error: checked before training, this run cannot work: ")
    assert "stage1.batch_size=32, but an epoch holds only 16 identity-aligned pairs (no full batch)" in err
    assert not out.exists()  # a corrected rerun can use the same folder


def test_a_stage_of_zero_epochs_draws_no_batch_and_is_not_refused(tiny_cfg, sysu_train):
    from csdn.engine import Trainer, build_csdn

    cfg = tiny_cfg("stage1.epochs=0", "stage1.batch_size=200", "stage3.epochs=1")
    final = Trainer(cfg, build_csdn(cfg, sysu_train.num_classes), sysu_train).fit()
    assert final.is_file()
