"""The assembled CSDN model: composition of the components, with one explicit method per use."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Mapping
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

import csdn.clip as clip_pkg

from .._modality import MODALITIES, check_modality
from .heads import BNNeck, GeM, HSEHead
from .image_encoder import TwoStreamEncoder, build_image_encoder
from .integrator import build_integrator
from .prompts import DEFAULT_TEMPLATE, ModalityPromptLearner
from .text_encoder import TextEncoder

logger = logging.getLogger(__name__)

__all__ = ["CSDN", "ImageFeatures", "STAGES"]

#: Training stages and the names of their parameter groups (see :meth:`CSDN.stage_parameters`).
STAGES = {1: ("prompts",), 2: ("integrator",), 3: ("backbone", "heads")}


class ImageFeatures(NamedTuple):
    """Training outputs of the image side, rows in input order.

    Attributes:
        f_g: Global (GeM) features before BN, (B, Dg) (2048 for RN50).
        f_p: Attention-pool (CLIP-space) features before BN, (B, Dp) (1024 for RN50).
        logits_g: Identity logits of the global BN-neck classifier, (B, C).
        logits_p: Identity logits of the projected BN-neck classifier, (B, C).
    """

    f_g: torch.Tensor
    f_p: torch.Tensor
    logits_g: torch.Tensor
    logits_p: torch.Tensor


class CSDN(nn.Module):
    """CLIP-Driven Semantic Discovery Network (Yu et al., TMM 2025) for visible-infrared re-ID.

    Built from explicit components (use :meth:`from_clip` to build them from a CLIP checkpoint); every entry point
    is a named method, so ``forward`` is just :meth:`image_features`.

    Training recipe (what ``csdn.engine`` does)::

        model = CSDN.from_clip("RN50", num_classes)                 # 288x144, layer4 stride 1
        # stage 1: prompts vs cached image features
        feats = model.clip_image_features(images, "visible")        # (B, 1024), under no_grad
        groups = model.freeze_for_stage(1)                          # {"prompts": [...]}
        t_vis, t_ir = model.text_features(y, "visible"), model.text_features(y, "infrared")
        # stage 2: integrator
        groups = model.freeze_for_stage(2)                          # {"integrator": [...]}
        t = model.fused_text_features(y)
        # stage 3: image side
        model.refresh_text_bank()                                   # fixed (C, 1024) HSE bank
        groups = model.freeze_for_stage(3)                          # {"backbone": [...], "heads": [...] (2x lr)}
        out = model.joint_image_features(visible, infrared)         # ImageFeatures(f_g, f_p, logits_g, logits_p)
        hse = model.hse_logits(out.f_p)                             # (B, C)
        # test
        emb = model.eval().encode_image(images, "infrared")         # (B, 3072), rows of norm sqrt(2)

    Args:
        image_encoder: Two-stream image encoder (:class:`~csdn.models.image_encoder.TwoStreamEncoder`).
        prompt_learners: ``{"visible": ..., "infrared": ...}`` prompt learners, or ``{"shared": ...}`` for one
            learner used by both modalities (the ``clip_vireid`` ablation).
        text_encoder: Frozen CLIP text encoder (:class:`~csdn.models.text_encoder.TextEncoder`).
        integrator: Fusion ``(t_vis (B, D), t_ir (B, D)) -> (B, D)`` (e.g. ``SemanticIntegrator``).
        num_classes: Number of training identities ``C``.
        head_global: BN-neck classifier on ``f_g`` (default ``BNNeck(encoder.global_dim, C)``).
        head_proj: BN-neck classifier on ``f_p`` (default ``BNNeck(encoder.proj_dim, C)``).
        hse: HSE head (default ``HSEHead(C, encoder.proj_dim)``).
        clip_arch: The CLIP constructor arguments the components were built from (plain values; stored in
            checkpoints so the model can be rebuilt without the CLIP file, see :mod:`csdn.models.checkpoint`);
            ``None`` when unknown.
    """

    hse: HSEHead

    def __init__(
        self,
        image_encoder: TwoStreamEncoder,
        prompt_learners: Mapping[str, nn.Module],
        text_encoder: nn.Module,
        integrator: nn.Module,
        num_classes: int,
        head_global: nn.Module | None = None,
        head_proj: nn.Module | None = None,
        hse: HSEHead | None = None,
        clip_arch: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        keys = sorted(prompt_learners)
        if keys not in (sorted(MODALITIES), ["shared"]):
            raise ValueError(f"prompt_learners must have keys {list(MODALITIES)} or ['shared'], got {keys}")
        self.num_classes = int(num_classes)
        self.clip_arch: dict[str, Any] | None = None if clip_arch is None else dict(clip_arch)
        self.image_encoder = image_encoder
        self.prompt_learners = nn.ModuleDict(dict(prompt_learners))
        self.text_encoder = text_encoder
        self.integrator = integrator
        self.head_global = head_global or BNNeck(image_encoder.global_dim, num_classes)
        self.head_proj = head_proj or BNNeck(image_encoder.proj_dim, num_classes)
        self.hse = hse or HSEHead(num_classes, image_encoder.proj_dim)

    @classmethod
    def from_clip(
        cls,
        clip: str | os.PathLike | Mapping[str, torch.Tensor] | nn.Module,
        num_classes: int,
        *,
        image_size: int | tuple[int, int] = (288, 144),
        last_stride: int = 1,
        stem_relu: str = "official",
        gem_p: float = 3.0,
        gem_eps: float = 1e-6,
        n_ctx: int = 4,
        template: str = DEFAULT_TEMPLATE,
        shared_prompts: bool = False,
        integrator: str | nn.Module = "attention",
        integrator_dropout: float = 0.1,
        device: str | torch.device = "cpu",
        download_root: str | None = None,
        generator: torch.Generator | None = None,
        clip_arch: Mapping[str, Any] | None = None,
        trust_code: bool = False,
    ) -> CSDN:
        """Build CSDN from a CLIP model, checkpoint name/path or OpenAI-keyed state dict.

        Args:
            clip: A ``csdn.clip.CLIP`` (used as is: build it for ``image_size``/``last_stride`` yourself), a
                model name or local checkpoint for ``csdn.clip.load`` (e.g. ``"RN50"``), or a state dict.
            num_classes: Training identities ``C``.
            image_size: Training input ``(H, W)``; the vision positional embedding is resized to it.
            last_stride: ResNet layer4 stride (1 in CSDN); ignored for ViT checkpoints.
            stem_relu: ``"official"`` (single ReLU after bn3) or ``"clip"`` ResNet stems.
            gem_p: Initial GeM exponent.
            gem_eps: GeM clamp.
            n_ctx: Learnable context tokens per identity.
            template: Prompt template with ``n_ctx`` ``X`` placeholders.
            shared_prompts: One prompt learner for both modalities (ablation) instead of one per modality.
            integrator: ``"attention"`` / ``"add"`` / ``"none"`` or a module ``(t_vis, t_ir) -> fused``.
            integrator_dropout: Dropout of the attention integrator.
            device: Device of the returned model.
            download_root: Cache directory for ``csdn.clip.load``.
            generator: RNG for the prompt-context initialisation (heads use torch's default initialisation).
            clip_arch: The CLIP architecture record kept as :attr:`clip_arch` (see
                :func:`csdn.models.factory.clip_architecture`).
            trust_code: Let a CLIP TorchScript archive the data-only reader refuses run its own code
                (``torch.jit.load``); see :func:`csdn.clip.read_state_dict`.

        Returns:
            The model in train mode on ``device``; the CLIP token embedding and logit scale are not kept.
        """
        clip_model = _as_clip(clip, image_size, last_stride, download_root, trust_code)
        embed_dim = int(clip_model.text_projection.shape[1])
        learners: dict[str, nn.Module] = {}
        for key in ("shared",) if shared_prompts else MODALITIES:
            learners[key] = ModalityPromptLearner(
                clip_model.token_embedding, num_classes, n_ctx, template,
                context_length=clip_model.positional_embedding.shape[0], generator=generator,
            )  # fmt: skip
        if isinstance(integrator, str):
            integrator = build_integrator(integrator, embed_dim, integrator_dropout)
        model = cls(
            build_image_encoder(clip_model.visual, stem_relu=stem_relu, gem_p=gem_p, gem_eps=gem_eps),
            learners,
            TextEncoder(clip_model),
            integrator,
            num_classes,
            clip_arch=clip_arch,
        )
        return model.to(device).train()

    # ----------------------------------------------------------------------------------------- text side
    def prompt_learner(self, modality: str) -> nn.Module:
        """The prompt learner of ``modality`` (the shared one when prompts are shared)."""
        modality = check_modality(modality)
        return self.prompt_learners["shared" if "shared" in self.prompt_learners else modality]

    def text_features(self, labels: torch.Tensor, modality: str) -> torch.Tensor:
        """Text features of identities ``labels`` (B,) from ``modality``'s prompts -> ``(B, D)``."""
        embeddings, eot_index = self.prompt_learner(modality)(labels)
        return self.text_encoder(embeddings, eot_index)

    def fused_text_features(self, labels: torch.Tensor) -> torch.Tensor:
        """Integrated visible + infrared text features of identities ``labels`` (B,) -> ``(B, D)``."""
        return self.integrator(self.text_features(labels, "visible"), self.text_features(labels, "infrared"))

    @torch.no_grad()
    def compute_text_bank(self, batch_size: int = 64) -> torch.Tensor:
        """Fused text features of all identities ``0..C-1`` -> ``(C, D)``, without gradient.

        Runs in the current train/eval mode of the integrator (the official code computes it in train mode,
        i.e. with dropout; call ``model.eval()`` first for deterministic features).
        """
        device = self.hse.text_bank.device
        labels = torch.arange(self.num_classes, device=device)
        return torch.cat([self.fused_text_features(chunk) for chunk in labels.split(batch_size)])

    def set_text_bank(self, text_features: torch.Tensor) -> None:
        """Store the fixed ``(C, D)`` identity text features used by the HSE head in stage 3."""
        self.hse.set_text_bank(text_features)

    def refresh_text_bank(self, batch_size: int = 64, dropout: bool = False) -> torch.Tensor:
        """Compute and store the HSE text bank; returns it ``(C, D)``.

        Args:
            batch_size: Identities per text-encoder batch.
            dropout: Keep the integrator in train mode (dropout active, the official behaviour) instead of eval.
        """
        was_training = self.integrator.training
        self.integrator.train(dropout)
        try:
            bank = self.compute_text_bank(batch_size)
        finally:
            self.integrator.train(was_training)
        self.set_text_bank(bank)
        return bank

    # ---------------------------------------------------------------------------------------- image side
    def clip_image_features(self, images: torch.Tensor, modality: str) -> torch.Tensor:
        """CLIP-space (attention-pool) features of images ``(B, 3, H, W)`` -> ``(B, Dp)``; stages 1-2 inputs.

        Only the stem, trunk and attention pool run (no GeM, no BN neck), as in the official extraction.
        """
        return self.image_encoder.project(self.image_encoder.forward_features(images, modality))

    def _heads(self, features: torch.Tensor) -> ImageFeatures:
        f_g, f_p = self.image_encoder.pool(features)
        return ImageFeatures(f_g, f_p, self.head_global(f_g).logits, self.head_proj(f_p).logits)

    def image_features(self, images: torch.Tensor, modality: str) -> ImageFeatures:
        """Training features and identity logits of images ``(B, 3, H, W)`` of one modality."""
        return self._heads(self.image_encoder.forward_features(images, modality))

    def joint_image_features(self, visible: torch.Tensor, infrared: torch.Tensor) -> ImageFeatures:
        """Training outputs for ``cat([visible, infrared])`` with one shared-trunk pass (the official step).

        Args:
            visible: Visible images ``(Bv, 3, H, W)`` (CSDN: both augmented views, 2 x 32).
            infrared: Infrared images ``(Br, 3, H, W)``.

        Returns:
            :class:`ImageFeatures` whose first ``Bv`` rows are the visible images.
        """
        return self._heads(self.image_encoder.forward_features_joint([(visible, "visible"), (infrared, "infrared")]))

    def forward(self, images: torch.Tensor, modality: str) -> ImageFeatures:
        """Same as :meth:`image_features`."""
        return self.image_features(images, modality)

    def hse_logits(self, f_p: torch.Tensor) -> torch.Tensor:
        """HSE logits ``f_p @ text_bank^T``: ``(B, Dp) -> (B, C)``."""
        return self.hse(f_p)

    @property
    def embed_dim(self) -> int:
        """Size of :meth:`encode_image` embeddings (``Dg + Dp``; 3072 for RN50)."""
        return self.image_encoder.global_dim + self.image_encoder.proj_dim

    def encode_image(self, images: torch.Tensor, modality: str) -> torch.Tensor:
        """Test embedding ``cat(l2(BN(f_g)), l2(f_p))`` of images ``(B, 3, H, W)`` -> ``(B, Dg + Dp)``.

        Each row is two unit-length halves, so its norm is ``sqrt(2)`` (``(B, 3072)`` for RN50). The official test
        concatenates it with the flipped image's embedding (``(B, 6144)``, norm 2) and scores by inner product,
        which for these constant-norm rows ranks like cosine similarity (csdn's default metric).

        Call ``model.eval()`` first (the BN uses running statistics only in eval mode). Flip test-time
        augmentation is left to the caller (:func:`csdn.evaluation.features.encode_images`).
        """
        f_g, f_p = self.image_encoder(images, modality)
        bn_g = self.head_global(f_g).bn_features
        return torch.cat([F.normalize(bn_g, dim=1), F.normalize(f_p, dim=1)], dim=1)

    # ------------------------------------------------------------------------------------------ training
    def _head_parameters(self) -> Iterator[nn.Parameter]:
        for module in self.image_encoder.modules():
            if isinstance(module, GeM):
                yield from module.parameters(recurse=False)
        yield from self.head_global.parameters()
        yield from self.head_proj.parameters()
        yield from self.hse.parameters()

    def stage_parameters(self, stage: int) -> dict[str, list[nn.Parameter]]:
        """The parameters trained in ``stage``, by group (every other parameter is frozen in that stage).

        - stage 1: ``{"prompts": prompt-learner contexts}``
        - stage 2: ``{"integrator": integrator parameters}`` (empty for the ``add``/``none`` integrators)
        - stage 3: ``{"backbone": stems, trunk, attention pool, "heads": GeM p + both BN-neck classifiers}``;
          the official optimiser gives ``heads`` twice the learning rate (its ``'classifier' in name`` rule).

        Raises:
            ValueError: For a stage other than 1, 2, 3.
        """
        if stage == 1:
            return {"prompts": list(self.prompt_learners.parameters())}
        if stage == 2:
            return {"integrator": list(self.integrator.parameters())}
        if stage == 3:
            heads = list(self._head_parameters())
            head_ids = {id(p) for p in heads}
            backbone = [p for p in self.image_encoder.parameters() if id(p) not in head_ids]
            return {"backbone": backbone, "heads": heads}
        raise ValueError(f"Unknown value {stage!r} for argument stage. Valid values are {sorted(STAGES)}")

    def freeze_for_stage(self, stage: int) -> dict[str, list[nn.Parameter]]:
        """Set ``requires_grad`` so that only ``stage``'s parameters train; returns :meth:`stage_parameters`."""
        groups = self.stage_parameters(stage)
        self.requires_grad_(False)
        for params in groups.values():
            for p in params:
                p.requires_grad_(True)
        return groups


def read_clip_weights(
    name_or_path: str | os.PathLike,
    download_root: str | os.PathLike | None = None,
    argument: str = "clip",
    *,
    trust_code: bool = False,
) -> dict[str, torch.Tensor]:
    """The CLIP state dict an official model name (downloaded, SHA-256 verified) or a local file names.

    Used by ``CSDN.from_clip`` and ``ModelConfig.clip``; the name or path is resolved by :func:`csdn.clip.resolve`.
    Files are read as data only (:func:`csdn.clip.read_state_dict`) unless ``trust_code`` lets a TorchScript
    archive that the data-only reader refuses run its own code.

    Raises:
        FileNotFoundError: naming ``argument`` if ``name_or_path`` is neither an available model nor a file.
    """
    return clip_pkg.read_state_dict(clip_pkg.resolve(name_or_path, download_root, argument), trust_code=trust_code)


def _as_clip(
    clip: str | os.PathLike | Mapping[str, torch.Tensor] | nn.Module,
    image_size: int | tuple[int, int],
    last_stride: int,
    download_root: str | None,
    trust_code: bool = False,
) -> Any:
    """Return a CLIP model for ``from_clip``: as given, or built from a state dict / local file / model name.

    Typed ``Any``: a given module is duck-typed (any module with CLIP's attributes), see :meth:`CSDN.from_clip`.
    """
    if isinstance(clip, nn.Module):
        return clip
    state = clip if isinstance(clip, Mapping) else read_clip_weights(clip, download_root, trust_code=trust_code)
    stride = None if "visual.proj" in state else last_stride
    return clip_pkg.build_model(state, image_size=image_size, last_stride=stride)
