"""Two-stream CLIP image encoders: modality-specific stems, shared trunk (CSDN's image side)."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import NamedTuple

import torch
from torch import nn

from .._modality import MODALITIES, check_modality
from ..clip import ModifiedResNet, VisionTransformer
from .heads import GeM

__all__ = [
    "EncodedImage",
    "ResNetStem",
    "TwoStreamEncoder",
    "TwoStreamResNet",
    "TwoStreamViT",
    "build_image_encoder",
]


class EncodedImage(NamedTuple):
    """Pooled image features: ``global_features`` (B, Dg) (GeM / class token) and ``projected`` (B, Dp)."""

    global_features: torch.Tensor
    projected: torch.Tensor


class ResNetStem(nn.Module):
    """CLIP ModifiedResNet's 3-conv stem as a standalone module (a modality-specific copy in CSDN).

    Args:
        conv1: The stem's first convolution (the layers are deep-copied from a ``ModifiedResNet``).
        bn1: Its BatchNorm.
        conv2: The second convolution.
        bn2: Its BatchNorm.
        conv3: The third convolution.
        bn3: Its BatchNorm.
        relu: ``"official"`` applies one ReLU after ``bn3`` (the official CSDN stem, which its released weights
            were trained with); ``"clip"`` applies a ReLU after each BN, as CLIP does.
    """

    def __init__(
        self,
        conv1: nn.Conv2d,
        bn1: nn.BatchNorm2d,
        conv2: nn.Conv2d,
        bn2: nn.BatchNorm2d,
        conv3: nn.Conv2d,
        bn3: nn.BatchNorm2d,
        relu: str = "official",
    ) -> None:
        super().__init__()
        if relu not in ("official", "clip"):
            raise ValueError(f"Unknown value {relu!r} for argument relu. Valid values are ['clip', 'official']")
        self.conv1, self.bn1, self.conv2, self.bn2, self.conv3, self.bn3 = conv1, bn1, conv2, bn2, conv3, bn3
        self.avgpool = nn.AvgPool2d(2)
        self.relu = relu

    @classmethod
    def from_resnet(cls, visual: ModifiedResNet, relu: str = "official") -> ResNetStem:
        """Deep-copy the stem layers of ``visual``."""
        copies = {
            name: copy.deepcopy(getattr(visual, name)) for name in ("conv1", "bn1", "conv2", "bn2", "conv3", "bn3")
        }
        return cls(**copies, relu=relu)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map images ``(B, 3, H, W)`` to ``(B, width, H/4, W/4)``."""
        x = x.to(self.conv1.weight.dtype)
        each = self.relu == "clip"
        for conv, bn in ((self.conv1, self.bn1), (self.conv2, self.bn2), (self.conv3, self.bn3)):
            x = bn(conv(x))
            x = torch.relu(x) if each else x
        x = x if each else torch.relu(x)
        return self.avgpool(x)

    def extra_repr(self) -> str:
        return f"relu={self.relu!r}"


class TwoStreamEncoder(nn.Module):
    """Interface of the two-stream encoders: ``stems[modality]`` then a shared ``trunk`` and two poolings.

    Subclasses set ``stems`` (an ``nn.ModuleDict`` keyed by :data:`MODALITIES`), ``global_dim``, ``proj_dim`` and
    implement :meth:`trunk`, :meth:`pool_global` and :meth:`project`.
    """

    stems: nn.ModuleDict
    global_dim: int
    proj_dim: int

    def stem(self, images: torch.Tensor, modality: str) -> torch.Tensor:
        """Apply the stem of ``modality`` to images ``(B, 3, H, W)``."""
        return self.stems[check_modality(modality)](images)

    def trunk(self, x: torch.Tensor) -> torch.Tensor:
        """Shared part: stem output -> feature map / tokens."""
        raise NotImplementedError

    def pool_global(self, features: torch.Tensor) -> torch.Tensor:
        """Trunk output -> global feature ``(B, global_dim)``."""
        raise NotImplementedError

    def project(self, features: torch.Tensor) -> torch.Tensor:
        """Trunk output -> CLIP-space feature ``(B, proj_dim)``."""
        raise NotImplementedError

    def forward_features(self, images: torch.Tensor, modality: str) -> torch.Tensor:
        """Images ``(B, 3, H, W)`` of one modality -> trunk output."""
        return self.trunk(self.stem(images, modality))

    def forward_features_joint(self, batches: Sequence[tuple[torch.Tensor, str]]) -> torch.Tensor:
        """Several ``(images, modality)`` batches -> trunk output of their concatenation, in order.

        Each batch goes through its own stem; the stem outputs are concatenated and run through the shared
        trunk in one pass, so the trunk's BatchNorm statistics are those of the joint batch (as in the
        official training step).
        """
        return self.trunk(torch.cat([self.stem(x, m) for x, m in batches], dim=0))

    def pool(self, features: torch.Tensor) -> EncodedImage:
        """Trunk output -> ``EncodedImage(global (B, global_dim), projected (B, proj_dim))``."""
        return EncodedImage(self.pool_global(features), self.project(features))

    def forward(self, images: torch.Tensor, modality: str) -> EncodedImage:
        """Images ``(B, 3, H, W)`` of one modality -> :class:`EncodedImage`."""
        return self.pool(self.forward_features(images, modality))


