import pytest
import torch

from csdn.clip import tiny_state_dict
from csdn.models import CSDN

IMAGE_SIZE = (64, 32)  # tiny analogue of 288x144


@pytest.fixture(scope="session")
def tiny_model():
    """A random tiny CSDN in eval mode whose BN running statistics are not the defaults (so BN matters)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = CSDN.from_clip(tiny_state_dict("RN", seed=0), 5, image_size=IMAGE_SIZE)
    gen = torch.Generator().manual_seed(1)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm1d | torch.nn.BatchNorm2d):
            module.running_mean.normal_(0, 0.1, generator=gen)
            module.running_var.uniform_(0.5, 1.5, generator=gen)
    return model.eval()


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory):
    """A `csdn train`-format checkpoint of a tiny random CSDN trained at 48x32, and the model it holds (eval)."""
    from csdn.engine import build_csdn
    from csdn.engine.config import TrainConfig, config_to_dict
    from csdn.models.checkpoint import save_checkpoint

    cfg = TrainConfig()
    cfg.model.clip, cfg.data.height, cfg.data.width = "tiny-RN", 48, 32
    model = build_csdn(cfg, num_classes=3)
    path = tmp_path_factory.mktemp("ckpt") / "final.pt"
    record = {
        "model": model.state_dict(),
        "config": config_to_dict(cfg),
        "num_classes": 3,
        "clip_arch": model.clip_arch,
    }
    save_checkpoint(record, path)
    return path, model.eval()
