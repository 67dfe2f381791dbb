"""Regenerate docs/api.md from the package's docstrings: ``python docs/gen_api.py``.

For every public module it lists the exported names (those re-exported by the package ``__init__`` or listed in
``__all__``) with their signatures and the first paragraph of their docstrings; classes also list their public
methods and properties. Importing csdn does no work, so this runs in a second.
"""

from __future__ import annotations

import importlib
import inspect
import os
import sys
import typing
from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parents[1] / "csdn"

MODULES = [
    ("csdn.clip", "OpenAI-compatible CLIP: models, checkpoint loading with verified downloads, tokenizer."),
    ("csdn.data", "Dataset readers with the reference protocols, synthetic datasets, transforms, sampler, loaders."),
    ("csdn.data.synthetic", "Synthetic datasets in the exact public layouts."),
    ("csdn.data.images", "Images in any common form -> PIL images or model inputs; image folders."),
    ("csdn.models", "CSDN and its components."),
    ("csdn.models.factory", "Model configuration, the ablation rules, building a CSDN from a configuration."),
    ("csdn.models.checkpoint", "The checkpoint schema: saving, reading, recognising files; rebuilding models."),
    ("csdn.losses", "Losses: tensors in, scalar out."),
    ("csdn.engine", "Configuration, presets, optimisers, RNG state, the stage objects and the three-stage trainer."),
    ("csdn.engine.build", "Build a model from a training configuration; rebuild a trained one with its config."),
    ("csdn.engine.stages", "The training stages as objects."),
    ("csdn.engine.trainer", "The three-stage trainer."),
    ("csdn.engine.schedules", "Warm-up and milestones scaled to a shortened stage, or refused."),
    ("csdn.engine.logs", "Per-iteration progress lines and the run's train.log."),
    ("csdn.evaluation", "Exact metrics, distances and re-ranking, feature extraction, the protocol evaluator."),
    ("csdn.inference", "Feature extraction, gallery search, loading for inference (`csdn.FeatureExtractor`)."),
    ("csdn.viz", "Plots (extra `viz`)."),
    ("csdn.report", "Evaluation reports: camera matrix, distances and ROC, lowest-AP queries, HTML pages."),
    ("csdn.study", "Studies: resumable grids of runs over variants x seeds x splits, their executors and results."),
    ("csdn.study.stats", "Two-level bootstrap intervals and paired sign-flip tests of a study's numbers."),
    ("csdn.export", "ONNX export (extra `onnx`)."),
]


def _first_paragraph(obj: object) -> str:
    doc = inspect.cleandoc(getattr(obj, "__doc__", None) or "")  # own docstring only, not an inherited one
    return " ".join(doc.split("\n\n")[0].split())


def _annotation(annotation: object) -> str:
    if isinstance(annotation, str):
        return annotation
    if isinstance(annotation, typing.ForwardRef):
        return annotation.__forward_arg__
    return inspect.formatannotation(annotation)


def _default(value: object) -> str:
    """Repr of a default value; functions and classes by qualified name (their repr holds a memory address)."""
    if inspect.isroutine(value) or inspect.isclass(value):
        return getattr(value, "__qualname__", repr(value))
    if isinstance(value, os.PathLike):  # a path inside the installed package: shown relative to it, not this machine
        path = Path(value)
        if path.is_relative_to(_PACKAGE_DIR):
            return f"<csdn>/{path.relative_to(_PACKAGE_DIR).as_posix()}"
    return repr(value)


def _signature(obj: object) -> str:
    """``(a: int, b: str = 'x') -> T`` with postponed (string) annotations shown unquoted."""
    try:
        sig = inspect.signature(obj)
    except (TypeError, ValueError):
        return ""
    params = [
        p.replace(annotation=inspect.Parameter.empty) if p.annotation is inspect.Parameter.empty else p
        for p in sig.parameters.values()
    ]
    parts, star_done = [], False
    for p in params:
        if p.kind is p.KEYWORD_ONLY and not star_done:
            parts.append("*")
            star_done = True
        star_done = star_done or p.kind is p.VAR_POSITIONAL
        prefix = {p.VAR_POSITIONAL: "*", p.VAR_KEYWORD: "**"}.get(p.kind, "")
        text = prefix + p.name
        if p.annotation is not inspect.Parameter.empty:
            text += f": {_annotation(p.annotation)}"
        if p.default is not inspect.Parameter.empty:
            text += (" = " if p.annotation is not inspect.Parameter.empty else "=") + _default(p.default)
        parts.append(text)
    ret = "" if sig.return_annotation is inspect.Signature.empty else f" -> {_annotation(sig.return_annotation)}"
    return f"({', '.join(parts)}){ret}"


def _public_names(module) -> list[str]:
    names = getattr(module, "__all__", None)
    if names is None:
        names = [n for n in vars(module) if not n.startswith("_") and not inspect.ismodule(getattr(module, n))]
        names = [n for n in names if getattr(getattr(module, n), "__module__", "").startswith("csdn")]
    return sorted(names, key=str.lower)


def _class_members(cls: type) -> list[str]:
    lines = []
    for name, member in vars(cls).items():
        if name.startswith("_") and name != "__call__":
            continue
        if isinstance(member, property):
            lines.append(f"  - `.{name}` (property): {_first_paragraph(member)}")
        elif isinstance(member, (classmethod, staticmethod)):
            func = member.__func__
            lines.append(f"  - `{name}{_signature(func)}`: {_first_paragraph(func)}")
        elif inspect.isfunction(member):
            lines.append(f"  - `{name}{_signature(member)}`: {_first_paragraph(member)}")
    return [line.removesuffix(": ") for line in lines]


def _entry(module_name: str, name: str, obj: object) -> list[str]:
    qual = f"{module_name}.{name}"
    if inspect.isclass(obj):
        bases = [b.__name__ for b in obj.__bases__ if b is not object]
        head = f"### `{qual}`" + (f" ({', '.join(bases)})" if bases else "")
        signature = _signature(obj).removesuffix(" -> None")
        lines = [head, "", f"`{name}{signature}`", "", _first_paragraph(obj), ""]
        members = _class_members(obj)
        return lines + (members + [""] if members else [])
    if callable(obj):
        return [f"### `{qual}`", "", f"`{name}{_signature(obj)}`", "", _first_paragraph(obj), ""]
    return [f"### `{qual}`", "", f"Constant: `{type(obj).__name__}`.", ""]


def render() -> str:
    out = [
        "# API reference",
        "",
        "Generated from the docstrings by `python docs/gen_api.py` (signatures, first paragraph of each docstring;",
        "the docstrings themselves document every argument, tensor shapes and raised errors). Layers, left to right:",
        "`clip` -> `data` -> `models` -> `losses` -> `engine` -> `evaluation` -> top level (`extract`, `search`,",
        "`viz`, `export`, `cli`). See [architecture.md](architecture.md) for how the pieces fit.",
        "",
        "Contents: " + ", ".join(f"[`{m}`](#{m.replace('.', '')})" for m, _ in MODULES),
        "",
    ]
    for module_name, summary in MODULES:
        module = importlib.import_module(module_name)
        out += [f"## {module_name}", "", summary, ""]
        for name in _public_names(module):
            out += _entry(module_name, name, getattr(module, name))
    return "\n".join(out).rstrip() + "\n"


if __name__ == "__main__":
    target = Path(__file__).with_name("api.md")
    target.write_text(render(), encoding="utf-8")
    sys.stdout.write(f"wrote {target}\n")
