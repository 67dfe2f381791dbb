"""The checks before stage 1 (csdn.engine.preflight) and the resume rule for stages that have not started."""

import json
import os

import pytest

from csdn.cli.main import main
from csdn.data import CSVDataset
from csdn.data.synthetic import make_csv
from csdn.engine import apply_overrides, build_csdn, get_preset
from csdn.engine.preflight import PreflightError, find_problems, preflight
from csdn.engine.trainer import Trainer


@pytest.fixture(scope="module")
def small_csv(tmp_path_factory):
    """4 training identities x 2 cameras x 1 image per modality: 8 visible + 8 infrared training images."""
    root = tmp_path_factory.mktemp("csv4")
    make_csv(root, num_train_ids=4, num_test_ids=2, images_per_cam=1, image_size=(32, 16), seed=1)
    return CSVDataset(root)


def demo(*overrides):
    return apply_overrides(get_preset("demo"), list(overrides))


def keys(cfg, dataset):
    return [p.key for p in find_problems(cfg, dataset.train, len(dataset.trials))]


def test_each_problem_names_its_key_counts_and_fix(small_csv):
    with pytest.raises(PreflightError) as info:
        preflight(demo(), small_csv)
    message = str(info.value)
    assert "\n" not in message
    assert "stage3.num_ids=8 identities per batch, but only 4 training identities have images in both" in message
    assert "stage1.batch_size=32, but an epoch holds only 8 identity-aligned pairs" in message
    assert "stage2.batch_size=64, but an epoch holds only 16 features of both modalities" in message
    assert message.endswith(
        "fix: --set stage3.num_ids=4 --set stage1.batch_size=8 --set stage2.batch_size=16 (nothing was written)"
    )
    fixed = demo("stage3.num_ids=4", "stage1.batch_size=8", "stage2.batch_size=16")
    assert keys(fixed, small_csv) == []
    preflight(fixed, small_csv)  # no exception


def test_only_the_stages_the_configuration_trains_are_checked(small_csv):
    assert keys(demo("model.variant=baseline"), small_csv) == ["stage3.num_ids"]  # no stages 1-2
    assert keys(demo("stage3.num_ids=4", "stage1.epochs=0", "stage2.epochs=0"), small_csv) == []
    # the official sampled bank: stages 1-2 draw one identity-sampler epoch, (8 // 16 + 1) * 16 = 16 pairs
    official = ["stage3.num_ids=4", "stage3.num_pos=4", "quirks.sampled_feature_bank=true"]
    assert keys(demo(*official, "stage1.batch_size=16", "stage2.batch_size=32"), small_csv) == []
    assert keys(demo(*official, "stage1.batch_size=17", "stage2.batch_size=33"), small_csv) == [
        "stage1.batch_size",
        "stage2.batch_size",
    ]


def test_held_out_identities_and_trials_are_counted(small_csv):
    base = ["stage3.num_ids=3", "stage1.batch_size=4", "stage2.batch_size=8"]
    assert keys(demo(*base), small_csv) == []
    assert keys(demo(*base, "data.val_ids=2"), small_csv) == ["stage3.num_ids"]  # 2 training ids left
    assert keys(demo(*base, "data.val_ids=3"), small_csv) == ["data.val_ids"]
    assert keys(demo(*base, "runtime.eval_every=1", "runtime.eval_trials=2"), small_csv) == ["runtime.eval_trials"]
    assert keys(demo(*base, "runtime.eval_every=0", "runtime.eval_trials=2"), small_csv) == []


TINY = ["data.height=32", "data.width=16", "data.pad=2", "stage1.epochs=1", "stage2.epochs=1", "stage3.epochs=1",
        "stage3.warmup_epochs=0", "stage3.milestones=1", "stage3.num_pos=2", "runtime.progress=false"]  # fmt: skip


