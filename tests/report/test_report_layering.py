"""csdn.report sits on evaluation and viz: it never imports the training engine or the command line."""

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_report_imports_neither_engine_nor_cli():
    spec = importlib.util.spec_from_file_location("layering", ROOT / "tests" / "test_layering.py")
    layering = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(layering)
    files = sorted((ROOT / "csdn" / "report").rglob("*.py"))
    assert len(files) >= 6
    bad = [f"{path.name}:{line} imports {name}" for path in files
           for line, name in layering._imported_csdn_modules(path)
           if name.startswith(("csdn.engine", "csdn.cli")) or name == "csdn"]  # fmt: skip
    assert bad == []


def test_template_is_package_data():
    text = (ROOT / "pyproject.toml").read_text()
    assert '"report/templates/*.html"' in text and (ROOT / "csdn" / "report" / "templates" / "report.html").is_file()
