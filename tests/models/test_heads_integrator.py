import pytest
import torch
from torch import nn

from csdn.models.heads import BNNeck, GeM, HSEHead
from csdn.models.integrator import AddIntegrator, SemanticIntegrator, VisibleOnlyIntegrator, build_integrator


def test_gem_hand_values():
    x = torch.tensor([[[[1.0, 2.0], [3.0, 0.0]]]])  # (1, 1, 2, 2)
    gem = GeM()
    assert isinstance(gem.p, nn.Parameter) and gem.p.item() == 3.0
    want = ((1 + 8 + 27 + 1e-18) / 4) ** (1 / 3)  # 0 is clamped to eps=1e-6, cubed
    assert gem(x).item() == pytest.approx(want, rel=1e-6)
    assert GeM(p=1.0)(x).item() == pytest.approx(1.5, rel=1e-5)  # p=1 -> mean (0 -> 1e-6)
    assert "p" not in dict(GeM(learnable=False).named_parameters())


def test_gem_shape_and_p_gradient():
    gem = GeM()
    x = torch.rand(2, 5, 3, 4, dtype=torch.float64)
    gem = gem.double()
    assert gem(x).shape == (2, 5)
    assert torch.autograd.gradcheck(lambda t: gem(t), (x.requires_grad_(True),))
    gem(x).sum().backward()
    assert gem.p.grad is not None and gem.p.grad.shape == (1,)


def test_bnneck_init_and_output():
    torch.manual_seed(0)
    neck = BNNeck(64, 1000)
    assert torch.equal(neck.bn.weight, torch.ones(64)) and torch.equal(neck.bn.bias, torch.zeros(64))
    assert neck.bn.bias.requires_grad and neck.classifier.bias is None
    assert neck.classifier.weight.std().item() == pytest.approx(1e-3, rel=0.05)
    out = neck(torch.randn(8, 64))
    assert out.bn_features.shape == (8, 64) and out.logits.shape == (8, 1000)
    assert torch.allclose(out.logits, out.bn_features @ neck.classifier.weight.t())


def test_hse_head():
    head = HSEHead(3, 4)
    with pytest.raises(RuntimeError, match="text bank is not set"):
        head(torch.randn(2, 4))
    bank = torch.tensor([[1.0, 0, 0, 0], [0, 2.0, 0, 0], [0, 0, 0, -1.0]])
    head.set_text_bank(bank)
    f = torch.tensor([[1.0, 1.0, 1.0, 1.0]])
    assert torch.equal(head(f), torch.tensor([[1.0, 2.0, -1.0]]))
    assert "text_bank" in head.state_dict() and not list(head.parameters())
    copy = HSEHead(3, 4)
    copy.load_state_dict(head.state_dict())
    assert copy.is_ready and torch.equal(copy.text_bank, bank)
    with pytest.raises(ValueError, match="must have shape"):
        head.set_text_bank(torch.zeros(2, 4))


def test_integrator_one_token_equals_residual_mlp():
    torch.manual_seed(0)
    integ = SemanticIntegrator(dim=16, dropout=0.1).eval()
    tv, ti = torch.randn(5, 16), torch.randn(5, 16)
    lin_v, out = integ.v_proj[0], integ.out_proj
    want = tv + torch.tanh(ti @ lin_v.weight.t() + lin_v.bias) @ out.weight.t() + out.bias
    assert torch.allclose(integ(tv, ti), want, atol=1e-6)


def test_integrator_multi_token_matches_loop():
    torch.manual_seed(1)
    integ = SemanticIntegrator(dim=8, dropout=0.0)
    tv, ti = torch.randn(2, 3, 8), torch.randn(2, 5, 8)
    got = integ(tv, ti)
    assert got.shape == (2, 3, 8)

    def emb(lin, x):
        return torch.tanh(x @ lin.weight.t() + lin.bias)

    for b in range(2):
        for i in range(3):
            q = emb(integ.q_proj[0], tv[b, i])
            scores = torch.stack([q @ emb(integ.k_proj[0], ti[b, j]) / 8**0.5 for j in range(5)])
            w = torch.exp(scores) / torch.exp(scores).sum()
            mixed = sum(w[j] * emb(integ.v_proj[0], ti[b, j]) for j in range(5))
            want = tv[b, i] + integ.out_proj(mixed)
            assert torch.allclose(got[b, i], want, atol=1e-5)


def test_integrator_dropout_is_active_only_in_train_mode():
    integ = SemanticIntegrator(dim=32, dropout=0.5)
    tv, ti = torch.randn(4, 32), torch.randn(4, 32)
    integ.eval()
    assert torch.equal(integ(tv, ti), integ(tv, ti))
    integ.train()
    assert not torch.equal(integ(tv, ti), integ(tv, ti))


def test_integrator_variants_and_errors():
    tv, ti = torch.randn(2, 4), torch.randn(2, 4)
    assert torch.equal(AddIntegrator()(tv, ti), tv + ti)
    assert torch.equal(VisibleOnlyIntegrator()(tv, ti), tv)
    assert isinstance(build_integrator("attention", dim=4), SemanticIntegrator)
    assert not list(build_integrator("add").parameters())
    with pytest.raises(ValueError, match="Unknown value 'sum' for argument kind"):
        build_integrator("sum")
    with pytest.raises(ValueError, match="must both be"):
        SemanticIntegrator(dim=4)(torch.randn(2, 5), torch.randn(2, 5))
