"""The stage-1/2 feature banks: the official BN-train pass order and rows aligned with their labels in every mode."""

import copy

import pytest
import torch
from torch import nn

from csdn.data.loaders import ImageDataset
from csdn.data.transforms import build_test_transform
from csdn.engine.build import build_csdn
from csdn.engine.feature_bank import extract_feature_bank, extraction_steps, sampled_bank_split


def _images(samples, cfg) -> torch.Tensor:
    """The test-transformed images of ``samples`` -> (N, 3, H, W), read one by one."""
    dataset = ImageDataset(samples, build_test_transform(cfg.data.height, cfg.data.width))
    return torch.stack([dataset[i][0] for i in range(len(dataset))])


def _bn_buffers(model: nn.Module) -> dict[str, torch.Tensor]:
    return {name: b.clone() for name, b in model.named_buffers() if "running" in name or "num_batches" in name}


def _official_loop(model, visible, infrared, batch, vis_order, ir_order):
    """The official stage-2 extraction written out: visible batch j, then infrared batch j; the longer rest last."""
    feats = {"visible": torch.empty(len(vis_order), 0), "infrared": torch.empty(len(ir_order), 0)}
    model.train()
    with torch.no_grad():
        for j in range(max(len(vis_order), len(ir_order)) // batch + 1):
            for modality, images, order in (("visible", visible, vis_order), ("infrared", infrared, ir_order)):
                rows = order[j * batch : (j + 1) * batch]
                if len(rows):
                    out = model.clip_image_features(images[rows], modality)
                    if feats[modality].shape[1] == 0:
                        feats[modality] = torch.zeros(len(order), out.shape[1])
                    feats[modality][rows] = out
    return feats


@pytest.mark.parametrize("shuffle", [False, True], ids=["sampler-order", "shuffled"])
def test_bn_train_running_statistics_equal_a_literal_alternating_loop(tiny_cfg, sysu_train, shuffle):
    cfg = tiny_cfg()
    torch.manual_seed(0)
    model = build_csdn(cfg, sysu_train.num_classes).eval()
    # shuffled: the every-image bank (64 visible, 32 infrared: unequal batch counts); in order: the sampled bank
    split = sysu_train if shuffle else sampled_bank_split(sysu_train, 4, 2, seed=1, stage=2)
    literal = copy.deepcopy(model)
    gen = torch.Generator().manual_seed(7)
    bank = extract_feature_bank(
        model, split, cfg.data, torch.device("cpu"), train_bn=True, shuffle=shuffle, batch_size=8,
        generator=torch.Generator().manual_seed(7), progress=False,
    )  # fmt: skip
    nv, ni = len(split.visible), len(split.infrared)
    vis_order = torch.randperm(nv, generator=gen) if shuffle else torch.arange(nv)
    ir_order = torch.randperm(ni, generator=gen) if shuffle else torch.arange(ni)
    visible, infrared = _images(split.visible, cfg), _images(split.infrared, cfg)
    expected = _official_loop(literal, visible, infrared, 8, vis_order, ir_order)
    got, want = _bn_buffers(model), _bn_buffers(literal)
    assert any(k.startswith("image_encoder.layer") for k in want)  # the shared trunk is compared
    for name, value in want.items():
        assert torch.allclose(got[name], value, rtol=1e-6, atol=1e-7), name
    torch.testing.assert_close(bank.visible, expected["visible"], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(bank.infrared, expected["infrared"], rtol=1e-5, atol=1e-6)
    assert not model.training  # the model's mode is restored

    # the order matters: every visible batch first (the old csdn order) leaves the shared trunk elsewhere
    other = copy.deepcopy(literal)
    _official_loop(other, visible, infrared, 8, vis_order, torch.empty(0, dtype=torch.long))
    _official_loop(other, visible, infrared, 8, torch.empty(0, dtype=torch.long), ir_order)
    trunk = [n for n in want if "stems" not in n and "running_mean" in n]
    assert trunk and max(float((_bn_buffers(other)[n] - want[n]).abs().max()) for n in trunk) > 1e-4


def test_extraction_steps_alternate_then_finish_the_longer_modality():
    v = [torch.tensor([i]) for i in range(3)]
    r = [torch.tensor([10 + i]) for i in range(1)]
    steps = [(m, int(b)) for m, b in extraction_steps(v, r)]
    assert steps == [("visible", 0), ("infrared", 10), ("visible", 1), ("visible", 2)]
    steps = [(m, int(b)) for m, b in extraction_steps(r, v)]
    assert steps == [("visible", 10), ("infrared", 0), ("infrared", 1), ("infrared", 2)]


class _PixelEcho(nn.Module):
    """Per-image features (no batch coupling): each image's channel means and a modality flag -> (B, 4)."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[str, bool, int]] = []

    def clip_image_features(self, images: torch.Tensor, modality: str) -> torch.Tensor:
        self.calls.append((modality, self.training, images.shape[0]))
        flag = torch.full((images.shape[0], 1), float(modality == "infrared"))
        return torch.cat([images.mean(dim=(2, 3)), flag], dim=1)


@pytest.mark.parametrize(
    ("train_bn", "shuffle", "sampled"),
    [(False, True, False), (True, True, False), (True, False, False), (False, True, True), (True, False, True)],
    ids=["eval", "bn-train-shuffled", "bn-train-in-order", "eval-sampled", "bn-train-sampled"],
)
def test_bank_rows_stay_aligned_with_their_samples_and_labels(tiny_cfg, sysu_train, train_bn, shuffle, sampled):
    cfg = tiny_cfg()
    split = sampled_bank_split(sysu_train, 4, 2, seed=3, stage=2) if sampled else sysu_train
    model = _PixelEcho()
    bank = extract_feature_bank(
        model, split, cfg.data, torch.device("cpu"), train_bn=train_bn, shuffle=shuffle, batch_size=8,
        generator=torch.Generator().manual_seed(0), progress=False,
    )  # fmt: skip
    for features, labels, samples, flag in (
        (bank.visible, bank.visible_labels, split.visible, 0.0),
        (bank.infrared, bank.infrared_labels, split.infrared, 1.0),
    ):
        expected = _images(samples, cfg).mean(dim=(2, 3))
        assert torch.equal(labels, torch.tensor([s.label for s in samples]))
        torch.testing.assert_close(features[:, :3], expected, rtol=0, atol=1e-6)  # row i is sample i's image
        assert torch.all(features[:, 3] == flag)
        assert len(set(map(tuple, expected.tolist()))) == len({s.path for s in samples})  # a swap would show
    assert {training for _, training, _ in model.calls} == {train_bn}
    modalities = [m for m, _, _ in model.calls]
    assert modalities[:2] == ["visible", "infrared"]  # interleaved in every mode
