"""Model construction: architecture inference, resized grids, last_stride, hand-computed pos-embed resizing."""

import pytest
import torch

from csdn.clip import CLIP, build_model, infer_config, resize_pos_embed, tiny_state_dict


def test_infer_config_reads_the_architecture_from_shapes(rn_state_dict, vit_state_dict):
    rn = infer_config(rn_state_dict)
    assert rn["vision_layers"] == (1, 1, 1, 1) and rn["vision_width"] == 8 and rn["vision_patch_size"] is None
    assert rn["image_resolution"] == 224 and rn["embed_dim"] == 32
    assert (rn["context_length"], rn["vocab_size"], rn["transformer_width"]) == (77, 49408, 64)
    assert (rn["transformer_heads"], rn["transformer_layers"]) == (1, 2)
    vit = infer_config(vit_state_dict)
    expected = {"vision_layers": 2, "vision_width": 64, "vision_patch_size": 16, "image_resolution": 224}
    assert {k: vit[k] for k in expected} == expected


@pytest.mark.parametrize(
    "vision, params",
    [  # published totals of OpenAI's RN50 and ViT-B/16 (text tower: width 512, 12 layers, 8 heads)
        (dict(embed_dim=1024, vision_layers=(3, 4, 6, 3), vision_width=64, vision_patch_size=None), 102_007_137),
        (dict(embed_dim=512, vision_layers=12, vision_width=768, vision_patch_size=16), 149_620_737),
    ],
)
def test_full_size_architectures_have_the_published_parameter_counts(vision, params):
    text = dict(context_length=77, vocab_size=49408, transformer_width=512, transformer_heads=8, transformer_layers=12)
    with torch.device("meta"):  # shapes only, no memory
        model = CLIP(image_resolution=224, **vision, **text)
    assert sum(p.numel() for p in model.parameters()) == params
    assert infer_config(model.state_dict()) == {"image_resolution": 224, **vision, **text}


def test_last_stride_1_doubles_the_final_map(rn_state_dict):
    x = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    default = build_model(rn_state_dict)
    doubled = build_model(rn_state_dict, last_stride=1)
    with torch.no_grad():
        assert default.visual.forward_features(x).shape == (1, 256, 7, 7)
        assert doubled.visual.forward_features(x).shape == (1, 256, 14, 14)
        assert doubled.encode_image(x).shape == (1, 32)
    assert doubled.visual.attnpool.positional_embedding.shape == (14 * 14 + 1, 256)
    # everything except the attention-pool table is the checkpoint's
    assert torch.equal(doubled.visual.layer4[0].conv1.weight, rn_state_dict["visual.layer4.0.conv1.weight"])


def test_csdn_geometry_rn_288x144_last_stride_1_gives_18x9(rn_state_dict):
    model = build_model(rn_state_dict, image_size=(288, 144), last_stride=1)
    assert model.image_size == (288, 144) and model.visual.grid_size == (18, 9)
    with torch.no_grad():
        assert model.visual.forward_features(torch.zeros(1, 3, 288, 144)).shape == (1, 256, 18, 9)


def test_resize_pos_embed_hand_values():
    pos = torch.tensor([[9.0], [0.0], [1.0], [2.0], [3.0]])  # class token 9, grid [[0, 1], [2, 3]]
    assert resize_pos_embed(pos, (1, 1)).flatten().tolist() == [9.0, 1.5]
    # width x2, align_corners=False: source columns -0.25 (clamped to 0), 0.25, 0.75, 1.25 (clamped to 1)
    expected = [9.0, 0.0, 0.25, 0.75, 1.0, 2.0, 2.25, 2.75, 3.0]
    assert resize_pos_embed(pos, (2, 4)).flatten().tolist() == expected
    assert torch.equal(resize_pos_embed(pos, 2), pos)
    with pytest.raises(ValueError, match="old_grid"):
        resize_pos_embed(pos, (2, 2), old_grid=(3, 3))


def test_causal_mask():
    model = build_model(tiny_state_dict("ViT"))
    mask = model.build_attention_mask()
    assert mask.shape == (77, 77) and torch.equal(model.transformer.attn_mask, mask)
    assert mask[0, 1] == float("-inf") and mask[1, 0] == 0 and mask.diagonal().eq(0).all()
    assert torch.isinf(mask).sum() == 77 * 76 // 2


def test_tiny_state_dict_is_seeded_and_leaves_global_rng_alone():
    before = torch.random.get_rng_state()
    a, b, c = tiny_state_dict("RN", seed=0), tiny_state_dict("RN", seed=0), tiny_state_dict("RN", seed=1)
    build_model(a)
    assert torch.equal(before, torch.random.get_rng_state())
    assert a.keys() == c.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["visual.conv1.weight"], c["visual.conv1.weight"])
    assert tiny_state_dict("RN", embed_dim=64)["text_projection"].shape == (64, 64)


def test_build_model_copies_and_does_not_modify_its_input(vit_state_dict):
    snapshot = {k: v.clone() for k, v in vit_state_dict.items()}
    model = build_model(vit_state_dict, image_size=(288, 144))
    with torch.no_grad():
        model.visual.class_embedding.add_(1.0)
    assert all(torch.equal(snapshot[k], v) for k, v in vit_state_dict.items())


def test_half_precision_checkpoints_are_built_in_fp32(vit_state_dict):
    half = {k: v.half() if v.is_floating_point() else v for k, v in vit_state_dict.items()}
    model = build_model(half)
    assert all(p.dtype == torch.float32 for p in model.parameters())


@pytest.mark.parametrize(
    "arch, kwargs, phrase",
    [
        ("RN", {"image_size": (100, 144)}, "must be divisible by 32"),
        ("RN", {"image_size": (288, 136), "last_stride": 1}, "must be divisible by 16"),
        ("RN", {"last_stride": 3}, "last_stride must be 1 or 2"),
        ("ViT", {"last_stride": 1}, "ResNet checkpoints only"),
        ("ViT", {"image_size": (100, 144)}, "divisible by the patch size 16"),
        ("ViT", {"image_size": (0, 144)}, "image_size must be a positive int"),
    ],
)
def test_bad_options_raise_clear_errors(arch, kwargs, phrase):
    with pytest.raises(ValueError, match=phrase):
        build_model(tiny_state_dict(arch), **kwargs)


def test_tiny_state_dict_rejects_unknown_names():
    with pytest.raises(ValueError, match="Unknown value 'VIT' for argument arch"):
        tiny_state_dict("VIT")
    with pytest.raises(ValueError, match="Unknown tiny_state_dict overrides \\['depth'\\]"):
        tiny_state_dict("RN", depth=3)


@pytest.mark.cuda
def test_cuda_half_precision_matches_fp32(vit_state_dict):
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    model = build_model(vit_state_dict).to("cuda")
    x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(0)).to("cuda")
    with torch.no_grad():
        ref = model.encode_image(x)
        half = model.half().encode_image(x)
    assert half.dtype == torch.float16
    torch.testing.assert_close(half.float(), ref, atol=2e-2, rtol=2e-2)
