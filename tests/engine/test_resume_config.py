"""Resuming keeps what decides the run's random draws: runtime.seed and runtime.deterministic; the rest may change."""

import pytest

from csdn.engine import Trainer, build_csdn, load_checkpoint


@pytest.fixture
def finished_run(tiny_cfg, sysu_train):
    """A run of one stage-3 epoch whose checkpoint is complete (resuming it only writes final.pt again)."""
    cfg = tiny_cfg("stage3.epochs=1")
    Trainer(cfg, build_csdn(cfg, sysu_train.num_classes), sysu_train).fit()
    return cfg


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("runtime.seed=2", r"different configuration \(runtime.seed: 1 -> 2\)"),
        ("runtime.deterministic=false", r"different configuration \(runtime.deterministic: True -> False\)"),
    ],
)
def test_resume_refuses_another_seed_or_determinism(finished_run, tiny_cfg, sysu_train, change, message):
    other = tiny_cfg("stage3.epochs=1", change)
    with pytest.raises(ValueError, match=message):
        Trainer(other, build_csdn(other, sysu_train.num_classes), sysu_train).fit(resume=True)


def test_resume_accepts_other_runtime_changes(finished_run, tiny_cfg, sysu_train):
    other = tiny_cfg("stage3.epochs=1", "runtime.log_every=7", "runtime.grad_clip_norm=5.0", "runtime.keep_last=0")
    final = Trainer(other, build_csdn(other, sysu_train.num_classes), sysu_train).fit(resume=True)
    assert load_checkpoint(final)["stage"] == "final"
