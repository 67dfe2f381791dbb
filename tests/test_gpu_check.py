"""benchmarks/gpu_check.py: the no-CUDA exit, the pytest summary parser, and a tiny CPU run of every row."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "gpu_check.py"


@pytest.fixture(scope="module")
def gpu_check():
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message given when there is no CUDA device")
def test_without_cuda_exits_with_one_clear_line(gpu_check, capsys, tmp_path):
    out = tmp_path / "r.json"
    assert gpu_check.main(["--json", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("gpu_check: error: no CUDA device is available") and "--device cpu --tiny" in err
    assert len(err.splitlines()) == 1 and not out.exists()


def test_pytest_summary_parser(gpu_check):
    text = "....\n=== short test summary info ===\n3 passed, 1 skipped, 120 deselected, 2 errors in 4.20s\n"
    counts = gpu_check.parse_pytest_summary(text)
    assert counts == {"passed": 3, "failed": 0, "skipped": 1, "errors": 2, "deselected": 120}
    assert gpu_check.parse_pytest_summary("1 failed, 1 error in 0.1s")["errors"] == 1
    assert gpu_check.parse_pytest_summary("no tests ran")["passed"] == 0


@pytest.mark.slow
def test_tiny_cpu_run_writes_the_table_and_json(gpu_check, capsys, tmp_path):
    out = tmp_path / "gpu_check.json"
    assert gpu_check.main(["--device", "cpu", "--tiny", "--skip-tests", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    result = json.loads(out.read_text())
    names = [row["name"] for row in result["rows"]]
    assert names[:4] == [
        "stage-3 training (fp32)",
        "stage-3 training (bf16 + channels_last)",
        "extraction with flip (fp32)",
        "extraction with flip (bf16)",
    ]
    assert sum(n.startswith("evaluate,") for n in names) == 2 and sum(n.startswith("re-ranking") for n in names) == 2
    assert [n for n in names if n.startswith("stage-3 loader")] == [
        "stage-3 loader, augmentation in the loader (CPU), workers 0",
        "stage-3 loader, augmentation on the device, workers 0",
    ]
    for row in result["rows"]:
        assert row["device"] == "cpu" and row["value"] > 0 and row["peak_gpu_gib"] is None
        assert row["name"] in printed  # every JSON row is a table line
    assert result["sizes"] == "tiny" and result["cuda_tests"] is None
