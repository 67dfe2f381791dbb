"""Shared fixtures for the csdn.clip tests: tiny random OpenAI-keyed state dicts and token batches."""

import pytest
import torch

from csdn.clip import tiny_state_dict


@pytest.fixture(scope="session")
def rn_state_dict() -> dict[str, torch.Tensor]:
    return tiny_state_dict("RN", seed=0)


@pytest.fixture(scope="session")
def vit_state_dict() -> dict[str, torch.Tensor]:
    return tiny_state_dict("ViT", seed=1)


@pytest.fixture(scope="session")
def text_tokens() -> torch.Tensor:
    """(3, 77) token ids: SOT, random words, EOT at varying positions, zero padding."""
    generator = torch.Generator().manual_seed(123)
    tokens = torch.zeros(3, 77, dtype=torch.long)
    for row, length in enumerate((5, 20, 77)):
        tokens[row, 0] = 49406
        tokens[row, 1 : length - 1] = torch.randint(0, 49406, (length - 2,), generator=generator)
        tokens[row, length - 1] = 49407
    return tokens
