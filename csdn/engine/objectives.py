"""What each CSDN training stage computes, independent of the loop that drives it.

* Stage 1 trains the prompt learners: frozen attnpool image features (extracted once per modality) against the
  text features of their identities' prompts, SupCon image->text + text->image.
* Stage 2 trains the semantic integrator with the same loss on the fused text features.
* Stage 3 trains the image side against identity labels and the fixed fused text bank (SPEC §1):
  ``CE(f_g) + CE(f_p) + MSEL(f_g) + MSEL(f_p) + λ1 (WRT(f_g) + WRT(f_p)) + λ2 HSE(vis view 1) + λ3 HSE(IR)``.

Each stage's forward pass is a small ``nn.Module`` (``PromptStep``, ``IntegratorStep``, ``ImageStep``) around the
CSDN model, so the same code runs plain or wrapped in ``DistributedDataParallel``. The only randomness inside a
training forward is the integrator's dropout; it is drawn from a seed keyed by the global step
(:func:`csdn.engine.rng.keyed_rng`) over the whole global batch, so it does not depend on the world size.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .._modality import INFRARED, VISIBLE
from ..losses import CrossEntropyLabelSmooth, ModalitySeparationLoss, SupConLoss, WeightedRegularizedTriplet
from ..models import CSDN, ImageFeatures
from .config import ImageStageConfig
from .distributed_ops import gather_with_grad
from .rng import keyed_rng

__all__ = [
    "PromptStep",
    "IntegratorStep",
    "ImageStep",
    "ImageStageLoss",
    "supcon_both_ways",
    "compute_text_banks",
]


# ------------------------------------------------------------------------------------------------ forward steps


class PromptStep(nn.Module):
    """Stage-1 forward: text features of the visible and infrared prompts of ``labels``.

    ``forward(visible_labels (B,), infrared_labels (B,)) -> (visible text (B, D), infrared text (B, D))``.
    """

    def __init__(self, model: CSDN) -> None:
        super().__init__()
        self.model = model

    def forward(self, visible_labels: torch.Tensor, infrared_labels: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return self.model.text_features(visible_labels, VISIBLE), self.model.text_features(infrared_labels, INFRARED)


class IntegratorStep(nn.Module):
    """Stage-2 forward: fused text features of the *global* batch from this rank's labels.

    ``forward(labels (B / W,), dropout_seed) -> (B, D)``: each rank encodes the text of its slice of the labels
    (the frozen, costly part), the slices are gathered into the global batch, and every rank runs the small
    integrator on all ``B`` rows with dropout drawn from ``dropout_seed``. So the masks are those of one process
    on the global batch; the integrator's gradient is the full one on every rank (DDP's average keeps it).
    """

    def __init__(self, model: CSDN) -> None:
        super().__init__()
        self.model = model

    def forward(self, labels: torch.Tensor, dropout_seed: int) -> torch.Tensor:
        visible = gather_with_grad(self.model.text_features(labels, VISIBLE))
        infrared = gather_with_grad(self.model.text_features(labels, INFRARED))
        with keyed_rng(dropout_seed, visible.device):
            return self.model.integrator(visible, infrared)


class ImageStep(nn.Module):
    """Stage-3 forward: both modalities through their stems and the shared trunk in one batch (as official).

    ``forward(visible (2n, 3, H, W), infrared (n, 3, H, W)) -> csdn.models.ImageFeatures`` (visible rows first).
    """

    def __init__(self, model: CSDN) -> None:
        super().__init__()
        self.model = model

    def forward(self, visible: torch.Tensor, infrared: torch.Tensor) -> ImageFeatures:
        return self.model.joint_image_features(visible, infrared)


# ------------------------------------------------------------------------------------------------------- losses


def supcon_both_ways(
    criterion: SupConLoss, image: torch.Tensor, text: torch.Tensor, labels: torch.Tensor
) -> dict[str, torch.Tensor]:
    """Stage-1/2 loss terms: ``{"i2t": SupCon(image, text), "t2i": SupCon(text, image)}`` (float32)."""
    image, text = image.float(), text.float()
    return {"i2t": criterion(image, text, labels, labels), "t2i": criterion(text, image, labels, labels)}


class ImageStageLoss(nn.Module):
    """The stage-3 objective of SPEC §1 with every weight taken from :class:`ImageStageConfig`.

    Args:
        cfg: stage-3 configuration (weights, label smoothing, K for MSEL).
        use_text: include the two HSE terms (False for the ``baseline`` ablation).
    """

    def __init__(self, cfg: ImageStageConfig, use_text: bool = True) -> None:
        super().__init__()
        self.cfg = cfg
        self.use_text = use_text
        self.ce = CrossEntropyLabelSmooth(cfg.label_smoothing)
        self.hse_ce = CrossEntropyLabelSmooth(0.0)
        self.wrt = WeightedRegularizedTriplet()
        self.msel = ModalitySeparationLoss(num_pos=cfg.num_pos)

    def forward(
        self,
        out: ImageFeatures,
        visible_labels: torch.Tensor,
        infrared_labels: torch.Tensor,
        text_banks: dict[str, torch.Tensor] | None = None,
    ) -> dict[str, torch.Tensor]:
        """Loss terms (already weighted) and their sum under ``"loss"``.

        Args:
            out: features and logits of ``[view 1 (n), view 2 (n), infrared (n)]`` (rows ``3n``).
            visible_labels: (n,) labels of the visible images (both views share them).
            infrared_labels: (n,) labels of the infrared images.
            text_banks: ``{"visible": (C, Dp), "infrared": (C, Dp)}`` identity text features the HSE terms score
                against (the same fused bank twice for CSDN); required when ``use_text``.
        """
        c = self.cfg
        n = visible_labels.shape[0]
        labels = torch.cat([visible_labels, visible_labels, infrared_labels])
        f_g, f_p = out.f_g.float(), out.f_p.float()
        terms = {
            "id_g": c.id_weight * self.ce(out.logits_g.float(), labels),
            "id_p": c.id_weight * self.ce(out.logits_p.float(), labels),
            "msel_g": c.msel_weight * self.msel(f_g[:n], f_g[2 * n :], visible_labels, infrared_labels),
            "msel_p": c.msel_weight * self.msel(f_p[:n], f_p[2 * n :], visible_labels, infrared_labels),
            "wrt_g": c.lambda1 * self.wrt(f_g, labels),
            "wrt_p": c.lambda1 * self.wrt(f_p, labels),
        }
        if self.use_text:
            if text_banks is None:
                raise ValueError("text_banks is required when the HSE terms are on (use_text=True)")
            terms["hse_vis"] = c.lambda2 * self.hse_ce(F.linear(f_p[:n], text_banks[VISIBLE].float()), visible_labels)
            terms["hse_ir"] = c.lambda3 * self.hse_ce(
                F.linear(f_p[2 * n :], text_banks[INFRARED].float()), infrared_labels
            )
        terms["loss"] = torch.stack(list(terms.values())).sum()
        return terms


# ------------------------------------------------------------------------------------------------ text features


@torch.no_grad()
def compute_text_banks(
    model: CSDN, integrator: str, batch_size: int, dropout_active: bool = False, dropout_seed: int = 0
) -> dict[str, torch.Tensor]:
    """Identity text features the stage-3 HSE terms score against: one ``(C, D)`` bank per image modality.

    With a fusing integrator (``attention``/``add``) both modalities use the fused bank, which is also stored in
    the model's HSE head. With ``integrator="none"`` each modality uses its own prompts' features (with shared
    prompts, as in ``clip_vireid``, the two banks are equal). Text features are computed in eval mode; with
    ``dropout_active`` the integrator stays in train mode (the official quirk) and draws its masks from
    ``dropout_seed``, so every rank computes the same bank.
    """
    if integrator != "none":
        with keyed_rng(dropout_seed, model.hse.text_bank.device):
            bank = model.refresh_text_bank(batch_size, dropout=dropout_active).float()
        return {VISIBLE: bank, INFRARED: bank}
    labels = torch.arange(model.num_classes, device=model.hse.text_bank.device)
    banks = {
        m: torch.cat([model.text_features(chunk, m).float() for chunk in labels.split(batch_size)])
        for m in (VISIBLE, INFRARED)
    }
    model.set_text_bank(banks[VISIBLE])
    return banks
