"""Shared fixtures of the engine tests: a tiny synthetic SYSU-MM01 tree and a tiny, fast training config."""

import pytest
import torch

from csdn.data import SYSUMM01
from csdn.data.synthetic import make_sysu
from csdn.engine import apply_overrides, get_preset

TINY_OVERRIDES = [
    "data.height=32",
    "data.width=16",
    "data.pad=2",
    "data.num_workers=0",
    "stage1.epochs=2",
    "stage1.batch_size=8",
    "stage2.epochs=2",
    "stage2.batch_size=16",
    "stage3.epochs=3",
    "stage3.num_ids=4",
    "stage3.num_pos=2",
    "stage3.warmup_epochs=1",
    "stage3.milestones=2",
    "runtime.progress=false",
    "runtime.deterministic=true",
    "runtime.log_lines=0",  # metrics.jsonl of these tiny runs: epoch records only (log_every is longer than an epoch)
]


@pytest.fixture(scope="session")
def sysu_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("sysu")
    make_sysu(root, num_train_ids=6, num_val_ids=2, num_test_ids=4, images_per_cam=2, image_size=(32, 16), seed=3)
    return root


@pytest.fixture(scope="session")
def sysu_train(sysu_root):
    return SYSUMM01(sysu_root).train


@pytest.fixture
def tiny_cfg(tmp_path):
    def make(*extra, output="run"):
        return apply_overrides(get_preset("demo"), [*TINY_OVERRIDES, f"runtime.output_dir={tmp_path / output}", *extra])

    return make


@pytest.fixture(autouse=True)
def one_torch_thread():
    # engine tests train tiny models: one thread is as fast and immune to oversubscribed cores (spinning OpenMP)
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
