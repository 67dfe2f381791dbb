"""CLIP's text transformer applied to prompt embeddings (frozen in every CSDN stage)."""

from __future__ import annotations

import torch
from torch import nn

from ..clip import CLIP

__all__ = ["TextEncoder"]


class TextEncoder(nn.Module):
    """Encode prompt token embeddings with CLIP's text tower: EOT output of ``ln_final`` @ ``text_projection``.

    Takes CLIP's ``transformer``, ``positional_embedding``, ``ln_final`` and ``text_projection`` (shared with
    ``clip_model``, not copied) and freezes them (``requires_grad=False``); gradients still flow to the input
    embeddings, which is how the prompt learners are trained.

    Args:
        clip_model: A ``csdn.clip.CLIP`` (or any module with those four attributes and a batch-first
            ``transformer``).
        freeze: Set ``requires_grad=False`` on the text tower (True in CSDN).
    """

    transformer: nn.Module
    positional_embedding: torch.Tensor
    ln_final: nn.Module
    text_projection: torch.Tensor

    def __init__(self, clip_model: CLIP, freeze: bool = True) -> None:
        super().__init__()
        self.transformer = clip_model.transformer
        self.positional_embedding = clip_model.positional_embedding
        self.ln_final = clip_model.ln_final
        self.text_projection = clip_model.text_projection
        if freeze:
            self.requires_grad_(False)

    @property
    def embed_dim(self) -> int:
        """Output feature size (1024 for RN50)."""
        return int(self.text_projection.shape[1])

    @property
    def width(self) -> int:
        """Token width of the text transformer (512 for RN50)."""
        return int(self.text_projection.shape[0])

    def forward(self, prompts: torch.Tensor, eot_index: torch.Tensor) -> torch.Tensor:
        """Map prompt embeddings ``(B, L, W)`` and EOT positions ``(B,)`` to text features ``(B, embed_dim)``."""
        x = prompts + self.positional_embedding.to(prompts.dtype)  # (B, L, W)
        x = self.ln_final(self.transformer(x))
        eot = x[torch.arange(x.shape[0], device=x.device), eot_index.to(x.device)]  # (B, W)
        return eot @ self.text_projection.to(eot.dtype)
