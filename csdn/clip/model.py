"""OpenAI-CLIP-compatible image and text encoders.

Attribute names, and therefore state-dict keys, follow OpenAI's CLIP so that its checkpoints load
unchanged. Two extensions for person re-identification: the vision towers accept a non-square input
(``image_size=(H, W)``) and ``ModifiedResNet`` accepts ``last_stride=1``. The text ``Transformer`` is
batch-first: it takes and returns ``(N, L, D)``.
"""

from __future__ import annotations

import logging
import math
from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import nn

from .pos_embed import to_hw

logger = logging.getLogger(__name__)


class QuickGELU(nn.Module):
    """The GELU approximation OpenAI's CLIP was trained with: ``x * sigmoid(1.702 x)``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(1.702 * x)


class Bottleneck(nn.Module):
    """ResNet bottleneck with anti-aliased (avg-pool) downsampling, as in CLIP's ModifiedResNet.

    Args:
        inplanes: Input channels.
        planes: Bottleneck channels; the output has ``4 * planes`` channels.
        stride: Spatial downsampling factor (applied by an ``AvgPool2d`` after ``conv2``).
    """

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        out = planes * self.expansion
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu2 = nn.ReLU(inplace=True)
        self.avgpool = nn.AvgPool2d(stride) if stride > 1 else nn.Identity()
        self.conv3 = nn.Conv2d(planes, out, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out)
        self.relu3 = nn.ReLU(inplace=True)
        self.downsample: nn.Module | None = None
        self.stride = stride
        if stride > 1 or inplanes != out:
            layers = [("-1", nn.AvgPool2d(stride)), ("0", nn.Conv2d(inplanes, out, 1, bias=False))]
            self.downsample = nn.Sequential(OrderedDict(layers + [("1", nn.BatchNorm2d(out))]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map ``(N, inplanes, H, W)`` to ``(N, 4 * planes, H / stride, W / stride)``."""
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu1(self.bn1(self.conv1(x)))
        out = self.relu2(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(self.avgpool(out)))
        return self.relu3(out + identity)


