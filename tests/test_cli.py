"""The csdn command line: user mistakes are one clear line with exit status 2; train -> eval -> extract works."""

import json
import subprocess
import sys

import pytest
import torch

from csdn.cli import main
from csdn.data.synthetic import make_sysu
from csdn.engine import config_to_dict, get_preset, save_checkpoint

TINY = [
    "data.height=32", "data.width=16", "data.pad=2", "data.num_workers=0", "stage1.epochs=1", "stage1.batch_size=8",
    "stage2.epochs=1", "stage2.batch_size=16", "stage3.epochs=1", "stage3.num_ids=4", "stage3.num_pos=2",
    "stage3.milestones=", "runtime.progress=false",
]  # fmt: skip


@pytest.fixture(scope="module")
def sysu_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli") / "sysu"
    make_sysu(root, num_train_ids=6, num_val_ids=2, num_test_ids=4, images_per_cam=2, image_size=(32, 16), seed=5)
    return root


@pytest.fixture(scope="module")
def trained(sysu_root, tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "run"
    extra = [f"runtime.output_dir={out}", "data.val_ids=2", "runtime.eval_every=1"]
    sets = [x for item in [*TINY, *extra] for x in ("--set", item)]
    assert main(["-q", "train", "--preset", "demo", "--root", str(sysu_root), *sets, "--no-eval"]) == 0
    return out / "checkpoints" / "final.pt"


def run_cli(capsys, *argv):
    code = main(list(map(str, argv)))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.parametrize(
    ("argv", "phrase"),
    [
        (["data", "stats", "{tmp}/missing"], "not found"),
        (["train", "--root", "{tmp}/missing"], "not found"),
        (["train", "--root", "{root}", "--set", "stage3.nope=1"], "unknown config key 'stage3.nope'"),
        (["train", "--root", "{root}", "--set", "stage3.epochs=two"], "stage3.epochs='two' is invalid"),
        (["train", "--root", "{root}", "--set", "epochs"], "expected section.key=value"),
        (["train", "--root", "{root}", "--preset", "market"], "unknown preset 'market'"),
        (["train", "--root", "{root}", "--ablation", "nope"], "unknown ablation 'nope'"),
        (["train", "--root", "{root}", "--config", "{tmp}/none.yaml"], "config file"),
        (["train", "--root", "{root}", "--dataset", "regdb"], "RegDB: folder"),
        (["train", "--root", "{root}", "--dataset", "market"], "Unknown dataset 'market'. Valid names are 'sysu'"),
        (["data", "stats", "--dataset", "market", "{root}"], "Unknown dataset 'market'"),
        (["eval", "--root", "{root}", "--checkpoint", "{tmp}/missing.pt"], "does not exist"),
        (["eval", "--root", "{root}", "--checkpoint", "{tmp}/raw.pt"], "not a csdn training checkpoint"),
        (["eval", "--root", "{root}", "--checkpoint", "{tmp}/foreign.pt"], "has no 2-d tensor head_global.classifier"),
        (
            [
                "extract",
                "--checkpoint",
                "{tmp}/raw.pt",
                "--images",
                "{tmp}/none",
                "--modality",
                "visible",
                "--out",
                "{tmp}/f.pt",
            ],
            "neither a folder nor a text file",
        ),  # fmt: skip
    ],
)
def test_user_mistakes_are_one_line_and_exit_2(capsys, tmp_path, sysu_root, argv, phrase):
    torch.save({"conv.weight": torch.zeros(1)}, tmp_path / "raw.pt")
    foreign = {"model": {"conv.weight": torch.zeros(1)}, "config": config_to_dict(get_preset("demo")), "num_classes": 3}
    save_checkpoint(foreign, tmp_path / "foreign.pt")
    argv = [a.format(tmp=tmp_path, root=sysu_root) for a in argv]
    code, out, err = run_cli(capsys, *argv)
    assert code == 2
    error_lines = [line for line in err.splitlines() if line.startswith("csdn: error: ")]
    assert len(error_lines) == 1 and err.splitlines()[-1] == error_lines[0], err
    assert phrase in error_lines[0]
    assert "Traceback" not in err


def test_argparse_mistakes_exit_2(capsys):
    with pytest.raises(SystemExit) as info:
        main(["extract", "--checkpoint", "x", "--images", "x", "--out", "x", "--modality", "uv"])
    err = capsys.readouterr().err
    assert info.value.code == 2 and "argument --modality: Unknown modality 'uv'. Valid values are 'visible'" in err


def test_train_eval_extract_round_trip(capsys, trained, sysu_root, tmp_path):
    run_dir = trained.parents[1]
    assert (run_dir / "train.log").is_file() and (run_dir / "metrics.jsonl").is_file()
    validation = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines() if "stage3/eval" in x]
    assert len(validation) == 1  # held-out ids, not the test set, labelled so, in percent as the final table
    assert {"heldout_rank1", "heldout_mAP", "heldout_mINP"} <= set(validation[0])
    assert 0.0 <= validation[0]["heldout_rank1"] <= 100.0 and "rank1" not in validation[0]
    code, out, _ = run_cli(capsys, "-q", "eval", "--root", sysu_root, "--checkpoint", trained, "--trials", 2,
                           "--json", tmp_path / "eval.json")  # fmt: skip
    assert code == 0 and "sysu all-search single-shot" in out
    assert "trial" not in out.replace("trials", "")  # one table, no per-trial lines
    code, verbose, _ = run_cli(capsys, "-q", "-v", "eval", "--root", sysu_root, "--checkpoint", trained,
                               "--trials", 2)  # fmt: skip
    assert code == 0 and verbose.endswith(out.replace(f"results written to {tmp_path / 'eval.json'}\n", ""))
    per_trial = [line.split() for line in verbose.splitlines() if line.startswith("sysu all-search single-shot")]
    assert [row[3] for row in per_trial[:2]] == ["0", "1"]  # trial column of the two per-trial lines
    report = json.loads((tmp_path / "eval.json").read_text())
    assert len(report["records"]) == 4 * 2  # 4 settings x 2 trials
    assert 0.0 <= report["summary"]["sysu all-search single-shot"]["mAP"]["mean"] <= 1.0
    images = sysu_root / "cam3"
    code, out, _ = run_cli(capsys, "-q", "extract", "--checkpoint", trained, "--images", images, "--modality",
                           "infrared", "--out", tmp_path / "feats.pt")  # fmt: skip
    assert code == 0
    saved = torch.load(tmp_path / "feats.pt", weights_only=True)
    assert saved["features"].shape[0] == len(saved["paths"]) == len(list(images.rglob("*.jpg")))
    assert saved["modality"] == "infrared" and saved["format"] == "csdn-features-v1"


