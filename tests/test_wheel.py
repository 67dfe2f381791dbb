"""The built distribution works on its own: sdist -> wheel, ``twine check``, then the wheel installed (not
editable) into a fresh venv outside the source tree runs the CLI, the tokenizer and a report page.

Marked ``wheel`` and deselected by default (``addopts``): it builds, and installs torch from pip's cache (about a
minute). ``.ci/run`` runs it with ``pytest -m wheel``. Package data (the BPE vocabulary, the report templates,
``py.typed``) is checked twice: listed in the wheel, and read by the installed code.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.wheel

ROOT = Path(__file__).resolve().parents[1]
PACKAGE_DATA = ["csdn/py.typed", "csdn/clip/bpe_simple_vocab_16e6.txt.gz", "csdn/report/templates/report.html"]

# run inside the installed venv, from a folder outside the source tree
SMOKE = """
import pathlib, sys, tempfile
import csdn
from csdn.clip import tokenize
from csdn.report import write_index

here = pathlib.Path(csdn.__file__).resolve()
assert "site-packages" in here.parts, f"csdn imported from {here}, not the installed wheel"
ids = tokenize(["a photo of a person."])
assert ids.shape == (1, 77) and int(ids[0, 0]) == 49406 and int(ids.argmax()) == 7, ids[0, :9]
page = write_index(pathlib.Path(tempfile.mkdtemp()) / "index.html", [{"name": "run-a", "href": "a/index.html"}],
                   title="wheel check")
text = page.read_text(encoding="utf-8")
assert "<html" in text and "wheel check" in text and "run-a" in text, text[:200]
print("smoke ok", csdn.__version__)
"""


def _run(cmd: list[str], cwd: Path, env: dict[str, str] | None = None, timeout: int = 1500) -> str:
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} exited {proc.returncode}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc.stdout


# build outputs and caches of the working tree: a stale csdn.egg-info/SOURCES.txt would put files into the sdist
# that the configuration no longer declares, so the build starts from a copy without them (as a fresh checkout)
NOT_SOURCE = ("*.egg-info", "build", "dist", "site", ".git", ".venv", "__pycache__", ".*_cache", ".hypothesis", "runs")


@pytest.fixture(scope="module")
def dist_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """sdist and a wheel built from that sdist (so the sdist must be complete too), from a clean copy."""
    source = tmp_path_factory.mktemp("source") / "csdn"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(*NOT_SOURCE))
    out = tmp_path_factory.mktemp("dist")
    _run([sys.executable, "-m", "build", "--outdir", str(out), str(source)], cwd=source)
    return out


def test_distributions_pass_twine_check(dist_dir: Path) -> None:
    files = sorted(str(p) for p in dist_dir.iterdir())
    assert any(f.endswith(".whl") for f in files) and any(f.endswith(".tar.gz") for f in files), files
    out = _run([sys.executable, "-m", "twine", "check", "--strict", *files], cwd=dist_dir)
    assert out.count("PASSED") == len(files), out


def test_wheel_lists_package_data(dist_dir: Path) -> None:
    (wheel,) = dist_dir.glob("*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    missing = [name for name in PACKAGE_DATA if name not in names]
    assert not missing, f"{wheel.name} lacks package data {missing} (see [tool.setuptools.package-data])"


@pytest.mark.timeout(1800)  # installing torch and its dependencies into the new venv dominates
def test_installed_wheel_runs(dist_dir: Path, tmp_path: Path) -> None:
    (wheel,) = dist_dir.glob("*.whl")
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    bindir = env_dir / ("Scripts" if os.name == "nt" else "bin")
    python = str(bindir / "python")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    env["PATH"] = f"{bindir}{os.pathsep}{env.get('PATH', '')}"
    constraints = str(ROOT / ".ci" / "constraints.txt")
    _run([python, "-m", "pip", "install", "-q", "-c", constraints, str(wheel)], cwd=tmp_path, env=env)
    work = tmp_path / "outside"  # not the source tree: `import csdn` must find the installed copy
    work.mkdir()
    version = _run([str(bindir / "csdn"), "--version"], cwd=work, env=env)
    assert version.strip() == f"csdn {_source_version()}", version
    assert "smoke ok" in _run([python, "-c", SMOKE], cwd=work, env=env)
    demo = _run([str(bindir / "csdn"), "demo", "--quick", "--dir", str(work / "demo")], cwd=work, env=env)
    assert "all-search single-shot: rank-1" in demo, demo[-2000:]


def _source_version() -> str:
    scope: dict[str, str] = {}
    exec((ROOT / "csdn" / "_version.py").read_text(encoding="utf-8"), scope)
    return scope["__version__"]
