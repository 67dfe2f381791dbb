"""A tiny synthetic RegDB (two splits used) and the smallest training that still runs every part of a study."""

import pytest

from csdn.data.synthetic import make_regdb

#: Image-only variant (no stages 1-2), one stage-3 epoch on 32x16 images: a run takes seconds.
TINY = ["data.height=32", "data.width=16", "data.pad=2", "data.num_workers=0", "stage3.epochs=1", "stage3.num_ids=4",
        "stage3.num_pos=2", "stage3.milestones=", "runtime.progress=false"]  # fmt: skip


def study_args(root, out, *extra):
    """``csdn study`` on the synthetic RegDB: splits 1-2, two seeds, the baseline variant (4 runs)."""
    sets = [x for item in TINY for x in ("--set", item)]
    return ["study", "--protocol", "regdb", "--preset", "demo", "--root", str(root), "--out", str(out),
            "--trials", "1-2", "--seeds", "2", "--variants", "baseline", *sets, *map(str, extra)]  # fmt: skip


@pytest.fixture(scope="session")
def regdb_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("study") / "regdb"
    make_regdb(root, num_ids=16, images_per_id=2, image_size=(32, 16), seed=0, num_trials=2)
    return root