def test_resume_of_a_finished_run_and_data_stats(capsys, trained, sysu_root):
    out_dir = trained.parents[1]
    extra = [f"runtime.output_dir={out_dir}", "data.val_ids=2", "runtime.eval_every=1"]
    sets = [x for item in [*TINY, *extra] for x in ("--set", item)]
    code, _, err = run_cli(capsys, "-q", "train", "--preset", "demo", "--root", sysu_root, *sets, "--no-eval")
    assert code == 2 and "already holds a checkpoint" in err
    code, _, _ = run_cli(capsys, "-q", "train", "--preset", "demo", "--root", sysu_root, *sets, "--no-eval",
                         "--resume")  # fmt: skip
    assert code == 0
    code, out, _ = run_cli(capsys, "data", "stats", sysu_root)
    assert code == 0 and "train: 8 ids" in out


def test_python_dash_m_csdn():
    result = subprocess.run([sys.executable, "-m", "csdn", "--help"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and "demo" in result.stdout and "train" in result.stdout


def test_config_precedence(tmp_path):
    import argparse

    from csdn.cli.runs import resolve_train_config

    (tmp_path / "c.yaml").write_text("stage3:\n  epochs: 7\n  lr: 0.001\nmodel:\n  integrator: add\n")
    args = argparse.Namespace(
        preset=None, dataset="llcm", root="/data/LLCM", config=str(tmp_path / "c.yaml"), ablation="clip_vireid",
        overrides=["stage3.lr=0.002", "runtime.seed=9"],
    )  # fmt: skip
    cfg = resolve_train_config(args)
    assert cfg.data.dataset == "llcm" and cfg.data.root == "/data/LLCM"  # preset = the dataset's
    assert cfg.runtime.output_dir == "runs/llcm"
    assert cfg.stage3.epochs == 7 and cfg.stage1.epochs == 60  # file keys merged onto the preset
    assert cfg.stage3.lr == 0.002 and cfg.runtime.seed == 9  # --set wins over the file
    assert (cfg.model.variant, cfg.model.integrator) == ("clip_vireid", "none")  # --ablation wins over the file


def test_eval_and_extract_without_the_clip_file(capsys, sysu_root, tmp_path):
    from csdn.clip import tiny_state_dict

    clip_file = tmp_path / "clip.pt"
    torch.save(tiny_state_dict("RN", seed=2), clip_file)
    sets = [x for item in [*TINY, f"runtime.output_dir={tmp_path / 'run'}", f"model.clip={clip_file}"]
            for x in ("--set", item)]  # fmt: skip
    assert run_cli(capsys, "-q", "train", "--preset", "demo", "--root", sysu_root, *sets, "--no-eval")[0] == 0
    final = tmp_path / "run" / "checkpoints" / "final.pt"
    results = {}
    for when in ("with", "without"):
        if when == "without":
            clip_file.unlink()
        code, out, err = run_cli(capsys, "-q", "eval", "--root", sysu_root, "--checkpoint", final, "--trials", 1,
                                 "--json", tmp_path / f"{when}.json")  # fmt: skip
        assert code == 0 and "sysu all-search single-shot" in out, err
        code, _, err = run_cli(capsys, "-q", "extract", "--checkpoint", final, "--images", sysu_root / "cam3",
                               "--modality", "infrared", "--out", tmp_path / f"{when}.pt")  # fmt: skip
        assert code == 0, err
        results[when] = json.loads((tmp_path / f"{when}.json").read_text())["summary"]
    assert results["with"] == results["without"]
    features = [torch.load(tmp_path / f"{when}.pt", weights_only=True)["features"] for when in ("with", "without")]
    torch.testing.assert_close(features[0], features[1], rtol=0, atol=0)


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"  # the first 8 bytes of every PNG file (PNG specification, section 5.2)


def test_eval_plot_writes_valid_pngs(capsys, trained, sysu_root, tmp_path):
    pytest.importorskip("matplotlib")
    import PIL.Image

    plots = tmp_path / "plots"
    code, out, err = run_cli(capsys, "-q", "eval", "--root", sysu_root, "--checkpoint", trained, "--trials", 1,
                             "--plot", plots)  # fmt: skip
    assert code == 0, err
    expected = {"ranked_lists.png", "cmc.png", "projection.png", "heatmaps_query.png", "heatmaps_top1.png"}
    assert {p.name for p in plots.iterdir()} == expected  # and no temporary file left behind
    for name in sorted(expected):
        assert (plots / name).read_bytes()[:8] == PNG_SIGNATURE, name
        with PIL.Image.open(plots / name) as image:
            assert image.format == "PNG" and min(image.size) > 50
            image.verify()  # checks the chunk CRCs
    assert f"plots written to {plots}" in out


def test_eval_plot_without_matplotlib_is_one_clear_line(capsys, monkeypatch, trained, sysu_root, tmp_path):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # makes `import matplotlib` fail
    code, out, err = run_cli(capsys, "eval", "--root", sysu_root, "--checkpoint", trained, "--plot", tmp_path / "p")
    assert code == 2 and out == ""  # refused before evaluating
    assert err.splitlines()[-1] == (
        "csdn: error: matplotlib is not installed; it comes with the 'viz' extra: pip install 'csdn[viz]'"
    )
    assert not (tmp_path / "p").exists()
