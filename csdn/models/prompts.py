"""Learnable identity prompts for CLIP's text encoder (one learner per modality in CSDN)."""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from csdn.clip import tokenize

__all__ = ["ModalityPromptLearner", "Prompts", "DEFAULT_TEMPLATE"]

#: CSDN's prompt template; each ``X`` is replaced by one learnable per-identity context token.
DEFAULT_TEMPLATE = "A photo of a X X X X person."


class Prompts(NamedTuple):
    """Prompt token embeddings ``embeddings`` (B, L, W) and the end-of-text positions ``eot_index`` (B,)."""

    embeddings: torch.Tensor
    eot_index: torch.Tensor


def _placeholder_span(tokens: torch.Tensor, placeholder_id: int, n_ctx: int, template: str) -> int:
    """Start index of the ``n_ctx`` consecutive placeholder tokens in ``tokens`` (L,)."""
    positions = (tokens == placeholder_id).nonzero().flatten().tolist()
    if len(positions) != n_ctx or positions != list(range(positions[0], positions[0] + n_ctx)):
        raise ValueError(
            f"template {template!r} must contain exactly n_ctx={n_ctx} consecutive placeholder words; found "
            f"{len(positions)} at token positions {positions}"
        )
    return positions[0]


class ModalityPromptLearner(nn.Module):
    """Per-identity learnable context tokens inserted into a fixed text template (CoOp / CLIP-ReID style).

    The template is tokenised once; the token embeddings before the placeholders (``token_prefix``: SOT and
    "a photo of a") and after them (``token_suffix``: "person.", EOT and padding) are stored as buffers, and
    identity ``c`` gets ``n_ctx`` learnable vectors ``ctx[c]`` initialised ``N(0, ctx_std^2)``. The CLIP token
    embedding is only used at construction, so the learner does not keep CLIP's 49408-row table.

    Args:
        token_embedding: CLIP's token embedding (``clip_model.token_embedding``), shape (vocab, W).
        num_classes: Number of identities ``C``.
        n_ctx: Learnable tokens per identity (4).
        template: Text with ``n_ctx`` consecutive ``placeholder`` words.
        placeholder: The placeholder word of ``template``.
        ctx_std: Standard deviation of the initial context vectors (0.02).
        context_length: Token sequence length of the text encoder (77).
        generator: Optional ``torch.Generator`` for the context initialisation (default: torch's global RNG,
            like any ``nn.Module`` initialisation).
    """

    token_prefix: torch.Tensor  # buffer (1, start, W)
    token_suffix: torch.Tensor  # buffer (1, L - start - n_ctx, W)
    tokenized_prompt: torch.Tensor  # buffer (L,)

    def __init__(
        self,
        token_embedding: nn.Embedding,
        num_classes: int,
        n_ctx: int = 4,
        template: str = DEFAULT_TEMPLATE,
        placeholder: str = "X",
        ctx_std: float = 0.02,
        context_length: int = 77,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        if num_classes < 1 or n_ctx < 1:
            raise ValueError(f"num_classes and n_ctx must be >= 1, got num_classes={num_classes}, n_ctx={n_ctx}")
        tokens = tokenize(template, context_length=context_length)[0]  # (L,)
        placeholder_id = int(tokenize(placeholder, context_length=context_length)[0, 1])
        start = _placeholder_span(tokens, placeholder_id, n_ctx, template)
        weight = token_embedding.weight
        with torch.no_grad():
            embedding = token_embedding(tokens.to(weight.device)).detach().to("cpu", weight.dtype)  # (L, W)
        self.template = template
        self.n_ctx = n_ctx
        self.num_classes = num_classes
        ctx = torch.empty(num_classes, n_ctx, weight.shape[1], dtype=weight.dtype)
        self.ctx = nn.Parameter(nn.init.normal_(ctx, std=ctx_std, generator=generator))
        self.register_buffer("token_prefix", embedding[None, :start].clone())  # (1, start, W)
        self.register_buffer("token_suffix", embedding[None, start + n_ctx :].clone())  # (1, L - start - n_ctx, W)
        self.register_buffer("tokenized_prompt", tokens, persistent=False)  # (L,)

    @property
    def eot_position(self) -> int:
        """Position of the end-of-text token (the largest token id) in the prompt."""
        return int(self.tokenized_prompt.argmax())

    def forward(self, labels: torch.Tensor) -> Prompts:
        """Build the prompts of identities ``labels`` (B,) -> ``Prompts((B, L, W), (B,))``."""
        if labels.dim() != 1:
            raise ValueError(f"labels must be a 1-D tensor of identity labels, got shape {tuple(labels.shape)}")
        b = labels.shape[0]
        ctx = self.ctx[labels]  # (B, n_ctx, W)
        embeddings = torch.cat(
            [self.token_prefix.expand(b, -1, -1), ctx, self.token_suffix.expand(b, -1, -1)], dim=1
        )  # (B, L, W)
        eot = self.tokenized_prompt.argmax().expand(b)
        return Prompts(embeddings, eot)

    def extra_repr(self) -> str:
        return f"num_classes={self.num_classes}, n_ctx={self.n_ctx}, template={self.template!r}"
