"""Fusion of the visible and infrared text features of an identity (CSDN's semantic information integration)."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["SemanticIntegrator", "AddIntegrator", "VisibleOnlyIntegrator", "build_integrator", "INTEGRATORS"]


def _embedding(dim: int, dropout: float) -> nn.Sequential:
    """``Linear(dim, dim) -> Tanh -> Dropout``: the q/k/v embeddings of the official AttentionFusion."""
    return nn.Sequential(nn.Linear(dim, dim), nn.Tanh(), nn.Dropout(dropout))


class SemanticIntegrator(nn.Module):
    """Attention fusion of visible (query) and infrared (key/value) text tokens with a visible residual.

    ``q = drop(tanh(W_q t_vis + b_q))``, ``k, v`` likewise from ``t_ir``;
    ``out = t_vis + W_o softmax(q k^T / sqrt(D)) v + b_o``, the softmax running over the infrared tokens.

    CSDN fuses one token per side; then the attention weight is exactly 1 and the module reduces to
    ``t_vis + W_o drop(tanh(W_v t_ir + b_v)) + b_o`` (``q`` and ``k`` do not influence the output, but their
    parameters exist, as in the official checkpoint). The official code applies the softmax over the query axis,
    which only differs from the usual key axis used here when there are several tokens.

    Args:
        dim: Token width ``D`` (the CLIP embedding size, 1024 for RN50).
        dropout: Dropout after each q/k/v embedding (0.1).
    """

    def __init__(self, dim: int = 1024, dropout: float = 0.1) -> None:
        super().__init__()
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        self.dim = dim
        self.q_proj = _embedding(dim, dropout)
        self.k_proj = _embedding(dim, dropout)
        self.v_proj = _embedding(dim, dropout)
        self.out_proj = nn.Linear(dim, dim)

    def forward(self, visible: torch.Tensor, infrared: torch.Tensor) -> torch.Tensor:
        """Fuse text features.

        Args:
            visible: Visible text features ``(B, D)`` or tokens ``(B, Lq, D)``.
            infrared: Infrared text features ``(B, D)`` or tokens ``(B, Lk, D)``.

        Returns:
            Fused features with the shape of ``visible``.
        """
        single = visible.dim() == 2
        q_in, kv_in = (visible.unsqueeze(1), infrared.unsqueeze(1)) if single else (visible, infrared)
        if q_in.dim() != 3 or kv_in.dim() != 3 or q_in.shape[0] != kv_in.shape[0] or q_in.shape[-1] != self.dim:
            raise ValueError(
                f"visible and infrared must both be (B, {self.dim}) or (B, L, {self.dim}) with the same B, got "
                f"{tuple(visible.shape)} and {tuple(infrared.shape)}"
            )
        q, k, v = self.q_proj(q_in), self.k_proj(kv_in), self.v_proj(kv_in)  # (B, Lq, D), (B, Lk, D) x2
        weights = torch.softmax(q @ k.transpose(1, 2) / self.dim**0.5, dim=-1)  # (B, Lq, Lk)
        fused = self.out_proj(weights @ v) + q_in  # (B, Lq, D)
        return fused.squeeze(1) if single else fused

    def extra_repr(self) -> str:
        return f"dim={self.dim}"


class AddIntegrator(nn.Module):
    """Parameter-free fusion ``t_vis + t_ir`` (ablation ``add``)."""

    def forward(self, visible: torch.Tensor, infrared: torch.Tensor) -> torch.Tensor:
        """Return ``visible + infrared``, shapes ``(B, D)``."""
        return visible + infrared


class VisibleOnlyIntegrator(nn.Module):
    """No fusion: the visible text feature is used as is (ablation ``none``)."""

    def forward(self, visible: torch.Tensor, infrared: torch.Tensor) -> torch.Tensor:
        """Return ``visible`` unchanged, shape ``(B, D)``."""
        return visible


INTEGRATORS = {"attention": SemanticIntegrator, "add": AddIntegrator, "none": VisibleOnlyIntegrator}


def build_integrator(kind: str = "attention", dim: int = 1024, dropout: float = 0.1) -> nn.Module:
    """Build a text-feature fusion module by name.

    Args:
        kind: ``"attention"`` (CSDN's :class:`SemanticIntegrator`), ``"add"`` or ``"none"``.
        dim: Feature size (used by ``"attention"``).
        dropout: Dropout (used by ``"attention"``).

    Returns:
        An ``nn.Module`` mapping ``(visible (B, D), infrared (B, D))`` to ``(B, D)``. The ``add``/``none``
        variants have no parameters, so stage 2 has nothing to train.
    """
    if kind not in INTEGRATORS:
        raise ValueError(f"Unknown value {kind!r} for argument kind. Valid values are {sorted(INTEGRATORS)}")
    if kind == "attention":
        return SemanticIntegrator(dim, dropout)
    return INTEGRATORS[kind]()
