"""Command-line options shared by several ``csdn`` sub-commands."""

from __future__ import annotations

import argparse

__all__ = ["add_clip", "add_metric_option", "add_plugin_option", "add_trust_code", "load_plugin_options"]


def add_trust_code(p: argparse.ArgumentParser) -> None:
    """``--trust-code``: the opt-in to ``torch.jit.load`` for CLIP archives the data-only reader refuses."""
    p.add_argument(
        "--trust-code", action="store_true",
        help="let a CLIP TorchScript archive that csdn's data-only reader refuses be loaded with torch.jit.load, "
        "which RUNS CODE STORED IN THE FILE (only for files you trust; never needed for OpenAI's releases)",
    )  # fmt: skip


def add_plugin_option(p: argparse.ArgumentParser) -> None:
    """``--plugin MODULE`` (repeatable): import modules that register dataset readers, before the command runs."""
    p.add_argument(
        "--plugin", dest="plugins", action="append", default=[], metavar="MODULE",
        help="import MODULE (a module name, or a .py file) first, so the dataset readers it registers with "
        "csdn.data.register_dataset work with --dataset (repeatable; installed packages use the 'csdn.datasets' "
        "entry points instead)",
    )  # fmt: skip


def load_plugin_options(args: argparse.Namespace) -> None:
    """Import the ``--plugin`` modules of a parsed command, if it has any (see :func:`add_plugin_option`)."""
    plugins = getattr(args, "plugins", None)
    if plugins:
        from ..data.registry import load_plugins

        load_plugins(plugins)


def add_metric_option(p: argparse.ArgumentParser) -> None:
    """``--metric`` of ``eval`` and ``extract``: one of :data:`csdn.evaluation.fused.METRICS`."""
    from ..evaluation.fused import METRICS

    p.add_argument(
        "--metric", choices=METRICS,
        help="eval: the query-gallery distance (default cosine: for CSDN's constant-norm features, the ranking of "
        "the official inner product); extract: the distance the written features are for (cosine: unit-length "
        "rows, compare by dot product; euclidean or omitted: the model's rows, norm 2 with --flip)",
    )  # fmt: skip


def add_clip(p: argparse.ArgumentParser) -> None:
    """``--clip``: the CLIP weights of an old checkpoint without a CLIP architecture record (never chosen by it)."""
    p.add_argument(
        "--clip", metavar="PATH_OR_NAME",
        help="only for a checkpoint written by an older csdn (no CLIP architecture record): the CLIP weights it was "
        "trained from, an official name or a local file; a checkpoint never chooses a file itself",
    )  # fmt: skip
