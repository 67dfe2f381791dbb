"""Every example runs end to end on synthetic data with its short flags (each in its own interpreter)."""

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
HAS_VIZ = importlib.util.find_spec("matplotlib") is not None
HAS_ONNX = all(importlib.util.find_spec(m) is not None for m in ("onnx", "onnxscript", "onnxruntime"))


def _run(script: str, *args: str, cwd: Path) -> str:
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "PYTHONWARNINGS": "ignore"}
    proc = subprocess.run(
        [sys.executable, str(EXAMPLES / script), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, f"{script} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout


def test_train_sysu(tmp_path):
    out = _run("train_sysu.py", "--synthetic", "--quick", "--out", str(tmp_path / "run"), cwd=tmp_path)
    assert "sysu all-search single-shot" in out and (tmp_path / "run" / "run" / "checkpoints" / "final.pt").is_file()
    assert (tmp_path / "run" / "eval.json").is_file() and (tmp_path / "run" / "config.json").is_file()


def test_evaluate_checkpoint(tmp_path):
    args = ["--synthetic", "--quick", "--rerank", "--json", str(tmp_path / "r.json")]
    args += ["--plot", str(tmp_path / "plots")] if HAS_VIZ else []
    out = _run("evaluate_checkpoint.py", *args, cwd=tmp_path)
    assert "[plain]" in out and "[re-ranked]" in out and "sysu indoor-search multi-shot" in out
    assert (tmp_path / "r-plain.json").is_file() and (tmp_path / "r-re-ranked.json").is_file()
    if HAS_VIZ:
        assert (tmp_path / "plots" / "ranked_lists.png").is_file()


def test_reuse_evaluator(tmp_path):
    out = _run("reuse_evaluator.py", "--synthetic", "--quick", cwd=tmp_path)
    assert out.count("A. sysu all-search single-shot") == 2 and "B. re_ranking" in out and "C." in out


def test_custom_prompt_learner(tmp_path):
    out = _run("custom_prompt_learner.py", "--synthetic", "--quick", cwd=tmp_path)
    moved = [float(line.split("moved by ")[1].split()[0]) for line in out.splitlines() if "moved by" in line]
    assert len(moved) == 2 and all(m > 0 for m in moved)  # the subclass's extra parameter was trained
    assert "reloads into a fresh custom model" in out


def test_extract_and_search(tmp_path):
    args = ["--synthetic", "--topk", "3", "--index", str(tmp_path / "index.pt")]
    args += ["--plot", str(tmp_path / "ranked.png")] if HAS_VIZ else []
    args += ["--onnx"] if HAS_ONNX else []
    out = _run("extract_and_search.py", *args, cwd=tmp_path)
    assert out.count("  #3  ") == 4 and (tmp_path / "index.pt").is_file()  # 4 queries x top-3
    if HAS_ONNX:
        assert "same rankings as torch: True" in out


def test_custom_dataset(tmp_path):
    out = _run("custom_dataset.py", "--synthetic", "--quick", "--out", str(tmp_path / "run"), cwd=tmp_path)
    assert "csv infrared->visible                            4       16           4       16" in out
    assert "folders infrared->visible" in out and "same test split as the CSV reader: True" in out
    assert (tmp_path / "run" / "csv-synthetic" / "train.csv").is_file()
    assert (tmp_path / "run" / "run" / "checkpoints" / "final.pt").is_file()


def test_every_example_is_tested_and_documents_its_flags(tmp_path):
    scripts = sorted(p.name for p in EXAMPLES.glob("*.py"))
    assert scripts and all(f'"{name}"' in Path(__file__).read_text() for name in scripts)
    # one interpreter for all --help runs: the imports dominate the cost
    code = (
        "import runpy, sys\n"
        f"for name in {scripts!r}:\n"
        f"    sys.argv = [name, '--help']\n"
        "    try:\n"
        f"        runpy.run_path({str(EXAMPLES)!r} + '/' + name, run_name='__main__')\n"
        "    except SystemExit as stop:\n"
        "        assert stop.code == 0, name\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.count("usage:") == len(scripts) and proc.stdout.count("--synthetic") >= len(scripts)


def test_custom_study(tmp_path):
    out = _run("custom_study.py", "--synthetic", "--quick", "--out", str(tmp_path), cwd=tmp_path)
    assert "paired differences" in out and "csdn - baseline (regdb visible->thermal): mAP" in out
    assert (tmp_path / "study" / "study.json").is_file() and (tmp_path / "study" / "csdn" / "seed1" / "trial1").is_dir()
