"""``csdn train --print-config`` and the schedule rule on the command line."""

import json
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
