import pytest
import torch

from csdn.clip import build_model, tiny_state_dict

IMAGE_SIZE = (64, 32)  # with last_stride=1: a 4x2 layer4 map (the tiny analogue of 288x144 -> 18x9)


@pytest.fixture(scope="session")
def rn_state():
    return tiny_state_dict("RN", seed=0)


@pytest.fixture(scope="session")
def vit_state():
    return tiny_state_dict("ViT", seed=0)


@pytest.fixture()
def rn_clip(rn_state):
    return build_model(rn_state, image_size=IMAGE_SIZE, last_stride=1)


@pytest.fixture()
def images():
    return torch.randn(4, 3, *IMAGE_SIZE, generator=torch.Generator().manual_seed(0))
