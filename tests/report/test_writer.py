"""The HTML report: every section present, images embedded, and no inserted text can become markup."""

import dataclasses
import html.parser
import sys

import numpy as np
import PIL.Image
import pytest

from csdn.data.samples import Sample
from csdn.data.samples import TestSplit as Split
from csdn.evaluation.evaluator import EvaluationReport, TrialRecord
from csdn.report import analyse_split, write_index, write_report
from csdn.report.html import escape, join, render_page, tag

EVIL_SCRIPT = "<script>alert(1)</script>"
EVIL_ATTR = '"><img src=x onerror=alert(2)>'


class PageParser(html.parser.HTMLParser):
    """Collects the tags, attributes and text of a page."""

    def __init__(self):
        super().__init__()
        self.tags, self.text = [], []

    def handle_starttag(self, name, attrs):
        self.tags.append((name, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)


def parse(text):
    parser = PageParser()
    parser.feed(text)
    return parser


def _record(setting, trial, rank1, mAP):
    cmc = np.clip(np.linspace(rank1, 1.0, 20), 0, 1).tolist()
    return TrialRecord(setting, trial, "sysu", "infrared", "visible", 3, 4, 3, rank1, cmc[4], cmc[9], cmc[19],
                       mAP, mAP / 2, cmc)  # fmt: skip


@pytest.fixture
def evil_split(tmp_path):
    """A 3-query / 4-gallery split whose file names carry markup, stored under a folder named like a script."""
    folder = tmp_path / "<script>alert(1)<" / "script>"
    folder.mkdir(parents=True)
    paths = []
    for i in range(7):
        path = folder / f"{EVIL_ATTR}{i}.png"
        PIL.Image.new("RGB", (16, 32), (30 * i, 100, 200 - 20 * i)).save(path)
        paths.append(str(path))
    query = [Sample(paths[0], 1, 3, "infrared"), Sample(paths[1], 2, 6, "infrared"), Sample(paths[2], 1, 6, "infrared")]
    gallery = [Sample(paths[3], 1, 1, "visible"), Sample(paths[4], 2, 2, "visible"), Sample(paths[5], 1, 2, "visible"),
               Sample(paths[6], 2, 1, "visible")]  # fmt: skip
    return Split(query, gallery, "sysu", "infrared", "visible", EVIL_SCRIPT, 0)


def test_report_sections_and_escaping(tmp_path, evil_split):
    pytest.importorskip("matplotlib")
    dist = np.array([[0.5, 0.1, 0.2, 0.9], [0.3, 0.4, 0.1, 0.2], [0.6, 0.2, 0.7, 0.2]])
    analysis = analyse_split(dist, evil_split, num=2, topk=3)
    # identities are shown as text too: make one a markup string
    analysis = dataclasses.replace(analysis, query=[q._replace(pid=EVIL_ATTR) if i == 2 else q
                                                    for i, q in enumerate(evil_split.query)])  # fmt: skip
    report = EvaluationReport(EVIL_SCRIPT, [_record(EVIL_SCRIPT, t, 0.5 + 0.1 * t, 0.4) for t in range(2)],
                              {"rerank": True, "flip": False, "metric": "cosine"})  # fmt: skip
    path = write_report(tmp_path / "out", report, analysis, {"checkpoint": EVIL_ATTR, "note": EVIL_SCRIPT})
    text = path.read_text(encoding="utf-8")
    page = parse(text)
    names = [name for name, _ in page.tags]
    assert "script" not in names  # the only way a <script> tag could appear is through unescaped data
    assert not [a for _, a in page.tags if any(k.startswith("on") for k in a)]  # no event-handler attribute
    images = [a["src"] for name, a in page.tags if name == "img"]
    assert images and all(src.startswith("data:image/") for src in images)  # nothing to fetch
    assert not [a for _, a in page.tags if "href" in a]  # no link to anything outside the file
    shown = "".join(page.text)
    assert EVIL_SCRIPT in shown and f"id {EVIL_ATTR}" in shown  # shown as text, not lost
    assert "re-ranked (k-reciprocal)" in shown and "flip: off" in shown
    assert "55.00 ± 5.00" in shown  # rank-1 mean ± std over the two trials
    # 2 listed queries x (query + top-3), each one embedded thumbnail (+ CMC and distance plots)
    assert len(images) == 2 + 2 * 4 and {"cmc.png", "distances.png", "index.html"} <= {
        p.name for p in path.parent.iterdir()
    }
    # the hand-computed lists (see test_analysis): query 2 ranks g1, g3, g0 (match); query 1 ranks g2, g3 (match), g0
    marks = [a.get("class") for name, a in page.tags if name == "figure"]
    assert marks == ["query", "wrong", "wrong", "right", "query", "wrong", "right", "wrong"]
    assert shown.count("✓") == 2 + 1 and shown.count("✗") == 4 + 1  # + the legend sentence
    titles = [a["title"] for name, a in page.tags if name == "figure"]
    assert all(EVIL_ATTR in t for t in titles)  # file names kept as attribute text


def test_escape_helpers():
    assert escape(EVIL_ATTR) == "&quot;&gt;&lt;img src=x onerror=alert(2)&gt;"
    assert tag("a", EVIL_SCRIPT, href=EVIL_ATTR) == (
        '<a href="&quot;&gt;&lt;img src=x onerror=alert(2)&gt;">&lt;script&gt;alert(1)&lt;/script&gt;</a>'
    )
    page = render_page(EVIL_SCRIPT, EVIL_SCRIPT, tag("p", "$title"))
    assert "<script>" not in page and "<p>$title</p>" in page  # no template re-substitution either


def test_index_links_reports(tmp_path):
    path = write_index(tmp_path / "index.html", [{"name": EVIL_SCRIPT, "href": "a b/report/index.html", "mAP": "1"}],
                       title="ablation", note=f"note {EVIL_SCRIPT}", columns=["mAP"])  # fmt: skip
    html = path.read_text()
    page = parse(html)
    links = [a["href"] for name, a in page.tags if name == "a"]
    assert links == ["a b/report/index.html"] and EVIL_SCRIPT in "".join(page.text)
    assert "<script>" not in html and f"note {EVIL_SCRIPT}" in "".join(page.text)  # the note is escaped text


def test_without_matplotlib_names_the_extra(tmp_path, monkeypatch, evil_split):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    report = EvaluationReport("d", [_record("s", 0, 0.5, 0.4)], {})
    with pytest.raises(ImportError, match=r"pip install 'csdn\[viz\]'"):
        write_report(tmp_path / "out", report)


def test_html_helpers_attributes_and_separator():
    # attribute values None/False are left out, True gives a bare attribute; text children are escaped
    assert tag("a", "x<", href="h", title=None, hidden=False, download=True) == '<a href="h" download>x&lt;</a>'
    assert join(["a", "<b>", tag("i", "c")]) == "a\n&lt;b&gt;\n<i>c</i>"  # default separator: a newline
