"""Provenance of every stage-3 training view: which image it came from and which transform chain it got.

Every image is one flat colour whose three channels encode the image (identity, modality, camera, index): channel
``c`` of image ``u`` is ``40 + 3 u + c``, so any single channel identifies the image, and a channel copy, a grey
image and the original colour are told apart. The real stage-3 loader then runs with every augmentation on, and
each view is decoded pixel by pixel: the image it shows, the colour operation it got, and the colour operation
its erased rectangle and its padding got (both come before the channel transforms in the official chain). A flat
image cannot show a flip; the flip's place in the chain is checked in tests/data/test_transforms.py.
"""

import numpy as np
import PIL.Image
import pytest
import torch

from csdn.data.samples import Sample, TrainSplit
from csdn.data.transforms import ERASING_FILL, GREY_WEIGHTS, IMAGENET_MEAN, IMAGENET_STD
from csdn.engine import apply_overrides, get_preset
from csdn.engine.distributed import DistInfo
from csdn.engine.inputs import image_stage_loader

from .conftest import TINY_OVERRIDES

IDS, CAMS, PER_CAM = 4, {"visible": (1, 2), "infrared": (3, 6)}, 2
H, W, PAD = 32, 16, 2
TOL = 1e-4


@pytest.fixture(scope="module")
def coded_split(tmp_path_factory):
    """A TrainSplit of flat-colour PNGs (lossless) and the code ``u`` of every sample."""
    root = tmp_path_factory.mktemp("coded")
    samples, code = {"visible": [], "infrared": []}, 0
    for modality, cams in CAMS.items():
        for pid in range(IDS):
            for cam in cams:
                for index in range(PER_CAM):
                    colour = np.array([40 + 3 * code + c for c in range(3)], dtype=np.uint8)
                    path = root / f"{modality}_{pid}_{cam}_{index}.png"
                    PIL.Image.fromarray(np.broadcast_to(colour, (H, W, 3)).copy()).save(path)
                    samples[modality].append(Sample(str(path), pid, cam, modality, pid))
                    code += 1
    return TrainSplit(samples["visible"], samples["infrared"], IDS)


def _normalised(rgb) -> torch.Tensor:
    """``(3,)`` 8-bit colour -> the normalised pixel the pipelines produce before erasing."""
    return (torch.tensor(rgb, dtype=torch.float32) / 255 - torch.tensor(IMAGENET_MEAN)) / torch.tensor(IMAGENET_STD)


def _colour_ops(pixel: torch.Tensor) -> dict[str, torch.Tensor]:
    """The pixel after each colour operation of the official chain: none, copy of channel k, luminance grey."""
    grey = (pixel * torch.tensor(GREY_WEIGHTS)).sum()
    return {"none": pixel, **{f"copy{k}": pixel[k].repeat(3) for k in range(3)}, "grey": grey.repeat(3)}


def _decode(view: torch.Tensor, table: list[tuple[torch.Tensor, object, str]]) -> list[tuple[object, str]]:
    """The distinct (source, colour op) of a view's pixels, looked up in ``table``."""
    found = set()
    for pixel in torch.unique(view.reshape(3, -1).T, dim=0):
        matches = [(source, op) for value, source, op in table if float((value - pixel).abs().max()) < TOL]
        assert len(matches) == 1, (pixel, matches)  # every pixel is one known image (or fill) under one operation
        found.add(matches[0])
    return sorted(found, key=str)


def test_every_view_comes_from_the_sampled_image_through_its_own_chain(coded_split):
    sets = ["data.erasing_p=0.5", "data.flip_p=0.5", "data.exchange_gray=2", "data.adap_gray_p=0.5",
            "stage3.num_ids=4", "stage3.num_pos=2", "runtime.seed=5"]  # fmt: skip
    cfg = apply_overrides(get_preset("demo"), [*TINY_OVERRIDES, *sets])
    assert (cfg.data.height, cfg.data.width, cfg.data.pad) == (H, W, PAD)
    loader = image_stage_loader(coded_split, cfg, DistInfo(), torch.Generator().manual_seed(0))
    images = {m: getattr(coded_split, m) for m in CAMS}
    code = {s.path: 40 + 3 * u for u, s in enumerate(images["visible"] + images["infrared"])}
    table = [(value, "fill", op) for op, value in _colour_ops(torch.tensor(ERASING_FILL)).items()]
    table += [(value, "pad", op) for op, value in _colour_ops(_normalised([0, 0, 0])).items()]  # Pad fills zeros
    for sample in images["visible"] + images["infrared"]:
        rgb = [code[sample.path] + c for c in range(3)]
        table += [(value, sample.path, op) for op, value in _colour_ops(_normalised(rgb)).items()]
    seen = {"visible": set(), "visible_exchange": set(), "infrared": set()}
    erased, padded = dict.fromkeys(seen, 0), dict.fromkeys(seen, 0)
    slots = 0
    for epoch in range(3):
        loader.sampler.set_epoch(epoch)
        chosen = [(v, i) for v, i, _seed in loader.sampler]
        batches = list(loader)
        assert len(batches) * loader.batch_size == len(chosen)
        for b, batch in enumerate(batches):
            for j in range(loader.batch_size):
                v, i = chosen[b * loader.batch_size + j]
                source = {"visible": images["visible"][v], "infrared": images["infrared"][i]}
                assert batch.visible_label[j] == source["visible"].label == batch.infrared_label[j]
                assert (batch.visible_cam[j], batch.infrared_cam[j]) == (source["visible"].cam, source["infrared"].cam)
                for view in seen:
                    decoded = _decode(getattr(batch, view)[j], table)
                    image = [(s, op) for s, op in decoded if s not in ("fill", "pad")]
                    fill = [op for s, op in decoded if s == "fill"]
                    pad = [op for s, op in decoded if s == "pad"]
                    # the view shows the image the sampler chose for this slot, and nothing else
                    expected = source["infrared" if view == "infrared" else "visible"].path
                    assert len(image) == 1 and image[0][0] == expected, (epoch, b, j, view, decoded)
                    op = image[0][1]
                    assert fill in ([], [op]), (view, decoded)  # erasing first, then the view's colour operation
                    assert pad in ([], [op]), (view, decoded)  # padding before the colour operation too
                    erased[view] += bool(fill)
                    padded[view] += bool(pad)
                    seen[view].add(op)
                slots += 1
    assert slots == 3 * 24  # (16 // 8 + 1) x 8 pairs per epoch
    # view 1: no channel transform; view 2: ChannelExchange(gray=2), single-channel copies only (never grey);
    # infrared: ChannelAdapGray(0.5), copies, grey or unchanged
    assert seen == {
        "visible": {"none"},
        "visible_exchange": {"copy0", "copy1", "copy2"},
        "infrared": {"none", "copy0", "copy1", "copy2", "grey"},
    }
    assert all(0.3 * slots < count < 0.7 * slots for count in erased.values()), erased  # erasing p 0.5 on each
    assert all(0.5 * slots < count < slots for count in padded.values()), padded  # Pad + RandomCrop on each view
