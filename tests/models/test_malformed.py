"""Malformed model records: one ValueError naming the file before any model is built, never a traceback, and a
checkpoint never chooses the CLIP file it is rebuilt from."""

import copy

import pytest
import torch

from csdn.models import checkpoint as ckpt
from csdn.models.checkpoint import final_checkpoint, load_csdn, load_model_file, save_checkpoint
from csdn.models.factory import ModelConfig, csdn_from_config

CONFIG = {"model": {"clip": "tiny-RN", "clip_seed": 3}, "data": {"height": 64, "width": 32}, "runtime": {"seed": 2}}


@pytest.fixture(scope="module")
def record():
    model = csdn_from_config(ModelConfig(clip="tiny-RN", clip_seed=3), 4, (64, 32), seed=2)
    return final_checkpoint(model, CONFIG)


@pytest.fixture()
def no_build(monkeypatch):
    """Fail the test if a model is built (the record must be refused before)."""

    def refuse(*args, **kwargs):
        raise AssertionError("a model was built from a malformed record")

    monkeypatch.setattr(ckpt, "csdn_from_config", refuse)
    monkeypatch.setattr(ckpt, "clip_skeleton", refuse)


def _set(state, dotted, value):
    *parents, last = dotted.split(".")
    for key in parents:
        state = state[key]
    if value is KeyError:
        del state[last]
    else:
        state[last] = value


BEFORE_BUILD = {  # change -> phrase of the one-line error
    "config-a-string": ("config", "runs/x/config.yaml", "has a str as 'config', expected a dict"),
    "config-without-data": ("config.data", KeyError, "has no 'config.data' entry"),
    "missing-runtime-seed": ("config.runtime.seed", KeyError, "has no 'config.runtime.seed' entry"),
    "seed-a-string": ("config.runtime.seed", "2", "has a str as 'config.runtime.seed', expected a int"),
    "clip-arch-a-string": ("clip_arch", "RN50", "has a str as 'clip_arch', expected a dict"),
    "model-a-list": ("model", [torch.zeros(2)], "has a list as 'model', expected a dict"),
    "num-classes-1e9": ("num_classes", 10**9, "declares num_classes=1000000000 but its classifier has 4 rows"),
    "vocab-1e9": ("clip_arch.vocab_size", 10**9, "declares clip_arch.vocab_size=1000000000 but"),
    "width-changed": (
        "clip_arch.transformer_width",
        4096,
        r"whose positional_embedding has shape \(77, 4096\), but the file holds shape \(77, 64\)",
    ),
    "layers-1e6": ("clip_arch.transformer_layers", 10**6, "declares clip_arch.transformer_layers=1000000 but"),
    "huge-image": ("config.data.height", 10**6, r"declares config.data.height=1000000, outside 1..8192"),
    "n-ctx-a-string": ("config.model.n_ctx", "4", "has config.model.n_ctx='4', expected a int"),
    "arch-unknown-field": ("clip_arch.evil", 1, r"clip_arch record with unknown \['evil'\]"),
}


@pytest.mark.parametrize("change", list(BEFORE_BUILD))
def test_malformed_records_are_one_error_before_any_model_is_built(tmp_path, record, no_build, change):
    key, value, phrase = BEFORE_BUILD[change]
    state = copy.deepcopy(record)
    _set(state, key, value)
    path = tmp_path / "final.pt"
    save_checkpoint(state, path)  # a valid digest: only the schema can tell
    for load in (load_csdn, load_model_file):
        with pytest.raises(ValueError, match=phrase) as info:
            load(path)
        assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_a_wrong_tensor_shape_with_a_valid_digest_is_one_error(tmp_path, record):
    state = copy.deepcopy(record)
    state["model"]["head_proj.bn.weight"] = torch.ones(5)  # what another csdn version could write
    save_checkpoint(state, tmp_path / "final.pt")
    with pytest.raises(ValueError, match=r"does not fit the model .*head_proj.bn.weight: file \(5,\) vs model \(32,\)"):
        load_csdn(tmp_path / "final.pt")


def test_an_old_checkpoint_needs_the_clip_from_the_caller_and_opens_nothing_it_names(tmp_path, record, monkeypatch):
    state = copy.deepcopy(record)
    del state["clip_arch"]
    sentinel = tmp_path / "secret.txt"
    sentinel.write_text("not a CLIP")
    state["config"]["model"]["clip"] = str(sentinel)  # the checkpoint names a file: never opened
    save_checkpoint(state, tmp_path / "old.pt")
    opened = []
    real = ckpt.csdn_from_config

    def spy(model_cfg, *args, **kwargs):
        opened.append(model_cfg.clip)
        return real(model_cfg, *args, **kwargs)

    monkeypatch.setattr(ckpt, "csdn_from_config", spy)
    with pytest.raises(ValueError, match="has no CLIP architecture record .*--clip PATH_OR_NAME") as info:
        load_csdn(tmp_path / "old.pt")
    assert "\n" not in str(info.value) and opened == []
    model, _ = load_csdn(tmp_path / "old.pt", clip="tiny-RN")  # the caller's CLIP (tiny-RN, clip_seed 3)
    assert opened == ["tiny-RN"]
    assert torch.equal(
        model.state_dict()["head_global.classifier.weight"], record["model"]["head_global.classifier.weight"]
    )


def test_an_empty_checkpoint_is_one_error(tmp_path):
    (tmp_path / "empty.pt").write_bytes(b"")
    with pytest.raises(ValueError, match=r"empty.pt' is empty \(0 bytes\)"):
        load_model_file(tmp_path / "empty.pt")
    (tmp_path / "short.pt").write_bytes(b"PK\x03\x04")
    with pytest.raises(ValueError, match="neither a csdn training checkpoint nor an official CSDN checkpoint"):
        load_model_file(tmp_path / "short.pt")


def test_a_stride_0_tensor_in_a_checkpoint_is_refused_before_it_is_copied(tmp_path):
    wide = torch.zeros(1).expand(1 << 30)  # declares 4 GiB, holds 4 bytes
    torch.save({"format": ckpt.CHECKPOINT_FORMAT, "model": {"w": wide}}, tmp_path / "wide.pt")
    with pytest.raises(ValueError, match=r"tensor \['model'\]\['w'\] of shape \(1073741824,\) declares 4,294,967,296"):
        ckpt.load_checkpoint(tmp_path / "wide.pt")
