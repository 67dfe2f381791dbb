"""The CSDN training stages as objects: each owns its parameter groups, optimiser and schedule, inputs, batches
and loss; the trainer (:mod:`csdn.engine.trainer`) runs one epoch loop over them.

* :class:`PromptStage` is stages 1 and 2 (prompt learners, then the semantic integrator): SupCon both ways
  between a frozen image-feature bank and text features; they differ only in the forward module, the batch
  pairing and their configuration section.
* :class:`ImageStage` is stage 3: the image side against identity labels and the fixed text banks.

:func:`build_stages` turns a configuration into its stages through the one ablation rule
(:func:`csdn.models.factory.resolve_ablation`), so a new stage is a new class plus one line there.

Multi-process runs train the single-process recipe: every rank walks the same *global* batches (same order, same
count per epoch), computes the forward of its contiguous slice (:func:`csdn.engine.distributed_ops.rank_slice`),
and gathers the outputs with autograd so every loss sees the whole global batch; the loss is back-propagated
with no extra factor (see :mod:`csdn.engine.distributed_ops` for why that yields the single-process gradient).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..data.loaders import CrossModalityDataset, concat_views
from ..data.samples import TrainSplit
from ..losses import SupConLoss
from ..models import CSDN, ImageFeatures
from ..models.factory import resolve_ablation
from .batching import paired_batches, shuffled_batches
from .config import ImageStageConfig, PromptStageConfig, TrainConfig
from .distributed import DistInfo
from .distributed_ops import check_global_batch, gather_chunks, gather_with_grad, rank_slice
from .feature_bank import FeatureBank, StageFeatureBanks
from .inputs import image_stage_loader
from .objectives import ImageStageLoss, ImageStep, IntegratorStep, PromptStep, compute_text_banks, supcon_both_ways
from .optim import build_image_stage_optimizer, build_prompt_stage_optimizer
from .rng import keyed_seed

__all__ = ["StageContext", "Stage", "PromptStage", "ImageStage", "build_stages"]

#: ``(loss, terms)`` of one batch: the scalar to back-propagate and the named terms to log.
BatchResult = tuple[torch.Tensor, dict[str, torch.Tensor]]


@dataclass
class StageContext:
    """What every stage works with: the run's configuration, model, data, device, ranks and random streams."""

    cfg: TrainConfig
    model: CSDN
    train: TrainSplit
    device: torch.device
    dist: DistInfo
    generators: Mapping[str, torch.Generator]  # "order": stage-1/2 batch orders; "loader": stage-3 workers
    feature_banks: StageFeatureBanks


class Stage:
    """One training stage. Subclasses set :attr:`index`, :attr:`name`, :attr:`cfg` and implement the hooks.

    The trainer calls, in order: :meth:`build_optimizer`, :meth:`prepare`, :meth:`step_module`, then per epoch
    :meth:`batches` and per batch :meth:`compute`, :meth:`checkpoint_state` at every save and :meth:`finish`.
    """

    index: int  # the stage number in checkpoints and logs (1, 2, 3)
    name: str  # what it trains, for the logs
    cfg: PromptStageConfig | ImageStageConfig  # its configuration section
    evaluates: bool = False  # run the periodic evaluation after its epochs
    text_banks: dict[str, torch.Tensor] | None = None  # the text banks it scores against, if any

    def __init__(self, ctx: StageContext) -> None:
        self.ctx = ctx

    @property
    def epochs(self) -> int:
        """Epochs the stage trains."""
        return self.cfg.epochs

    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        """Freeze everything but this stage's parameters; returns them by group name."""
        return self.ctx.model.freeze_for_stage(self.index)

    def build_optimizer(self) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]:
        """Optimiser and epoch-based schedule over :meth:`param_groups`."""
        raise NotImplementedError

    def global_batch(self) -> tuple[int, str]:
        """The configured global batch size and the settings that make it, for the world-size check."""
        raise NotImplementedError

    def prepare(self, resume: Mapping[str, Any] | None) -> None:
        """Set up the stage's inputs; ``resume`` is the mid-stage checkpoint it continues from, if any."""
        self.ctx.feature_banks.remove_stale_caches(self.index)

    def step_module(self) -> nn.Module:
        """The forward pass as a module around the model (what DDP wraps)."""
        raise NotImplementedError

    def batches(self, epoch: int) -> Iterable[Any]:
        """This rank's batches of ``epoch`` (0-based)."""
        raise NotImplementedError

    def compute(self, step: nn.Module, batch: Any, autocast: Callable[[], Any]) -> BatchResult:
        """Forward ``batch`` through ``step`` (under ``autocast()``) and return its loss and terms."""
        raise NotImplementedError

    def checkpoint_state(self, epochs_done: int) -> dict[str, Any]:
        """The stage's entries of a training checkpoint (``text_banks``, ``sampler``)."""
        return {"text_banks": {}, "sampler": {}}

    def count(self, batch: Any) -> int:
        """Images (or cached image features) in the global batch ``batch`` belongs to, for the throughput in the
        progress lines (all processes together)."""
        raise NotImplementedError

    def finish(self) -> None:
        """Release what the following stages do not need."""
        self.ctx.feature_banks.end_stage(self.index)


