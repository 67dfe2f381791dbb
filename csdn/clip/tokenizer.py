"""CLIP's byte-level BPE tokenizer (ftfy + regex pre-tokenisation), built lazily on first use.

Nothing is read or built at import. The shipped vocabulary ``bpe_simple_vocab_16e6.txt.gz`` is checked
against its SHA-256 when the default tokenizer is first built.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import html
from collections.abc import Sequence
from pathlib import Path

import torch

VOCAB_FILE = Path(__file__).with_name("bpe_simple_vocab_16e6.txt.gz")
VOCAB_SHA256 = "924691ac288e54409236115652ad4aa250f48203de50a9e4722a6ecd48d6804a"
SOT_TEXT, EOT_TEXT = "<|startoftext|>", "<|endoftext|>"
_NUM_MERGES = 49152 - 256 - 2  # merges used by CLIP (the file holds more)
_WORD_END = "</w>"


@functools.lru_cache(maxsize=1)
def bytes_to_unicode() -> dict[int, str]:
    """Reversible map from the 256 byte values to printable unicode characters.

    Printable Latin-1 bytes map to themselves; the remaining bytes (controls, space, ...) are shifted to
    code points 256, 257, ... in byte order, so BPE never sees whitespace or control characters. The
    dict's order (printable bytes first, then the others) is the order of the first 256 vocabulary entries.
    """
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    others = [b for b in range(256) if b not in printable]
    mapping = {b: chr(b) for b in printable}
    mapping.update({b: chr(256 + i) for i, b in enumerate(others)})
    return mapping


def clean_text(text: str) -> str:
    """Fix mojibake (ftfy), unescape HTML entities twice, collapse whitespace and lowercase."""
    import ftfy

    text = html.unescape(html.unescape(ftfy.fix_text(text))).strip()
    return " ".join(text.split()).lower()


def file_sha256(path: str | Path, chunk_size: int = 1 << 20) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(chunk_size), b""):
            digest.update(chunk)
    return digest.hexdigest()


class SimpleTokenizer:
    """Byte-level BPE tokenizer compatible with OpenAI's CLIP (ids 49406/49407 are SOT/EOT).

    Args:
        bpe_path: Gzipped merges file (default: the shipped vocabulary).
        sha256: Expected SHA-256 of ``bpe_path``; None skips the check.

    Raises:
        FileNotFoundError: If ``bpe_path`` does not exist.
        ValueError: If its SHA-256 differs from ``sha256``.
    """

    def __init__(self, bpe_path: str | Path = VOCAB_FILE, sha256: str | None = VOCAB_SHA256) -> None:
        import regex

        bpe_path = Path(bpe_path)
        if not bpe_path.is_file():
            raise FileNotFoundError(f"BPE vocabulary {bpe_path} not found; reinstall csdn to restore package data")
        if sha256 is not None and (actual := file_sha256(bpe_path)) != sha256:
            raise ValueError(
                f"BPE vocabulary {bpe_path} has SHA-256 {actual}, expected {sha256}; the file is corrupt or "
                "not CLIP's bpe_simple_vocab_16e6.txt.gz - reinstall csdn"
            )
        lines = gzip.decompress(bpe_path.read_bytes()).decode("utf-8").split("\n")
        merges = [tuple(line.split()) for line in lines[1 : _NUM_MERGES + 1]]
        chars = list(bytes_to_unicode().values())
        vocab = chars + [c + _WORD_END for c in chars] + ["".join(m) for m in merges] + [SOT_TEXT, EOT_TEXT]
        self.encoder: dict[str, int] = {token: i for i, token in enumerate(vocab)}
        self.decoder: dict[int, str] = dict(enumerate(vocab))
        self.bpe_ranks: dict[tuple[str, ...], int] = {m: i for i, m in enumerate(merges)}
        self.byte_encoder = bytes_to_unicode()
        self.byte_decoder = {c: b for b, c in self.byte_encoder.items()}
        self.sot_token_id, self.eot_token_id = self.encoder[SOT_TEXT], self.encoder[EOT_TEXT]
        self.vocab_size = len(vocab)
        self._cache: dict[str, tuple[str, ...]] = {SOT_TEXT: (SOT_TEXT,), EOT_TEXT: (EOT_TEXT,)}
        pieces = r"""<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+"""
        self._pattern = regex.compile(pieces, regex.IGNORECASE)

    def bpe(self, word: str) -> tuple[str, ...]:
        """Split one pre-token (byte-mapped characters) into BPE symbols, the last one ending in ``</w>``."""
        if word in self._cache:
            return self._cache[word]
        symbols = [*word[:-1], word[-1] + _WORD_END]
        while len(symbols) > 1:
            pair = min(zip(symbols, symbols[1:], strict=False), key=lambda p: self.bpe_ranks.get(p, _NUM_MERGES))
            if pair not in self.bpe_ranks:
                break
            merged, i = [], 0
            while i < len(symbols):  # merge every non-overlapping occurrence, left to right
                if i + 1 < len(symbols) and (symbols[i], symbols[i + 1]) == pair:
                    merged.append(symbols[i] + symbols[i + 1])
                    i += 2
                else:
                    merged.append(symbols[i])
                    i += 1
            symbols = merged
        self._cache[word] = tuple(symbols)
        return self._cache[word]

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text`` without SOT/EOT."""
        ids: list[int] = []
        for piece in self._pattern.findall(clean_text(text)):
            mapped = "".join(self.byte_encoder[b] for b in piece.encode("utf-8"))
            ids.extend(self.encoder[s] for s in self.bpe(mapped))
        return ids

    def decode(self, ids: Sequence[int]) -> str:
        """Text of token ids (word ends become spaces; invalid UTF-8 is replaced)."""
        raw = bytes(self.byte_decoder[c] for i in ids for c in self.decoder[int(i)])
        return raw.decode("utf-8", errors="replace").replace(_WORD_END, " ")


@functools.lru_cache(maxsize=1)
def default_tokenizer() -> SimpleTokenizer:
    """The shared tokenizer over the shipped, SHA-256-checked vocabulary (built on first call)."""
    return SimpleTokenizer()


def tokenize(texts: str | Sequence[str], context_length: int = 77, truncate: bool = False) -> torch.Tensor:
    """Tokenize text(s) into CLIP's fixed-length id rows: SOT, BPE ids, EOT, zero padding.

    Args:
        texts: One string or a sequence of strings.
        context_length: Row length (77 for OpenAI's CLIP).
        truncate: Cut over-long texts to ``context_length`` keeping EOT last; if False they raise.

    Returns:
        int64 tensor of shape ``(N, context_length)``.

    Raises:
        ValueError: If a text needs more than ``context_length`` tokens and ``truncate`` is False, or if
            ``context_length < 2``.
    """
    if context_length < 2:
        raise ValueError(f"context_length must be >= 2 (room for SOT and EOT), got {context_length}")
    if isinstance(texts, str):
        texts = [texts]
    tok = default_tokenizer()
    result = torch.zeros(len(texts), context_length, dtype=torch.long)
    for row, text in enumerate(texts):
        ids = [tok.sot_token_id, *tok.encode(text), tok.eot_token_id]
        if len(ids) > context_length:
            if not truncate:
                raise ValueError(
                    f"Input text {row} is too long for context_length {context_length}: it has {len(ids)} tokens "
                    f"including SOT/EOT (text starts {text[:40]!r}); shorten it or pass truncate=True"
                )
            ids = ids[: context_length - 1] + [tok.eot_token_id]
        result[row, : len(ids)] = torch.tensor(ids)
    return result
