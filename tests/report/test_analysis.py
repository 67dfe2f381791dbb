"""csdn.report.analysis against cases worked out by hand (SYSU rules: camera-3 queries never see camera 2)."""

import numpy as np
import pytest

from csdn.report.analysis import camera_matrix, distance_distributions, hardest_queries, roc_curve

# queries: (pid, cam) = (1, 3), (2, 6), (1, 6); gallery: (1, 1), (2, 2), (1, 2), (2, 1)
Q_PIDS, Q_CAMS = [1, 2, 1], [3, 6, 6]
G_PIDS, G_CAMS = [1, 2, 1, 2], [1, 2, 2, 1]
DIST = np.array(
    [
        [0.5, 0.1, 0.2, 0.9],  # q0: g1, g2 removed (cam 3 vs cam 2); kept ranking g0 (match), g3 -> AP 1
        [0.3, 0.4, 0.1, 0.2],  # q1: g2, g3 (match), g0, g1 (match) -> AP (1/2 + 2/4) / 2 = 0.5
        [0.6, 0.2, 0.7, 0.2],  # q2: g1, g3 (tie, index order), g0 (match), g2 (match) -> AP (1/3 + 2/4) / 2
    ]
)
ARGS = (DIST, Q_PIDS, G_PIDS, Q_CAMS, G_CAMS)


def test_camera_matrix_by_hand():
    m = camera_matrix(*ARGS, protocol="sysu")
    assert (m.query_cams, m.gallery_cams) == ([3, 6], [1, 2])
    # (3,1): q0 alone, r1 1, AP 1. (3,2): every pair removed -> nan.
    # (6,1): q1 ranks g3 (match) first: r1 1, AP 1; q2 ranks g3 then g0 (match): r1 0, AP 1/2.
    # (6,2): q1 ranks g2 then g1 (match): r1 0, AP 1/2; q2 ranks g1 then g2 (match): r1 0, AP 1/2.
    np.testing.assert_allclose(m.rank1, [[1.0, np.nan], [0.5, 0.0]])
    np.testing.assert_allclose(m.mAP, [[1.0, np.nan], [0.75, 0.5]])
    np.testing.assert_array_equal(m.num_valid, [[1, 0], [2, 2]])


def test_camera_matrix_regdb_keeps_camera_2():
    m = camera_matrix(*ARGS, protocol="regdb")  # nothing removed: q0 ranks g1, g2 (match) -> r1 0, AP 1/2
    assert m.rank1[0, 1] == 0.0 and m.mAP[0, 1] == 0.5


def test_distance_distributions_leave_out_removed_pairs():
    matching, non_matching = distance_distributions(*ARGS, protocol="sysu")
    np.testing.assert_allclose(np.sort(matching), [0.2, 0.4, 0.5, 0.6, 0.7])
    np.testing.assert_allclose(np.sort(non_matching), [0.1, 0.2, 0.2, 0.3, 0.9])
    matching, non_matching = distance_distributions(*ARGS, protocol="regdb")
    assert matching.size == 6 and non_matching.size == 6  # q0's camera-2 pairs are back


def test_roc_curve_by_hand():
    roc = roc_curve([0.1, 0.3], [0.2, 0.4])
    np.testing.assert_allclose(roc.fpr, [0, 0, 0.5, 0.5, 1])
    np.testing.assert_allclose(roc.tpr, [0, 0.5, 0.5, 1, 1])
    np.testing.assert_allclose(roc.thresholds[1:], [0.1, 0.2, 0.3, 0.4])
    assert roc.auc == pytest.approx(0.75)  # 3 of the 4 (match, non-match) pairs are ordered correctly


def test_roc_auc_equals_pair_count_with_ties():
    rng = np.random.default_rng(0)
    pos, neg = rng.integers(0, 6, 40) / 5, rng.integers(2, 9, 50) / 5  # many ties
    pairs = (pos[:, None] < neg[None, :]).mean() + 0.5 * (pos[:, None] == neg[None, :]).mean()
    assert roc_curve(pos, neg).auc == pytest.approx(pairs)
    with pytest.raises(ValueError, match="non-matching"):
        roc_curve([0.1], [])


def test_hardest_queries_by_hand():
    hard = hardest_queries(*ARGS, protocol="sysu", num=2, topk=3)
    assert [h.index for h in hard] == [2, 1]
    assert hard[0].ap == pytest.approx((1 / 3 + 2 / 4) / 2) and hard[1].ap == pytest.approx(0.5)
    np.testing.assert_array_equal(hard[0].ranked, [1, 3, 0])  # equal distances: lower gallery index first
    np.testing.assert_array_equal(hard[0].correct, [False, False, True])
    np.testing.assert_array_equal(hard[1].ranked, [2, 3, 0])
    np.testing.assert_allclose(hard[1].distances, [0.1, 0.2, 0.3])
    q0 = hardest_queries(*ARGS, protocol="sysu", num=3, topk=4)[2]
    assert q0.index == 0 and q0.ranked.tolist() == [0, 3]  # removed camera-2 items are not listed


def test_bad_shapes_are_one_clear_error():
    with pytest.raises(ValueError, match="one id per row"):
        camera_matrix(DIST, [1, 2], G_PIDS, Q_CAMS, G_CAMS)
