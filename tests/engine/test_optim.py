import math

import pytest
import torch
from torch import nn

from csdn.engine.config import ImageStageConfig, PromptStageConfig
from csdn.engine.optim import build_image_stage_optimizer, build_prompt_stage_optimizer, param_groups


def official_cosine_lr(t, base, epochs=60, warmup=5, init=1e-5, lr_min=1e-6):
    # literal transcription of the official (timm) CosineLRScheduler._get_lr, one cycle, warmup_prefix=False
    if t < warmup:
        return init + t * (base - init) / warmup
    return lr_min + 0.5 * (base - lr_min) * (1 + math.cos(math.pi * t / epochs))


def lrs_per_epoch(optimizer, scheduler, epochs):
    seen = []
    for _ in range(epochs):
        seen.append([g["lr"] for g in optimizer.param_groups])
        optimizer.step()
        scheduler.step()
    return seen


def test_prompt_stage_schedule_matches_official():
    param = nn.Parameter(torch.zeros(3))
    optimizer, scheduler = build_prompt_stage_optimizer({"prompts": [param]}, PromptStageConfig())
    seen = [lrs[0] for lrs in lrs_per_epoch(optimizer, scheduler, 60)]
    # hand-computed anchors
    assert seen[0] == pytest.approx(1e-5)
    assert seen[1] == pytest.approx(6.8e-5)
    assert seen[30] == pytest.approx(1.505e-4)
    assert seen[5] == pytest.approx(1e-6 + 0.5 * 2.99e-4 * (1 + 0.9659258262890683))
    for t, lr in enumerate(seen):
        assert lr == pytest.approx(official_cosine_lr(t, 3e-4), rel=1e-9)
    assert isinstance(optimizer, torch.optim.Adam) and optimizer.param_groups[0]["weight_decay"] == 1e-4


def test_image_stage_schedule_and_fast_groups():
    backbone, classifier, gem_p = nn.Linear(4, 4), nn.Linear(4, 3, bias=False), nn.Parameter(torch.tensor(3.0))
    frozen = nn.Parameter(torch.zeros(2), requires_grad=False)
    groups = {"backbone": [*backbone.parameters(), frozen], "heads": [classifier.weight, gem_p]}
    optimizer, scheduler = build_image_stage_optimizer(groups, ImageStageConfig())
    assert [g["name"] for g in optimizer.param_groups] == ["backbone", "heads"]
    assert [len(g["params"]) for g in optimizer.param_groups] == [2, 2]
    seen = lrs_per_epoch(optimizer, scheduler, 120)
    expected = {0: 3e-6, 5: 3e-4 * 0.505, 9: 3e-4 * (0.01 * 0.1 + 0.9), 10: 3e-4, 39: 3e-4, 40: 3e-5, 69: 3e-5}
    expected |= {70: 3e-6, 119: 3e-6}
    for epoch, lr in expected.items():
        assert seen[epoch][0] == pytest.approx(lr, rel=1e-9)
        assert seen[epoch][1] == pytest.approx(2 * lr, rel=1e-9)
    assert optimizer.param_groups[1]["weight_decay"] == 5e-4


def test_scheduler_state_is_plain_and_resumable():
    param = nn.Parameter(torch.zeros(1))
    optimizer, scheduler = build_image_stage_optimizer({"backbone": [param]}, ImageStageConfig())
    for _ in range(12):
        optimizer.step()
        scheduler.step()
    state = scheduler.state_dict()
    optimizer2, scheduler2 = build_image_stage_optimizer(
        {"backbone": [nn.Parameter(torch.zeros(1))]}, ImageStageConfig()
    )
    scheduler2.load_state_dict(state)
    optimizer2.load_state_dict(optimizer.state_dict())
    assert scheduler2.last_epoch == 12 and optimizer2.param_groups[0]["lr"] == pytest.approx(3e-4)


def test_no_trainable_parameters_is_an_error():
    frozen = nn.Parameter(torch.zeros(1), requires_grad=False)
    with pytest.raises(ValueError, match="no trainable parameters"):
        param_groups({"w": [frozen]}, 1e-3, 0.0)
    with pytest.raises(ValueError, match="unknown groups"):
        param_groups({"w": [nn.Parameter(torch.zeros(1))]}, 1e-3, 0.0, {"heads": 2.0})
