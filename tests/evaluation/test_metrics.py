"""Tests of csdn.evaluation.evaluate: hand-computed cases, a literal per-query loop reference, edge cases."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from csdn.evaluation.metrics import evaluate
from csdn.evaluation.protocols import get_protocol


def loop_reference(dist, q_pids, g_pids, q_cams, g_cams, protocol, max_rank=20):
    """Literal per-query evaluator written from the protocol definitions (stable sort: ties by gallery index)."""
    num_q, num_g = dist.shape
    max_rank = min(max_rank, num_g)
    cmcs, aps, inps = [], [], []
    for q in range(num_q):
        order = np.argsort(dist[q], kind="stable")
        kept = []
        for j in order:
            if protocol == "sysu" and q_cams[q] == 3 and g_cams[j] == 2:
                continue
            if protocol in ("llcm", "market") and g_pids[j] == q_pids[q] and g_cams[j] == q_cams[q]:
                continue
            kept.append(j)
        hits = [g_pids[j] == q_pids[q] for j in kept]
        if not any(hits):
            continue  # invalid query
        if protocol in ("sysu", "llcm"):
            seen, ranked_ids = set(), []
            for j in kept:
                if g_pids[j] not in seen:
                    seen.add(g_pids[j])
                    ranked_ids.append(g_pids[j])
            first = ranked_ids.index(q_pids[q])
        else:
            first = hits.index(True)
        cmcs.append([1.0 if first <= k else 0.0 for k in range(max_rank)])
        found, precisions, last = 0, [], 0
        for pos, hit in enumerate(hits):
            if hit:
                found += 1
                precisions.append(found / (pos + 1))
                last = pos
        aps.append(sum(precisions) / found)
        inps.append(found / (last + 1))
    if not aps:
        return None
    return np.mean(cmcs, axis=0), float(np.mean(aps)), float(np.mean(inps)), np.array(aps), np.array(inps)


# ----------------------------------------------------------------------------------------------- hand-computed


def test_regdb_hand_computed():
    # ranking: g1 (pid 2), g4 (pid 3), g2, g0, g3 (pid 1) -> matches at ranks 3, 4, 5
    dist = np.array([[0.5, 0.1, 0.3, 0.9, 0.2]])
    res = evaluate(dist, [1], [1, 2, 1, 1, 3], protocol="regdb", max_rank=5)
    np.testing.assert_allclose(res.cmc, [0, 0, 1, 1, 1])
    assert res.mAP == pytest.approx((1 / 3 + 2 / 4 + 3 / 5) / 3)
    assert res.mINP == pytest.approx(3 / 5)
    assert res.num_valid == 1


def test_sysu_hand_computed_unique_cmc_and_cam_rule():
    dist = np.tile([0.1, 0.2, 0.3, 0.4, 0.5, 0.6], (3, 1))
    g_pids, g_cams = [1, 2, 2, 1, 3, 1], [2, 1, 4, 5, 1, 4]
    # query 0 (cam 3): cam-2 item g0 dropped; kept ranking pid 2, 2, 1, 3, 1 -> matches at 3 and 5,
    #   identity-deduplicated ranking 2, 1, 3 -> first match at rank 2
    # query 1 (cam 6): nothing dropped; ranking pid 1, 2, 2, 1, 3, 1 -> matches at 1, 4, 6
    # query 2: identity 9 is not in the gallery -> invalid, excluded
    res = evaluate(dist, [1, 1, 9], g_pids, [3, 6, 3], g_cams, protocol="sysu", max_rank=20)
    ap0, ap1 = (1 / 3 + 2 / 5) / 2, (1 / 1 + 2 / 4 + 3 / 6) / 3
    np.testing.assert_allclose(res.ap, [ap0, ap1])
    np.testing.assert_allclose(res.inp, [2 / 5, 3 / 6])
    assert res.mAP == pytest.approx((ap0 + ap1) / 2)
    assert res.mINP == pytest.approx((0.4 + 0.5) / 2)
    assert len(res.cmc) == 6  # max_rank clipped to the gallery size
    np.testing.assert_allclose(res.cmc, [0.5, 1, 1, 1, 1, 1])
    assert res.num_valid == 2
    np.testing.assert_array_equal(res.valid, [True, True, False])


def test_llcm_and_market_hand_computed():
    dist = np.array([[0.1, 0.5, 0.3, 0.05, 0.2, 0.25]])
    g_pids, g_cams = [1, 1, 2, 1, 3, 3], [1, 2, 1, 1, 2, 1]
    # g0 and g3 share identity and camera with the query -> dropped; kept ranking: g4 (3), g5 (3), g2 (2), g1 (1)
    llcm = evaluate(dist, [1], g_pids, [1], g_cams, protocol="llcm")
    market = evaluate(dist, [1], g_pids, [1], g_cams, protocol="market")
    for res in (llcm, market):
        assert res.mAP == pytest.approx(1 / 4)
        assert res.mINP == pytest.approx(1 / 4)
    np.testing.assert_allclose(llcm.cmc, [0, 0, 1, 1, 1, 1])  # identities 3, 2, 1
    np.testing.assert_allclose(market.cmc, [0, 0, 0, 1, 1, 1])


def test_ties_broken_by_gallery_index():
    dist = np.array([[0.2, 0.2, 0.2]])
    res = evaluate(dist, [1], [2, 1, 1], protocol="regdb")  # ranking g0 (2), g1 (1), g2 (1)
    np.testing.assert_allclose(res.cmc, [0, 1, 1])
    assert res.mAP == pytest.approx((1 / 2 + 2 / 3) / 2)
    assert res.mINP == pytest.approx(2 / 3)


def test_short_deduplicated_list_is_padded():
    # two gallery identities only: the deduplicated ranking has 2 entries, max_rank 4 -> padded with its last value
    dist = np.array([[0.1, 0.2, 0.3, 0.4]])
    res = evaluate(dist, [5], [4, 5, 4, 5], [1], [2, 2, 2, 2], protocol="llcm", max_rank=4)
    np.testing.assert_allclose(res.cmc, [0, 1, 1, 1])


# ---------------------------------------------------------------------------------------- randomized vs loop


def _random_case(rng, protocol, num_q, num_g, ties):
    num_ids = int(rng.integers(3, 12))
    q_pids = rng.integers(0, num_ids + 2, num_q)  # some query ids absent from the gallery
    g_pids = rng.integers(0, num_ids, num_g)
    cams = (1, 2, 3, 4, 5, 6)
    q_cams, g_cams = rng.choice(cams, num_q), rng.choice(cams, num_g)
    dist = rng.random((num_q, num_g))
    if ties:
        dist = np.round(dist * 4) / 4  # many exact ties
    return dist, q_pids, g_pids, q_cams, g_cams


@pytest.mark.parametrize("protocol", ["sysu", "regdb", "llcm", "market"])
@pytest.mark.parametrize("ties", [False, True])
def test_matches_loop_reference(protocol, ties):
    rng = np.random.default_rng(["sysu", "regdb", "llcm", "market"].index(protocol) * 2 + int(ties))
    for _ in range(12):  # 12 seeds' worth of random cases per protocol / tie setting
        num_q, num_g = int(rng.integers(1, 40)), int(rng.integers(1, 60))
        case = _random_case(rng, protocol, num_q, num_g, ties)
        max_rank = int(rng.integers(1, 30))
        ref = loop_reference(*case, protocol, max_rank=max_rank)
        if ref is None:
            with pytest.raises(ValueError, match="no valid query"):
                evaluate(*case, protocol=protocol, max_rank=max_rank)
            continue
        res = evaluate(*case, protocol=protocol, max_rank=max_rank)
        np.testing.assert_allclose(res.cmc, ref[0], atol=1e-12)
        assert res.mAP == pytest.approx(ref[1], abs=1e-12)
        assert res.mINP == pytest.approx(ref[2], abs=1e-12)
        np.testing.assert_allclose(res.ap, ref[3], atol=1e-12)
        np.testing.assert_allclose(res.inp, ref[4], atol=1e-12)


def test_chunking_and_dtypes_agree(monkeypatch):
    rng = np.random.default_rng(3)
    case = _random_case(rng, "sysu", 70, 50, ties=True)
    ref = loop_reference(*case, "sysu")
    monkeypatch.setattr("csdn.evaluation.metrics._CHUNK_ELEMENTS", 120)  # several chunks of 2 queries
    dist, *ids = case
    # the tied values are multiples of 1/4, exact in every float type
    for d in (dist, dist.astype(np.float32), torch.from_numpy(dist), torch.from_numpy(dist).to(torch.bfloat16)):
        res = evaluate(d, *ids, protocol="sysu")
        assert res.mAP == pytest.approx(ref[1], abs=1e-12)
    res = evaluate(torch.from_numpy(np.round(dist * 4).astype(np.int64)), *ids, protocol="sysu")
    assert res.mAP == pytest.approx(ref[1], abs=1e-12)  # integer distances: same order as the /4 floats
    res = evaluate(dist, *(torch.as_tensor(i) for i in ids), protocol="sysu")
    assert res.mAP == pytest.approx(ref[1], abs=1e-12)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_loop_reference():
    rng = np.random.default_rng(5)
    case = _random_case(rng, "llcm", 50, 80, ties=True)
    ref = loop_reference(*case, "llcm")
    dist, *ids = case
    res = evaluate(torch.from_numpy(dist).cuda(), *(torch.as_tensor(i).cuda() for i in ids), protocol="llcm")
    assert res.mAP == pytest.approx(ref[1], abs=1e-12)
    np.testing.assert_allclose(res.cmc, ref[0], atol=1e-12)


# -------------------------------------------------------------------------------------------------- errors


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_distances_raise(bad):
    dist = np.ones((2, 3))
    dist[1, 2] = bad
    with pytest.raises(ValueError, match="NaN or infinite"):
        evaluate(dist, [1, 2], [1, 2, 3], protocol="regdb")


def test_input_errors():
    with pytest.raises(ValueError, match="distmat is empty"):
        evaluate(np.zeros((0, 3)), [], [1, 2, 3], protocol="regdb")
    with pytest.raises(ValueError, match="distmat is empty"):
        evaluate(np.zeros((2, 0)), [1, 2], [], protocol="regdb")
    with pytest.raises(ValueError, match="must be 2-D"):
        evaluate(np.zeros(3), [1], [1, 2, 3], protocol="regdb")
    with pytest.raises(ValueError, match="g_pids has 2 entries"):
        evaluate(np.zeros((1, 3)), [1], [1, 2], protocol="regdb")
    with pytest.raises(ValueError, match="Unknown value 'cuhk'"):
        evaluate(np.zeros((1, 3)), [1], [1, 2, 3], protocol="cuhk")
    with pytest.raises(ValueError, match="needs camera ids"):
        evaluate(np.zeros((1, 3)), [1], [1, 2, 3], protocol="sysu")
    with pytest.raises(ValueError, match="max_rank must be a positive integer"):
        evaluate(np.zeros((1, 3)), [1], [1, 2, 3], protocol="regdb", max_rank=0)
    with pytest.raises(ValueError, match="no valid query"):
        evaluate(np.zeros((1, 3)), [7], [1, 2, 3], protocol="regdb")


def test_protocol_lookup():
    assert get_protocol("SYSU").unique_cmc and not get_protocol("regdb").unique_cmc
    assert get_protocol("market").needs_cams and not get_protocol("regdb").needs_cams


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_tensors_give_the_cpu_result():
    rng = np.random.default_rng(0)
    dist = rng.integers(0, 4, (6, 9)).astype(np.float32)  # many ties: the tie rule runs
    q, g = rng.integers(0, 3, 6), rng.integers(0, 3, 9)
    cpu = evaluate(dist, q, g, protocol="regdb")
    gpu = evaluate(*(torch.as_tensor(x, device="cuda") for x in (dist, q, g)), protocol="regdb")
    np.testing.assert_allclose(gpu.cmc, cpu.cmc)
    assert gpu.mAP == pytest.approx(cpu.mAP) and gpu.mINP == pytest.approx(cpu.mINP)
