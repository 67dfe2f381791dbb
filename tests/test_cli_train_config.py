"""``csdn train --print-config`` and the schedule rule on the command line."""

import json
import re
import sys

import pytest
import yaml

from csdn.cli import main
from csdn.engine import apply_overrides, config_to_dict, get_preset


def test_print_config_prints_the_resolved_config_and_touches_nothing(capsys, tmp_path, monkeypatch):
    out = tmp_path / "run"
    argv = ["train", "--preset", "demo", "--root", str(tmp_path / "nowhere"), "--set", f"runtime.output_dir={out}",
            "--set", "stage3.lr=0.01", "--print-config"]  # fmt: skip
    assert main(argv) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    expected = apply_overrides(get_preset("demo"), [f"runtime.output_dir={out}", "stage3.lr=0.01",
                                                    f"data.root={tmp_path / 'nowhere'}"])  # fmt: skip
    assert printed == config_to_dict(expected) and printed["stage3"]["lr"] == 0.01
    assert not out.exists() and list(tmp_path.iterdir()) == []
    monkeypatch.setitem(sys.modules, "yaml", None)  # without PyYAML: JSON
    assert main(argv) == 0
    assert json.loads(capsys.readouterr().out) == config_to_dict(expected)


def test_print_config_shows_scaled_schedules_and_refusals_are_one_line(capsys, tmp_path):
    base = ["train", "--root", str(tmp_path), "--print-config"]
    assert main([*base, "--set", "stage3.epochs=3"]) == 0
    captured = capsys.readouterr()
    assert yaml.safe_load(captured.out)["stage3"]["milestones"] == [1, 2]
    assert "stage3.epochs 120 -> 3: scaled" in captured.err
    assert main([*base, "--set", "stage3.epochs=2"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("csdn: error: stage3.epochs=2 is too short") and "stage3.milestones" in err[-1]


@pytest.mark.parametrize("flag", [[], ["--print-config"]])
def test_print_config_flag_is_off_by_default(flag):
    from csdn.cli.main import build_parser

    args = build_parser().parse_args(["train", "--root", "x", *flag])
    assert args.print_config is bool(flag)


def test_csdn_train_logs_iterations_once_to_train_log_and_console(capsys, tmp_path):
    from csdn.data.synthetic import make_sysu

    root = tmp_path / "sysu"
    make_sysu(root, num_train_ids=6, num_val_ids=2, num_test_ids=4, images_per_cam=2, image_size=(32, 16), seed=5)
    out = tmp_path / "run"
    sets = [
        "data.height=32", "data.width=16", "data.pad=2", "data.num_workers=0", "stage1.epochs=1", "stage1.batch_size=8",
        "stage2.epochs=1", "stage2.batch_size=16", "stage3.epochs=1", "stage3.num_ids=4", "stage3.num_pos=2",
        "stage3.milestones=", "runtime.progress=false", "runtime.log_every=3", "runtime.log_lines=0",
        f"runtime.output_dir={out}",
    ]  # fmt: skip
    argv = ["train", "--preset", "demo", "--root", str(root), *[x for s in sets for x in ("--set", s)], "--no-eval"]
    assert main(argv) == 0
    err = capsys.readouterr().err
    log = (out / "train.log").read_text()
    pattern = r"stage (\d) epoch 1/1 iter (\d+)/\d+ .* eta \d+:\d\d:\d\d run ~?\d+:\d\d:\d\d"
    in_log = re.findall(pattern, log)
    assert in_log and all(int(i) % 3 == 0 for _, i in in_log)
    assert len(in_log) == len(set(in_log))  # one file handler: every line once
    assert re.findall(pattern, err) == in_log  # the CLI's console handler, no second one from Trainer.fit
