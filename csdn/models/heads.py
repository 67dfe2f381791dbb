"""Pooling and classification heads of CSDN: GeM pooling, BN-neck classifiers and the HSE text head."""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["GeM", "BNNeck", "BNNeckOutput", "HSEHead"]


class GeM(nn.Module):
    """Generalised-mean pooling ``(mean_hw clamp(x, eps)^p)^(1/p)`` with a learnable exponent.

    Args:
        p: Initial exponent (3 in CSDN; 1 is average pooling, large values approach max pooling).
        eps: Lower clamp of the activations before the power.
        learnable: Whether ``p`` is an ``nn.Parameter`` (CSDN: yes, trained with the classifier's 2x lr).
    """

    def __init__(self, p: float = 3.0, eps: float = 1e-6, learnable: bool = True) -> None:
        super().__init__()
        if not p > 0:
            raise ValueError(f"GeM exponent p must be > 0, got {p}")
        value = torch.full((1,), float(p))
        if learnable:
            self.p = nn.Parameter(value)
        else:
            self.register_buffer("p", value)
        self.eps = float(eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Pool a feature map ``(B, C, H, W)`` to ``(B, C)`` (in at least float32, returned in ``x``'s dtype)."""
        dtype = torch.promote_types(x.dtype, torch.float32)  # fp16 would underflow in the power
        p = self.p.to(dtype)
        pooled = x.to(dtype).clamp(min=self.eps).pow(p).mean(dim=(-2, -1)).pow(1.0 / p)
        return pooled.to(x.dtype)

    def extra_repr(self) -> str:
        return f"p={self.p.item():.4f}, eps={self.eps}, learnable={isinstance(self.p, nn.Parameter)}"


class BNNeckOutput(NamedTuple):
    """Output of :class:`BNNeck`: ``bn_features`` (B, D) and identity ``logits`` (B, C)."""

    bn_features: torch.Tensor
    logits: torch.Tensor


class BNNeck(nn.Module):
    """BatchNorm neck followed by a bias-free linear identity classifier (Luo et al., BoT).

    Initialised as in the official CSDN code: BN weight 1 and bias 0 (the bias stays trainable), classifier
    weight ``N(0, classifier_std^2)``.

    Args:
        in_dim: Feature size ``D``.
        num_classes: Number of training identities ``C``.
        classifier_std: Standard deviation of the classifier's initial weights (1e-3).
    """

    def __init__(self, in_dim: int, num_classes: int, classifier_std: float = 1e-3) -> None:
        super().__init__()
        if num_classes < 1 or in_dim < 1:
            raise ValueError(f"in_dim and num_classes must be >= 1, got in_dim={in_dim}, num_classes={num_classes}")
        self.bn = nn.BatchNorm1d(in_dim)
        self.classifier = nn.Linear(in_dim, num_classes, bias=False)
        nn.init.ones_(self.bn.weight)
        nn.init.zeros_(self.bn.bias)
        nn.init.normal_(self.classifier.weight, std=classifier_std)

    def forward(self, features: torch.Tensor) -> BNNeckOutput:
        """Map features ``(B, D)`` to ``BNNeckOutput(bn_features (B, D), logits (B, C))``."""
        bn = self.bn(features)
        return BNNeckOutput(bn, self.classifier(bn))


class HSEHead(nn.Module):
    """CSDN's high-level semantic embedding head: image features scored against fixed identity text features.

    Holds the fused text features of all ``C`` identities as a buffer ``text_bank`` (C, D), computed once after
    stage 2 and then kept fixed; the logits are plain inner products ``f_p @ text_bank^T`` (no normalisation,
    no temperature), trained with cross-entropy in stage 3.

    Args:
        num_classes: Number of identities ``C``.
        dim: Text/image embedding size ``D`` (1024 for RN50).
    """

    text_bank: torch.Tensor  # buffer (C, D)
    text_bank_ready: torch.Tensor  # buffer, bool scalar

    def __init__(self, num_classes: int, dim: int) -> None:
        super().__init__()
        self.register_buffer("text_bank", torch.zeros(num_classes, dim))
        self.register_buffer("text_bank_ready", torch.zeros((), dtype=torch.bool))
        self._ready = False  # host-side copy of text_bank_ready: no device sync in forward
        self.register_load_state_dict_post_hook(_sync_ready_flag)

    @property
    def is_ready(self) -> bool:
        """Whether :meth:`set_text_bank` has been called (also restored by ``load_state_dict``)."""
        return self._ready

    @torch.no_grad()
    def set_text_bank(self, text_features: torch.Tensor) -> None:
        """Store the identity text features (copied, detached, cast to the buffer's dtype and device).

        Args:
            text_features: Shape (C, D), row ``c`` for identity label ``c``.
        """
        if tuple(text_features.shape) != tuple(self.text_bank.shape):
            raise ValueError(
                f"text_features must have shape {tuple(self.text_bank.shape)} (num_classes, dim), "
                f"got {tuple(text_features.shape)}"
            )
        self.text_bank.copy_(text_features)
        self.text_bank_ready.fill_(True)
        self._ready = True

    def forward(self, image_features: torch.Tensor) -> torch.Tensor:
        """Map image features ``(B, D)`` to identity logits ``(B, C)``.

        Raises:
            RuntimeError: If the text bank was never set.
        """
        if not self.is_ready:
            raise RuntimeError(
                "HSEHead text bank is not set: call CSDN.refresh_text_bank() (or HSEHead.set_text_bank) after stage 2"
            )
        return F.linear(image_features, self.text_bank.to(image_features.dtype))


def _sync_ready_flag(module: HSEHead, incompatible_keys: object) -> None:
    """``load_state_dict`` post-hook: refresh the host-side ready flag from the loaded buffer."""
    module._ready = bool(module.text_bank_ready)
