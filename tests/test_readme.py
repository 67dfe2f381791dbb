"""README's first two lines are the commands a new user pastes: they must pick the right torch by themselves.

The step before ``pip install -e`` is run for real in bash with a fake ``pip`` (it records its arguments) and,
for the GPU case, a fake ``nvidia-smi``: without a driver it must install the CPU-only build first; with one it
must leave pip's default build alone.
"""

from __future__ import annotations

import shutil
import stat
import subprocess
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
CPU_INDEX = "https://download.pytorch.org/whl/cpu"


def _first_commands() -> list[str]:
    text = README.read_text(encoding="utf-8")
    block = text.split("```bash\n", 1)[1].split("```", 1)[0]
    return [line for line in block.splitlines() if line.strip()][:2]


def _steps_before_install(line: str) -> str:
    """The ``&&`` steps after the venv activation and before ``pip install -e``."""
    steps = [s.strip() for s in line.split(" && ")]
    start = next(i for i, s in enumerate(steps) if s.startswith(". .venv/bin/activate")) + 1
    end = next(i for i, s in enumerate(steps) if s.startswith("pip install -e"))
    return " && ".join(steps[start:end])


def _fake(folder: Path, name: str, body: str) -> None:
    path = folder / name
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(path.stat().st_mode | stat.S_IEXEC)


def test_first_two_lines_install_then_demo_and_tests():
    demo, tests = _first_commands()
    assert demo.startswith("python3 -m venv .venv") and demo.endswith("pip install -e . && csdn demo")
    assert tests.startswith("python3 -m venv .venv") and tests.endswith('pip install -e ".[test]" && pytest -q')


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
@pytest.mark.parametrize("line", [0, 1])
@pytest.mark.parametrize("gpu", [False, True])
def test_torch_build_chosen_before_install(tmp_path, line, gpu):
    step = _steps_before_install(_first_commands()[line])
    assert step, "README's command installs csdn with no step choosing the torch build first"
    bin_dir, log = tmp_path / "bin", tmp_path / "pip.log"
    bin_dir.mkdir()
    _fake(bin_dir, "pip", f'echo "$@" >> "{log}"')
    if gpu:
        _fake(bin_dir, "nvidia-smi", "exit 0")
    env = {"PATH": str(bin_dir), "HOME": str(tmp_path)}
    subprocess.run([shutil.which("bash"), "-c", step], env=env, check=True, timeout=30)
    calls = log.read_text().splitlines() if log.exists() else []
    if gpu:
        assert calls == []  # pip's default (CUDA) torch comes with `pip install -e .`
    else:
        assert len(calls) == 1 and "torch" in calls[0].split() and f"--index-url {CPU_INDEX}" in calls[0]
