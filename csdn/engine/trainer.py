"""The three-stage CSDN trainer: resumable, distributed-ready, with NaN guards, AMP and JSON-lines metrics.

A run folder (``cfg.runtime.output_dir``) holds ``config.yaml`` (or ``.json`` without PyYAML), ``run.json``
(seed, versions, git commit), ``metrics.jsonl`` and ``checkpoints/``: ``last.pt`` (overwritten atomically at
every checkpoint, everything needed to resume) and ``final.pt`` (the model after the last epoch; CSDN never
selects a model on the test set).

This module orchestrates the stages; their computations live in :mod:`csdn.engine.stages` and the frozen
image-feature banks of stages 1-2 (official quirks, cache files) in :mod:`csdn.engine.feature_bank`.

Example:
    >>> trainer = Trainer(cfg, model, dataset.train, evaluate=my_eval_fn)
    >>> final_checkpoint = trainer.fit(resume=True)
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol, cast

import torch
from torch import nn

from ..data.samples import TrainSplit
from ..models import CSDN
from ..models.checkpoint import final_checkpoint, load_checkpoint, save_checkpoint, training_checkpoint
from ..models.schema import check_model_record, check_shapes
from .config import TrainConfig, config_to_dict
from .distributed import (
    DistInfo,
    all_reduce_mean,
    barrier,
    dist_info_from_env,
    resolve_device,
)
from .feature_bank import StageFeatureBanks
from .logs import IterationLog, run_log_handlers
from .preflight import resume_conflicts
from .rng import (
    capture_rng_state,
    deterministic_algorithms,
    gather_rng_states,
    restore_rank_rng_state,
    restore_rng_state,
    seed_global_rngs,
)
from .run_dir import RunClaim, claim_run_folder, tidy_for_resume
from .schedules import schedule_problems
from .stages import Stage, StageContext, build_stages
from .sync_batchnorm import convert_sync_batchnorm
from .tracking import EpochMeter, MetricsLogger, save_run_config, save_snapshot, write_run_files

__all__ = ["Trainer", "NonFiniteLossError", "EvaluateFn", "EpochCallback", "StepCallback"]

logger = logging.getLogger(__name__)


class EvaluateFn(Protocol):
    """Periodic evaluation: ``evaluate(model, trials) -> {"rank1": ..., "mAP": ...}`` (rank 0, model in eval mode)."""

    def __call__(self, model: nn.Module, trials: int) -> Mapping[str, float]:
        """``trials``: number of gallery trials to average; returns metric name -> value (logged, never used to
        select a model)."""


class EpochCallback(Protocol):
    """Called after every epoch, after its checkpoint (and evaluation): ``callback(trainer, stage, epoch)``."""

    def __call__(self, trainer: Trainer, stage: int, epoch: int) -> None:
        """``stage``: 1, 2 or 3; ``epoch``: 0-based index of the epoch that just finished."""


class StepCallback(Protocol):
    """Called before or after each optimiser step: ``callback(trainer, stage, epoch, iteration, losses)``."""

    def __call__(self, trainer: Trainer, stage: int, epoch: int, iteration: int, losses: Mapping[str, float]) -> None:
        """``stage``: 1, 2 or 3; ``epoch`` and ``iteration``: 0-based (``iteration`` within the epoch);
        ``losses``: this rank's loss terms of the batch as floats, ``"loss"`` being the one back-propagated.
        A before-step callback runs after the forward pass and loss, before the backward pass; an after-step one
        after the optimiser (and GradScaler) step. An exception stops the run (``last.pt`` is untouched).
        """


class NonFiniteLossError(RuntimeError):
    """A training loss became NaN or infinite; the run stopped and the last good checkpoint is untouched."""


class Trainer:
    """Runs the CSDN stages a configuration asks for (its stage objects, :func:`csdn.engine.stages.build_stages`).

    Args:
        cfg: the run configuration.
        model: a :class:`csdn.models.CSDN` (moved to the run's device).
        train: the training split (``dataset.train``).
        evaluate: optional periodic evaluation ``evaluate(model, trials)`` run on rank 0 every
            ``cfg.runtime.eval_every`` stage-3 epochs (the trainer never imports the evaluator).
        callbacks: called after each epoch as ``callback(trainer, stage, epoch)`` (:class:`EpochCallback`).
        before_step: called before each optimiser step as ``callback(trainer, stage, epoch, iteration, losses)``
            (:class:`StepCallback`).
        after_step: called after each optimiser step, with the same arguments.
        dist_info: the process's rank/world size (default: read from the ``torchrun`` environment).
    """

    def __init__(
        self,
        cfg: TrainConfig,
        model: CSDN,
        train: TrainSplit,
        *,
        evaluate: EvaluateFn | None = None,
        callbacks: Sequence[EpochCallback] = (),
        before_step: Sequence[StepCallback] = (),
        after_step: Sequence[StepCallback] = (),
        dist_info: DistInfo | None = None,
    ) -> None:
        self.cfg = cfg
        self.dist = dist_info or dist_info_from_env()
        self.device = resolve_device(cfg.runtime.device, self.dist)
        self.model = model.to(self.device)
        if self.dist.distributed:  # BatchNorm statistics of the global batch (before DDP and the optimisers)
            self.model = cast(CSDN, convert_sync_batchnorm(self.model, self.device.type))  # same class, BN swapped
        if cfg.runtime.channels_last:
            self.model.image_encoder.to(memory_format=torch.channels_last)
        self.train_split = train
        self.evaluate = evaluate
        self.callbacks = list(callbacks)
        self.before_step, self.after_step = list(before_step), list(after_step)
        self.output_dir = Path(cfg.runtime.output_dir)
        self.checkpoint_path = self.output_dir / "checkpoints" / "last.pt"
        self.final_path = self.output_dir / "checkpoints" / "final.pt"
        seed = cfg.runtime.seed
        self.generators = {
            "order": torch.Generator().manual_seed(seed),  # stage-1/2 batch orders (identical on every rank)
            "loader": torch.Generator().manual_seed(seed + 1 + 1000 * self.dist.rank),  # worker base seeds only
        }
        self.metrics = MetricsLogger(
            self.output_dir / "metrics.jsonl" if self.dist.is_main else None,
            self.output_dir / "tensorboard" if cfg.runtime.tensorboard else None,
        )
        banks = StageFeatureBanks(
            cfg,
            self.model,
            train,
            self.device,
            self.output_dir / "checkpoints",
            is_main=self.dist.is_main,
            generator=self.generators["order"],
        )
        #: the stages the configuration trains, in order (see :func:`csdn.engine.stages.build_stages`)
        self.stages = build_stages(StageContext(cfg, self.model, train, self.device, self.dist, self.generators, banks))
        self._current: Stage | None = None
        for problem in schedule_problems(cfg, [stage.index for stage in self.stages]) if self.dist.is_main else ():
            logger.warning("%s", problem)
        self.progress = IterationLog(
            self.metrics, cfg.runtime.log_every if self.dist.is_main else 0, cfg.runtime.progress and self.dist.is_main,
            {stage.index: stage.epochs for stage in self.stages}, cfg.runtime.log_lines,
        )  # fmt: skip
        self._claim: RunClaim | None = None

    @property
    def text_banks(self) -> dict[str, torch.Tensor] | None:
        """The text banks the current (or last) stage scores against (stage 3's HSE banks), if any."""
        return None if self._current is None else self._current.text_banks

    # --------------------------------------------------------------------------------------------- public API
    def fit(self, resume: bool = False) -> Path:
        """Train every stage to the end and return the path of ``checkpoints/final.pt``.

        Args:
            resume: continue from ``checkpoints/last.pt`` of the output folder (the same configuration is
                required, except settings of stages not started yet and ``runtime`` keys other than ``seed`` and
                ``deterministic``: :func:`csdn.engine.preflight.resume_conflicts`); without it, a folder that
                already holds a checkpoint is refused.

        The output folder is held exclusively for the run (:func:`csdn.engine.run_dir.claim_run_folder`); if the
        run fails before its first epoch ends, what it created there is removed.

        Raises:
            FileNotFoundError: ``resume`` without a checkpoint.
            ValueError: an existing checkpoint without ``resume``, or a checkpoint of another configuration.
            RunFolderBusyError: another live run holds the output folder (a ``ValueError`` naming it).
            NonFiniteLossError: a loss became NaN/inf (``last.pt`` keeps the last good state).

        The run logs to the console and to ``output_dir/train.log`` while it trains, leaving the user's own
        logging configuration alone (see :func:`csdn.engine.logs.run_log_handlers`).
        """
        with (
            claim_run_folder(self.output_dir, is_main=self.dist.is_main) as self._claim,
            run_log_handlers(self.output_dir / "train.log", enabled=self.dist.is_main),
        ):
            return self._fit(resume)

    def _fit(self, resume: bool) -> Path:
        state = self._load_resume_state() if resume else None
        if state is None:
            self._start_fresh()
        with deterministic_algorithms(self.cfg.runtime.deterministic, self.device):
            for stage in self.stages:
                if state is not None and stage.index < state["stage"]:
                    continue
                self._run_stage(stage, state if state is not None and stage.index == state["stage"] else None)
                state = None
        if self.dist.is_main:
            save_checkpoint(final_checkpoint(self.model, config_to_dict(self.cfg)), self.final_path)
            logger.info("training finished; final model: %s", self.final_path)
        barrier()
        self.metrics.close()
        return self.final_path

    # ------------------------------------------------------------------------------------------ run folder
    def _start_fresh(self) -> None:
        if self.checkpoint_path.exists():
            raise ValueError(self._fresh_refusal())
        if self.dist.is_main:
            if (self.output_dir / "metrics.jsonl").is_file():  # an earlier attempt that saved no checkpoint
                tidy_for_resume(self.output_dir, 1, 0)  # drops its epoch records (and its temporary files)
            write_run_files(self.output_dir, self.cfg)
        seed_global_rngs(self.cfg.runtime.seed)  # training draws from keyed streams; the same on every rank

    def _load_resume_state(self) -> dict[str, Any]:
        if not self.checkpoint_path.exists():
            raise FileNotFoundError(
                f"nothing to resume: {self.checkpoint_path} does not exist (run without --resume to start)"
            )
        state = load_checkpoint(self.checkpoint_path, map_location="cpu")
        check_model_record(state, str(self.checkpoint_path))  # a malformed file is one line, before it is used
        refused, accepted = resume_conflicts(state["config"], self.cfg, state["stage"])
        if refused:
            raise ValueError(
                f"cannot resume {self.checkpoint_path} with a different configuration ({'; '.join(refused[:5])}): "
                f"stages 1..{state['stage']} already ran with the checkpoint's settings. Resume with those "
                f"settings, or start over: a new runtime.output_dir (or delete {self.output_dir / 'checkpoints'})"
            )
        check_shapes(self.model.state_dict(), state["model"], str(self.checkpoint_path))
        if accepted:
            logger.info("resuming with new settings for stages not started yet: %s", "; ".join(accepted))
            if self.dist.is_main:
                save_run_config(self.output_dir, self.cfg)
        self.model.load_state_dict(state["model"])
        stage, epoch = state["stage"], state["epoch"]
        if self.dist.is_main:
            tidy_for_resume(self.output_dir, stage, epoch)  # temp files of killed writes, metrics past the checkpoint
        if epoch >= self._stage(stage).epochs:  # the stage was complete: resume at the next one
            restore_rank_rng_state(state, self.generators, self.dist)
            following = [s.index for s in self.stages if s.index > stage]
            return {"stage": following[0] if following else stage + 1, "epoch": 0, "fresh": True}
        logger.info("resuming %s at stage %d, epoch %d", self.checkpoint_path, stage, epoch)
        return state

    def _fresh_refusal(self) -> str:
        """Why a fresh start is refused in a folder with a checkpoint, and which route fits these settings."""
        try:
            state = load_checkpoint(self.checkpoint_path, map_location="cpu")
            refused, _ = resume_conflicts(state["config"], self.cfg, state["stage"])
            where = f"stage {state['stage']}, epoch {state['epoch']}"
        except (OSError, ValueError, KeyError, TypeError) as error:  # unreadable: only a new start can work
            refused, where = [f"unreadable: {error}"], "unreadable"
        start_over = f"choose another runtime.output_dir (or delete {self.output_dir / 'checkpoints'})"
        if refused:
            return (
                f"{self.output_dir} already holds a checkpoint ({self.checkpoint_path}, {where}) of other "
                f"settings ({'; '.join(refused[:3])}), so --resume would be refused too; to start over, {start_over}"
            )
        return (
            f"{self.output_dir} already holds a checkpoint ({self.checkpoint_path}, {where}); pass resume=True "
            f"(--resume) to continue it with these settings, or to start over, {start_over}"
        )

    def _stage(self, index: int) -> Stage:
        return next(stage for stage in self.stages if stage.index == index)

    # ---------------------------------------------------------------------------------------------- stages
    def _run_stage(self, stage: Stage, resume: dict[str, Any] | None) -> None:
        optimizer, scheduler = stage.build_optimizer()
        scaler = torch.amp.GradScaler(self.device.type, enabled=self.cfg.runtime.amp == "fp16")
        mid_stage = resume is not None and not resume.get("fresh")
        stage.prepare(resume if mid_stage else None)
        step_module = self._wrap(stage.step_module())
        start = 0
        if mid_stage and resume is not None:
            optimizer.load_state_dict(resume["optimizer"])
            scheduler.load_state_dict(resume["scheduler"])
            scaler.load_state_dict(resume["scaler"])
            restore_rank_rng_state(resume, self.generators, self.dist)
            start = resume["epoch"]
        params = [p for g in optimizer.param_groups for p in g["params"]]
        logger.info(
            "stage %d (%s): epochs %d..%d, %d tensors trained", stage.index, stage.name, start + 1, stage.epochs,
            len(params),
        )  # fmt: skip
        self._current = stage
        for epoch in range(start, stage.epochs):
            tic = time.perf_counter()
            lrs = [g["lr"] for g in optimizer.param_groups]
            self.model.train()
            losses = self._run_epoch(stage, step_module, optimizer, scaler, params, epoch)
            scheduler.step()
            record = {**losses, "lr": lrs[0], "seconds": round(time.perf_counter() - tic, 3)}
            self.metrics.log(f"stage{stage.index}/epoch", step=epoch, **record)
            if self._claim is not None:  # always set inside fit()
                self._claim.mark_started()  # from here on a failure keeps the run folder's content
            logger.info("stage %d epoch %d/%d %s", stage.index, epoch + 1, stage.epochs, _fmt(record))
            if (epoch + 1) % self.cfg.runtime.checkpoint_every == 0 or epoch + 1 == stage.epochs:
                self._save(stage, epoch + 1, optimizer, scheduler, scaler)
            if stage.evaluates:
                self._maybe_evaluate(epoch)
            for callback in self.callbacks:
                callback(self, stage.index, epoch)
        stage.finish()

    def _wrap(self, module: nn.Module) -> nn.Module:
        if not self.dist.distributed:
            return module
        ids = [self.device.index] if self.device.type == "cuda" else None
        return nn.parallel.DistributedDataParallel(module, device_ids=ids, forward_sync_buffers=True)

    def _autocast(self) -> Any:
        amp = self.cfg.runtime.amp
        dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(amp)
        return torch.autocast(self.device.type, dtype=dtype, enabled=dtype is not None)

    # ------------------------------------------------------------------------------------------- epoch loop
    def _run_epoch(
        self,
        stage: Stage,
        step: nn.Module,
        optimizer: torch.optim.Optimizer,
        scaler: torch.amp.GradScaler,
        params: list[torch.Tensor],
        epoch: int,
    ) -> dict[str, float]:
        """One epoch of ``stage``: for each batch, forward + loss (the stage's), then one optimiser step."""
        meter = EpochMeter()
        batches = stage.batches(epoch)  # a list or a DataLoader: sized
        self.progress.start_epoch(
            stage.index,
            epoch,
            len(batches),  # type: ignore[arg-type]
            optimizer.param_groups[0]["lr"],
        )
        for i, batch in enumerate(self.progress.timed(batches)):
            loss, terms = stage.compute(step, batch, self._autocast)
            losses = {"loss": float(loss.detach()), **{k: float(v.detach()) for k, v in terms.items()}}
            for callback in self.before_step:
                callback(self, stage.index, epoch, i, losses)
            self._step(loss, optimizer, scaler, params, (stage.index, epoch, i), terms)
            for callback in self.after_step:
                callback(self, stage.index, epoch, i, losses)
            meter.update(terms)
            self.progress.step(i, losses, stage.count(batch))
        self.progress.end_epoch()
        return meter.means()

    def _step(
        self,
        loss: torch.Tensor,
        optimizer: torch.optim.Optimizer,
        scaler: torch.amp.GradScaler,
        params: list[torch.Tensor],
        where: tuple[int, int, int],
        terms: Mapping[str, torch.Tensor],
    ) -> None:
        """Backward + optimiser step, or stop the run on a non-finite loss (checked on every rank)."""
        finite = torch.isfinite(loss.detach()).float()
        if self.dist.distributed:
            finite = all_reduce_mean(finite)
        if float(finite) < 1.0:
            stage, epoch, iteration = where
            values = ", ".join(f"{k}={float(v.detach()):.4g}" for k, v in terms.items())
            raise NonFiniteLossError(
                f"stage {stage} epoch {epoch + 1} iteration {iteration + 1}: the loss is not finite ({values}); "
                f"training stopped, the last good checkpoint {self.checkpoint_path} is intact. Resume it with "
                "--resume and runtime.grad_clip_norm or runtime.amp=bf16/none (runtime.* but seed and deterministic "
                "may change on resume), "
                "or start a new run with a lower learning rate"
            )
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        if self.cfg.runtime.grad_clip_norm > 0:
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(params, self.cfg.runtime.grad_clip_norm)
        scaler.step(optimizer)
        scaler.update()

    # --------------------------------------------------------------------------------- evaluation, saving
    def _maybe_evaluate(self, epoch: int) -> None:
        every = self.cfg.runtime.eval_every
        if self.evaluate is None or every <= 0 or (epoch + 1) % every:
            return
        if self.dist.is_main:
            rng = capture_rng_state(self.generators)  # evaluation must not change the training's random stream
            self.model.eval()
            try:
                results = dict(self.evaluate(self.model, self.cfg.runtime.eval_trials))
            finally:
                self.model.train()
                restore_rng_state(rng, self.generators)
            self.metrics.log("stage3/eval", step=epoch, **results)
            logger.info("stage 3 epoch %d evaluation: %s", epoch + 1, _fmt(results))
        barrier()

    def _save(
        self,
        stage: Stage,
        epoch: int,
        optimizer: torch.optim.Optimizer,
        scheduler: torch.optim.lr_scheduler.LRScheduler,
        scaler: torch.amp.GradScaler,
    ) -> None:
        rng_ranks = gather_rng_states(self.generators, self.dist)  # every rank's streams, for an exact DDP resume
        if self.dist.is_main:
            state = training_checkpoint(
                self.model,
                config_to_dict(self.cfg),
                stage=stage.index,
                epoch=epoch,
                optimizer=optimizer.state_dict(),
                scheduler=scheduler.state_dict(),
                scaler=scaler.state_dict(),
                rng_ranks=rng_ranks,
                **stage.checkpoint_state(epoch),
            )
            save_checkpoint(state, self.checkpoint_path)
            save_snapshot(state, self.checkpoint_path.parent, stage.index, epoch, self.cfg.runtime.keep_last)
        barrier()


def _fmt(values: Mapping[str, Any]) -> str:
    return " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in values.items())