class AttentionPool2d(nn.Module):
    """QKV attention pooling of a feature map, queried by its mean token (works on non-square maps).

    Args:
        spacial_grid: Feature-map grid ``(h, w)`` (or an int for a square grid); the positional
            embedding has ``h * w + 1`` rows.
        embed_dim: Input channels ``C``.
        num_heads: Attention heads.
        output_dim: Output channels (default ``embed_dim``).
    """

    def __init__(
        self, spacial_grid: int | tuple[int, int], embed_dim: int, num_heads: int, output_dim: int | None = None
    ) -> None:
        super().__init__()
        self.grid_size = to_hw(spacial_grid, "spacial_grid")
        rows = self.grid_size[0] * self.grid_size[1] + 1
        self.positional_embedding = nn.Parameter(torch.randn(rows, embed_dim) / embed_dim**0.5)
        self.k_proj = nn.Linear(embed_dim, embed_dim)
        self.q_proj = nn.Linear(embed_dim, embed_dim)
        self.v_proj = nn.Linear(embed_dim, embed_dim)
        self.c_proj = nn.Linear(embed_dim, output_dim or embed_dim)
        self.num_heads = num_heads

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Pool ``(N, C, h, w)`` to ``(N, output_dim)``."""
        if tuple(x.shape[-2:]) != self.grid_size:
            raise ValueError(f"AttentionPool2d expects a {self.grid_size} feature map, got {tuple(x.shape[-2:])}")
        x = x.flatten(2).permute(2, 0, 1)  # NCHW -> (HW)NC
        x = torch.cat([x.mean(dim=0, keepdim=True), x], dim=0)  # (HW+1)NC
        x = x + self.positional_embedding[:, None, :].to(x.dtype)
        out, _ = F.multi_head_attention_forward(
            query=x[:1],
            key=x,
            value=x,
            embed_dim_to_check=x.shape[-1],
            num_heads=self.num_heads,
            q_proj_weight=self.q_proj.weight,
            k_proj_weight=self.k_proj.weight,
            v_proj_weight=self.v_proj.weight,
            in_proj_weight=None,
            in_proj_bias=torch.cat([self.q_proj.bias, self.k_proj.bias, self.v_proj.bias]),
            bias_k=None,
            bias_v=None,
            add_zero_attn=False,
            dropout_p=0.0,
            out_proj_weight=self.c_proj.weight,
            out_proj_bias=self.c_proj.bias,
            use_separate_proj_weight=True,
            training=self.training,
            need_weights=False,
        )
        return out.squeeze(0)  # (N, output_dim)


class ModifiedResNet(nn.Module):
    """CLIP's ResNet: 3-conv stem, anti-aliased strided blocks, attention pooling instead of avg pooling.

    Args:
        layers: Bottleneck counts of layer1..layer4.
        output_dim: Embedding size produced by ``attnpool``.
        heads: Attention-pool heads.
        input_resolution: Input size ``(H, W)`` (or int); must be divisible by the total stride.
        width: Stem width (64 for RN50); layer4 outputs ``32 * width`` channels.
        last_stride: Stride of layer4 (2 in CLIP; 1 doubles the final map, as in re-ID).
    """

    def __init__(
        self,
        layers: tuple[int, int, int, int],
        output_dim: int,
        heads: int,
        input_resolution: int | tuple[int, int] = 224,
        width: int = 64,
        last_stride: int = 2,
    ) -> None:
        super().__init__()
        if last_stride not in (1, 2):
            raise ValueError(f"last_stride must be 1 or 2, got {last_stride!r}")
        self.input_resolution = to_hw(input_resolution, "input_resolution")
        total_stride = 16 * last_stride
        if any(v % total_stride for v in self.input_resolution):
            raise ValueError(
                f"ModifiedResNet input size {self.input_resolution} must be divisible by {total_stride} "
                f"(last_stride={last_stride}); pick image_size as a multiple of {total_stride}"
                + (" or use last_stride=1 (multiples of 16)" if last_stride == 2 else "")
            )
        self.output_dim = output_dim
        self.last_stride = last_stride
        self.conv1 = nn.Conv2d(3, width // 2, 3, stride=2, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width // 2)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(width // 2, width // 2, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(width // 2)
        self.relu2 = nn.ReLU(inplace=True)
        self.conv3 = nn.Conv2d(width // 2, width, 3, padding=1, bias=False)
        self.bn3 = nn.BatchNorm2d(width)
        self.relu3 = nn.ReLU(inplace=True)
        self.avgpool = nn.AvgPool2d(2)
        self._inplanes = width
        self.layer1 = self._make_layer(width, layers[0])
        self.layer2 = self._make_layer(width * 2, layers[1], stride=2)
        self.layer3 = self._make_layer(width * 4, layers[2], stride=2)
        self.layer4 = self._make_layer(width * 8, layers[3], stride=last_stride)
        self.grid_size = (self.input_resolution[0] // total_stride, self.input_resolution[1] // total_stride)
        self.attnpool = AttentionPool2d(self.grid_size, width * 32, heads, output_dim)

    def _make_layer(self, planes: int, blocks: int, stride: int = 1) -> nn.Sequential:
        layers = [Bottleneck(self._inplanes, planes, stride)]
        self._inplanes = planes * Bottleneck.expansion
        layers += [Bottleneck(self._inplanes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def stem(self, x: torch.Tensor) -> torch.Tensor:
        """Map images ``(N, 3, H, W)`` to the stem output ``(N, width, H / 4, W / 4)``."""
        x = x.type(self.conv1.weight.dtype)
        x = self.relu1(self.bn1(self.conv1(x)))
        x = self.relu2(self.bn2(self.conv2(x)))
        x = self.relu3(self.bn3(self.conv3(x)))
        return self.avgpool(x)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Map images ``(N, 3, H, W)`` to the layer4 map ``(N, 32 * width, h, w)`` with ``(h, w) = grid_size``."""
        x = self.stem(x)
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map images ``(N, 3, H, W)`` to embeddings ``(N, output_dim)``."""
        return self.attnpool(self.forward_features(x))


class LayerNorm(nn.LayerNorm):
    """LayerNorm computed in fp32 and cast back, so fp16 weights work (as in OpenAI's CLIP)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.float()).type(x.dtype)


class ResidualAttentionBlock(nn.Module):
    """Pre-LN transformer block on batch-first ``(N, L, D)`` tokens.

    Args:
        d_model: Token width ``D``.
        n_head: Attention heads.
    """

    def __init__(self, d_model: int, n_head: int) -> None:
        super().__init__()
        self.attn = nn.MultiheadAttention(d_model, n_head, batch_first=True)
        self.ln_1 = LayerNorm(d_model)
        hidden = d_model * 4
        mlp = [("c_fc", nn.Linear(d_model, hidden)), ("gelu", QuickGELU()), ("c_proj", nn.Linear(hidden, d_model))]
        self.mlp = nn.Sequential(OrderedDict(mlp))
        self.ln_2 = LayerNorm(d_model)

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Map ``(N, L, D)`` to ``(N, L, D)``; ``attn_mask`` is an additive ``(L, L)`` mask."""
        mask = None if attn_mask is None else attn_mask.to(dtype=x.dtype, device=x.device)
        y = self.ln_1(x)
        x = x + self.attn(y, y, y, need_weights=False, attn_mask=mask)[0]
        return x + self.mlp(self.ln_2(x))


class Transformer(nn.Module):
    """Stack of ``ResidualAttentionBlock``s on batch-first tokens.

    Args:
        width: Token width ``D``.
        layers: Number of blocks.
        heads: Attention heads per block.
        attn_mask: Optional additive ``(L, L)`` mask (e.g. causal), kept as a non-persistent buffer so it
            follows the module's device.
    """

    def __init__(self, width: int, layers: int, heads: int, attn_mask: torch.Tensor | None = None) -> None:
        super().__init__()
        self.width = width
        self.layers = layers
        self.resblocks = nn.Sequential(*[ResidualAttentionBlock(width, heads) for _ in range(layers)])
        self.register_buffer("attn_mask", attn_mask, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map ``(N, L, D)`` to ``(N, L, D)``."""
        for block in self.resblocks:
            x = block(x, self.attn_mask)
        return x


class VisionTransformer(nn.Module):
    """CLIP's ViT image encoder on a (possibly non-square) patch grid.

    Args:
        input_resolution: Input size ``(H, W)`` (or int), each divisible by ``patch_size``.
        patch_size: Patch side in pixels (also the patch stride).
        width: Token width.
        layers: Transformer blocks.
        heads: Attention heads.
        output_dim: Embedding size.
    """

    def __init__(
        self,
        input_resolution: int | tuple[int, int],
        patch_size: int,
        width: int,
        layers: int,
        heads: int,
        output_dim: int,
    ) -> None:
        super().__init__()
        self.input_resolution = to_hw(input_resolution, "input_resolution")
        if any(v % patch_size for v in self.input_resolution):
            raise ValueError(
                f"ViT input size {self.input_resolution} must be divisible by the patch size {patch_size}; "
                f"pick image_size as a multiple of {patch_size}"
            )
        self.output_dim = output_dim
        self.patch_size = patch_size
        self.grid_size = (self.input_resolution[0] // patch_size, self.input_resolution[1] // patch_size)
        self.conv1 = nn.Conv2d(3, width, kernel_size=patch_size, stride=patch_size, bias=False)
        scale = width**-0.5
        self.class_embedding = nn.Parameter(scale * torch.randn(width))
        self.positional_embedding = nn.Parameter(scale * torch.randn(self.grid_size[0] * self.grid_size[1] + 1, width))
        self.ln_pre = LayerNorm(width)
        self.transformer = Transformer(width, layers, heads)
        self.ln_post = LayerNorm(width)
        self.proj = nn.Parameter(scale * torch.randn(width, output_dim))

    def forward_tokens(self, x: torch.Tensor) -> torch.Tensor:
        """Map images ``(N, 3, H, W)`` to output tokens ``(N, 1 + h * w, width)`` (before ``ln_post``)."""
        x = self.conv1(x.type(self.conv1.weight.dtype))  # (N, width, h, w)
        x = x.flatten(2).transpose(1, 2)  # (N, h*w, width)
        cls = self.class_embedding.to(x.dtype).expand(x.shape[0], 1, -1)
        x = torch.cat([cls, x], dim=1) + self.positional_embedding.to(x.dtype)
        return self.transformer(self.ln_pre(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map images ``(N, 3, H, W)`` to embeddings ``(N, output_dim)``."""
        return self.ln_post(self.forward_tokens(x)[:, 0, :]) @ self.proj


class CLIP(nn.Module):
    """Contrastive image-text model: an image tower and a causal text transformer in a joint space.

    Args:
        embed_dim: Joint embedding size.
        image_resolution: Vision input size ``(H, W)`` (or int).
        vision_layers: Bottleneck counts (ResNet) or an int layer count (ViT).
        vision_width: ResNet stem width or ViT token width.
        vision_patch_size: ViT patch size; None selects the ResNet.
        context_length: Text length in tokens (77 for OpenAI).
        vocab_size: Token vocabulary size (49408 for OpenAI).
        transformer_width: Text token width.
        transformer_heads: Text attention heads.
        transformer_layers: Text transformer blocks.
        vision_heads: Vision attention heads (default ``width // 64``, or ``32 * width // 64`` for the ResNet).
        last_stride: ResNet layer4 stride (ignored by the ViT).
    """

    def __init__(
        self,
        embed_dim: int,
        image_resolution: int | tuple[int, int],
        vision_layers: tuple[int, int, int, int] | int,
        vision_width: int,
        vision_patch_size: int | None,
        context_length: int,
        vocab_size: int,
        transformer_width: int,
        transformer_heads: int,
        transformer_layers: int,
        vision_heads: int | None = None,
        last_stride: int = 2,
    ) -> None:
        super().__init__()
        self.context_length = context_length
        self.vocab_size = vocab_size
        self.visual: ModifiedResNet | VisionTransformer
        if vision_patch_size is None:
            if isinstance(vision_layers, int):
                raise ValueError(f"a ResNet CLIP needs vision_layers as four block counts, got {vision_layers}")
            heads = vision_heads or vision_width * 32 // 64
            self.visual = ModifiedResNet(vision_layers, embed_dim, heads, image_resolution, vision_width, last_stride)
        else:
            heads = vision_heads or vision_width // 64
            if not isinstance(vision_layers, int):
                raise ValueError(f"a ViT CLIP needs vision_layers as one layer count, got {vision_layers}")
            self.visual = VisionTransformer(
                image_resolution, vision_patch_size, vision_width, vision_layers, heads, embed_dim
            )
        self.transformer = Transformer(
            transformer_width, transformer_layers, transformer_heads, attn_mask=self.build_attention_mask()
        )
        self.token_embedding = nn.Embedding(vocab_size, transformer_width)
        self.positional_embedding = nn.Parameter(0.01 * torch.randn(context_length, transformer_width))
        self.ln_final = LayerNorm(transformer_width)
        self.text_projection = nn.Parameter(transformer_width**-0.5 * torch.randn(transformer_width, embed_dim))
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))

    def build_attention_mask(self) -> torch.Tensor:
        """Return the causal text mask ``(L, L)``: 0 on and below the diagonal, ``-inf`` above."""
        return torch.full((self.context_length, self.context_length), float("-inf")).triu_(1)

    @property
    def dtype(self) -> torch.dtype:
        """Dtype of the vision weights (inputs are cast to it)."""
        return self.visual.conv1.weight.dtype

    @property
    def image_size(self) -> tuple[int, int]:
        """Vision input size ``(H, W)`` in pixels."""
        return self.visual.input_resolution

    def encode_image(self, images: torch.Tensor) -> torch.Tensor:
        """Map images ``(N, 3, H, W)`` (normalised) to unnormalised embeddings ``(N, embed_dim)``."""
        return self.visual(images.type(self.dtype))

    def encode_text(self, tokens: torch.Tensor) -> torch.Tensor:
        """Map token ids ``(N, context_length)`` to unnormalised embeddings ``(N, embed_dim)``.

        The feature is taken at the end-of-text position, i.e. the largest token id of each row.
        """
        x = self.token_embedding(tokens).type(self.dtype) + self.positional_embedding.type(self.dtype)
        x = self.ln_final(self.transformer(x))  # (N, L, D)
        eot = x[torch.arange(x.shape[0], device=x.device), tokens.argmax(dim=-1)]  # (N, D)
        return eot @ self.text_projection

    def forward(self, images: torch.Tensor, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return image-to-text and text-to-image logits, shapes ``(N_img, N_txt)`` and ``(N_txt, N_img)``."""
        img = F.normalize(self.encode_image(images), dim=-1)
        txt = F.normalize(self.encode_text(tokens), dim=-1)
        logits = self.logit_scale.exp() * img @ txt.t()
        return logits, logits.t()