class TwoStreamResNet(TwoStreamEncoder):
    """CSDN's image encoder from a CLIP ``ModifiedResNet``.

    Visible and infrared images have their own deep copies of the stem (``stems.visible``,
    ``stems.infrared``); ``layer1``-``layer4`` and ``attnpool`` are shared (taken from ``visual``, not copied).
    The global feature is GeM pooling of the layer4 map (``gem``, learnable p), the projected feature is the
    attention-pool output. Build ``visual`` for the training input size with ``last_stride=1`` (RN50 at
    288x144: 18x9x2048 map, attention-pool grid 18x9).

    Args:
        visual: CLIP ModifiedResNet.
        stem_relu: ``"official"`` (single ReLU after bn3, default) or ``"clip"``; see :class:`ResNetStem`.
        gem_p: Initial GeM exponent.
        gem_eps: GeM clamp.
    """

    def __init__(
        self, visual: ModifiedResNet, stem_relu: str = "official", gem_p: float = 3.0, gem_eps: float = 1e-6
    ) -> None:
        super().__init__()
        self.stems = nn.ModuleDict({m: ResNetStem.from_resnet(visual, stem_relu) for m in MODALITIES})
        self.layer1, self.layer2, self.layer3, self.layer4 = visual.layer1, visual.layer2, visual.layer3, visual.layer4
        self.attnpool = visual.attnpool
        self.gem = GeM(gem_p, gem_eps)
        self.global_dim = int(visual.attnpool.k_proj.in_features)
        self.proj_dim = int(visual.output_dim)
        self.grid_size = tuple(visual.attnpool.grid_size)

    def trunk(self, x: torch.Tensor) -> torch.Tensor:
        """Stem output ``(B, width, H/4, W/4)`` -> layer4 map ``(B, global_dim, h, w)``."""
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))

    def pool_global(self, features: torch.Tensor) -> torch.Tensor:
        """GeM of the layer4 map -> ``(B, global_dim)``."""
        return self.gem(features)

    def project(self, features: torch.Tensor) -> torch.Tensor:
        """Attention pooling of the layer4 map -> ``(B, proj_dim)``."""
        return self.attnpool(features)


class TwoStreamViT(TwoStreamEncoder):
    """Two-stream encoder from a CLIP ``VisionTransformer`` (for CLIP-ReID-style ViT-B/16 users).

    The patch embedding ``conv1`` is modality-specific (``stems.visible``, ``stems.infrared``); class token,
    positional embedding, ``ln_pre``, the transformer, ``ln_post`` and ``proj`` are shared. The global feature
    is ``ln_post`` of the class token (``width``-d), the projected feature that @ ``proj`` (``output_dim``).

    Args:
        visual: CLIP VisionTransformer built for the training input size.
    """

    def __init__(self, visual: VisionTransformer) -> None:
        super().__init__()
        self.stems = nn.ModuleDict({m: copy.deepcopy(visual.conv1) for m in MODALITIES})
        self.class_embedding = visual.class_embedding
        self.positional_embedding = visual.positional_embedding
        self.ln_pre, self.transformer, self.ln_post = visual.ln_pre, visual.transformer, visual.ln_post
        self.proj = visual.proj
        self.global_dim = int(visual.proj.shape[0])
        self.proj_dim = int(visual.proj.shape[1])
        self.grid_size = tuple(visual.grid_size)

    def stem(self, images: torch.Tensor, modality: str) -> torch.Tensor:
        """Patch-embed images ``(B, 3, H, W)`` -> patch tokens ``(B, h*w, width)``."""
        conv = self.stems[check_modality(modality)]
        return conv(images.to(conv.get_parameter("weight").dtype)).flatten(2).transpose(1, 2)

    def trunk(self, x: torch.Tensor) -> torch.Tensor:
        """Patch tokens ``(B, h*w, width)`` -> output tokens ``(B, 1 + h*w, width)``."""
        cls = self.class_embedding.to(x.dtype).expand(x.shape[0], 1, -1)
        x = torch.cat([cls, x], dim=1) + self.positional_embedding.to(x.dtype)
        return self.transformer(self.ln_pre(x))

    def pool_global(self, features: torch.Tensor) -> torch.Tensor:
        """``ln_post`` of the class token -> ``(B, width)``."""
        return self.ln_post(features[:, 0])

    def project(self, features: torch.Tensor) -> torch.Tensor:
        """Projected class token -> ``(B, output_dim)``."""
        return self.pool_global(features) @ self.proj


def build_image_encoder(
    visual: nn.Module, stem_relu: str = "official", gem_p: float = 3.0, gem_eps: float = 1e-6
) -> TwoStreamEncoder:
    """Wrap a CLIP vision tower (``clip_model.visual``) as a two-stream encoder.

    Args:
        visual: ``ModifiedResNet`` or ``VisionTransformer``.
        stem_relu: ResNet stem variant (``"official"``/``"clip"``); ignored for the ViT.
        gem_p: Initial GeM exponent (ResNet only).
        gem_eps: GeM clamp (ResNet only).

    Returns:
        :class:`TwoStreamResNet` or :class:`TwoStreamViT`, sharing ``visual``'s trunk modules.
    """
    if isinstance(visual, ModifiedResNet):
        return TwoStreamResNet(visual, stem_relu=stem_relu, gem_p=gem_p, gem_eps=gem_eps)
    if isinstance(visual, VisionTransformer):
        return TwoStreamViT(visual)
    raise ValueError(f"visual must be a csdn.clip ModifiedResNet or VisionTransformer, got {type(visual).__name__}")
