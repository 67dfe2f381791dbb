import io

import pytest
import torch
import torch.nn.functional as F

from csdn.models import CSDN, SemanticIntegrator

C = 6

IMAGE_SIZE = (64, 32)  # the tiny models' input (conftest builds rn_clip for it)


def _model(state, seed=0, **kwargs):
    torch.manual_seed(seed)  # heads use torch's default init; the prompt contexts use the explicit generator
    return CSDN.from_clip(state, C, image_size=IMAGE_SIZE, generator=torch.Generator().manual_seed(seed), **kwargs)


def test_shapes_and_test_embedding(rn_state, images):
    model = _model(rn_state)
    out = model.joint_image_features(images, images[:2])
    assert [tuple(t.shape) for t in out] == [(6, 256), (6, 32), (6, C), (6, C)]
    assert all(t.dtype == torch.float32 for t in out)
    labels = torch.tensor([0, 5, 5])
    assert model.text_features(labels, "infrared").shape == (3, 32)
    assert model.fused_text_features(labels).shape == (3, 32)
    assert model.clip_image_features(images, "visible").shape == (4, 32)
    model.eval()
    emb = model.encode_image(images, "infrared")
    assert emb.shape == (4, model.embed_dim) and model.embed_dim == 288
    f_g, f_p, _, _ = model.image_features(images, "infrared")
    bn = (f_g - model.head_global.bn.running_mean) / torch.sqrt(model.head_global.bn.running_var + 1e-5)
    assert torch.allclose(emb, torch.cat([F.normalize(bn, dim=1), F.normalize(f_p, dim=1)], 1), atol=1e-5)


def test_text_bank_and_hse_logits(rn_state, images):
    model = _model(rn_state).eval()
    bank = model.refresh_text_bank(batch_size=4)
    assert bank.shape == (C, 32) and model.integrator.training is False
    assert torch.allclose(bank, model.fused_text_features(torch.arange(C)), atol=1e-6)
    f_p = model.image_features(images, "visible").f_p
    assert torch.allclose(model.hse_logits(f_p), f_p @ bank.t(), atol=1e-5)
    model.train()
    model.refresh_text_bank(dropout=False)
    assert model.integrator.training is True  # mode restored
    assert torch.allclose(model.hse.text_bank, bank, atol=1e-6)


def _stage_loss(model, stage, images):
    labels = torch.tensor([0, 1, 2, 3])
    if stage == 1:
        return model.text_features(labels, "visible").sum() + model.text_features(labels, "infrared").sum()
    if stage == 2:
        return model.fused_text_features(labels).sum()
    model.refresh_text_bank()
    out = model.joint_image_features(images, images)
    return out.logits_g.sum() + out.logits_p.sum() + out.f_g.sum() + model.hse_logits(out.f_p).sum()


@pytest.mark.parametrize("stage", [1, 2, 3])
def test_only_the_stage_parameters_get_gradients(rn_state, images, stage):
    model = _model(rn_state)
    groups = model.freeze_for_stage(stage)
    trained = {id(p) for params in groups.values() for p in params}
    assert trained and sum(len(v) for v in groups.values()) == len(trained)
    _stage_loss(model, stage, images).backward()
    for name, p in model.named_parameters():
        if id(p) in trained:
            assert p.requires_grad and p.grad is not None, name
        else:
            assert not p.requires_grad and p.grad is None, name


def test_stage3_groups_follow_the_official_split(rn_state):
    model = _model(rn_state)
    names = {id(p): n for n, p in model.named_parameters()}
    groups = {k: {names[id(p)] for p in v} for k, v in model.stage_parameters(3).items()}
    assert groups["heads"] == {
        "image_encoder.gem.p",
        "head_global.bn.weight",
        "head_global.bn.bias",
        "head_global.classifier.weight",
        "head_proj.bn.weight",
        "head_proj.bn.bias",
        "head_proj.classifier.weight",
    }
    assert all(n.startswith("image_encoder.") for n in groups["backbone"])
    assert "image_encoder.attnpool.positional_embedding" in groups["backbone"]
    assert groups["backbone"].isdisjoint(groups["heads"])
    assert model.stage_parameters(1)["prompts"] == [
        model.prompt_learners["visible"].ctx,
        model.prompt_learners["infrared"].ctx,
    ]
    with pytest.raises(ValueError, match="Unknown value 4 for argument stage"):
        model.stage_parameters(4)


