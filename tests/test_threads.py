"""Thread scoping: memory-bound passes run on one torch thread, products on the caller's, and the count is restored."""

import numpy as np
import pytest
import torch

import csdn.evaluation.fused as fused
import csdn.evaluation.metrics as metrics
import csdn.evaluation.rerank as rerank
from csdn._threads import caller_threads, memory_bound, torch_threads
from csdn.evaluation import distance, evaluate, re_ranking


@pytest.fixture
def two_threads():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


def _recording(monkeypatch, module, name, seen):
    real = getattr(module, name)

    def wrapper(*args, **kwargs):
        seen.append(torch.get_num_threads())
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, wrapper)


def test_scopes_nest_and_restore(two_threads):
    with memory_bound():
        assert torch.get_num_threads() == 1
        with torch_threads(2):
            assert torch.get_num_threads() == 2
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == caller_threads() == 2
    with pytest.raises(RuntimeError), memory_bound():
        raise RuntimeError("boom")
    assert torch.get_num_threads() == 2
    with torch_threads(None):
        assert torch.get_num_threads() == 2


def _features(n, seed):
    return torch.randn(n, 16, generator=torch.Generator().manual_seed(seed))


def test_evaluate_and_re_ranking_kernels_run_on_one_thread(monkeypatch, two_threads):
    seen = []
    _recording(monkeypatch, metrics, "sort_rows", seen)
    _recording(monkeypatch, rerank, "smallest_k", seen)
    _recording(monkeypatch, rerank, "shared_mass", seen)
    q, g = _features(30, 0), _features(50, 1)
    dist = torch.cdist(q, g)
    evaluate(dist, np.arange(30) % 5, np.arange(50) % 5, protocol="regdb")
    re_ranking(dist, torch.cdist(q, q), torch.cdist(g, g), k1=5, k2=3)
    assert len(seen) >= 3 and set(seen) == {1}
    assert torch.get_num_threads() == 2


def test_fused_products_keep_the_callers_threads(monkeypatch, two_threads):
    products, search = [], []
    real_mm = torch.mm

    def mm(*args, **kwargs):
        products.append(torch.get_num_threads())
        return real_mm(*args, **kwargs)

    monkeypatch.setattr(fused.torch, "mm", mm)
    _recording(monkeypatch, fused, "smallest_k", search)
    distance(_features(30, 0), _features(50, 1), metric="euclidean", rerank=True, k1=5, k2=3)
    assert products and set(products) == {2}
    assert search and set(search) == {1}


def test_loader_items_run_on_one_thread(monkeypatch, two_threads, tmp_path):
    from PIL import Image

    from csdn.data import ImageDataset, Sample

    path = tmp_path / "a.png"
    Image.new("RGB", (4, 8)).save(path)
    seen = []
    ImageDataset([Sample(str(path), 1, 1, "visible")], lambda im: seen.append(torch.get_num_threads()))[0]
    assert seen == [1] and torch.get_num_threads() == 2


def test_main_process_collate_runs_on_one_thread(monkeypatch, two_threads):
    import csdn.data.loaders as loaders
    from csdn.data.images import collate_skipping

    seen = []
    _recording(monkeypatch, loaders, "default_collate", seen)
    batch = loaders.collate([torch.zeros(3, 4, 2), torch.ones(3, 4, 2)])
    assert batch.shape == (2, 3, 4, 2) and seen == [1]
    _recording(monkeypatch, torch, "stack", seen)
    collate_skipping([torch.zeros(3, 4, 2)])
    assert seen == [1, 1] and torch.get_num_threads() == 2
