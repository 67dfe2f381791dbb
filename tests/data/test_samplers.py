"""CrossModalityIdentitySampler invariants."""

from collections import Counter

import numpy as np
import pytest

from csdn.data import CrossModalityIdentitySampler

# 6 ids with both modalities + id 9 visible-only; 50 visible and 37 infrared samples.
VIS = [i % 6 for i in range(48)] + [9, 9]
IR = [i % 6 for i in range(37)]


def _batches(sampler):
    return list(sampler.batches())


def test_batches_hold_p_ids_times_k_aligned_pairs():
    sampler = CrossModalityIdentitySampler(VIS, IR, num_ids=2, num_pos=3, seed=1)
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


def _reference_epoch(vis, ir, p, k, seed, epoch):
    """The official-style draw written out literally: N // (P*K) + 1 batches of P ids x K images per modality."""
    rng = np.random.default_rng([seed, epoch])
    both = sorted(set(vis) & set(ir))
    batches = []
    for _ in range(max(len(vis), len(ir)) // (p * k) + 1):
        ids = rng.choice(both, p, replace=False)
        v = [x for i in ids for x in rng.choice([j for j, y in enumerate(vis) if y == i], k)]
        r = [x for i in ids for x in rng.choice([j for j, y in enumerate(ir) if y == i], k)]
        batches.append(list(zip(v, r, strict=True)))
    return batches


def test_single_process_sequence_is_the_literal_draw():
    sampler = CrossModalityIdentitySampler(VIS, IR, 2, 3, seed=4)
    sampler.set_epoch(2)
    assert _batches(sampler) == _reference_epoch(VIS, IR, 2, 3, seed=4, epoch=2)


@pytest.mark.parametrize(("p", "k", "replicas"), [(2, 3, 2), (2, 3, 3), (2, 3, 6), (4, 2, 4)])
def test_ranks_take_contiguous_slices_of_the_same_global_batches(p, k, replicas):
    single = CrossModalityIdentitySampler(VIS, IR, p, k, seed=4)
    single.set_epoch(1)
    shards = []
    for r in range(replicas):
        sampler = CrossModalityIdentitySampler(VIS, IR, p, k, seed=4, num_replicas=replicas, rank=r)
        sampler.set_epoch(1)
        assert sampler.batch_size * replicas == sampler.global_batch_size == p * k
        assert len(sampler) == len(single) // replicas  # same number of steps on every world size
        shards.append(_batches(sampler))
    expected = _batches(single)
    assert all(len(s) == len(expected) for s in shards)
    per = p * k // replicas
    for b, batch in enumerate(expected):
        assert [pair for s in shards for pair in s[b]] == batch  # rank order concatenation = the global batch
        for r in range(replicas):
            assert shards[r][b] == batch[r * per : (r + 1) * per]


def test_sample_seeds_depend_on_position_not_world_size():
    single = CrossModalityIdentitySampler(VIS, IR, 2, 3, seed=4, sample_seeds=True)
    items = list(single)
    assert [(v, i) for v, i, _ in items] == list(CrossModalityIdentitySampler(VIS, IR, 2, 3, seed=4))
    assert len({s for _, _, s in items}) == len(items)  # one seed per position
    halves = [
        list(CrossModalityIdentitySampler(VIS, IR, 2, 3, seed=4, num_replicas=2, rank=r, sample_seeds=True))
        for r in range(2)
    ]
    regrouped = [x for b in range(len(items) // 6) for h in halves for x in h[b * 3 : (b + 1) * 3]]
    assert regrouped == items
    single.set_epoch(1)
    assert [s for _, _, s in single] != [s for _, _, s in items]
    assert all(0 <= s < 2**63 for _, _, s in items)


def test_bad_arguments():
    with pytest.raises(ValueError, match="Only 6 identities have images in both modalities"):
        CrossModalityIdentitySampler(VIS, IR, num_ids=7)
    with pytest.raises(ValueError, match="num_pos must be an integer >= 1"):
        CrossModalityIdentitySampler(VIS, IR, num_pos=0)
    with pytest.raises(ValueError, match="rank must be in 0..1"):
        CrossModalityIdentitySampler(VIS, IR, 2, 3, num_replicas=2, rank=2)
    with pytest.raises(ValueError, match=r"2 x 3 of 6 items cannot be split evenly over 4 processes"):
        CrossModalityIdentitySampler(VIS, IR, 2, 3, num_replicas=4, rank=0)