def test_state_dict_round_trip(rn_state, images):
    a, b = _model(rn_state, seed=0).eval(), _model(rn_state, seed=1).eval()
    a.refresh_text_bank()
    buffer = io.BytesIO()
    torch.save(a.state_dict(), buffer)
    buffer.seek(0)
    b.load_state_dict(torch.load(buffer, weights_only=True))
    assert torch.equal(a.encode_image(images, "visible"), b.encode_image(images, "visible"))
    assert torch.equal(a.fused_text_features(torch.arange(C)), b.fused_text_features(torch.arange(C)))
    assert b.hse.is_ready and torch.equal(a.hse.text_bank, b.hse.text_bank)
    assert not any(k.startswith("token_embedding") or "logit_scale" in k for k in a.state_dict())


def test_shared_prompts_and_integrator_variants(rn_state):
    model = _model(rn_state, shared_prompts=True, integrator="add")
    assert list(model.prompt_learners) == ["shared"]
    labels = torch.tensor([1, 2])
    t_vis, t_ir = model.text_features(labels, "visible"), model.text_features(labels, "infrared")
    assert torch.equal(t_vis, t_ir)
    assert torch.equal(model.fused_text_features(labels), t_vis + t_ir)
    assert model.stage_parameters(2) == {"integrator": []}
    none = _model(rn_state, integrator="none")
    assert torch.equal(none.fused_text_features(labels), none.text_features(labels, "visible"))


def test_subclassing_components_and_model(rn_state, images):
    class ScaledIntegrator(SemanticIntegrator):
        def forward(self, visible, infrared):
            return 2 * super().forward(visible, infrared)

    class MyCSDN(CSDN):
        def encode_image(self, images, modality):
            return super().encode_image(images, modality)[:, : self.image_encoder.global_dim]

    model = MyCSDN.from_clip(rn_state, C, image_size=IMAGE_SIZE, integrator=ScaledIntegrator(32, dropout=0.0))
    assert isinstance(model, MyCSDN) and isinstance(model.integrator, ScaledIntegrator)
    labels = torch.tensor([0, 3])
    plain = SemanticIntegrator(32, dropout=0.0)
    plain.load_state_dict(model.integrator.state_dict())
    want = 2 * plain(model.text_features(labels, "visible"), model.text_features(labels, "infrared"))
    assert torch.allclose(model.fused_text_features(labels), want, atol=1e-6)
    assert model.eval().encode_image(images, "visible").shape == (4, 256)


def test_vit_clip_and_clip_module_input(vit_state, rn_clip, images):
    model = _model(vit_state)
    out = model.image_features(images, "visible")
    assert out.f_g.shape == (4, 64) and out.f_p.shape == (4, 32) and model.embed_dim == 96
    from_module = CSDN.from_clip(rn_clip, C)
    assert from_module.image_encoder.grid_size == (4, 2)


def test_errors(rn_state, images):
    model = _model(rn_state)
    with pytest.raises(ValueError, match="Unknown modality 'uv'"):
        model.text_features(torch.tensor([0]), "uv")
    with pytest.raises(RuntimeError, match="text bank is not set"):
        model.hse_logits(torch.randn(2, 32))
    with pytest.raises(ValueError, match="prompt_learners must have keys"):
        CSDN(
            model.image_encoder, {"visible": model.prompt_learners["visible"]}, model.text_encoder, model.integrator, C
        )


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_forward_and_buffers_follow_the_module(rn_state, images):
    model = _model(rn_state, device="cuda")
    assert model.prompt_learners["visible"].token_prefix.is_cuda and model.hse.text_bank.is_cuda
    model.refresh_text_bank()
    x = images.cuda()
    with torch.autocast("cuda", dtype=torch.float16):
        out = model.joint_image_features(x, x)
        loss = out.logits_g.float().sum() + model.hse_logits(out.f_p).float().sum()
    loss.backward()
    model.eval()
    assert model.encode_image(x, "infrared").shape == (4, 288)


