"""The package is layered: every module imports only from the parts of csdn its layer may use.

clip (leaf) -> data -> models -> losses -> engine (training only); evaluation and inference sit on data/models and
never import engine; viz and export add inference; study (grids of runs) sits on engine, evaluation and report's
HTML helpers; report, cli and the package face may use everything. The root's private helpers (``_io``,
``_modality``, ``_optional``, ``_progress``, ``_threads``, ``_untrusted``, ``_version``,
``_deprecation``) import nothing from csdn
and any layer but clip may use them; clip may use ``_untrusted`` (file-derived text and sizes). Every module of the
package must belong to a part listed in :data:`ALLOWED`.
"""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "csdn"
PRIVATE = {"_io", "_modality", "_optional", "_progress", "_threads", "_untrusted", "_version", "_deprecation"}
EVERYTHING = {"clip", "data", "models", "losses", "engine", "evaluation", "inference", "viz", "export", "report", "cli"}
EVERYTHING |= {"study"}
EVERYTHING |= PRIVATE
#: part of csdn -> the other parts it may import (its own part is always allowed).
ALLOWED: dict[str, set[str]] = {
    "_io": set(),
    "_modality": set(),
    "_optional": set(),
    "_progress": set(),
    "_untrusted": set(),
    "_threads": set(),
    "_version": set(),
    "_deprecation": set(),
    "clip": {"_untrusted"},  # the one guard of file-derived text and declared sizes (imports nothing from csdn)
    "data": PRIVATE,
    "models": {"clip", "data"} | PRIVATE,
    "losses": {"models", "data"} | PRIVATE,
    "engine": {"clip", "data", "models", "losses"} | PRIVATE,
    "evaluation": {"data", "models"} | PRIVATE,
    "inference": {"clip", "data", "models", "evaluation"} | PRIVATE,
    "viz": {"clip", "data", "models", "evaluation", "inference"} | PRIVATE,
    "export": {"clip", "data", "models", "evaluation", "inference"} | PRIVATE,
    "study": {"clip", "data", "models", "losses", "engine", "evaluation", "report"} | PRIVATE,
    "report": EVERYTHING - {"study"},
    "cli": EVERYTHING,
    "__init__": EVERYTHING,  # the package face re-exports the public names
    "__main__": {"cli"},
    "extract": {"data", "inference"} | PRIVATE,  # deprecated alias of csdn.inference (removed in 0.3.0)
}


def _imported_csdn_modules(path: Path, package: Path = PACKAGE) -> list[tuple[int, str]]:
    """(line, dotted name) of every csdn module ``path`` imports, resolving relative imports.

    ``from csdn import x`` (or ``from .. import x``) counts as importing ``csdn.x``; ``__version__`` is not counted.
    """
    tree = ast.parse(path.read_text(), filename=str(path))
    package_parts = list(path.relative_to(package.parent).with_suffix("").parts)
    if path.name != "__init__.py":
        package_parts = package_parts[:-1]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names if alias.name.split(".")[0] == "csdn"]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package_parts[: len(package_parts) - node.level + 1]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            if name == "csdn":  # package metadata (``__version__``) is not a layer
                found += [(node.lineno, f"csdn.{a.name}") for a in node.names if not a.name.startswith("__")]
            elif name.split(".")[0] == "csdn":
                found.append((node.lineno, name))
    return found


def _part_of_module(path: Path, package: Path = PACKAGE) -> str:
    """The part a file belongs to: its subpackage, or its own name for a root module."""
    parts = path.relative_to(package).with_suffix("").parts
    return parts[0]


def _part_of_import(dotted: str) -> str:
    parts = dotted.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def layering_violations(package: Path = PACKAGE) -> list[str]:
    """One line per import that crosses the layering, or per module whose part has no entry in ALLOWED."""
    violations = []
    for path in sorted(package.rglob("*.py")):
        part = _part_of_module(path, package)
        where = path.relative_to(package.parent)
        if part not in ALLOWED:
            violations.append(f"{where}: part {part!r} has no entry in ALLOWED (add one)")
            continue
        for line, name in _imported_csdn_modules(path, package):
            target = _part_of_import(name)
            if target != part and target not in ALLOWED[part]:
                violations.append(f"{where}:{line} imports {name} ({part} may import {sorted(ALLOWED[part])})")
    return violations


def test_every_module_imports_only_what_its_layer_allows():
    assert not layering_violations(), "layering violated:\n" + "\n".join(layering_violations())


def test_every_module_is_covered():
    parts = {_part_of_module(path) for path in PACKAGE.rglob("*.py")}
    assert {"__init__", "__main__", "_io", "_modality", "_optional", "inference", "engine", "study"} <= parts
    assert parts <= set(ALLOWED)


@pytest.mark.parametrize("forbidden", ["evaluation", "inference"])
def test_evaluation_and_inference_never_import_the_engine(forbidden):
    assert "engine" not in ALLOWED[forbidden]


def test_checker_resolves_relative_imports(tmp_path):
    probe = tmp_path / "csdn" / "clip" / "probe.py"
    probe.parent.mkdir(parents=True)
    probe.write_text(
        "from ..data import x\nfrom . import tokenizer\nimport csdn.engine\n"
        "from .. import models, __version__\nimport os\n"
    )
    names = [name for _, name in _imported_csdn_modules(probe, tmp_path / "csdn")]
    assert names == ["csdn.data", "csdn.clip", "csdn.engine", "csdn.models"]


def test_checker_catches_violations(tmp_path):
    """The checker itself: a forbidden import, a root helper importing csdn, and an unlisted part are reported."""
    root = tmp_path / "csdn"
    for rel, text in {
        "__init__.py": "from . import evaluation\n",
        "_io.py": "from .data import x\n",
        "evaluation/__init__.py": "",
        "evaluation/probe.py": "from ..engine.trainer import Trainer\nfrom ..models import CSDN\n",
        "inference/probe.py": "from csdn import engine\n",
        "mystery/probe.py": "",
    }.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    found = layering_violations(root)
    assert len(found) == 4, found
    assert any("csdn/_io.py:1 imports csdn.data" in line for line in found)
    assert any("csdn/evaluation/probe.py:1 imports csdn.engine.trainer" in line for line in found)
    assert any("csdn/inference/probe.py:1 imports csdn.engine" in line for line in found)
    assert any("part 'mystery' has no entry" in line for line in found)
