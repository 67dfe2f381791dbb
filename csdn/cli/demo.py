"""``csdn demo``: the whole method end to end on a laptop CPU in a few minutes, no download, no dataset.

Writes a synthetic dataset in the exact SYSU-MM01 layout (identity-coded people rendered in colour for the
visible cameras and as single-channel intensity for the infrared ones), builds a tiny random-init CLIP with the
real architecture, trains all three CSDN stages, evaluates with the real SYSU-MM01 protocol (all/indoor search,
single/multi-shot, 10 gallery trials) and prints the table next to the chance level (random rankings under the
same protocol).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from .._io import atomic_path
from ..data import SYSUMM01
from ..data.synthetic import make_sysu
from ..engine.build import build_csdn
from ..engine.config import TrainConfig, apply_overrides
from ..engine.presets import get_preset
from ..engine.trainer import Trainer
from ..evaluation.evaluator import EvaluationReport
from .reporting import make_evaluator, print_report

__all__ = ["DemoSetting", "DEMO_SETTINGS", "DemoResult", "run_demo"]

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class DemoSetting:
    """Size of the synthetic dataset and training overrides of one demo setting."""

    train_ids: int  # identities in exp/train_id.txt
    val_ids: int  # identities in exp/val_id.txt (SYSU trains on train + val)
    test_ids: int  # identities of the test protocol (chance rank-1 is about 1 / test_ids)
    images_per_cam: int  # images per (identity, camera) folder
    image_size: tuple[int, int]  # (height, width) of the synthetic images and of the model input
    overrides: tuple[str, ...] = ()  # --set style overrides of the "demo" preset


DEMO_SETTINGS: dict[str, DemoSetting] = {
    "default": DemoSetting(train_ids=48, val_ids=8, test_ids=30, images_per_cam=6, image_size=(64, 32)),
    "quick": DemoSetting(
        train_ids=20,
        val_ids=4,
        test_ids=10,
        images_per_cam=6,
        image_size=(64, 32),
        overrides=("stage1.epochs=2", "stage2.epochs=1", "stage3.epochs=16", "stage3.milestones=12"),
    ),
}


@dataclasses.dataclass
class DemoResult:
    """What the demo produced: the report, the chance level, where things are, and how long it took."""

    report: EvaluationReport
    chance: dict[str, dict[str, float]]
    checkpoint: Path
    run_dir: Path
    data_dir: Path
    seconds: float

    def headline(self, setting: str = "sysu all-search single-shot") -> dict[str, float]:
        """Mean rank-1 / mAP (fractions) of ``setting`` and its chance level."""
        stats = self.report.summary()[setting]
        return {
            "rank1": stats["rank1"]["mean"],
            "mAP": stats["mAP"]["mean"],
            "chance_rank1": self.chance[setting]["rank1"],
            "chance_mAP": self.chance[setting]["mAP"],
        }


def demo_config(setting: DemoSetting, run_dir: Path) -> TrainConfig:
    """The ``demo`` preset at the setting's image size, writing to ``run_dir``."""
    height, width = setting.image_size
    extra = [f"data.height={height}", f"data.width={width}", f"runtime.output_dir={run_dir}"]
    return apply_overrides(get_preset("demo"), [*extra, *setting.overrides])


def _write_dataset(root: Path, setting: DemoSetting, seed: int) -> None:
    """Write the synthetic SYSU-MM01 tree once (into a temporary sibling, then renamed into place)."""
    if (root / "exp" / "test_id.txt").is_file():
        logger.info("reusing the synthetic dataset in %s", root)
        return
    with atomic_path(root) as staging:
        make_sysu(
            staging,
            num_train_ids=setting.train_ids,
            num_val_ids=setting.val_ids,
            num_test_ids=setting.test_ids,
            images_per_cam=setting.images_per_cam,
            image_size=setting.image_size,
            seed=seed,
        )
        if root.exists():  # an incomplete tree from an older run (os.replace cannot overwrite a full folder)
            shutil.rmtree(root)


def run_demo(
    directory: str | os.PathLike | None = None,
    *,
    quick: bool = False,
    seed: int = 0,
    threads: int | None = 1,
    out: Callable[[str], Any] = print,
) -> DemoResult:
    """Generate data, train all three stages, evaluate with the SYSU-MM01 protocol, print the results.

    Args:
        directory: working folder (created); ``None`` makes a new temporary folder. An existing demo folder is
            reused: the dataset is kept and a finished or interrupted run is resumed.
        quick: the smaller ``quick`` setting (used by the regression test) instead of ``default``.
        seed: seed of the synthetic dataset.
        threads: torch intra-op threads during the demo (restored afterwards); ``None`` keeps torch's setting.
            The default 1 is the safe choice for these tiny models: on an idle 2-core CPU two threads are about
            25% faster, but when other processes compete for the cores, spinning OpenMP threads make two threads
            many times slower.
        out: where the summary lines go (``print`` for the CLI).

    Returns:
        A :class:`DemoResult`.
    """
    previous = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        return _run(directory, quick, seed, out)
    finally:
        torch.set_num_threads(previous)


def _run(directory: str | os.PathLike | None, quick: bool, seed: int, out: Callable[[str], Any]) -> DemoResult:
    tic = time.perf_counter()
    name = "quick" if quick else "default"
    setting = DEMO_SETTINGS[name]
    workdir = Path(directory) if directory is not None else Path(tempfile.mkdtemp(prefix="csdn-demo-"))
    workdir.mkdir(parents=True, exist_ok=True)
    data_dir, run_dir = workdir / f"sysu-synthetic-{name}", workdir / f"run-{name}"
    out(f"csdn demo ({name}): synthetic SYSU-MM01 in {data_dir}, run in {run_dir}")
    _write_dataset(data_dir, setting, seed)
    dataset = SYSUMM01(data_dir)
    cfg = demo_config(setting, run_dir)
    model = build_csdn(cfg, dataset.train.num_classes)
    out(f"tiny random CLIP ({cfg.model.clip}), {sum(p.numel() for p in model.parameters()) / 1e6:.2f}M parameters; "
        f"{dataset.train.num_classes} training identities, input {cfg.data.height}x{cfg.data.width}")  # fmt: skip
    resume = (run_dir / "checkpoints" / "last.pt").is_file()
    checkpoint = Trainer(cfg, model, dataset.train).fit(resume=resume)
    evaluator = make_evaluator(dataset, cfg, torch.device("cpu"))
    report = evaluator.run(model.eval(), chance=True)  # the table prints the chance level under it
    print_report(report, run_dir / "eval.json", out)
    assert report.chance is not None  # run(chance=True) always estimates it
    result = DemoResult(report, report.chance.values, checkpoint, run_dir, data_dir, time.perf_counter() - tic)
    head = result.headline()
    out(
        f"all-search single-shot: rank-1 {100 * head['rank1']:.1f}% (chance {100 * head['chance_rank1']:.1f}%), "
        f"mAP {100 * head['mAP']:.1f}% (chance {100 * head['chance_mAP']:.1f}%)"
    )
    config = next((p for p in (run_dir / "config.yaml", run_dir / "config.json") if p.is_file()), run_dir)
    out(f"checkpoint: {checkpoint}\nlogs: {run_dir / 'metrics.jsonl'} (per-epoch losses), {config}, "
        f"{run_dir / 'run.json'}; results: {run_dir / 'eval.json'}\ntotal time {result.seconds:.0f} s")  # fmt: skip
    return result