class PromptStage(Stage):
    """Stage 1 (``paired``: prompt learners on identity-aligned visible/infrared pairs) or stage 2 (integrator on
    shuffled features of both modalities): SupCon image->text + text->image on the frozen feature bank.

    Args:
        ctx: The run's context.
        index: 1 or 2.
        name: What the stage trains.
        cfg: Its configuration section (``stage1``/``stage2``).
        forward: ``PromptStep`` (two label batches -> two text batches) or ``IntegratorStep`` (labels -> text).
        paired: Batches are (visible index, infrared index) pairs of one label sequence (stage 1).
    """

    cfg: PromptStageConfig
    bank: FeatureBank

    def __init__(
        self,
        ctx: StageContext,
        index: int,
        name: str,
        cfg: PromptStageConfig,
        forward: Callable[[CSDN], nn.Module],
        paired: bool,
    ) -> None:
        super().__init__(ctx)
        self.index, self.name, self.cfg, self.forward, self.paired = index, name, cfg, forward, paired
        self.criterion = SupConLoss(cfg.temperature)

    def build_optimizer(self) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]:
        return build_prompt_stage_optimizer(self.param_groups(), self.cfg)

    def global_batch(self) -> tuple[int, str]:
        return self.cfg.batch_size, f"stage{self.index}.batch_size"

    def prepare(self, resume: Mapping[str, Any] | None) -> None:
        super().prepare(resume)
        self.bank = bank = self.ctx.feature_banks.for_stage(self.index, resuming=resume is not None)
        if not self.paired:  # one flat list of both modalities' features
            self.features = torch.cat([bank.visible, bank.infrared])
            self.labels = torch.cat([bank.visible_labels, bank.infrared_labels])
        items, what = self._epoch_items()
        if items < self.cfg.batch_size and self.epochs > 0:  # no batch to draw: refuse rather than train nothing
            raise ValueError(
                f"stage{self.index}.batch_size={self.cfg.batch_size} is larger than the stage-{self.index} feature "
                f"bank ({items} {what}), so an epoch has no batch; set stage{self.index}.batch_size to at most "
                f"{items} or train on more images"
            )

    def _epoch_items(self) -> tuple[int, str]:
        """How many items one epoch's batches are cut from (see :meth:`batches`), and what they are."""
        bank = self.bank
        if not self.paired:
            return self.labels.numel(), "visible and infrared features"
        if self.ctx.cfg.quirks.sampled_feature_bank:
            return bank.visible_labels.numel(), "identity-sampled visible/infrared pairs"
        larger = max(bank.visible_labels.numel(), bank.infrared_labels.numel())
        return larger, "pairs, one per image of the larger modality"

    def step_module(self) -> nn.Module:
        return self.forward(self.ctx.model)

    def batches(self, epoch: int) -> list[Any]:
        """The epoch's global batches (the same on every rank); stage 2 adds each step's dropout seed."""
        gen = self.ctx.generators["order"]
        if not self.paired:
            order = shuffled_batches(self.labels.numel(), self.cfg.batch_size, gen)
            return [(b, keyed_seed(self.ctx.cfg.runtime.seed, self.index, epoch, i)) for i, b in enumerate(order)]
        if self.ctx.cfg.quirks.sampled_feature_bank:  # official: shuffle the identity-aligned pairs of the bank
            order = shuffled_batches(self.bank.visible_labels.numel(), self.cfg.batch_size, gen)
            return [(b, b) for b in order]
        return paired_batches(self.bank.visible_labels, self.bank.infrared_labels, self.cfg.batch_size, gen)

    def compute(self, step: nn.Module, batch: Any, autocast: Callable[[], Any]) -> BatchResult:
        bank, device = self.bank, self.ctx.device
        if self.paired:  # this rank's slice through the text side, gathered back into the global batch
            vi, ii = batch
            lv, li = bank.visible_labels[vi].to(device), bank.infrared_labels[ii].to(device)
            with autocast():
                text_v, text_i = step(rank_slice(lv), rank_slice(li))
            image, text, labels = (
                torch.cat([bank.visible[vi], bank.infrared[ii]]),
                torch.cat([gather_with_grad(text_v), gather_with_grad(text_i)]),
                torch.cat([lv, li]),
            )
        else:
            batch, dropout_seed = batch
            labels = self.labels[batch].to(device)
            with autocast():
                text = step(rank_slice(labels), dropout_seed)  # the global batch's fused features
            image = self.features[batch]
        terms = supcon_both_ways(self.criterion, image.to(device), text, labels)
        return terms["i2t"] + terms["t2i"], terms

    def count(self, batch: Any) -> int:
        if self.paired:  # (visible indices, infrared indices) of the global batch
            return sum(index.numel() for index in batch)
        return batch[0].numel()  # (global batch indices, dropout seed)

    def finish(self) -> None:
        super().finish()
        # drop the stage's tensors (memory); prepare() sets them again
        self.bank = self.features = self.labels = None  # type: ignore[assignment]


