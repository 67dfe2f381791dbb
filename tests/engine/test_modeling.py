"""Trained models are rebuilt from the checkpoint alone: the CLIP weights file is not needed any more."""

import pytest
import torch

from csdn.clip import tiny_state_dict
from csdn.engine import build_csdn, config_to_dict, load_checkpoint, load_trained_model, save_checkpoint
from csdn.engine.trainer import Trainer

# TINY_CONFIGS["RN"] written out by hand, at the tests' 32x16 input with CSDN's layer4 stride 1
TINY_RN_ARCH = {
    "embed_dim": 32,
    "image_resolution": [32, 16],
    "vision_layers": [1, 1, 1, 1],
    "vision_width": 8,
    "vision_patch_size": None,
    "context_length": 77,
    "vocab_size": 49408,
    "transformer_width": 64,
    "transformer_heads": 1,
    "transformer_layers": 2,
    "last_stride": 1,
}


def embed(model, images):
    with torch.no_grad():
        return torch.cat([model.eval().encode_image(images, m) for m in ("visible", "infrared")])


def test_trained_checkpoint_needs_no_clip_file(tiny_cfg, sysu_train, tmp_path):
    clip_file = tmp_path / "clip_rn.pt"
    torch.save(tiny_state_dict("RN", seed=4), clip_file)
    cfg = tiny_cfg(f"model.clip={clip_file}", "stage1.epochs=1", "stage2.epochs=1", "stage3.epochs=1")
    trained = build_csdn(cfg, sysu_train.num_classes)
    final = Trainer(cfg, trained, sysu_train).fit()
    state = load_checkpoint(final)
    assert state["clip_arch"] == TINY_RN_ARCH
    assert load_checkpoint(final.parent / "last.pt")["clip_arch"] == TINY_RN_ARCH
    images = torch.rand(3, 3, 32, 16, generator=torch.Generator().manual_seed(0))
    expected = embed(trained, images)

    old = {k: v for k, v in state.items() if k not in ("format", "clip_arch")}  # as written before the record
    save_checkpoint(old, tmp_path / "old.pt")
    with pytest.raises(ValueError, match="no CLIP architecture record.*--clip"):  # never the file its config names
        load_trained_model(tmp_path / "old.pt")
    rebuilt_old = load_trained_model(tmp_path / "old.pt", clip=clip_file)[0]  # the caller names the CLIP file
    torch.testing.assert_close(embed(rebuilt_old, images), expected, rtol=0, atol=0)

    clip_file.unlink()
    rng_before = torch.get_rng_state()
    model, loaded_cfg, _ = load_trained_model(final)
    assert torch.equal(torch.get_rng_state(), rng_before)  # the skeleton's random init left the global RNG alone
    assert loaded_cfg.model.clip == str(clip_file) and not model.training
    torch.testing.assert_close(embed(model, images), expected, rtol=0, atol=0)
    assert model.clip_arch == TINY_RN_ARCH  # kept, so a checkpoint of the rebuilt model has it too
    with pytest.raises(FileNotFoundError, match="clip_rn.pt"):  # the old kind still needs its CLIP file
        load_trained_model(tmp_path / "old.pt", clip=clip_file)


def test_vit_checkpoint_round_trip_without_weights(tiny_cfg, tmp_path):
    cfg = tiny_cfg("model.clip=tiny-ViT")
    model = build_csdn(cfg, 5)
    arch = model.clip_arch
    assert arch["vision_patch_size"] == 16 and arch["vision_layers"] == 2 and "last_stride" not in arch
    state = {"model": model.state_dict(), "config": config_to_dict(cfg), "num_classes": 5, "clip_arch": arch}
    save_checkpoint(state, tmp_path / "vit.pt")
    images = torch.rand(2, 3, 32, 16, generator=torch.Generator().manual_seed(1))
    rebuilt = load_trained_model(tmp_path / "vit.pt")[0]
    torch.testing.assert_close(embed(rebuilt, images), embed(model, images), rtol=0, atol=0)


def test_bad_architecture_record_is_a_clear_error(tiny_cfg, tmp_path):
    cfg = tiny_cfg()
    model = build_csdn(cfg, 5)
    state = {"model": model.state_dict(), "config": config_to_dict(cfg), "num_classes": 5}
    save_checkpoint({**state, "clip_arch": {"embed_dim": 32}}, tmp_path / "bad.pt")
    with pytest.raises(ValueError, match=r"clip_arch record with unknown \[\] / missing \['context_length'"):
        load_trained_model(tmp_path / "bad.pt")
    wrong = {**model.clip_arch, "transformer_layers": 3}
    save_checkpoint({**state, "clip_arch": wrong}, tmp_path / "wrong.pt")
    with pytest.raises(ValueError, match="declares clip_arch.transformer_layers=3 but its tensors/config say 2"):
        load_trained_model(tmp_path / "wrong.pt")  # refused before the skeleton is built