@pytest.mark.parametrize("arch", ["RN", "ViT"])
def test_from_clip_local_checkpoint_file(arch, rn_state, vit_state, tmp_path):
    path = tmp_path / f"tiny-{arch}.pt"
    torch.save(rn_state if arch == "RN" else vit_state, path)
    model = CSDN.from_clip(path, C, image_size=IMAGE_SIZE)
    assert model.image_encoder.grid_size == (4, 2)
    with pytest.raises(FileNotFoundError, match="not found"):
        CSDN.from_clip(tmp_path / "missing.pt", C)


@pytest.mark.slow
def test_rn50_sized_model_gives_the_paper_shapes():
    """RN50 architecture (random weights) at 288x144: 18x9 map, 2048/1024-d features, 3072-d test embedding."""
    from csdn.clip import tiny_state_dict

    rn50 = tiny_state_dict(
        "RN", embed_dim=1024, vision_layers=(3, 4, 6, 3), vision_width=64, transformer_width=512, transformer_layers=12
    )
    model = CSDN.from_clip(rn50, 395).eval()
    assert model.image_encoder.grid_size == (18, 9)
    assert model.image_encoder.attnpool.positional_embedding.shape == (163, 2048)
    assert sum(p.numel() for p in model.stage_parameters(1)["prompts"]) == 2 * 395 * 4 * 512
    with torch.no_grad():
        x = torch.randn(2, 3, 288, 144)
        assert model.image_encoder.forward_features(x, "visible").shape == (2, 2048, 18, 9)
        assert model.encode_image(x, "infrared").shape == (2, 3072)
        assert model.fused_text_features(torch.tensor([0, 394])).shape == (2, 1024)


def test_joint_pass_uses_each_modalitys_own_stem(rn_state, images):
    """Stems with distinct weights: the visible rows match CLIP's visual tower with the visible (CLIP) stem, the
    infrared rows a CLIP visual tower whose stem comes from another CLIP (an independent expectation)."""
    from csdn.clip import build_model, tiny_state_dict

    stem_keys = [f"visual.{layer}.{p}" for layer in ("conv1", "bn1", "conv2", "bn2", "conv3", "bn3")
                 for p in ("weight", "bias", "running_mean", "running_var")]  # fmt: skip
    other = tiny_state_dict("RN", seed=7)
    ir_state = {**rn_state, **{k: other[k] for k in stem_keys if k in other}}
    model = _model(rn_state, stem_relu="clip").eval()
    infrared_stem = {k.removeprefix("visual."): v for k, v in ir_state.items() if k in stem_keys}
    model.image_encoder.stems["infrared"].load_state_dict(infrared_stem, strict=False)
    vis_clip = build_model(rn_state, image_size=IMAGE_SIZE, last_stride=1).eval()
    ir_clip = build_model(ir_state, image_size=IMAGE_SIZE, last_stride=1).eval()
    visible, infrared = images[:3], images[1:]
    with torch.no_grad():
        out = model.joint_image_features(visible, infrared)
        want_vis, want_ir = vis_clip.visual(visible), ir_clip.visual(infrared)
        same_stem_ir = vis_clip.visual(infrared)
    torch.testing.assert_close(out.f_p[:3], want_vis, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(out.f_p[3:], want_ir, atol=1e-5, rtol=1e-4)
    assert not torch.allclose(want_ir, same_stem_ir, atol=1e-3)  # the stems really differ
