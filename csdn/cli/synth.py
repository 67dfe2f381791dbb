"""``csdn data synth {sysu,regdb,llcm,csv} DIR``: a synthetic dataset in the real layout, for trying csdn offline.

The images are the identity-coded people of :mod:`csdn.data.synthetic` (colour for visible cameras, single-channel
intensity for infrared ones); every reader, the protocols and ``csdn train/eval/extract/export`` work on them.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

__all__ = ["SYNTH_LAYOUTS", "add_synth_parser", "synth_sizes"]

#: Layouts ``csdn data synth`` writes.
SYNTH_LAYOUTS = ("sysu", "regdb", "llcm", "csv")
_MIN_IDS = 4


def add_synth_parser(data_sub: Any) -> None:
    """Add ``synth`` to the ``csdn data`` sub-commands."""
    p = data_sub.add_parser(
        "synth", help="write a synthetic dataset in a real layout (no download)",
        description="Write a small synthetic dataset in the SYSU-MM01, RegDB, LLCM or CSV-list layout.",
    )  # fmt: skip
    p.add_argument("layout", choices=SYNTH_LAYOUTS, help="dataset layout to write")
    p.add_argument("dir", metavar="DIR", help="output folder (created; must be empty unless --force)")
    p.add_argument("--ids", type=int, help="identities in total, split into train/test like the real dataset")
    p.add_argument("--seed", type=int, default=0, help="random seed (the same seed writes the same dataset)")
    p.add_argument("--force", action="store_true", help="write into DIR even if it is not empty")
    p.set_defaults(func=_cmd_synth)


def synth_sizes(layout: str, ids: int | None) -> dict[str, int]:
    """Keyword sizes of ``csdn.data.synthetic.make_<layout>`` for ``ids`` identities in total (``None``: defaults).

    A third of the identities (at least 2) are test identities; SYSU-MM01 also keeps a seventh (at least 1) for
    its validation list; RegDB splits its identities in halves per trial itself.

    Raises:
        ValueError: if ``ids`` is below 4.
    """
    if ids is None:
        return {}
    if ids < _MIN_IDS:
        raise ValueError(f"--ids {ids} is too small: a {layout} dataset needs at least {_MIN_IDS} identities")
    if layout == "regdb":
        return {"num_ids": ids}
    test = max(2, ids // 3)
    if layout == "sysu":
        val = max(1, ids // 7)
        return {"num_train_ids": ids - test - val, "num_val_ids": val, "num_test_ids": test}
    return {"num_train_ids": ids - test, "num_test_ids": test}


def _cmd_synth(args: argparse.Namespace) -> int:
    from ..data import open_dataset, synthetic

    out = Path(args.dir)
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"DIR {args.dir!r} is a file; pass a folder to write the dataset into")
    if out.is_dir() and any(out.iterdir()) and not args.force:
        raise ValueError(f"DIR {args.dir!r} is not empty; pass an empty or new folder, or --force to write into it")
    make = getattr(synthetic, f"make_{args.layout}")
    make(os.fspath(out), seed=args.seed, **synth_sizes(args.layout, args.ids))
    print(open_dataset(args.layout, out).describe())
    print(f"wrote a synthetic {args.layout} dataset to {out}; try: csdn data stats {out}")
    return 0
