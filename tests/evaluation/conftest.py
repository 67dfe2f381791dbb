"""Shared helpers for the evaluation tests: a dense re-ranking reference, a fake model, a tiny dataset."""

from __future__ import annotations

import numpy as np
import pytest
import torch


def dense_rerank(q_g, q_q, g_g, k1=20, k2=6, lambda_value=0.3):
    """Dense k-reciprocal re-ranking written from the algorithm of Zhong et al. as torchreid implements it."""
    nq = q_g.shape[0]
    full = np.power(np.block([[q_q, q_g], [q_g.T, g_g]]), 2).astype(np.float32)
    orig = (full / full.max(axis=0)).T  # row i = column i divided by its maximum
    n = full.shape[0]
    rank = np.argsort(orig, axis=1, kind="stable")
    half = int(np.around(k1 / 2.0))

    def reciprocal(i, k):
        return [f for f in rank[i, : k + 1] if i in rank[f, : k + 1]]

    enc = np.zeros((n, n), dtype=np.float32)
    for i in range(n):
        own = reciprocal(i, k1)
        expanded = set(own)
        for cand in own:
            theirs = reciprocal(cand, half)
            if len(set(theirs) & set(own)) > 2.0 / 3.0 * len(theirs):
                expanded |= set(theirs)
        idx = np.array(sorted(expanded))
        weight = np.exp(-orig[i, idx])
        enc[i, idx] = weight / weight.sum()
    if k2 != 1:
        enc = np.stack([enc[rank[i, :k2]].mean(axis=0) for i in range(n)])
    jaccard = np.zeros((nq, n), dtype=np.float32)
    for i in range(nq):
        for j in range(n):
            shared = np.minimum(enc[i], enc[j]).sum()
            jaccard[i, j] = 1 - shared / (2 - shared)
    final = jaccard * (1 - lambda_value) + orig[:nq] * lambda_value
    return final[:, nq:]


@pytest.fixture(name="dense_rerank")
def dense_rerank_fixture():
    """The dense reference re-ranking (a plain function)."""
    return dense_rerank


class PoolingModel(torch.nn.Module):
    """A fake re-ID model: encode_image = 4x2 average-pooled image (24-d) plus a modality offset, and it counts
    the images it embeds."""

    def __init__(self) -> None:
        super().__init__()
        self.offset = torch.nn.Parameter(torch.zeros(24))  # gives the model a device and a training flag
        self.seen: list[int] = []

    def encode_image(self, images: torch.Tensor, modality: str) -> torch.Tensor:
        self.seen.append(images.shape[0])
        pooled = torch.nn.functional.adaptive_avg_pool2d(images, (4, 2)).flatten(1)
        return pooled + self.offset + (0.1 if modality == "infrared" else -0.1)


@pytest.fixture
def pooling_model() -> PoolingModel:
    return PoolingModel()


@pytest.fixture(scope="session")
def tiny_sysu(tmp_path_factory) -> str:
    """A tiny synthetic SYSU-MM01 tree (8 test ids, 2 images per camera, 32x16 images)."""
    from csdn.data.synthetic import make_sysu

    root = tmp_path_factory.mktemp("sysu")
    return make_sysu(root, num_train_ids=2, num_val_ids=1, num_test_ids=8, images_per_cam=2, image_size=(32, 16))
