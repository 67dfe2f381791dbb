"""Supervised contrastive loss between two sets of features (CSDN stages 1 and 2)."""

from __future__ import annotations

import torch
from torch import nn

from .pairwise import check_paired_features

__all__ = ["SupConLoss"]


class SupConLoss(nn.Module):
    """Supervised contrastive loss of anchors against a contrast set, as in CSDN / CLIP-ReID.

    For anchor ``i`` with logits ``s_ij = a_i . c_j / temperature`` over every contrast item ``j``, the loss is
    ``-mean_i mean_{j: y_j = y_i} log softmax_j(s_ij)``. Features are used as given (no L2 normalisation), every
    contrast item with the anchor's label is a positive (no self-exclusion: anchors and contrast items are
    different things, e.g. image and text features), and the row maximum is subtracted (detached) before the
    exponential for numerical stability, which leaves the value unchanged.

    CSDN uses it in both directions with ``temperature=1``: ``loss(image, text, y, y) + loss(text, image, y, y)``.

    Args:
        temperature: Softmax temperature ``tau`` (> 0); CSDN uses 1.0.
    """

    def __init__(self, temperature: float = 1.0) -> None:
        super().__init__()
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0, got {temperature}; CSDN uses 1.0")
        self.temperature = float(temperature)

    def forward(
        self,
        anchors: torch.Tensor,
        contrast: torch.Tensor,
        anchor_labels: torch.Tensor,
        contrast_labels: torch.Tensor,
    ) -> torch.Tensor:
        """Compute the loss.

        Args:
            anchors: Anchor features, shape (B, D).
            contrast: Contrast features, shape (N, D).
            anchor_labels: Identity labels of the anchors, shape (B,), integer.
            contrast_labels: Identity labels of the contrast items, shape (N,), integer.

        Returns:
            Scalar loss.

        Raises:
            ValueError: If shapes disagree or an anchor has no positive in the contrast set.
        """
        check_paired_features(anchors, contrast, anchor_labels, contrast_labels, ("anchors", "contrast"))
        mask = (anchor_labels.unsqueeze(1) == contrast_labels.unsqueeze(0)).to(anchors.dtype)  # (B, N)
        num_pos = mask.sum(dim=1)
        if not bool((num_pos > 0).all()):
            raise ValueError("every anchor label must occur in contrast_labels (an anchor has no positive)")
        logits = anchors @ contrast.t() / self.temperature  # (B, N)
        logits = logits - logits.max(dim=1, keepdim=True).values.detach()
        log_prob = logits - torch.logsumexp(logits, dim=1, keepdim=True)
        return -((mask * log_prob).sum(dim=1) / num_pos).mean()

    def extra_repr(self) -> str:
        return f"temperature={self.temperature}"
