"""The checkpoint schema: every kind of file is recognised, and a model is rebuilt from its record alone."""

import pytest
import torch

from csdn.clip import tiny_state_dict
from csdn.models import CSDN
from csdn.models.checkpoint import (
    FEATURES_FORMAT,
    checkpoint_kind,
    final_checkpoint,
    load_csdn,
    load_model_file,
    save_checkpoint,
    training_checkpoint,
)
from csdn.models.factory import ModelConfig, clip_architecture, csdn_from_config

IMAGE_SIZE = (64, 32)
CONFIG = {"model": {"clip": "tiny-RN", "clip_seed": 3}, "data": {"height": 64, "width": 32}, "runtime": {"seed": 2}}


def test_kinds_of_files_and_rebuild(tmp_path):
    model = csdn_from_config(ModelConfig(clip="tiny-RN", clip_seed=3), 4, IMAGE_SIZE, seed=2)
    assert model.clip_arch == clip_architecture(tiny_state_dict("RN", seed=3), IMAGE_SIZE, 1)
    save_checkpoint(final_checkpoint(model, CONFIG), tmp_path / "final.pt")
    save_checkpoint(training_checkpoint(model, CONFIG, stage=3, epoch=1, text_banks={}), tmp_path / "last.pt")
    save_checkpoint({"features": torch.zeros(2, 3)}, tmp_path / "feats.pt", format=FEATURES_FORMAT)
    torch.save({"weight": torch.zeros(2)}, tmp_path / "raw.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a torch file")
    kinds = {name: checkpoint_kind(tmp_path / f"{name}.pt") for name in ("final", "last", "feats", "raw", "junk")}
    assert kinds == {"final": "final", "last": "training", "feats": "foreign", "raw": "foreign", "junk": "foreign"}
    with pytest.raises(FileNotFoundError):
        checkpoint_kind(tmp_path / "missing.pt")
    rebuilt, state = load_csdn(tmp_path / "final.pt")
    assert isinstance(rebuilt, CSDN) and not rebuilt.training and state["stage"] == "final"
    for key, value in model.state_dict().items():
        assert torch.equal(rebuilt.state_dict()[key], value), key
    assert rebuilt.clip_arch == model.clip_arch
    loaded, size = load_model_file(tmp_path / "last.pt")
    assert size == IMAGE_SIZE and isinstance(loaded, CSDN)
    with pytest.raises(ValueError, match="neither a csdn training checkpoint nor an official CSDN checkpoint"):
        load_model_file(tmp_path / "raw.pt")
