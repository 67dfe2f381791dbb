"""The identity sampler is world-size invariant: for every world size W dividing the global batch P*K, the ranks'
slices, concatenated in rank order, are the single-process batches (same pairs, same augmentation seeds, same
number of steps), in every epoch."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from csdn.data.samplers import CrossModalityIdentitySampler


@st.composite
def setups(draw):
    num_ids = draw(st.integers(1, 4))
    num_pos = draw(st.integers(1, 4))
    shared = draw(st.integers(num_ids, num_ids + 4))  # identities with images in both modalities
    labels = st.integers(0, shared + 1)  # the two extra labels may exist in one modality only
    visible = draw(st.lists(labels, min_size=1, max_size=30)) + list(range(shared))
    infrared = draw(st.lists(labels, min_size=1, max_size=30)) + list(range(shared))
    order = draw(st.permutations(range(len(visible))))
    visible = [visible[i] for i in order]
    return visible, infrared, num_ids, num_pos, draw(st.integers(0, 2**31 - 1)), draw(st.integers(0, 3))


def _batches(sampler: CrossModalityIdentitySampler, epoch: int) -> list[list]:
    sampler.set_epoch(epoch)
    return list(sampler.batches())


@settings(max_examples=150, deadline=None)
@given(setups(), st.booleans())
def test_every_world_size_gives_the_single_process_batches(setup, sample_seeds):
    visible, infrared, num_ids, num_pos, seed, epoch = setup
    kwargs = dict(num_ids=num_ids, num_pos=num_pos, seed=seed, sample_seeds=sample_seeds)
    single = _batches(CrossModalityIdentitySampler(visible, infrared, **kwargs), epoch)
    assert len(single) == max(len(visible), len(infrared)) // (num_ids * num_pos) + 1
    for batch in single:  # P identities, K pairs each, the two halves of every pair share the identity
        labels = [(visible[item[0]], infrared[item[1]]) for item in batch]
        assert all(v == i for v, i in labels)
        assert len({v for v, _ in labels}) == num_ids and len(batch) == num_ids * num_pos
    for world in [w for w in range(1, num_ids * num_pos + 1) if num_ids * num_pos % w == 0]:
        ranks = [
            _batches(CrossModalityIdentitySampler(visible, infrared, num_replicas=world, rank=r, **kwargs), epoch)
            for r in range(world)
        ]
        assert all(len(batches) == len(single) for batches in ranks)
        for step, batch in enumerate(single):
            assert [item for r in range(world) for item in ranks[r][step]] == batch, (world, step)
