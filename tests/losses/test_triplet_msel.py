import math

import pytest
import torch

from csdn.losses import ModalitySeparationLoss, WeightedRegularizedTriplet, pairwise_euclidean


def _dist(u, v):
    return math.sqrt(max(sum((a - b) ** 2 for a, b in zip(u, v, strict=True)), 1e-12))


def _wrt_loop(x, y):
    """AGW WRT written out per anchor: softmax(d) over positives, softmax(-d) over negatives."""
    n, total = len(x), 0.0
    for i in range(n):
        d = [_dist(x[i], x[j]) for j in range(n)]
        pos = [j for j in range(n) if y[j] == y[i]]
        neg = [j for j in range(n) if y[j] != y[i]]
        shift = max(d[j] for j in pos)  # reference: row max of d * is_pos
        z = sum(math.exp(d[j] - shift) for j in pos) + 1e-6
        fp = sum(d[j] * math.exp(d[j] - shift) / z for j in pos)
        # reference: row max of (-d) * is_neg is 0 (the positive entries are zeros), so no shift
        z = sum(math.exp(-d[j]) for j in neg) + 1e-6
        cn = sum(d[j] * math.exp(-d[j]) / z for j in neg)
        total += math.log(1 + math.exp(-(cn - fp)))
    return total / n


def test_pairwise_euclidean():
    x = torch.tensor([[0.0, 0.0], [3.0, 4.0]])
    got = pairwise_euclidean(x, x)
    assert torch.allclose(got, torch.tensor([[1e-6, 5.0], [5.0, 1e-6]]), atol=1e-7)


@pytest.mark.parametrize("normalize", [False, True])
def test_wrt_matches_loop(normalize):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(8, 5, generator=g, dtype=torch.float64)
    y = torch.tensor([0, 0, 1, 1, 2, 2, 0, 1])
    ref_x = torch.nn.functional.normalize(x, dim=1) if normalize else x
    want = _wrt_loop(ref_x.tolist(), y.tolist())
    assert WeightedRegularizedTriplet(normalize)(x, y).item() == pytest.approx(want, abs=1e-6)


def test_wrt_gradcheck_and_errors():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(6, 3, generator=g, dtype=torch.float64, requires_grad=True)
    y = torch.tensor([0, 0, 1, 1, 2, 2])
    assert torch.autograd.gradcheck(lambda z: WeightedRegularizedTriplet()(z, y), (x,))
    with pytest.raises(ValueError, match="features must be"):
        WeightedRegularizedTriplet()(x, y[:3])


def test_msel_hand_value():
    # 1-D features, one identity, num_pos=2; the two infrared rows coincide, so their intra distance is
    # the clamped sqrt(1e-12) = 1e-6.
    vis = torch.tensor([[0.0], [2.0]], dtype=torch.float64)
    ir = torch.tensor([[5.0], [5.0]], dtype=torch.float64)
    y = torch.tensor([7, 7])
    # vis 0: cross (5+5)/2 = 5, intra 2 -> 9; vis 2: cross 3, intra 2 -> 1; mean 5
    # ir: cross (5+3)/2 = 4, intra 1e-6 -> (4 - 1e-6)^2 for both rows
    want = (5 + (4 - 1e-6) ** 2) / 2
    assert ModalitySeparationLoss(num_pos=2)(vis, ir, y).item() == pytest.approx(want, abs=1e-9)


def _msel_loop(vis, ir, yv, yr, k):
    def term(own, other, yo, yt):
        vals = []
        for i in range(len(own)):
            intra = sorted((_dist(own[i], own[j]) for j in range(len(own)) if j != i and yo[j] == yo[i]), reverse=True)
            cross = [_dist(own[i], other[j]) for j in range(len(other)) if yt[j] == yo[i]]
            vals.append((sum(cross) / len(cross) - sum(intra[: k - 1]) / (k - 1)) ** 2)
        return sum(vals) / len(vals)

    return (term(vis, ir, yv, yr) + term(ir, vis, yr, yv)) / 2


def _batch(seed, p=3, k=4):
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(p).repeat_interleave(k)
    return (
        torch.randn(p * k, 6, generator=g, dtype=torch.float64),
        torch.randn(p * k, 6, generator=g, dtype=torch.float64),
        y,
    )


def test_msel_matches_loop_official_layout():
    vis, ir, y = _batch(0)
    want = _msel_loop(vis.tolist(), ir.tolist(), y.tolist(), y.tolist(), 4)
    assert ModalitySeparationLoss(4)(vis, ir, y).item() == pytest.approx(want, abs=1e-6)


def test_msel_with_own_infrared_labels_is_order_free():
    vis, ir, y = _batch(1)
    perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(3))
    loss = ModalitySeparationLoss(4)
    assert loss(vis, ir[perm], y, y[perm]).item() == pytest.approx(loss(vis, ir, y).item(), abs=1e-12)
    # different row counts per modality (e.g. two visible views): still the loop's value
    vis2, yv2 = torch.cat([vis, vis + 0.1]), torch.cat([y, y])
    want = _msel_loop(vis2.tolist(), ir.tolist(), yv2.tolist(), y.tolist(), 4)
    assert loss(vis2, ir, yv2, y).item() == pytest.approx(want, abs=1e-6)


def test_msel_gradcheck():
    vis, ir, y = _batch(2, p=2, k=3)
    vis.requires_grad_(True)
    ir.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda a, b: ModalitySeparationLoss(3)(a, b, y), (vis, ir))


def test_msel_errors():
    vis, ir, y = _batch(0)
    with pytest.raises(ValueError, match="both modalities"):
        ModalitySeparationLoss(4)(vis, ir, y, y + 100)
    with pytest.raises(ValueError, match="at least num_pos - 1"):
        ModalitySeparationLoss(4)(vis[:2], ir[:2], y[:2])
    with pytest.raises(ValueError, match="labels must be 1-D"):
        ModalitySeparationLoss(4)(vis, ir[:5], y)
    with pytest.raises(ValueError, match="num_pos must be an integer"):
        ModalitySeparationLoss(1)
