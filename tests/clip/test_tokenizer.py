"""Tokenizer tests: ids identical to open_clip's tokenizer, laziness, truncation and error messages."""

import subprocess
import sys

import pytest
import torch

from csdn.clip import tokenize
from csdn.clip.tokenizer import SimpleTokenizer, default_tokenizer

open_clip_tokenizer = pytest.importorskip("open_clip.tokenizer")

TEXTS = [
    "",
    "a photo of a person.",
    "A Photo Of A PERSON wearing a RED jacket!!",
    "   leading and trailing\twhitespace\n\nand newlines   ",
    "café naïve façade coöperate — “quotes” ‘single’ …",
    "日本語のテキスト、中文文本，한국어 텍스트",
    "emoji 😀👍🏽 family 👨‍👩‍👧 flags 🇫🇷🇯🇵",
    "HTML entities &amp; &lt;b&gt;bold&lt;/b&gt; &quot;q&quot; &#39;s &amp;amp; &eacute;",
    "mojibake: cafÃ© and â€œquotedâ€\x9d",
    "numbers 1234567890 3.14159 1e-5 #hashtag @user http://example.com/a?b=c",
    "contractions: it's they're we've I'm you'll he'd can't",
    "Ελληνικά Русский текст עברית العربية हिन्दी",
    "control \x00\x01 chars and tabs\tand zero\u200bwidth",
]
LONG_TEXT = " ".join(f"word{i} pedestrian" for i in range(60))


@pytest.fixture(scope="module")
def reference() -> "open_clip_tokenizer.SimpleTokenizer":
    return open_clip_tokenizer.SimpleTokenizer()


def test_ids_match_open_clip_on_varied_texts(reference):
    ours = tokenize(TEXTS)
    expected = reference(TEXTS, context_length=77)
    assert ours.dtype == torch.long and ours.shape == (len(TEXTS), 77)
    torch.testing.assert_close(ours, expected, rtol=0, atol=0)


def test_empty_string_is_sot_eot_then_padding():
    assert tokenize("")[0, :3].tolist() == [49406, 49407, 0]


def test_long_text_truncates_like_open_clip_and_keeps_eot_last(reference):
    ours = tokenize([LONG_TEXT], truncate=True)
    torch.testing.assert_close(ours, reference([LONG_TEXT], context_length=77), rtol=0, atol=0)
    assert ours[0, -1].item() == 49407


def test_long_text_without_truncate_raises_clear_error():
    with pytest.raises(ValueError, match="too long for context_length 77.*truncate=True"):
        tokenize(["short", LONG_TEXT])


def test_custom_context_length_matches_open_clip(reference):
    torch.testing.assert_close(tokenize(TEXTS[:4], context_length=16), reference(TEXTS[:4], 16), rtol=0, atol=0)


def test_decode_round_trip():
    tok = default_tokenizer()
    assert tok.decode(tok.encode("A photo of a café person")).strip() == "a photo of a café person"


def test_wrong_vocab_hash_is_reported(tmp_path):
    bad = tmp_path / "vocab.txt.gz"
    bad.write_bytes(b"not a vocabulary")
    with pytest.raises(ValueError, match="SHA-256 .* expected"):
        SimpleTokenizer(bad)
    with pytest.raises(FileNotFoundError, match="not found"):
        SimpleTokenizer(tmp_path / "missing.txt.gz")


def test_import_builds_nothing():
    code = (
        "import csdn.clip, csdn.clip.tokenizer as t, sys; "
        "assert t.default_tokenizer.cache_info().currsize == 0; assert 'open_clip' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
