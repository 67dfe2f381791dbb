"""``csdn data synth``, ``--dataset csv`` and user-registered readers on the command line."""

import argparse
import json
import logging

import pytest

from csdn.cli import main
from csdn.cli.runs import resolve_train_config
from csdn.cli.synth import synth_sizes
from csdn.data import CSVDataset, register_dataset
from csdn.data.synthetic import make_csv

TINY = [
    "data.height=32", "data.width=16", "data.pad=2", "data.num_workers=0", "stage1.epochs=1", "stage1.batch_size=8",
    "stage2.epochs=1", "stage2.batch_size=16", "stage3.epochs=1", "stage3.num_ids=4", "stage3.num_pos=2",
    "stage3.milestones=", "runtime.progress=false",
]  # fmt: skip


def run_cli(capsys, *argv):
    code = main(list(map(str, argv)))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.parametrize(
    ("layout", "ids", "train_ids", "queries_of_ids"),
    [("sysu", 14, 14 - 4, 4), ("llcm", 9, 6, 3), ("csv", 9, 6, 3), ("regdb", 6, 3, 3)],
)
def test_synth_writes_the_real_layout(capsys, tmp_path, layout, ids, train_ids, queries_of_ids):
    out = tmp_path / layout
    code, text, err = run_cli(capsys, "data", "synth", layout, out, "--ids", ids, "--seed", 3)
    assert code == 0, err
    code, stats, _ = run_cli(capsys, "data", "stats", "--dataset", layout, out)
    assert code == 0 and f"train: {train_ids} ids" in stats  # read back by the real reader
    first_setting = stats.splitlines()[4].split()
    assert int(first_setting[-4]) == queries_of_ids  # query ids of the first setting


def test_synth_is_seeded_and_refuses_a_non_empty_folder(capsys, tmp_path):
    for name in ("a", "b"):
        assert run_cli(capsys, "data", "synth", "csv", tmp_path / name, "--ids", 4, "--seed", 1)[0] == 0
    assert (tmp_path / "a" / "train.csv").read_text() == (tmp_path / "b" / "train.csv").read_text()
    assert run_cli(capsys, "data", "synth", "csv", tmp_path / "d", "--ids", 4, "--seed", 2)[0] == 0
    images = {name: [f.read_bytes() for f in sorted((tmp_path / name).rglob("*.jpg"))] for name in ("a", "b", "d")}
    assert images["a"] and images["a"] == images["b"] and images["a"] != images["d"]  # --seed reaches the images
    before = (tmp_path / "a" / "train.csv").read_text()
    code, _, err = run_cli(capsys, "data", "synth", "csv", tmp_path / "a", "--ids", 6)
    assert code == 2 and "is not empty" in err and "--force" in err
    assert (tmp_path / "a" / "train.csv").read_text() == before
    assert run_cli(capsys, "data", "synth", "csv", tmp_path / "a", "--ids", 6, "--force")[0] == 0
    assert (tmp_path / "a" / "train.csv").read_text() != before
    code, _, err = run_cli(capsys, "data", "synth", "sysu", tmp_path / "c", "--ids", 3)
    assert code == 2 and "--ids 3 is too small" in err


def test_synth_sizes_add_up():
    for ids in range(4, 30):
        sysu = synth_sizes("sysu", ids)
        assert sum(sysu.values()) == ids and min(sysu.values()) >= 1 and sysu["num_test_ids"] >= 2
        llcm = synth_sizes("llcm", ids)
        assert sum(llcm.values()) == ids and llcm["num_test_ids"] >= 2
    assert synth_sizes("regdb", 7) == {"num_ids": 7} and synth_sizes("sysu", None) == {}


def test_data_stats_of_a_csv_dataset(capsys, tmp_path):
    root = make_csv(tmp_path / "csv", num_train_ids=3, num_test_ids=2, images_per_cam=1)
    code, out, err = run_cli(capsys, "data", "stats", "--dataset", "csv", root)
    assert code == 0, err
    assert out.startswith("CSV at") and "train: 3 ids, 6 visible + 6 infrared images" in out


def test_unknown_preset_less_dataset_falls_back_to_sysu_hyper_parameters(caplog):
    args = argparse.Namespace(preset=None, dataset="csv", root="/d", config=None, ablation=None, overrides=[])
    with caplog.at_level(logging.INFO, logger="csdn.cli"):
        cfg = resolve_train_config(args)
    assert cfg.data.dataset == "csv" and cfg.runtime.output_dir == "runs/csv"
    assert (
        cfg.stage3.epochs == resolve_train_config(argparse.Namespace(**{**vars(args), "dataset": "sysu"})).stage3.epochs
    )
    assert "using the sysu hyper-parameters" in caplog.text
    args.overrides = ["runtime.output_dir=elsewhere"]
    assert resolve_train_config(args).runtime.output_dir == "elsewhere"


def test_train_and_eval_on_a_csv_dataset_and_a_registered_reader(capsys, tmp_path, restore_registry):
    root = make_csv(tmp_path / "csv", num_train_ids=4, num_test_ids=3, images_per_cam=2, image_size=(32, 16))
    sets = [x for item in [*TINY, f"runtime.output_dir={tmp_path / 'run'}"] for x in ("--set", item)]
    code, _, err = run_cli(capsys, "-q", "train", "--dataset", "csv", "--preset", "demo", "--root", root, *sets,
                           "--no-eval")  # fmt: skip
    assert code == 0, err
    final = tmp_path / "run" / "checkpoints" / "final.pt"
    code, out, err = run_cli(capsys, "-q", "eval", "--root", root, "--checkpoint", final, "--json", tmp_path / "e.json")
    assert code == 0, err
    assert "csv infrared->visible" in out  # the checkpoint remembers the dataset
    summary = json.loads((tmp_path / "e.json").read_text())["summary"]
    assert list(summary) == ["csv infrared->visible"]

    opened = []

    def my_reader(path, **options):
        opened.append(str(path))
        return CSVDataset(path, **options)

    register_dataset("my-lab", my_reader)
    code, out, err = run_cli(capsys, "-q", "eval", "--dataset", "my-lab", "--root", root, "--checkpoint", final,
                             "--json", tmp_path / "mine.json")  # fmt: skip
    assert code == 0, err
    assert opened == [str(root)]
    assert json.loads((tmp_path / "mine.json").read_text())["summary"] == summary
    code, out, _ = run_cli(capsys, "data", "stats", "--dataset", "MY-LAB", root)
    assert code == 0 and out.startswith("CSV at") and len(opened) == 2
