"""Identity classification loss: cross-entropy with optional label smoothing."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["CrossEntropyLabelSmooth"]


class CrossEntropyLabelSmooth(nn.Module):
    """Cross-entropy against smoothed one-hot targets (Szegedy et al. 2016).

    The target distribution is ``(1 - epsilon) * onehot(y) + epsilon / C`` and the loss is the batch mean of
    ``-sum_c q_c log softmax(x)_c``, the same value as the torchreid / CSDN ``CrossEntropyLabelSmooth``.
    ``epsilon=0`` is plain cross-entropy, which is what official CSDN uses for its identity and HSE losses
    (its label-smoothing class is defined but unused), so the default here is 0.

    Args:
        epsilon: Smoothing weight in [0, 1).
    """

    def __init__(self, epsilon: float = 0.0) -> None:
        super().__init__()
        if not 0.0 <= epsilon < 1.0:
            raise ValueError(f"epsilon must be in [0, 1), got {epsilon}; use 0.0 for plain cross-entropy")
        self.epsilon = float(epsilon)

    def forward(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Compute the loss.

        Args:
            logits: Unnormalised class scores, shape (B, C).
            labels: Class indices in [0, C), shape (B,), integer.

        Returns:
            Scalar loss.
        """
        if logits.dim() != 2 or labels.shape != (logits.shape[0],):
            raise ValueError(
                f"logits must be (B, C) and labels (B,), got {tuple(logits.shape)} and {tuple(labels.shape)}"
            )
        return F.cross_entropy(logits, labels.long(), label_smoothing=self.epsilon)

    def extra_repr(self) -> str:
        return f"epsilon={self.epsilon}"
