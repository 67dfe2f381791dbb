"""Official-checkpoint loading, checked against a replica of the official ``Model``'s module tree.

The replica below re-creates the attribute names of the official ``network/model.py`` (``image_encoder1`` as an
``nn.Sequential`` of the CLIP stem layers, ``classifier.GEM.p``, ``prompt_learner1.cls_ctx``, ...), so its
``state_dict()`` is written in the official naming without using the mapper under test.
"""

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from csdn.clip import build_model, tiny_state_dict, tokenize
from csdn.models import CSDN
from csdn.models.checkpoint import checkpoint_kind
from csdn.models.official import convert_official_state_dict, csdn_from_official, load_official_checkpoint

IMAGE_SIZE = (64, 32)
C = 5
TEMPLATE = "A photo of a X X X X person."


class _Gem(nn.Module):
    def __init__(self):
        super().__init__()
        self.p = nn.Parameter(torch.ones(1) * 3)


class _Classifier(nn.Module):
    def __init__(self, dim, gem):
        super().__init__()
        if gem:
            self.GEM = _Gem()
        self.BN = nn.BatchNorm1d(dim)
        self.classifier = nn.Linear(dim, C, bias=False)


class _Prompt(nn.Module):
    def __init__(self, embedding):
        super().__init__()
        self.cls_ctx = nn.Parameter(torch.zeros(C, 4, embedding.shape[1]))
        self.register_buffer("token_prefix", embedding[None, :5].clone())
        self.register_buffer("token_suffix", embedding[None, 9:].clone())


class _Text(nn.Module):
    def __init__(self, clip_model):
        super().__init__()
        self.transformer = clip_model.transformer
        self.positional_embedding = clip_model.positional_embedding
        self.ln_final = clip_model.ln_final
        self.text_projection = clip_model.text_projection


class _Fusion(nn.Module):
    def __init__(self, d):
        super().__init__()
        for name in ("q", "k", "v"):
            setattr(self, f"embedding_{name}", nn.Sequential(nn.Linear(d, d), nn.Tanh(), nn.Dropout(0.1)))
        self.embedding_common = nn.Sequential(nn.Linear(d, d))


class _OfficialModel(nn.Module):
    def __init__(self, clip_model):
        super().__init__()
        v = clip_model.visual
        stem = [v.conv1, v.bn1, v.conv2, v.bn2, v.conv3, v.bn3, nn.ReLU(), nn.AvgPool2d(2)]
        self.image_encoder1 = nn.Sequential(*copy.deepcopy(stem))
        self.image_encoder2 = nn.Sequential(*copy.deepcopy(stem))
        self.image_encoder = nn.Sequential(v.layer1, v.layer2, v.layer3, v.layer4)
        self.attnpool = v.attnpool
        self.classifier = _Classifier(v.attnpool.k_proj.in_features, gem=True)
        self.classifier2 = _Classifier(v.output_dim, gem=False)
        embedding = clip_model.token_embedding(tokenize(TEMPLATE))[0].detach()
        self.prompt_learner1 = _Prompt(embedding)
        self.prompt_learner2 = _Prompt(embedding)
        self.text_encoder = _Text(clip_model)
        self.attention_fusion = _Fusion(v.output_dim)


class _DataParallelLike(nn.Module):  # the official script saves nn.DataParallel(model).state_dict()
    def __init__(self, module):
        super().__init__()
        self.module = module


@pytest.fixture(scope="module")
def official():
    clip_model = build_model(tiny_state_dict("RN", seed=3), image_size=IMAGE_SIZE, last_stride=1)
    model = _OfficialModel(clip_model).eval()
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if t.is_floating_point() and "token_" not in name:
                noise = torch.randn(t.shape, generator=g)
                t.copy_(1 + 0.1 * noise if name.endswith(("running_var", "BN.weight")) else t + 0.05 * noise)
    return model


def _official_embedding(m, x, stem):
    fmap = m.image_encoder(stem(x))
    proj = m.attnpool(fmap)
    p = m.classifier.GEM.p
    gem = F.adaptive_avg_pool2d(fmap.clamp(min=1e-6).pow(p), 1).pow(1.0 / p).flatten(1)
    return torch.cat([F.normalize(m.classifier.BN(gem), dim=1), F.normalize(proj, dim=1)], dim=1)


def _official_text(m, learner, labels):
    prompts = torch.cat([learner.token_prefix.expand(len(labels), -1, -1), learner.cls_ctx[labels],
                         learner.token_suffix.expand(len(labels), -1, -1)], dim=1)  # fmt: skip
    t = m.text_encoder
    x = t.ln_final(t.transformer(prompts + t.positional_embedding))
    return x[:, tokenize(TEMPLATE)[0].argmax()] @ t.text_projection


