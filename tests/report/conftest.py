"""A tiny synthetic SYSU-MM01 tree, a tiny checkpoint trained on it, and the report `csdn eval --report` makes."""

import pytest

from csdn.cli import main
from csdn.data.synthetic import make_sysu

TINY = [
    "data.height=32", "data.width=16", "data.pad=2", "data.num_workers=0", "stage1.epochs=1", "stage1.batch_size=8",
    "stage2.epochs=1", "stage2.batch_size=16", "stage3.epochs=1", "stage3.num_ids=4", "stage3.num_pos=2",
    "stage3.milestones=", "runtime.progress=false",
]  # fmt: skip


def as_sets(items):
    return [x for item in items for x in ("--set", item)]


@pytest.fixture(scope="session")
def sysu_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("report") / "sysu"
    make_sysu(root, num_train_ids=6, num_val_ids=2, num_test_ids=4, images_per_cam=2, image_size=(32, 16), seed=5)
    return root


@pytest.fixture(scope="session")
def trained(sysu_root, tmp_path_factory):
    out = tmp_path_factory.mktemp("report") / "run"
    assert main(["-q", "train", "--preset", "demo", "--root", str(sysu_root),
                 *as_sets([*TINY, f"runtime.output_dir={out}"]), "--no-eval"]) == 0  # fmt: skip
    return out / "checkpoints" / "final.pt"


@pytest.fixture(scope="session")
def eval_report(sysu_root, trained, tmp_path_factory):
    """``csdn eval --report DIR`` on the tiny checkpoint: returns the report folder."""
    pytest.importorskip("matplotlib")
    out = tmp_path_factory.mktemp("report") / "eval report"  # a space: links and file names must cope
    code = main(["-q", "eval", "--root", str(sysu_root), "--checkpoint", str(trained), "--trials", "2",
                 "--report", str(out), "--json", str(out.parent / "eval.json")])  # fmt: skip
    assert code == 0
    return out
