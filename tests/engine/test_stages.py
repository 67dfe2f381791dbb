import math

import pytest
import torch
import torch.nn.functional as F

from csdn.engine.config import ImageStageConfig
from csdn.engine.objectives import ImageStageLoss
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


def _dist(a, b):
    return math.sqrt(max(sum((x - y) ** 2 for x, y in zip(a, b, strict=True)), 1e-12))


def _ce(logits, label, smoothing=0.0):
    """Cross-entropy of one row against (1 - eps) onehot + eps / C, written out."""
    top = max(logits)
    log_z = top + math.log(sum(math.exp(v - top) for v in logits))
    log_p = [v - log_z for v in logits]
    c = len(logits)
    return -sum(((1 - smoothing) * (k == label) + smoothing / c) * log_p[k] for k in range(c))


def _msel_side(own, other, own_labels, other_labels, num_pos):
    total = 0.0
    for anchor, label in zip(own, own_labels, strict=True):
        masked = [_dist(anchor, x) if y == label else 0.0 for x, y in zip(own, own_labels, strict=True)]
        intra = sum(sorted(masked, reverse=True)[: num_pos - 1]) / (num_pos - 1)
        cross_d = [_dist(anchor, x) for x, y in zip(other, other_labels, strict=True) if y == label]
        total += (sum(cross_d) / len(cross_d) - intra) ** 2
    return total / len(own)


def _msel(vis, ir, vis_labels, ir_labels, num_pos):
    return (
        _msel_side(vis, ir, vis_labels, ir_labels, num_pos) + _msel_side(ir, vis, ir_labels, vis_labels, num_pos)
    ) / 2


def _wrt(feats, labels):
    total = 0.0
    for i, anchor in enumerate(feats):
        d = [_dist(anchor, x) for x in feats]
        pos = [j for j in range(len(feats)) if labels[j] == labels[i]]
        neg = [j for j in range(len(feats)) if labels[j] != labels[i]]
        shift_p = max(max(d[j] for j in pos), 0.0)  # masked-out entries count as 0 in the row maximum
        e_p = {j: math.exp(d[j] - shift_p) for j in pos}
        furthest = sum(e_p[j] * d[j] for j in pos) / (sum(e_p.values()) + 1e-6)
        shift_n = max(max(-d[j] for j in neg), 0.0)
        e_n = {j: math.exp(-d[j] - shift_n) for j in neg}
        closest = sum(e_n[j] * d[j] for j in neg) / (sum(e_n.values()) + 1e-6)
        total += math.log1p(math.exp(furthest - closest))
    return total / len(feats)


def test_stage3_objective_is_the_spec_formula_written_out():
    """Every term of SPEC §1 computed with plain Python loops, distinct weights so a swapped weight shows."""
    out, labels, bank_v = batch()
    bank_i = bank_v.flip(0)  # a different infrared bank, so swapped banks show
    cfg = ImageStageConfig(num_pos=2, id_weight=1.3, msel_weight=0.7, lambda1=0.15, lambda2=0.05, lambda3=0.1,
                           label_smoothing=0.2)  # fmt: skip
    terms = ImageStageLoss(cfg)(out, labels, labels, {"visible": bank_v, "infrared": bank_i})
    n, y = 8, labels.tolist()
    y3 = y * 3
    f_g, f_p = out.f_g.double().tolist(), out.f_p.double().tolist()
    lg, lp = out.logits_g.double().tolist(), out.logits_p.double().tolist()
    bv, bi = bank_v.double().tolist(), bank_i.double().tolist()

    def hse(rows, bank):
        return (
            sum(
                _ce([sum(a * b for a, b in zip(r, t, strict=True)) for t in bank], label)
                for r, label in zip(rows, y, strict=True)
            )
            / n
        )

    expected = {
        "id_g": 1.3 * sum(_ce(r, t, 0.2) for r, t in zip(lg, y3, strict=True)) / (3 * n),
        "id_p": 1.3 * sum(_ce(r, t, 0.2) for r, t in zip(lp, y3, strict=True)) / (3 * n),
        "msel_g": 0.7 * _msel(f_g[:n], f_g[2 * n :], y, y, 2),
        "msel_p": 0.7 * _msel(f_p[:n], f_p[2 * n :], y, y, 2),
        "wrt_g": 0.15 * _wrt(f_g, y3),
        "wrt_p": 0.15 * _wrt(f_p, y3),
        "hse_vis": 0.05 * hse(f_p[:n], bv),  # visible view 1 against the visible bank, no label smoothing
        "hse_ir": 0.1 * hse(f_p[2 * n :], bi),  # infrared rows against the infrared bank
    }
    assert set(terms) == {*expected, "loss"}
    for name, value in expected.items():
        assert terms[name].item() == pytest.approx(value, rel=1e-4, abs=1e-6), name
    assert terms["loss"].item() == pytest.approx(sum(expected.values()), rel=1e-4)


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
