"""Command-line options shared by several ``csdn`` sub-commands."""

from __future__ import annotations

import argparse

__all__ = ["add_trust_code", "add_clip"]


def add_trust_code(p: argparse.ArgumentParser) -> None:
    """``--trust-code``: the opt-in to ``torch.jit.load`` for CLIP archives the data-only reader refuses."""
    p.add_argument(
        "--trust-code", action="store_true",
        help="let a CLIP TorchScript archive that csdn's data-only reader refuses be loaded with torch.jit.load, "
        "which RUNS CODE STORED IN THE FILE (only for files you trust; never needed for OpenAI's releases)",
    )  # fmt: skip


def add_clip(p: argparse.ArgumentParser) -> None:
    """``--clip``: the CLIP weights of an old checkpoint without a CLIP architecture record (never chosen by it)."""
    p.add_argument(
        "--clip", metavar="PATH_OR_NAME",
        help="only for a checkpoint written by an older csdn (no CLIP architecture record): the CLIP weights it was "
        "trained from, an official name or a local file; a checkpoint never chooses a file itself",
    )  # fmt: skip
