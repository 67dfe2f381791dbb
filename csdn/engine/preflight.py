"""Checks before training: what the data and the resolved configuration can be seen to refuse, told up front.

:func:`preflight` runs before any model is built or file written (``csdn train`` calls it right after reading
the dataset), so a run that cannot work fails in seconds instead of after stages 1-2. It looks at the training
split (after ``data.val_ids`` held out a validation split) and the stages the configuration trains:

* ``stage3.num_ids`` (P) against the identities with images in both modalities: the identity sampler of stage 3
  (and of the official sampled feature bank of stages 1-2) draws P different identities per batch;
* ``stage1.batch_size`` and ``stage2.batch_size`` against the features an epoch of each stage holds (one per
  image of the larger modality in stage 1, of both modalities in stage 2, or one official sampler epoch), by
  drawing an epoch's batches with the very functions training uses (:mod:`csdn.engine.batching`);
* stage 1's identity-aligned pairs: every identity of the larger modality needs an image in the other one;
* ``runtime.eval_trials`` against the trials of the test protocol (periodic evaluation without ``data.val_ids``).

Every problem found becomes part of one :class:`PreflightError` line that names each key, the counts and a
``--set`` that fixes it. Output folders are checked by ``csdn.cli.paths.check_output_dir`` (the command line).

:func:`resume_conflicts` is the resume rule of the trainer: settings of stages that have not started yet may
change when a run is continued (a stage that failed before its first epoch can be rerun with other settings),
settings that already shaped the checkpoint may not.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

import torch

from ..data.samplers import CrossModalityIdentitySampler
from ..data.samples import TrainSplit
from ..models.factory import resolve_ablation
from .batching import paired_batches, shuffled_batches
from .config import TrainConfig, config_differences, config_to_dict
from .inputs import holdout_validation

__all__ = ["PreflightError", "Problem", "preflight", "find_problems", "resume_conflicts"]


class PreflightError(ValueError):
    """The data cannot feed the configuration (one line: every problem, its counts and the fix)."""


class Problem(NamedTuple):
    """One thing the configuration asks that the data cannot give.

    Attributes:
        key: The configuration key to change (``"stage3.num_ids"``).
        message: What is wrong, with the counts.
        fix: A value of ``key`` that works, or ``None`` when no value does (the data must change).
    """

    key: str
    message: str
    fix: Any = None


def preflight(cfg: TrainConfig, dataset: Any) -> None:
    """Raise :class:`PreflightError` if ``cfg`` cannot train on ``dataset`` (see the module docstring).

    Args:
        cfg: The resolved run configuration.
        dataset: The reader (:class:`csdn.data.VIReIDDataset`): ``train`` and ``trials`` are read.

    Raises:
        PreflightError: one line naming every problem (key, counts) and the ``--set`` items that fix them.
    """
    problems = find_problems(cfg, dataset.train, len(dataset.trials))
    if not problems:
        return
    fixes = [f"--set {p.key}={p.fix}" for p in problems if p.fix is not None]
    advice = f"; fix: {' '.join(fixes)}" if fixes else ""
    raise PreflightError(
        f"checked before training, this run cannot work: {'; '.join(p.message for p in problems)}{advice} "
        "(nothing was written)"
    )


def find_problems(cfg: TrainConfig, train: TrainSplit, num_trials: int) -> list[Problem]:
    """The problems :func:`preflight` reports, in the order of the stages (empty when the run can start).

    Args:
        cfg: The resolved run configuration.
        train: The training split of the dataset (before ``data.val_ids`` is held out).
        num_trials: Trials of the dataset's test protocol.
    """
    problems: list[Problem] = []
    if cfg.data.val_ids > 0:
        try:
            train, _ = holdout_validation(train, cfg.data.val_ids, cfg.runtime.seed)
        except ValueError as error:
            return [Problem("data.val_ids", str(error), max(0, len(train.pids) - 2) or None)]
    if not train.visible or not train.infrared:
        missing = "visible" if not train.visible else "infrared"
        return [Problem("data.root", f"the training split has no {missing} image", None)]
    stages = resolve_ablation(cfg.model).stages
    sampled = cfg.quirks.sampled_feature_bank and any(s in stages for s in (1, 2))
    both = _identities_in_both(train)
    s3 = cfg.stage3
    pairs = None  # pairs of the official sampled bank of stages 1-2, when it can be drawn
    if 3 in stages or sampled:
        if both < s3.num_ids:
            suggestion = both if both >= 2 else None
            problems.append(
                Problem(
                    "stage3.num_ids",
                    f"stage3.num_ids={s3.num_ids} identities per batch, but only {both} training identities have "
                    "images in both modalities",
                    suggestion,
                )
            )
        elif sampled:
            pairs = len(CrossModalityIdentitySampler.from_split(train, s3.num_ids, s3.num_pos))
    if 1 in stages and cfg.stage1.epochs > 0:
        problems += _stage1_problems(cfg, train, pairs, sampled)
    if 2 in stages and cfg.stage2.epochs > 0 and not (sampled and pairs is None):
        if sampled:
            assert pairs is not None  # the condition above excludes a sampled bank without pairs
            items, what = 2 * pairs, "features of one sampler epoch"
        else:
            items, what = len(train.visible) + len(train.infrared), "features of both modalities"
        size = cfg.stage2.batch_size
        problems += _batch_problem("stage2.batch_size", size, items, what, _shuffled(items, size))
    if 3 in stages and cfg.runtime.eval_every > 0 and cfg.data.val_ids == 0 and cfg.runtime.eval_trials > num_trials:
        problems.append(
            Problem(
                "runtime.eval_trials",
                f"runtime.eval_trials={cfg.runtime.eval_trials} trials per periodic evaluation, but the test "
                f"protocol has {num_trials}",
                num_trials,
            )
        )
    return problems


def _identities_in_both(train: TrainSplit) -> int:
    return len({s.label for s in train.visible} & {s.label for s in train.infrared})


def _labels(samples: list) -> torch.Tensor:
    return torch.tensor([s.label for s in samples], dtype=torch.long)


def _shuffled(items: int, batch_size: int) -> list[torch.Tensor]:
    return shuffled_batches(items, batch_size, torch.Generator().manual_seed(0))


def _stage1_problems(cfg: TrainConfig, train: TrainSplit, pairs: int | None, sampled: bool) -> list[Problem]:
    size = cfg.stage1.batch_size
    if sampled:
        if pairs is None:  # stage3.num_ids already reported: the bank cannot be drawn
            return []
        return _batch_problem("stage1.batch_size", size, pairs, "pairs of one sampler epoch", _shuffled(pairs, size))
    visible, infrared = _labels(train.visible), _labels(train.infrared)
    anchor, other = (infrared, visible) if infrared.numel() > visible.numel() else (visible, infrared)
    lonely = sorted(set(anchor.tolist()) - set(other.tolist()))
    if lonely:
        pids = train.pids
        return [
            Problem(
                "data.root",
                f"stage 1 pairs every training image with one of the same identity in the other modality, but "
                f"{len(lonely)} identities have images in one modality only (pids {[pids[i] for i in lonely[:5]]})",
            )
        ]
    try:
        batches = paired_batches(visible, infrared, size, torch.Generator().manual_seed(0))
    except ValueError as error:
        return [Problem("stage1.batch_size", f"stage1.batch_size={size}: {error}")]
    return _batch_problem("stage1.batch_size", size, anchor.numel(), "identity-aligned pairs", batches)


def _batch_problem(key: str, size: int, items: int, what: str, batches: list) -> list[Problem]:
    """A problem when an epoch of ``items`` cut into batches of ``size`` gives no batch, or an empty one."""
    sizes = [_batch_len(b) for b in batches]
    if sizes and min(sizes) > 0:
        return []
    fix = items if items >= 2 else None
    return [Problem(key, f"{key}={size}, but an epoch holds only {items} {what} (no full batch)", fix)]


def _batch_len(batch: Any) -> int:
    return batch[0].numel() if isinstance(batch, tuple) else batch.numel()


# ------------------------------------------------------------------------------------------------------- resume


#: the ``runtime`` keys a resumed run must keep: they decide which batches, dropout masks and algorithms the rest of
#: the run draws, so a change would silently continue another run than the checkpoint's
RESUME_FIXED_RUNTIME = ("seed", "deterministic")


def resume_conflicts(saved: Mapping[str, Any], cfg: TrainConfig, stage: int) -> tuple[list[str], list[str]]:
    """Split the differences between a checkpoint's configuration and ``cfg`` into refused and accepted ones.

    Of ``runtime`` only :data:`RESUME_FIXED_RUNTIME` is compared (they decide every later draw); the rest may
    change on resume. A ``stageK.*`` setting of a stage that has not
    started (``K > stage``) may change, unless an earlier stage already read it: with
    ``quirks.sampled_feature_bank`` stages 1-2 draw their feature banks with ``stage3.num_ids``/``num_pos``.

    Args:
        saved: The checkpoint's ``config`` (nested dict of :func:`csdn.engine.config.config_to_dict`).
        cfg: The configuration of the resumed run.
        stage: The stage of the checkpoint (1, 2 or 3; it has run at least one epoch).

    Returns:
        ``(refused, accepted)``: ``"section.key: old -> new"`` strings.
    """
    early_reads = {"stage3.num_ids", "stage3.num_pos"} if cfg.quirks.sampled_feature_bank else set()
    current = config_to_dict(cfg)
    fixed = {"runtime": {key: current["runtime"][key] for key in RESUME_FIXED_RUNTIME}}
    refused = config_differences(saved, fixed)  # the rest of runtime may change (amp, clipping, ...)
    accepted: list[str] = []
    for diff in config_differences(saved, current, ignore=("runtime",)):
        key = diff.partition(":")[0]
        section = key.partition(".")[0]
        later = section.startswith("stage") and section[5:].isdigit() and int(section[5:]) > stage
        (accepted if later and key not in early_reads else refused).append(diff)
    return refused, accepted