def _check_same_outputs(ours, m):
    x = torch.randn(3, 3, *IMAGE_SIZE, generator=torch.Generator().manual_seed(1))
    labels = torch.tensor([4, 0, 2])
    ours.eval()
    with torch.no_grad():
        assert torch.allclose(ours.encode_image(x, "visible"), _official_embedding(m, x, m.image_encoder1), atol=1e-5)
        assert torch.allclose(ours.encode_image(x, "infrared"), _official_embedding(m, x, m.image_encoder2), atol=1e-5)
        t_vis = _official_text(m, m.prompt_learner1, labels)
        t_ir = _official_text(m, m.prompt_learner2, labels)
        fusion = m.attention_fusion
        fused = t_vis + fusion.embedding_common(fusion.embedding_v(t_ir))  # one token: attention weight 1
        assert torch.allclose(ours.fused_text_features(labels), fused, atol=1e-5)


def test_load_official_checkpoint_reproduces_official_outputs(official, tmp_path):
    state = _DataParallelLike(official).state_dict()
    assert all(k.startswith("module.") for k in state)
    path = tmp_path / "model_119.pth"
    torch.save(state, path)
    ours = CSDN.from_clip(tiny_state_dict("RN", seed=9), C, image_size=IMAGE_SIZE)
    report = load_official_checkpoint(ours, path)
    assert report.ok and len(report.loaded) == len(state)
    assert report.not_in_official == ["hse.text_bank", "hse.text_bank_ready"]
    _check_same_outputs(ours, official)


def test_csdn_from_official_needs_no_clip_weights(official):
    model, report = csdn_from_official(_DataParallelLike(official).state_dict(), image_size=IMAGE_SIZE)
    assert report.ok and model.num_classes == C and not model.training
    _check_same_outputs(model, official)


def test_strict_report_of_missing_unexpected_and_mismatched(official):
    ours = CSDN.from_clip(tiny_state_dict("RN", seed=9), C, image_size=IMAGE_SIZE)
    state = dict(official.state_dict())  # no "module." prefix is fine too
    del state["classifier2.classifier.weight"]
    state["attention_fusion.extra.weight"] = torch.zeros(1)
    state["classifier.GEM.p"] = torch.ones(2)
    with pytest.raises(ValueError, match="does not match the model") as info:
        load_official_checkpoint(ours, state)
    text = str(info.value)
    assert "missing (1): head_proj.classifier.weight" in text
    assert "unexpected (1): attention_fusion.extra.weight" in text
    assert "mismatched (1): image_encoder.gem.p: (2,) vs (1,)" in text
    before = ours.image_encoder.gem.p.clone()
    report = load_official_checkpoint(ours, state, strict=False)
    assert not report.ok and torch.equal(ours.image_encoder.gem.p, before)
    assert torch.equal(ours.integrator.q_proj[0].weight, official.attention_fusion.embedding_q[0].weight)


def test_convert_and_file_errors(tmp_path):
    converted, unknown = convert_official_state_dict(
        {"module.prompt_learner2.cls_ctx": torch.zeros(1), "x": torch.zeros(1)}
    )
    assert list(converted) == ["prompt_learners.infrared.ctx"] and unknown == ["x"]
    with pytest.raises(FileNotFoundError, match="official CSDN checkpoint not found"):
        load_official_checkpoint(None, tmp_path / "nope.pth")
    with pytest.raises(ValueError, match="not an official CSDN checkpoint"):
        csdn_from_official({"module.classifier.GEM.p": torch.ones(1)})


# ------------------------------------------------------------------ literal computation from the raw tensors


def _bn(x, raw, prefix):
    """Eval-mode BatchNorm from raw tensors (channel dim 1)."""
    shape = (1, -1) + (1,) * (x.dim() - 2)
    mean, var = raw[f"{prefix}.running_mean"].view(shape), raw[f"{prefix}.running_var"].view(shape)
    return (x - mean) / torch.sqrt(var + 1e-5) * raw[f"{prefix}.weight"].view(shape) + raw[f"{prefix}.bias"].view(shape)


def _bottleneck(x, raw, prefix, stride):
    out = F.relu(_bn(F.conv2d(x, raw[f"{prefix}.conv1.weight"]), raw, f"{prefix}.bn1"))
    out = F.relu(_bn(F.conv2d(out, raw[f"{prefix}.conv2.weight"], padding=1), raw, f"{prefix}.bn2"))
    out = F.avg_pool2d(out, stride) if stride > 1 else out
    out = _bn(F.conv2d(out, raw[f"{prefix}.conv3.weight"]), raw, f"{prefix}.bn3")
    if f"{prefix}.downsample.0.weight" in raw:
        x = F.avg_pool2d(x, stride) if stride > 1 else x
        x = _bn(F.conv2d(x, raw[f"{prefix}.downsample.0.weight"]), raw, f"{prefix}.downsample.1")
    return F.relu(out + x)


