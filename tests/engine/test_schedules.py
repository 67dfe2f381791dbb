"""Changing a stage's epochs under its warm-up or milestones is scaled (logged), refused, or warned about."""

import argparse
import logging

import pytest
import torch

from csdn.cli.runs import resolve_train_config
from csdn.engine import apply_overrides, build_csdn, get_preset
from csdn.engine.optim import build_image_stage_optimizer
from csdn.engine.schedules import schedule_problems
from csdn.engine.trainer import Trainer


def scaled_lines(caplog):
    return [r.getMessage() for r in caplog.records if "scaled" in r.getMessage()]


def test_shorter_stage3_scales_warmup_and_milestones_with_one_line(caplog):
    caplog.set_level(logging.INFO, logger="csdn")
    cfg = apply_overrides(get_preset("sysu"), ["stage3.epochs=3"])
    # 120 -> 3 epochs: warm-up 10 * 3/120 = 0.25 -> 0; milestones 40 * 3/120 = 1, 70 * 3/120 = 1.75 -> 2
    assert (cfg.stage3.warmup_epochs, cfg.stage3.milestones) == (0, (1, 2))
    assert scaled_lines(caplog) == [
        "stage3.epochs 120 -> 3: scaled stage3.warmup_epochs 10 -> 0, stage3.milestones (40, 70) -> (1, 2)"
    ]
    # and the learning rate now decays inside the 3 epochs: x1, x0.1, x0.01 (no warm-up left)
    optimizer, scheduler = build_image_stage_optimizer({"trunk": [torch.nn.Parameter(torch.zeros(1))]}, cfg.stage3)
    lrs = []
    for _ in range(3):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert lrs == pytest.approx([3e-4, 3e-5, 3e-6])


def test_half_length_and_prompt_stages(caplog):
    caplog.set_level(logging.INFO, logger="csdn")
    cfg = apply_overrides(get_preset("sysu"), ["stage3.epochs=60", "stage1.epochs=4"])
    assert (cfg.stage3.warmup_epochs, cfg.stage3.milestones) == (5, (20, 35))
    assert cfg.stage1.warmup_epochs == 0 and cfg.stage2.warmup_epochs == 5  # 5 * 4/60 = 0.33 -> 0; stage 2 as is
    assert len(scaled_lines(caplog)) == 2


@pytest.mark.parametrize("overrides", [["stage3.epochs=80"], ["stage3.epochs=200"], ["stage1.epochs=30"]])
def test_schedules_that_still_fit_are_kept(overrides, caplog):
    caplog.set_level(logging.INFO, logger="csdn")
    cfg, preset = apply_overrides(get_preset("sysu"), overrides), get_preset("sysu")
    assert (cfg.stage3.warmup_epochs, cfg.stage3.milestones) == (preset.stage3.warmup_epochs, (40, 70))
    assert cfg.stage1.warmup_epochs == 5 and scaled_lines(caplog) == []


def test_explicit_schedule_keys_are_respected():
    cfg = apply_overrides(get_preset("sysu"), ["stage3.epochs=3", "stage3.milestones=2"])
    assert cfg.stage3.milestones == (2,) and cfg.stage3.warmup_epochs == 0  # the unset warm-up is still scaled
    cfg = apply_overrides(get_preset("sysu"), ["stage3.milestones=2", "stage3.epochs=3", "stage3.warmup_epochs=1"])
    assert (cfg.stage3.warmup_epochs, cfg.stage3.milestones) == (1, (2,))


@pytest.mark.parametrize("epochs", [1, 2])
def test_unscalable_schedules_are_refused_naming_the_keys(epochs):
    # 2 epochs: milestones (40, 70) -> (1, 1) merge; 1 epoch: no epoch is left for a decay
    with pytest.raises(ValueError, match=rf"stage3.epochs={epochs} is too short .* set stage3.warmup_epochs and "):
        apply_overrides(get_preset("sysu"), [f"stage3.epochs={epochs}"])
    cfg = apply_overrides(get_preset("sysu"), [f"stage3.epochs={epochs}", "stage3.milestones="])
    assert cfg.stage3.milestones == () and cfg.stage3.warmup_epochs == 0


def test_explicit_misfits_are_warned_about_when_training_starts(tiny_cfg, sysu_train, caplog):
    cfg = tiny_cfg("stage3.epochs=1")  # the tiny config sets stage3.milestones=2 and stage3.warmup_epochs=1
    assert cfg.stage3.milestones == (2,) and cfg.stage3.warmup_epochs == 1
    assert schedule_problems(cfg) == [
        "stage3.warmup_epochs=1 does not fit stage3.epochs=1: the warm-up never ends "
        "(set stage3.warmup_epochs below 1)",
        "stage3.milestones=(2,) does not fit stage3.epochs=1: the learning rate never decays "
        "(set stage3.milestones below 1)",
    ]
    caplog.set_level(logging.WARNING, logger="csdn")
    Trainer(cfg, build_csdn(cfg, sysu_train.num_classes), sysu_train)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == schedule_problems(cfg)


def test_cli_config_file_and_set_scale_against_the_preset(tmp_path):
    def resolve(overrides, config=None):
        args = argparse.Namespace(
            preset="sysu", dataset=None, root="/data", config=config, ablation=None, overrides=overrides
        )
        return resolve_train_config(args)

    cfg = resolve(["stage3.epochs=3"])
    assert (cfg.stage3.warmup_epochs, cfg.stage3.milestones) == (0, (1, 2))
    (tmp_path / "short.yaml").write_text("stage3:\n  epochs: 6\n")
    cfg = resolve([], str(tmp_path / "short.yaml"))  # 40 * 6/120 = 2, 70 * 6/120 = 3.5 -> 4, 10 * 6/120 = 0.5 -> 1
    assert (cfg.stage3.warmup_epochs, cfg.stage3.milestones) == (1, (2, 4))
    (tmp_path / "given.yaml").write_text("stage3:\n  milestones: [3]\n")
    cfg = resolve(["stage3.epochs=6"], str(tmp_path / "given.yaml"))  # the file's milestones are the user's
    assert (cfg.stage3.warmup_epochs, cfg.stage3.milestones) == (1, (3,))
    with pytest.raises(ValueError, match="stage3.epochs=1 is too short"):
        resolve(["stage3.epochs=1"])
