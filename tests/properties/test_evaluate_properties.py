"""``evaluate`` against a literal per-query loop on random distance matrices full of ties, for every protocol.

The loop below is written from the protocol definitions (csdn.evaluation.protocols) with ties broken by gallery
index, the rule ``evaluate`` documents: sort, drop what the protocol removes, de-duplicate identities for the
unique-identity CMC, then CMC / AP / INP of the kept list.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from csdn.evaluation import evaluate

PROTOCOLS = ["sysu", "regdb", "llcm", "market"]


def literal_evaluate(dist, q_pids, g_pids, q_cams, g_cams, protocol, max_rank):
    """``(valid, cmc, ap, inp)`` of the valid queries, one query at a time."""
    num_q, num_g = len(dist), len(dist[0])
    length = min(max_rank, num_g)
    valid, cmcs, aps, inps = [], [], [], []
    for q in range(num_q):
        order = sorted(range(num_g), key=lambda j: (dist[q][j], j))  # ties: lower gallery index first
        if protocol == "sysu":  # camera-3 queries never see camera-2 gallery items
            kept = [j for j in order if not (q_cams[q] == 3 and g_cams[j] == 2)]
        elif protocol == "regdb":
            kept = order
        else:  # llcm, market: drop the query's identity seen by the query's camera
            kept = [j for j in order if not (g_pids[j] == q_pids[q] and g_cams[j] == q_cams[q])]
        hits = [i for i, j in enumerate(kept) if g_pids[j] == q_pids[q]]
        valid.append(bool(hits))
        if not hits:
            continue
        ranked = kept
        if protocol in ("sysu", "llcm"):  # unique-identity CMC: each identity at its best rank only
            seen: set[int] = set()
            ranked = [j for j in kept if not (g_pids[j] in seen or seen.add(g_pids[j]))]
        first = next(i for i, j in enumerate(ranked) if g_pids[j] == q_pids[q])
        cmcs.append([1.0 if k >= first else 0.0 for k in range(length)])
        aps.append(sum((n + 1) / (pos + 1) for n, pos in enumerate(hits)) / len(hits))
        inps.append(len(hits) / (hits[-1] + 1))
    return np.array(valid), np.array(cmcs), np.array(aps), np.array(inps)


@st.composite
def problems(draw):
    num_q = draw(st.integers(1, 6))
    num_g = draw(st.integers(1, 12))
    ids = st.integers(0, 3)  # few identities: many true matches, repeated identities in the ranking
    cams = st.integers(1, 6)  # SYSU's camera numbers: camera 3 queries and camera 2 gallery items occur
    levels = st.integers(0, 3)  # four distance values: ties everywhere
    dist = draw(st.lists(st.lists(levels, min_size=num_g, max_size=num_g), min_size=num_q, max_size=num_q))
    return (
        np.array(dist, dtype=np.float64) / 2,
        np.array(draw(st.lists(ids, min_size=num_q, max_size=num_q))),
        np.array(draw(st.lists(ids, min_size=num_g, max_size=num_g))),
        np.array(draw(st.lists(cams, min_size=num_q, max_size=num_q))),
        np.array(draw(st.lists(cams, min_size=num_g, max_size=num_g))),
        draw(st.sampled_from(PROTOCOLS)),
        draw(st.integers(1, 15)),
    )


@settings(max_examples=400, deadline=None)
@given(problems())
def test_evaluate_equals_the_literal_loop(problem):
    dist, q_pids, g_pids, q_cams, g_cams, protocol, max_rank = problem
    valid, cmc, ap, inp = literal_evaluate(dist.tolist(), q_pids, g_pids, q_cams, g_cams, protocol, max_rank)
    if not valid.any():
        with pytest.raises(ValueError, match="no valid query"):
            evaluate(dist, q_pids, g_pids, q_cams, g_cams, protocol=protocol, max_rank=max_rank)
        return
    result = evaluate(dist, q_pids, g_pids, q_cams, g_cams, protocol=protocol, max_rank=max_rank)
    np.testing.assert_array_equal(result.valid, valid)
    assert result.num_valid == valid.sum()
    np.testing.assert_allclose(result.cmc, cmc.mean(0), rtol=0, atol=1e-12)
    np.testing.assert_allclose(result.ap, ap, rtol=0, atol=1e-12)
    np.testing.assert_allclose(result.inp, inp, rtol=0, atol=1e-12)
    assert result.mAP == pytest.approx(ap.mean(), abs=1e-12)
    assert result.mINP == pytest.approx(inp.mean(), abs=1e-12)