def _attnpool(fmap, raw, heads):
    n, c = fmap.shape[:2]
    tokens = fmap.flatten(2).permute(0, 2, 1)  # (N, HW, C)
    tokens = torch.cat([tokens.mean(dim=1, keepdim=True), tokens], dim=1) + raw["attnpool.positional_embedding"]
    q = tokens[:, :1] @ raw["attnpool.q_proj.weight"].T + raw["attnpool.q_proj.bias"]
    k = tokens @ raw["attnpool.k_proj.weight"].T + raw["attnpool.k_proj.bias"]
    v = tokens @ raw["attnpool.v_proj.weight"].T + raw["attnpool.v_proj.bias"]
    d = c // heads
    outs = []
    for h in range(heads):  # one head at a time
        qh, kh, vh = q[..., h * d : (h + 1) * d], k[..., h * d : (h + 1) * d], v[..., h * d : (h + 1) * d]
        weights = torch.softmax(qh @ kh.transpose(1, 2) / d**0.5, dim=-1)
        outs.append(weights @ vh)
    return (torch.cat(outs, dim=-1) @ raw["attnpool.c_proj.weight"].T + raw["attnpool.c_proj.bias"])[:, 0]


def _literal_embedding(raw, x, stem, heads):
    """The official test embedding computed from the raw (official-named) tensors with torch.nn.functional."""
    for i, pad_stride in enumerate([(1, 2), (1, 1), (1, 1)]):
        x = F.conv2d(x, raw[f"{stem}.{2 * i}.weight"], padding=pad_stride[0], stride=pad_stride[1])
        x = _bn(x, raw, f"{stem}.{2 * i + 1}")
    x = F.avg_pool2d(F.relu(x), 2)  # the official stem: one ReLU after bn3
    for layer, stride in enumerate((1, 2, 2, 1)):  # layer4 stride 1 (CSDN)
        blocks = sorted({int(k.split(".")[2]) for k in raw if k.startswith(f"image_encoder.{layer}.")})
        for b in blocks:
            x = _bottleneck(x, raw, f"image_encoder.{layer}.{b}", stride if b == 0 else 1)
    p = raw["classifier.GEM.p"]
    gem = x.clamp(min=1e-6).pow(p).mean(dim=(2, 3)).pow(1.0 / p)
    proj = _attnpool(x, raw, heads)
    return torch.cat([F.normalize(_bn(gem, raw, "classifier.BN"), dim=1), F.normalize(proj, dim=1)], dim=1)


@torch.no_grad()
def test_official_mapping_against_a_literal_computation_from_the_raw_tensors(official, tmp_path):
    """Independent of csdn's layers: the embedding of csdn_from_official equals a functional forward pass over the
    official state dict's own tensors, and the text-side tensors land where their official names say."""
    raw_wrapped = _DataParallelLike(official).state_dict()
    raw = {k.removeprefix("module."): v for k, v in raw_wrapped.items()}
    torch.save(raw_wrapped, tmp_path / "model_120.pth")
    assert checkpoint_kind(tmp_path / "model_120.pth") == "official"
    model, report = csdn_from_official(raw_wrapped, image_size=IMAGE_SIZE)
    assert report.ok, str(report)
    x = torch.randn(2, 3, *IMAGE_SIZE, generator=torch.Generator().manual_seed(5))
    heads = official.attnpool.num_heads
    for stem, modality in (("image_encoder1", "visible"), ("image_encoder2", "infrared")):
        torch.testing.assert_close(model.encode_image(x, modality), _literal_embedding(raw, x, stem, heads),
                                   atol=2e-5, rtol=1e-4)  # fmt: skip
    ours = model.state_dict()
    for key, value in raw.items():
        if key.startswith("text_encoder."):
            assert torch.equal(ours[key], value), key
    assert torch.equal(model.prompt_learners["visible"].ctx, raw["prompt_learner1.cls_ctx"])
    assert torch.equal(model.prompt_learners["infrared"].ctx, raw["prompt_learner2.cls_ctx"])
    t_vis, t_ir = torch.randn(2, 2, 32, generator=torch.Generator().manual_seed(6))
    model.integrator.eval()
    hidden = torch.tanh(
        t_ir @ raw["attention_fusion.embedding_v.0.weight"].T + raw["attention_fusion.embedding_v.0.bias"]
    )
    fused = t_vis + hidden @ raw["attention_fusion.embedding_common.0.weight"].T
    fused = fused + raw["attention_fusion.embedding_common.0.bias"]  # one token per side: attention weight 1
    torch.testing.assert_close(model.integrator(t_vis, t_ir), fused, atol=1e-5, rtol=1e-4)
