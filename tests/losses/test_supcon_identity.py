import math

import pytest
import torch

from csdn.losses import CrossEntropyLabelSmooth, SupConLoss


def _supcon_loop(anchors, contrast, ya, yc, tau):
    total = 0.0
    for i in range(len(anchors)):
        s = [sum(a * c for a, c in zip(anchors[i], contrast[j], strict=True)) / tau for j in range(len(contrast))]
        log_z = math.log(sum(math.exp(v) for v in s))
        pos = [s[j] - log_z for j in range(len(contrast)) if yc[j] == ya[i]]
        total += sum(pos) / len(pos)
    return -total / len(anchors)


def test_supcon_hand_value():
    eye = torch.eye(2, dtype=torch.float64)
    y = torch.tensor([0, 1])
    # each row: logits (1, 0), positive at the 1 -> -(1 - log(1 + e))
    assert SupConLoss()(eye, eye, y, y).item() == pytest.approx(math.log(1 + math.e) - 1, abs=1e-12)


@pytest.mark.parametrize("tau", [1.0, 0.5])
def test_supcon_matches_loop(tau):
    g = torch.Generator().manual_seed(0)
    a, c = torch.randn(6, 5, generator=g, dtype=torch.float64), torch.randn(8, 5, generator=g, dtype=torch.float64)
    ya, yc = torch.tensor([0, 1, 2, 0, 1, 2]), torch.tensor([2, 2, 1, 0, 0, 1, 3, 3])
    want = _supcon_loop(a.tolist(), c.tolist(), ya.tolist(), yc.tolist(), tau)
    assert SupConLoss(tau)(a, c, ya, yc).item() == pytest.approx(want, abs=1e-10)


def test_supcon_is_stable_for_large_logits():
    a = torch.tensor([[100.0, 0.0], [0.0, 100.0]])
    loss = SupConLoss()(a, a, torch.tensor([0, 1]), torch.tensor([0, 1]))
    assert torch.isfinite(loss) and loss.item() == pytest.approx(0.0, abs=1e-6)


def test_supcon_gradcheck():
    g = torch.Generator().manual_seed(1)
    a = torch.randn(4, 3, generator=g, dtype=torch.float64, requires_grad=True)
    c = torch.randn(5, 3, generator=g, dtype=torch.float64, requires_grad=True)
    ya, yc = torch.tensor([0, 1, 1, 2]), torch.tensor([1, 0, 2, 2, 1])
    assert torch.autograd.gradcheck(lambda x, z: SupConLoss(0.7)(x, z, ya, yc), (a, c))


def test_supcon_errors():
    x = torch.randn(3, 4)
    with pytest.raises(ValueError, match="has no positive"):
        SupConLoss()(x, x, torch.tensor([0, 1, 5]), torch.tensor([0, 1, 1]))
    with pytest.raises(ValueError, match="same D"):
        SupConLoss()(x, torch.randn(3, 5), torch.tensor([0, 1, 2]), torch.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match="labels must be 1-D"):
        SupConLoss()(x, x, torch.tensor([0, 1]), torch.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match="temperature must be > 0"):
        SupConLoss(0.0)


def test_ce_hand_value_uniform_logits():
    logits = torch.zeros(3, 4)
    for eps in (0.0, 0.1, 0.5):
        assert CrossEntropyLabelSmooth(eps)(logits, torch.tensor([0, 3, 1])).item() == pytest.approx(math.log(4))


@pytest.mark.parametrize("eps", [0.0, 0.1])
def test_ce_matches_smoothed_target_formula(eps):
    g = torch.Generator().manual_seed(2)
    logits = torch.randn(5, 7, generator=g, dtype=torch.float64)
    y = torch.tensor([0, 6, 3, 3, 2])
    total = 0.0
    for i, row in enumerate(logits.tolist()):
        log_z = math.log(sum(math.exp(v) for v in row))
        for c, v in enumerate(row):
            q = (1 - eps) * (c == y[i].item()) + eps / 7
            total -= q * (v - log_z)
    assert CrossEntropyLabelSmooth(eps)(logits, y).item() == pytest.approx(total / 5, abs=1e-12)


def test_ce_gradcheck_and_errors():
    x = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda z: CrossEntropyLabelSmooth(0.1)(z, torch.tensor([1, 0, 3])), (x,))
    with pytest.raises(ValueError, match="epsilon must be in"):
        CrossEntropyLabelSmooth(1.0)
    with pytest.raises(ValueError, match="logits must be"):
        CrossEntropyLabelSmooth()(torch.randn(4), torch.tensor([0]))