def test_cli_small_csv_fails_before_stage1_and_the_corrected_rerun_uses_the_same_folder(tmp_path, capsys):
    data, out = tmp_path / "d6", tmp_path / "run"
    assert main(["-q", "data", "synth", "csv", str(data), "--ids", "6"]) == 0
    train = ["-q", "train", "--dataset", "csv", "--root", str(data), "--preset", "demo", "--no-eval"]
    capsys.readouterr()
    assert main([*train, "--set", f"runtime.output_dir={out}"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "stage3.num_ids=8" in err and "--set stage3.num_ids=4" in err
    assert not out.exists()  # nothing was written: the corrected command starts from scratch
    fix = err.partition("fix: ")[2].removesuffix(" (nothing was written)").split()
    sets = [x for item in [*TINY, f"runtime.output_dir={out}"] for x in ("--set", item)]
    assert main([*train, *fix, *sets]) == 0
    assert (out / "checkpoints" / "final.pt").is_file()


def test_a_stage_that_fails_at_its_start_resumes_with_new_settings(tiny_cfg, sysu_train):
    cfg = tiny_cfg("stage3.epochs=1")

    def fail_after_stage2(trainer, stage, epoch):
        if stage == 2 and epoch == cfg.stage2.epochs - 1:
            raise RuntimeError("stage 3 cannot start")  # after stage 2's last checkpoint

    with pytest.raises(RuntimeError):
        Trainer(cfg, build_csdn(cfg, sysu_train.num_classes), sysu_train, callbacks=[fail_after_stage2]).fit()
    out = cfg.runtime.output_dir
    changed = tiny_cfg("stage3.epochs=1", "stage3.num_ids=3")
    with pytest.raises(ValueError, match="pass resume=True \\(--resume\\) to continue it with these settings"):
        Trainer(changed, build_csdn(changed, sysu_train.num_classes), sysu_train).fit()
    Trainer(changed, build_csdn(changed, sysu_train.num_classes), sysu_train).fit(resume=True)
    saved = (f"{out}/config.yaml", f"{out}/config.json")
    text = next(open(p).read() for p in saved if os.path.isfile(p))
    assert "num_ids: 3" in text or '"num_ids": 3' in text  # the run folder says what stage 3 ran with
    # a setting of a stage that already ran: both routes named, neither works in place
    other = tiny_cfg("stage3.epochs=1", "stage1.lr=0.5")
    with pytest.raises(ValueError, match="--resume would be refused too; to start over, choose another"):
        Trainer(other, build_csdn(other, sysu_train.num_classes), sysu_train).fit()
    with pytest.raises(ValueError, match=r"different configuration \(stage1.lr.*start over"):
        Trainer(other, build_csdn(other, sysu_train.num_classes), sysu_train).fit(resume=True)


def test_a_rerun_after_a_failure_before_the_first_checkpoint_starts_clean(tiny_cfg, sysu_train):
    cfg = tiny_cfg("stage1.epochs=3", "runtime.checkpoint_every=5")

    def fail_in_epoch2(trainer, stage, epoch):
        if epoch == 1:
            raise RuntimeError("killed before the first checkpoint")

    with pytest.raises(RuntimeError):
        Trainer(cfg, build_csdn(cfg, sysu_train.num_classes), sysu_train, callbacks=[fail_in_epoch2]).fit()
    metrics = f"{cfg.runtime.output_dir}/metrics.jsonl"
    assert len(open(metrics).read().splitlines()) == 2  # two epochs ran, no checkpoint
    fixed = tiny_cfg("stage1.epochs=1", "stage2.epochs=1", "stage3.epochs=1")
    Trainer(fixed, build_csdn(fixed, sysu_train.num_classes), sysu_train).fit()
    events = [json.loads(line)["event"] for line in open(metrics).read().splitlines()]
    assert events == ["stage1/epoch", "stage2/epoch", "stage3/epoch"]  # nothing of the failed attempt


def test_ablate_checks_every_variant_before_training(tmp_path, capsys):
    data = tmp_path / "d6"
    assert main(["-q", "data", "synth", "csv", str(data), "--ids", "6"]) == 0
    argv = ["-q", "ablate", "--dataset", "csv", "--root", str(data), "--preset", "demo", "--out", str(tmp_path / "s")]
    capsys.readouterr()
    assert main([*argv, "--no-report", "--variants", "baseline"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "run baseline: checked before training" in err
    assert "stage3.num_ids=8" in err and "stage1.batch_size" not in err  # the baseline has no stages 1-2
    assert not list(tmp_path.glob("s/**/*.pt"))


def test_study_checks_every_run_before_training(tmp_path, capsys):
    data = tmp_path / "d6"
    assert main(["-q", "data", "synth", "csv", str(data), "--ids", "6"]) == 0
    capsys.readouterr()
    argv = ["-q", "study", "--dataset", "csv", "--root", str(data), "--preset", "demo", "--out", str(tmp_path / "s")]
    assert main([*argv, "--seeds", "2"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "checked before training" in err and "stage3.num_ids=8" in err, err
    assert not list(tmp_path.glob("s/**/*.pt")) and not list(tmp_path.glob("s/**/run.lock"))
