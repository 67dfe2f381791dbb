"""Split files and CSV lists are read the same whatever their whitespace, separators, byte-order mark, line
endings and blank lines: hypothesis writes random renderings of known content and the readers must return
exactly that content, with the right line numbers."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from csdn.data.csv_dataset import read_csv_list
from csdn.data.lists import read_id_list, read_index_file

IMAGES = ["a.png", "b.png", "cam1/0001/c.png", "cam2/0002/d.png", "e e.png"]
BOM = "\ufeff"
spaces = st.text(alphabet=" \t", max_size=3)
newline = st.sampled_from(["\n", "\r\n"])


@pytest.fixture(scope="module")
def image_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("images")
    for name in IMAGES:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (4, 8), (10, 20, 30)).save(root / name)
    return root


def _write(text: str, encoding: str = "utf-8") -> str:
    folder = tempfile.mkdtemp()
    path = os.path.join(folder, "list.txt")
    with open(path, "w", encoding=encoding, newline="") as handle:  # newline="": our \r\n stay as drawn
        handle.write(text)
    return path


@st.composite
def id_files(draw):
    """(text, {pid: line}): ids on lines, separated by commas and/or whitespace, blank lines between."""
    ids = draw(st.lists(st.integers(0, 10**6), min_size=1, max_size=20, unique=True))
    separator = st.one_of(st.just(","), st.text(alphabet=" \t", min_size=1, max_size=3)).flatmap(
        lambda sep: st.tuples(spaces, st.just(sep), spaces).map("".join)
    )
    lines, expected, i = [], {}, 0
    while i < len(ids):
        lines += [draw(spaces) for _ in range(draw(st.integers(0, 2)))]  # blank or whitespace-only lines
        take = draw(st.integers(1, len(ids) - i))
        line = draw(spaces)
        for n, pid in enumerate(ids[i : i + take]):
            line += (draw(separator) if n else "") + str(pid)
            expected[pid] = len(lines) + 1
        line += draw(st.sampled_from(["", ",", " ", ", "]))  # a trailing separator
        lines.append(line)
        i += take
    lines += [draw(spaces) for _ in range(draw(st.integers(0, 2)))]
    text = draw(newline).join(lines) + draw(st.sampled_from(["", "\n", "\r\n"]))
    return (BOM if draw(st.booleans()) else "") + text, expected


@settings(max_examples=200, deadline=None)
@given(id_files())
def test_id_lists(case):
    text, expected = case
    got = read_id_list(_write(text), "SYSU-MM01")
    assert list(got.items()) == list(expected.items())


@st.composite
def index_files(draw):
    """(text, [(relpath, label, line)]): '<path> <label>' lines with any spacing, blank lines between."""
    names = draw(st.lists(st.sampled_from([n for n in IMAGES if " " not in n]), min_size=1, unique=True))
    lines, expected = [], []
    for name in names:
        lines += [draw(spaces) for _ in range(draw(st.integers(0, 2)))]
        label = draw(st.integers(-5, 500))
        gap = draw(st.text(alphabet=" \t", min_size=1, max_size=3))
        lines.append(f"{draw(spaces)}{name}{gap}{label}{draw(spaces)}")
        expected.append((name, label, len(lines)))
    text = draw(newline).join(lines) + draw(st.sampled_from(["", "\n"]))
    return (BOM if draw(st.booleans()) else "") + text, expected


@settings(max_examples=120, deadline=None)
@given(index_files())
def test_index_files(image_root, case):
    text, expected = case
    got = read_index_file(_write(text), str(image_root), "RegDB")
    assert [(e.relpath, e.label, e.line) for e in got] == expected


@st.composite
def csv_files(draw):
    """(text, [(relpath, pid, cam, modality, line)]): a header in any column order and case, padded fields,
    rows of blank fields or blank lines between."""
    columns = draw(st.permutations(["path", "pid", "cam", "modality"]))
    header = ",".join(
        f"{draw(spaces)}{draw(st.sampled_from([c, c.upper(), c.title()]))}{draw(spaces)}" for c in columns
    )
    lines, expected = [header], []
    for name in draw(st.lists(st.sampled_from(IMAGES), min_size=1, unique=True)):
        lines += [draw(st.sampled_from(["", " ", ",,,", " , ,\t, "])) for _ in range(draw(st.integers(0, 2)))]
        modality = draw(st.sampled_from(["visible", "infrared"]))
        values = {
            "path": name,
            "pid": str(draw(st.integers(0, 999))),
            "cam": str(draw(st.integers(0, 9))),
            "modality": draw(st.sampled_from([modality, modality.upper(), modality.title()])),
        }
        lines.append(",".join(f"{draw(spaces)}{values[c]}{draw(spaces)}" for c in columns))
        expected.append((name, int(values["pid"]), int(values["cam"]), modality, len(lines)))
    text = draw(newline).join(lines) + draw(st.sampled_from(["", "\n", "\r\n"]))
    return (BOM if draw(st.booleans()) else "") + text, expected


@settings(max_examples=120, deadline=None)
@given(csv_files())
def test_csv_lists(image_root, case):
    text, expected = case
    rows = read_csv_list(_write(text), str(image_root))
    got = [
        (os.path.relpath(r.sample.path, image_root), r.sample.pid, r.sample.cam, r.sample.modality, r.line)
        for r in rows
    ]
    assert got == [(os.path.normpath(n), pid, cam, mod, line) for n, pid, cam, mod, line in expected]
