"""CrossModalityIdentitySampler invariants."""

from collections import Counter

import pytest

from csdn.data import CrossModalityIdentitySampler

# 6 ids with both modalities + id 9 visible-only; 50 visible and 37 infrared samples.
VIS = [i % 6 for i in range(48)] + [9, 9]
IR = [i % 6 for i in range(37)]


def _batches(sampler):
    return list(sampler.batches())


def test_batches_hold_p_ids_times_k_aligned_pairs():
    sampler = CrossModalityIdentitySampler(VIS, IR, num_ids=2, num_instances=3, seed=1)
    assert sampler.batch_size == 6
    # official epoch length: max(50, 37) // (2 * 3) + 1 = 9 batches
    assert len(sampler) == 9 * 6 and len(list(sampler)) == 54
    for batch in _batches(sampler):
        assert len(batch) == 6
        vis_labels = [VIS[v] for v, _ in batch]
        ir_labels = [IR[i] for _, i in batch]
        assert vis_labels == ir_labels
        counts = Counter(vis_labels)
        assert len(counts) == 2 and set(counts.values()) == {3}
        assert 9 not in counts  # visible-only identities are never drawn
        assert vis_labels[:3] == [vis_labels[0]] * 3  # K consecutive images per identity


def test_epochs_and_seeds():
    sampler = CrossModalityIdentitySampler(VIS, IR, 2, 3, seed=1)
    first = list(sampler)
    assert list(sampler) == first
    sampler.set_epoch(1)
    assert list(sampler) != first
    sampler.set_epoch(0)
    assert list(sampler) == first
    assert list(CrossModalityIdentitySampler(VIS, IR, 2, 3, seed=2)) != first


@pytest.mark.parametrize("replicas", [2, 3])
def test_distributed_shards_are_disjoint_and_cover_the_epoch(replicas):
    single = _batches(CrossModalityIdentitySampler(VIS, IR, 2, 3, seed=4))  # 9 global batches
    shards = [
        _batches(CrossModalityIdentitySampler(VIS, IR, 2, 3, seed=4, num_replicas=replicas, rank=r))
        for r in range(replicas)
    ]
    per_rank = -(-9 // replicas)
    assert all(len(s) == per_rank for s in shards)
    interleaved = [shards[b % replicas][b // replicas] for b in range(per_rank * replicas)]
    assert interleaved[:9] == single  # rank r owns global batches r, r + R, ...: disjoint, union = the epoch
    owners = {b: b % replicas for b in range(per_rank * replicas)}
    assert sorted(Counter(owners.values()).values()) == [per_rank] * replicas


def test_bad_arguments():
    with pytest.raises(ValueError, match="Only 6 identities have images in both modalities"):
        CrossModalityIdentitySampler(VIS, IR, num_ids=7)
    with pytest.raises(ValueError, match="num_instances must be an integer >= 1"):
        CrossModalityIdentitySampler(VIS, IR, num_instances=0)
    with pytest.raises(ValueError, match="rank must be in 0..1"):
        CrossModalityIdentitySampler(VIS, IR, 2, 3, num_replicas=2, rank=2)