class ImageStage(Stage):
    """Stage 3: stems, trunk, attention pool, heads and GeM p against identities and the fixed text banks.

    Args:
        ctx: The run's context.
        use_text: Include the HSE terms (their text banks are computed when the stage starts).
        integrator: The model's text fusion (``"none"``: each modality scores against its own prompts).
    """

    cfg: ImageStageConfig

    index, name, evaluates = 3, "image side", True

    def __init__(self, ctx: StageContext, use_text: bool, integrator: str) -> None:
        super().__init__(ctx)
        self.cfg, self.use_text, self.integrator = ctx.cfg.stage3, use_text, integrator
        self.loss = ImageStageLoss(self.cfg, use_text=use_text)
        self.memory = torch.channels_last if ctx.cfg.runtime.channels_last else torch.contiguous_format

    def build_optimizer(self) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]:
        return build_image_stage_optimizer(self.param_groups(), self.cfg)

    def global_batch(self) -> tuple[int, str]:
        return self.cfg.num_ids * self.cfg.num_pos, "stage3.num_ids x stage3.num_pos"

    def prepare(self, resume: Mapping[str, Any] | None) -> None:
        super().prepare(resume)
        ctx = self.ctx
        if self.use_text and resume is not None:
            self.text_banks = {m: t.to(ctx.device) for m, t in resume["text_banks"].items()}
        elif self.use_text:
            self.text_banks = compute_text_banks(
                ctx.model,
                self.integrator,
                ctx.cfg.data.extract_batch_size,
                ctx.cfg.quirks.dropout_text_bank,
                dropout_seed=keyed_seed(ctx.cfg.runtime.seed, self.index),
            )
        if ctx.cfg.data.augment_on == "cuda" and ctx.device.type != "cuda":
            raise ValueError(
                f"data.augment_on=cuda needs a CUDA training device, got {ctx.device}; set runtime.device=cuda or "
                "data.augment_on=cpu"
            )
        self.loader = image_stage_loader(ctx.train, ctx.cfg, ctx.dist, ctx.generators["loader"])

    def step_module(self) -> nn.Module:
        return ImageStep(self.ctx.model)

    def batches(self, epoch: int) -> Iterable[Any]:
        self.loader.sampler.set_epoch(epoch)  # type: ignore[attr-defined]  # our CrossModalityIdentitySampler
        return self.loader

    def compute(self, step: nn.Module, batch: Any, autocast: Callable[[], Any]) -> BatchResult:
        device = self.ctx.device
        dataset = self.loader.dataset
        assert isinstance(dataset, CrossModalityDataset)  # image_stage_loader makes one
        batch = dataset.to_views(batch, device)  # data.augment_on=cuda: augmented here, batched
        visible, visible_labels, infrared, ir_labels = concat_views(batch)  # (2n, ...), (2n,), (n, ...), (n,)
        visible = visible.to(device, memory_format=self.memory, non_blocking=True)
        infrared = infrared.to(device, memory_format=self.memory, non_blocking=True)
        vis_labels = visible_labels[: infrared.shape[0]].to(device).long()
        ir_labels = ir_labels.to(device).long()
        with autocast():
            out = step(visible, infrared)  # this rank's [view 1; view 2; infrared] rows
        out = ImageFeatures(*(gather_chunks(t, 3) for t in out))  # the global batch, single-process row order
        vis_labels, ir_labels = gather_with_grad(vis_labels), gather_with_grad(ir_labels)
        terms = self.loss(out, vis_labels, ir_labels, self.text_banks)
        return terms["loss"], terms

    def count(self, batch: Any) -> int:
        # two visible views + one infrared image per pair; each process holds 1/world_size of the global batch
        return (2 * len(batch.visible) + len(batch.infrared)) * self.ctx.dist.world_size

    def checkpoint_state(self, epochs_done: int) -> dict[str, Any]:
        return {
            "text_banks": {m: t.cpu() for m, t in (self.text_banks or {}).items()},
            "sampler": {"seed": self.ctx.cfg.runtime.seed, "next_epoch": epochs_done},
        }


def build_stages(ctx: StageContext) -> list[Stage]:
    """The stages ``ctx.cfg`` trains, in order (which ones: :func:`csdn.models.factory.resolve_ablation`).

    Raises:
        ValueError: if the world size does not divide a trained stage's global batch (names both and the fix).
    """
    ablation, cfg = resolve_ablation(ctx.cfg.model), ctx.cfg
    candidates = [
        PromptStage(ctx, 1, "prompt learners", cfg.stage1, PromptStep, paired=True),
        PromptStage(ctx, 2, "semantic integrator", cfg.stage2, IntegratorStep, paired=False),
        ImageStage(ctx, ablation.use_text, ablation.integrator),
    ]
    stages = [stage for stage in candidates if stage.index in ablation.stages]
    for stage in stages:
        size, what = stage.global_batch()
        check_global_batch(size, ctx.dist.world_size, what)
    return stages
