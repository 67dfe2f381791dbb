"""Channel augmentations (semantics written out by hand) and the official pipelines."""

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import tv_tensors
from torchvision.transforms import v2

from csdn.data import (
    ChannelAdapGray,
    ChannelExchange,
    ChannelRandomErasing,
    build_test_transform,
    build_train_transforms,
)


@pytest.fixture
def image():
    return torch.rand(3, 12, 6, generator=torch.Generator().manual_seed(0))


def _grey(img):
    return 0.2989 * img[0] + 0.5870 * img[1] + 0.1140 * img[2]


@pytest.mark.parametrize("index, channel", [(0, 0), (1, 1), (2, 2), (3, None), (7, None)])
def test_channel_exchange_index_to_channel(image, index, channel):
    before = image.clone()
    out = ChannelExchange(gray=7).transform(image, {"index": index})
    expected = image[channel] if channel is not None else _grey(image)
    for c in range(3):
        torch.testing.assert_close(out[c], expected)
    assert torch.equal(image, before), "must not modify the input in place"


def test_channel_exchange_default_gray_2_never_greys(image):
    t = ChannelExchange(generator=torch.Generator().manual_seed(1))
    indices = [t.make_params([image])["index"] for _ in range(600)]
    counts = np.bincount(indices, minlength=3)
    assert len(counts) == 3 and counts.min() > 150  # uniform over R, G, B copies, never index 3 (grey)
    for _ in range(50):
        out = t(image)
        assert any(torch.equal(out, image[c].expand(3, -1, -1)) for c in range(3))
    t3 = ChannelExchange(gray=3, generator=torch.Generator().manual_seed(2))
    assert 3 in {t3.make_params([image])["index"] for _ in range(100)}


def test_channel_adap_gray(image):
    t = ChannelAdapGray(p=0.5)
    for c in range(3):
        assert torch.equal(t.transform(image, {"index": c, "grey": False}), image[c].expand(3, -1, -1))
    assert t.transform(image, {"index": 3, "grey": False}) is image
    grey = t.transform(image, {"index": 3, "grey": True})
    torch.testing.assert_close(grey, _grey(image).expand(3, -1, -1))
    never = ChannelAdapGray(p=0.0, generator=torch.Generator().manual_seed(0))
    always = ChannelAdapGray(p=1.0, generator=torch.Generator().manual_seed(0))
    draws_never = [never.make_params([image]) for _ in range(200)]
    draws_always = [always.make_params([image]) for _ in range(200)]
    assert not any(d["grey"] for d in draws_never)
    assert all(d["grey"] == (d["index"] == 3) for d in draws_always)
    assert np.bincount([d["index"] for d in draws_always], minlength=4).min() > 25


def test_channel_random_erasing_fill_and_box(image):
    t = ChannelRandomErasing(p=1.0)
    out = t.transform(image, {"box": (2, 1, 5, 3)})
    fill = torch.tensor([0.4914, 0.4822, 0.4465])
    assert torch.equal(out[:, 2:7, 1:4], fill.view(3, 1, 1).expand(3, 5, 3))
    mask = torch.ones(12, 6, dtype=torch.bool)
    mask[2:7, 1:4] = False
    assert torch.equal(out[:, mask], image[:, mask])
    one = t.transform(image[:1], {"box": (0, 0, 2, 2)})
    assert torch.all(one[0, :2, :2] == torch.tensor(0.4914))
    assert t.transform(image, {"box": None}) is image


def test_channel_random_erasing_draws(image):
    big = torch.zeros(3, 288, 144)
    t = ChannelRandomErasing(p=1.0, generator=torch.Generator().manual_seed(0))
    for _ in range(200):
        top, left, h, w = t.make_params([big])["box"]
        assert 0 <= top <= 288 - h and 0 <= left <= 144 - w and h < 288 and w < 144
        area = h * w / (288 * 144)
        assert 0.015 < area < 0.42 and 0.25 < h / w < 3.6
    never = ChannelRandomErasing(p=0.0)
    assert all(never.make_params([big])["box"] is None for _ in range(50))
    half = ChannelRandomErasing(p=0.5, generator=torch.Generator().manual_seed(3))
    applied = sum(half.make_params([big])["box"] is not None for _ in range(400))
    assert 150 < applied < 250


def test_generator_makes_draws_reproducible_and_types_pass_through(image):
    a = ChannelRandomErasing(p=1.0, generator=torch.Generator().manual_seed(5))
    b = ChannelRandomErasing(p=1.0, generator=torch.Generator().manual_seed(5))
    assert torch.equal(a(image), b(image))
    wrapped = tv_tensors.Image(image)
    out, label = ChannelExchange(generator=torch.Generator().manual_seed(0))(wrapped, 7)
    assert isinstance(out, tv_tensors.Image) and label == 7


def test_bad_arguments_and_inputs(image):
    with pytest.raises(ValueError, match="gray must be a non-negative integer"):
        ChannelExchange(gray=-1)
    with pytest.raises(ValueError, match="p must be a probability"):
        ChannelAdapGray(p=1.5)
    with pytest.raises(ValueError, match="scale must be"):
        ChannelRandomErasing(scale=(0.5, 0.1))
    with pytest.raises(ValueError, match="value must hold 1 or 3"):
        ChannelRandomErasing(value=(0.1, 0.2))
    with pytest.raises(TypeError, match="PIL image"):
        ChannelExchange()(Image.new("RGB", (4, 4)))
    with pytest.raises(ValueError, match="C in"):
        ChannelExchange()(torch.rand(2, 4, 4))
    with pytest.raises(TypeError, match="float"):
        ChannelRandomErasing(p=1.0).transform(torch.zeros(3, 8, 8, dtype=torch.uint8), {"box": (0, 0, 2, 2)})
    with pytest.raises(ValueError, match="height must be a positive integer"):
        build_test_transform(0, 144)


