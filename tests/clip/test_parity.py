"""Parity of csdn.clip with open_clip: the same random OpenAI-keyed state dict gives the same features."""

import pytest
import torch
import torch.nn.functional as F

from csdn.clip import build_model, tiny_state_dict

open_clip_model = pytest.importorskip("open_clip.model")

ATOL = 1e-5


def _images(height: int, width: int, n: int = 2) -> torch.Tensor:
    return torch.randn(n, 3, height, width, generator=torch.Generator().manual_seed(7))


def _open_clip(state_dict: dict[str, torch.Tensor]) -> torch.nn.Module:
    """open_clip's OpenAI builder; it rounds weights to fp16, so reload the exact fp32 weights afterwards."""
    model = open_clip_model.build_model_from_openai_state_dict(dict(state_dict), cast_dtype=None).float()
    model.load_state_dict(state_dict)
    return model.eval()


def _independent_resize(pos: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """Class row kept, square spatial rows resampled with F.interpolate (bilinear, align_corners=False)."""
    side = int((pos.shape[0] - 1) ** 0.5)
    spatial = pos[1:].reshape(1, side, side, -1).permute(0, 3, 1, 2)
    spatial = F.interpolate(spatial, size=grid, mode="bilinear", align_corners=False)
    return torch.cat([pos[:1], spatial[0].permute(1, 2, 0).reshape(grid[0] * grid[1], -1)])


@pytest.mark.parametrize("arch", ["rn", "vit", "vit-2-heads"])
@torch.no_grad()
def test_image_and_text_features_match_open_clip(arch, rn_state_dict, vit_state_dict, text_tokens):
    if arch == "vit-2-heads":  # widths 128: heads are inferred as width // 64 = 2 on both sides
        state_dict = tiny_state_dict("ViT", seed=2, vision_width=128, transformer_width=128, vision_layers=1)
    else:
        state_dict = rn_state_dict if arch == "rn" else vit_state_dict
    ours, ref = build_model(state_dict), _open_clip(state_dict)
    x = _images(224, 224)
    img, img_ref = ours.encode_image(x), ref.encode_image(x)
    txt, txt_ref = ours.encode_text(text_tokens), ref.encode_text(text_tokens)
    assert img.shape == (2, 32) and txt.shape == (3, 32)
    assert img.abs().max() > 1e-2 and txt.abs().max() > 1e-2  # not trivially zero
    assert (img - img_ref).abs().max() <= ATOL
    assert (txt - txt_ref).abs().max() <= ATOL
    assert torch.allclose(ours.logit_scale, ref.logit_scale)


@torch.no_grad()
def test_non_square_vit_matches_open_clip_with_independently_resized_pos_embed(vit_state_dict):
    ours = build_model(vit_state_dict, image_size=(288, 144))
    assert ours.visual.grid_size == (18, 9)
    cfg = open_clip_model.CLIPVisionCfg(layers=2, width=64, patch_size=16, image_size=(288, 144))
    text_cfg = open_clip_model.CLIPTextCfg(context_length=77, vocab_size=49408, width=64, heads=1, layers=2)
    ref = open_clip_model.CLIP(32, cfg, text_cfg, quick_gelu=True).eval()
    state = dict(vit_state_dict)
    state["visual.positional_embedding"] = _independent_resize(state["visual.positional_embedding"], (18, 9))
    ref.load_state_dict(state)
    torch.testing.assert_close(ours.visual.positional_embedding, state["visual.positional_embedding"])
    x = _images(288, 144)
    assert (ours.encode_image(x) - ref.encode_image(x)).abs().max() <= ATOL


@torch.no_grad()
def test_non_square_resnet_last_stride_1_matches_open_clip_attention_pool(rn_state_dict):
    """RN at 288x144 with layer4 stride 1: 18x9 map, attention-pool grid 18x9 (as in CSDN)."""
    ours = build_model(rn_state_dict, image_size=(288, 144), last_stride=1)
    ref = _open_clip(rn_state_dict)
    # open_clip's AttentionPool2d adds its (h*w+1, C) table to the flattened map, so it runs on any grid
    # once given the resized table; layer4's stride is its first block's (and downsample's) AvgPool2d.
    resized = _independent_resize(rn_state_dict["visual.attnpool.positional_embedding"], (18, 9))
    ref.visual.attnpool.positional_embedding = torch.nn.Parameter(resized)
    ref.visual.layer4[0].avgpool = torch.nn.Identity()
    ref.visual.layer4[0].downsample[0] = torch.nn.Identity()
    torch.testing.assert_close(ours.visual.attnpool.positional_embedding, resized)
    x = _images(288, 144)
    assert ours.visual.forward_features(x).shape == (2, 256, 18, 9)
    assert (ours.encode_image(x) - ref.encode_image(x)).abs().max() <= ATOL
