"""The package is layered: each subpackage imports only from the subpackages to its left.

clip <- data <- models <- losses <- engine <- evaluation <- (cli, top-level extras)
"""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "csdn"
LAYERS = ["clip", "data", "models", "losses", "engine", "evaluation"]


def _imported_csdn_modules(path: Path, package: Path = PACKAGE) -> list[tuple[int, str]]:
    """Return (line, dotted name) for every csdn import in ``path``, resolving relative imports."""
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
            if name.split(".")[0] == "csdn":
                found.append((node.lineno, name))
    return found


def _layer_of(dotted: str) -> str | None:
    parts = dotted.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in LAYERS else None


@pytest.mark.parametrize("layer", LAYERS)
def test_no_import_from_a_layer_to_the_right(layer):
    allowed = set(LAYERS[: LAYERS.index(layer) + 1])
    violations = []
    for path in sorted((PACKAGE / layer).rglob("*.py")):
        for line, name in _imported_csdn_modules(path):
            target = _layer_of(name)
            if name == "csdn" or (target is not None and target not in allowed):
                violations.append(f"{path.relative_to(PACKAGE.parent)}:{line} imports {name}")
    assert not violations, "leftward-only imports violated:\n" + "\n".join(violations)


def test_checker_resolves_relative_imports(tmp_path):
    # Guard the checker itself: relative imports out of clip must resolve to their absolute names.
    probe = tmp_path / "csdn" / "clip" / "probe.py"
    probe.parent.mkdir(parents=True)
    probe.write_text("from ..data import x\nfrom . import tokenizer\nimport csdn.engine\nimport os\n")
    names = [name for _, name in _imported_csdn_modules(probe, tmp_path / "csdn")]
    assert names == ["csdn.data", "csdn.clip", "csdn.engine"]
