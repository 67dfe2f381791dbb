"""Feature extraction reports its progress: a callable, log lines off a terminal, a bar on one, or nothing."""

import io
import logging
import re
import sys

import pytest
import torch
from PIL import Image
from torch import nn

from csdn._progress import Progress
from csdn.data.samples import Sample
from csdn.evaluation.features import extract_features


class MeanColour(nn.Module):
    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(torch.ones(1))

    def encode_image(self, images, modality):
        return images.mean(dim=(2, 3)) * self.scale  # (B, 3)


@pytest.fixture
def samples(tmp_path):
    out = []
    for i in range(5):
        path = tmp_path / f"{i}.png"
        Image.new("RGB", (8, 16), (10 * i, 0, 0)).save(path)
        out.append(Sample(str(path), pid=i, cam=1, modality="visible", label=-1))
    return out


def run(samples, progress):
    return extract_features(MeanColour(), samples, "visible", batch_size=2, flip=False, progress=progress)


def test_callable_receives_done_and_total_after_every_batch(samples):
    calls = []
    feats = run(samples, lambda done, total: calls.append((done, total)))
    assert calls == [(2, 5), (4, 5), (5, 5)] and feats.shape == (5, 3)


def test_log_lines_off_a_terminal_and_silence(samples, caplog, monkeypatch):
    monkeypatch.setattr(Progress, "log_interval_s", 0.0)  # a line at every batch (but the last)
    monkeypatch.setattr(sys.stderr, "isatty", lambda: False, raising=False)
    caplog.set_level(logging.INFO, logger="csdn")
    run(samples, True)
    lines = [r.getMessage() for r in caplog.records]
    assert [line.split(" (")[0] for line in lines] == [
        "extracting 5 visible features: 2/5",
        "extracting 5 visible features: 4/5",
    ]
    assert all("/s, eta 0:00:" in line for line in lines)
    caplog.clear()
    run(samples, False)
    assert caplog.records == []


def test_bar_on_a_terminal(samples, caplog, monkeypatch):
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    monkeypatch.setattr(Progress, "log_interval_s", 0.0)
    caplog.set_level(logging.INFO, logger="csdn")
    run(samples, True)
    assert re.search(r"extracting 5 visible features: +\d+%\|.*\| \d/5 \[", terminal.getvalue())
    assert caplog.records == []  # the bar replaces the log lines


def test_log_lines_print_above_an_open_bar(monkeypatch):
    """On a terminal, a csdn log line clears the bar's line first instead of being appended to the bar's text."""
    from csdn._progress import StderrLogHandler

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    term = Terminal()
    monkeypatch.setattr(sys, "stderr", term)
    log = logging.getLogger("csdn.test_bar")
    log.propagate = False
    handler = StderrLogHandler()
    handler.setFormatter(logging.Formatter("%(message)s"))  # the message alone, to find where its line starts
    log.addHandler(handler)
    try:
        with Progress(10, "extracting", unit="img") as bar:
            bar.update(3)
            log.warning("a message")
            bar.update(3)
    finally:
        log.removeHandler(handler)
    text = term.getvalue()
    assert "a message\n" in text
    before = text[: text.index("a message")]
    assert "extracting" in before  # the bar was drawn first
    line_start = max(before.rfind("\r"), before.rfind("\n"))
    assert before[line_start + 1 :].strip() == ""  # the message starts a cleared line, not the bar's