def test_official_pipelines():
    pil = Image.fromarray(np.random.default_rng(0).integers(0, 256, (100, 50, 3), dtype=np.uint8))
    tt = build_train_transforms()
    for pipeline in tt:
        out = pipeline(pil)
        assert out.shape == (3, 288, 144) and out.dtype == torch.float32
    names = [[type(t).__name__ for t in p.transforms] for p in tt]
    common = ["Resize", "ToImage", "Pad", "RandomCrop", "RandomHorizontalFlip", "ToDtype", "Normalize"]
    assert names[0] == common + ["ChannelRandomErasing"]
    assert names[1] == common + ["ChannelRandomErasing", "ChannelExchange"]
    assert names[2] == common + ["ChannelRandomErasing", "ChannelAdapGray"]
    assert tt.visible_exchange.transforms[-1].gray == 2 and tt.infrared.transforms[-1].p == 0.5
    assert tt.visible.transforms[2].padding == 10 and tt.visible.transforms[0].antialias
    # test transform = PIL LANCZOS resize, to [0, 1], ImageNet normalisation
    expected = torch.from_numpy(np.asarray(pil.resize((144, 288), Image.LANCZOS), dtype=np.float32) / 255).permute(
        2, 0, 1
    )
    expected = v2.functional.normalize(expected, [0.485, 0.456, 0.406], [0.229, 0.224, 0.225])
    torch.testing.assert_close(build_test_transform()(pil), expected)


def test_channel_random_erasing_box_bounds_at_their_edges():
    square = torch.zeros(3, 8, 8)
    whole = ChannelRandomErasing(p=1.0, scale=(1.0, 1.0), ratio=(1.0, 1.0), max_attempts=5)
    assert whole.make_params([square])["box"] is None  # a box as large as the image is never placed (h < H, w < W)
    gen = torch.Generator().manual_seed(0)
    quarter = ChannelRandomErasing(p=1.0, scale=(0.25, 0.25), ratio=(1.0, 1.0), generator=gen)
    boxes = [quarter.make_params([square])["box"] for _ in range(200)]
    assert {(h, w) for _, _, h, w in boxes} == {(4, 4)}  # area exactly 0.25 * 64 at the scale's edge
    assert {t for t, _, _, _ in boxes} == set(range(5)) and {left for _, left, _, _ in boxes} == set(range(5))
    tall = ChannelRandomErasing(p=1.0, scale=(0.125, 0.125), ratio=(2.0, 2.0))
    assert tall.make_params([torch.zeros(3, 16, 8)])["box"][2:] == (6, 3)  # h = round(sqrt(16 * 2)), w = sqrt(16 / 2)


def test_channel_random_erasing_fills_exactly_its_box(image):
    out = ChannelRandomErasing(p=1.0).transform(image, {"box": (1, 2, 3, 1)})
    changed = (out != image).any(dim=0)
    expected = torch.zeros(12, 6, dtype=torch.bool)
    expected[1:4, 2:3] = True
    assert torch.equal(changed, expected)


def test_channel_operations_on_batched_images():
    batch = torch.rand(2, 3, 4, 4, generator=torch.Generator().manual_seed(1))  # (..., 3, H, W) with a batch dim
    grey = ChannelAdapGray(p=1.0).transform(batch, {"index": 3, "grey": True})
    exchanged = ChannelExchange(gray=3).transform(batch, {"index": 3})
    for out in (grey, exchanged):
        assert out.shape == batch.shape
        for i in range(2):
            torch.testing.assert_close(out[i], _grey(batch[i]).expand(3, 4, 4))
    with pytest.raises(ValueError, match="ChannelRandomErasing expects images of shape"):
        ChannelRandomErasing(p=1.0)(torch.rand(2, 4, 4))


def test_pipeline_sizes_at_their_edge():
    build_train_transforms(1, 1)  # one pixel is a valid size
    build_test_transform(1, 1)
    for height, width, name in ((True, 4, "height"), (4, 0, "width"), (4, 2.0, "width")):
        with pytest.raises(ValueError, match=f"{name} must be a positive integer"):
            build_train_transforms(height, width)


def test_train_pipelines_values_on_a_flat_image():
    rgb = (200, 100, 30)
    pil = Image.new("RGB", (6, 12), rgb)
    tt = build_train_transforms(12, 6, padding=0, flip_p=0.0, erasing_p=0.0, gray=2, adapgray_p=0.0)
    normalised = (torch.tensor(rgb) / 255 - torch.tensor([0.485, 0.456, 0.406])) / torch.tensor([0.229, 0.224, 0.225])
    torch.testing.assert_close(tt.visible(pil), normalised.view(3, 1, 1).expand(3, 12, 6))  # scaled to [0, 1] first
    view2 = tt.visible_exchange(pil)
    assert any(torch.allclose(view2, normalised[k].expand(3, 12, 6)) for k in range(3))  # one channel copied
