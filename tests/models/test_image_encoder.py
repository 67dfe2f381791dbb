import pytest
import torch

from csdn.clip import build_model
from csdn.models import TwoStreamResNet, TwoStreamViT, build_image_encoder

IMAGE_SIZE = (64, 32)  # the tiny models' input (conftest builds rn_clip for it)


def test_clip_stem_reproduces_clip_visual(rn_clip, images):
    encoder = build_image_encoder(rn_clip.visual, stem_relu="clip").eval()
    with torch.no_grad():
        want = rn_clip.visual(images)  # CLIP's own forward (ReLU after each stem BN)
        for modality in ("visible", "infrared"):
            assert torch.allclose(encoder(images, modality).projected, want, atol=1e-5)


def test_official_stem_is_single_relu_after_bn3(rn_clip, images):
    encoder = TwoStreamResNet(rn_clip.visual).eval()
    v = rn_clip.visual
    with torch.no_grad():
        x = v.bn3(v.conv3(v.bn2(v.conv2(v.bn1(v.conv1(images))))))
        want = torch.nn.functional.avg_pool2d(torch.relu(x), 2)
        assert torch.allclose(encoder.stem(images, "infrared"), want, atol=1e-6)
        assert not torch.allclose(encoder.stem(images, "visible"), v.stem(images), atol=1e-3)


def test_resnet_shapes_and_stems_are_independent_copies(rn_clip, images):
    encoder = TwoStreamResNet(rn_clip.visual)
    assert encoder.grid_size == (4, 2) and encoder.global_dim == 256 and encoder.proj_dim == 32
    assert encoder.layer4 is rn_clip.visual.layer4 and encoder.attnpool is rn_clip.visual.attnpool
    assert encoder.forward_features(images, "visible").shape == (4, 256, 4, 2)
    out = encoder(images, "visible")
    assert out.global_features.shape == (4, 256) and out.projected.shape == (4, 32)
    assert out.global_features.dtype == torch.float32
    with torch.no_grad():
        encoder.stems["visible"].conv1.weight.mul_(2)
    assert not torch.equal(encoder.stems["visible"].conv1.weight, encoder.stems["infrared"].conv1.weight)
    assert torch.equal(encoder.stems["infrared"].conv1.weight, rn_clip.visual.conv1.weight)


def test_joint_pass_equals_separate_passes_in_eval(rn_clip, images):
    encoder = TwoStreamResNet(rn_clip.visual).eval()
    with torch.no_grad():
        joint = encoder.forward_features_joint([(images[:3], "visible"), (images[3:], "infrared")])
        sep = torch.cat(
            [encoder.forward_features(images[:3], "visible"), encoder.forward_features(images[3:], "infrared")]
        )
    assert torch.allclose(joint, sep, atol=1e-6)


def test_vit_two_stream_reproduces_clip_visual(vit_state, images):
    clip_model = build_model(vit_state, image_size=IMAGE_SIZE)
    encoder = build_image_encoder(clip_model.visual)
    assert isinstance(encoder, TwoStreamViT) and encoder.grid_size == (4, 2)
    with torch.no_grad():
        out = encoder(images, "infrared")
        assert torch.allclose(out.projected, clip_model.visual(images), atol=1e-5)
    assert out.global_features.shape == (4, 64) and encoder.global_dim == 64 and encoder.proj_dim == 32
    assert encoder.stems["visible"] is not encoder.stems["infrared"]


def test_bad_modality_and_visual(rn_clip, images):
    encoder = TwoStreamResNet(rn_clip.visual)
    with pytest.raises(ValueError, match="Unknown modality 'uv'"):
        encoder(images, "uv")
    with pytest.raises(ValueError, match="visual must be a csdn.clip ModifiedResNet"):
        build_image_encoder(torch.nn.Linear(2, 2))
    with pytest.raises(ValueError, match="Unknown value 'x' for argument relu"):
        TwoStreamResNet(rn_clip.visual, stem_relu="x")
