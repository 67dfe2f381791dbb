"""The one guard of file-derived text and declared sizes (csdn/_untrusted.py)."""

import pytest

from csdn._untrusted import byte_limit, error_line, first_line, printable, quoted


def test_printable_escapes_every_non_printable_character():
    text = "a\x1b[2J\x07b\nc\rd\te\u202ef\x00\ud800g\x9b"
    shown = printable(text)
    assert shown == r"a\x1b[2J\x07b\nc\rd\te\u202ef\x00\ud800g\x9b"
    assert shown.isprintable() and printable("plain, ünïcode ok") == "plain, ünïcode ok"


def test_text_is_capped_with_a_note_of_what_was_left_out():
    assert printable("x" * 10, limit=4) == "xxxx... (6 more characters)"
    assert len(quoted("y" * 10_000_000)) < 400  # a 10 MB string never reaches a terminal whole


def test_error_lines_keep_only_the_first_line():
    error = RuntimeError("size mismatch\nException raised from foo at bar.cpp:12\nframe #0: ...")
    assert error_line(error) == "size mismatch" and first_line(error) == "RuntimeError: size mismatch"
    assert error_line(ValueError("")) == "ValueError" and error_line(OSError("\x1b]0;x\x07")) == r"\x1b]0;x\x07"


def test_budgets_come_from_the_environment(monkeypatch):
    monkeypatch.delenv("CSDN_MAX_TENSOR_BYTES", raising=False)
    assert byte_limit("CSDN_MAX_TENSOR_BYTES") == 8 << 30
    monkeypatch.setenv("CSDN_MAX_TENSOR_BYTES", "1024")
    assert byte_limit("CSDN_MAX_TENSOR_BYTES") == 1024
    monkeypatch.setenv("CSDN_MAX_TENSOR_BYTES", "lots\x1b")
    with pytest.raises(ValueError, match=r"CSDN_MAX_TENSOR_BYTES='lots\\x1b' is invalid"):
        byte_limit("CSDN_MAX_TENSOR_BYTES")
