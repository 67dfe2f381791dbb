import pytest
import torch
import torch.nn.functional as F

from csdn.engine.config import ImageStageConfig
from csdn.engine.objectives import ImageStageLoss
from csdn.losses import ModalitySeparationLoss, WeightedRegularizedTriplet
from csdn.models import ImageFeatures


def batch(n=8, c=5, dg=6, dp=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    labels = torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])[:n]
    out = ImageFeatures(
        torch.randn(3 * n, dg, generator=g),
        torch.randn(3 * n, dp, generator=g),
        torch.randn(3 * n, c, generator=g),
        torch.randn(3 * n, c, generator=g),
    )
    bank = torch.randn(c, dp, generator=g)
    return out, labels, bank


def test_stage3_objective_is_the_spec_formula():
    out, labels, bank = batch()
    terms = ImageStageLoss(ImageStageConfig(num_pos=2))(out, labels, labels, {"visible": bank, "infrared": bank})
    n = 8
    all_labels = torch.cat([labels, labels, labels])
    msel, wrt = ModalitySeparationLoss(num_pos=2), WeightedRegularizedTriplet()
    # SPEC §1: CE(f_g) + CE(f_p) + MSEL(f_g) + MSEL(f_p) + 0.15 (WRT(f_g) + WRT(f_p)) + 0.05 HSE(vis 1) + 0.1 HSE(IR)
    expected = (
        F.cross_entropy(out.logits_g, all_labels)
        + F.cross_entropy(out.logits_p, all_labels)
        + msel(out.f_g[:n], out.f_g[2 * n :], labels, labels)
        + msel(out.f_p[:n], out.f_p[2 * n :], labels, labels)
        + 0.15 * (wrt(out.f_g, all_labels) + wrt(out.f_p, all_labels))
        + 0.05 * F.cross_entropy(out.f_p[:n] @ bank.t(), labels)
        + 0.1 * F.cross_entropy(out.f_p[2 * n :] @ bank.t(), labels)
    )
    assert terms["loss"].item() == pytest.approx(expected.item(), rel=1e-6)
    assert set(terms) == {"id_g", "id_p", "msel_g", "msel_p", "wrt_g", "wrt_p", "hse_vis", "hse_ir", "loss"}


def test_stage3_objective_without_text_and_with_weights():
    out, labels, bank = batch()
    cfg = ImageStageConfig(num_pos=2, lambda1=0.0, msel_weight=0.0, id_weight=2.0)
    terms = ImageStageLoss(cfg, use_text=False)(out, labels, labels)
    all_labels = torch.cat([labels, labels, labels])
    expected = 2 * (F.cross_entropy(out.logits_g, all_labels) + F.cross_entropy(out.logits_p, all_labels))
    assert terms["loss"].item() == pytest.approx(expected.item(), rel=1e-6)
    assert "hse_vis" not in terms
    with pytest.raises(ValueError, match="text_banks is required"):
        ImageStageLoss(ImageStageConfig(num_pos=2))(out, labels, labels)
