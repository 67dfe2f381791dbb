"""Start-up cost: ``import csdn`` and ``csdn --help`` leave torchvision (its detection ops) and torch._dynamo alone.

``import torchvision`` (which any ``torchvision.transforms`` import runs first) imports ``torchvision.ops`` and
``torchvision.models``, and with them ``torch._dynamo``: about a second that every CLI call paid, ``--help``
included. The transforms are imported when a pipeline is built. Each check runs in a fresh interpreter, since
this test process has long imported everything.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: Modules that must not be loaded by ``import csdn`` or ``csdn --help`` (prefixes).
HEAVY = ("torchvision", "torch._dynamo")

_PROBE = """
import contextlib, io, json, sys
{code}
print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] == 'torchvision' or m.startswith('torch._dynamo'))))
"""


def _loaded_after(code: str) -> list[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    out = subprocess.run(
        [sys.executable, "-c", _PROBE.format(code=code)], capture_output=True, text=True, env=env, cwd=ROOT,
        timeout=300, check=True,
    )  # fmt: skip
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_import_csdn_loads_no_torchvision_and_no_dynamo():
    loaded = _loaded_after("import csdn, csdn.data, csdn.evaluation, csdn.inference, csdn.engine")
    assert loaded == [], f"import csdn loaded {loaded[:5]}"


def test_csdn_help_loads_no_torchvision_and_no_dynamo():
    code = (
        "from csdn.cli.main import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    for argv in (['--help'], ['eval', '--help'], ['train', '--help'], ['export', '--help']):\n"
        "        try:\n"
        "            main(argv)\n"
        "        except SystemExit:\n"
        "            pass\n"
    )
    loaded = _loaded_after(code)
    assert loaded == [], f"csdn --help loaded {loaded[:5]}"


def test_transforms_still_reachable_from_csdn_data():
    """The lazily served names are the real ones (and torchvision is imported once they are used)."""
    loaded = _loaded_after("import csdn.data as d\nassert d.build_test_transform.__module__ == 'csdn.data.transforms'")
    assert "torchvision.transforms" in loaded


@pytest.mark.parametrize("name", ["ChannelExchange", "build_train_transforms", "TrainTransforms"])
def test_lazy_names_are_listed(name):
    import csdn.data

    assert name in dir(csdn.data)
    with pytest.raises(AttributeError, match="no attribute 'nonexistent'"):
        csdn.data.nonexistent  # noqa: B018
