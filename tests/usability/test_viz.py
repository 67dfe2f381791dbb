import subprocess
import sys

import numpy as np
import PIL.Image
import pytest
import torch
import torch.nn.functional as F

pytest.importorskip("matplotlib")

from csdn.viz import (  # noqa: E402
    activation_maps,
    plot_cmc,
    plot_heatmaps,
    plot_modality_projection,
    plot_ranked_lists,
    write_evaluation_plots,
)
from csdn.viz.projection import pca_2d  # noqa: E402
from csdn.viz.ranking import MATCH_COLOR, MISMATCH_COLOR  # noqa: E402

H, W = 64, 32


def _count_colour(path, hex_colour: str, tol: int = 20) -> int:
    rgb = np.array([int(hex_colour[i : i + 2], 16) for i in (1, 3, 5)])
    pixels = np.asarray(PIL.Image.open(path).convert("RGB")).astype(int)
    return int((np.abs(pixels - rgb).max(axis=2) <= tol).sum())


def _only_png(folder, names):
    assert sorted(p.name for p in folder.iterdir()) == sorted(names)  # no temp files left behind
    for name in names:
        with PIL.Image.open(folder / name) as image:
            assert image.format == "PNG" and min(image.size) > 100


def test_ranked_list_frames_green_for_same_identity_and_red_otherwise(tmp_path):
    grey = [np.full((40, 20, 3), v, np.uint8) for v in (60, 120, 180, 240)]
    indices = np.array([[1, 2, 3]])
    plot_ranked_lists([grey[0]], grey, indices, tmp_path / "all.png", query_pids=[7], gallery_pids=[0, 7, 7, 7])
    plot_ranked_lists([grey[0]], grey, indices, tmp_path / "none.png", query_pids=[7], gallery_pids=[0, 1, 2, 3])
    plot_ranked_lists([grey[0]], grey, indices, tmp_path / "mixed.png", query_pids=[7], gallery_pids=[0, 7, 1, 7])
    all_green, all_red = (
        _count_colour(tmp_path / "all.png", MATCH_COLOR),
        _count_colour(tmp_path / "all.png", MISMATCH_COLOR),
    )
    assert all_green > 500 and all_red == 0
    assert (
        _count_colour(tmp_path / "none.png", MATCH_COLOR) == 0
        and _count_colour(tmp_path / "none.png", MISMATCH_COLOR) > 500
    )
    mixed_green = _count_colour(tmp_path / "mixed.png", MATCH_COLOR)
    assert 0.55 * all_green < mixed_green < 0.8 * all_green  # two of three frames green
    _only_png(tmp_path, ["all.png", "none.png", "mixed.png"])


def test_ranked_list_accepts_paths_and_checks_shapes(tmp_path):
    paths = []
    for i in range(3):
        paths.append(tmp_path / f"{i}.jpg")
        PIL.Image.fromarray(np.full((30, 15, 3), 50 * i, np.uint8)).save(paths[-1])
    out = plot_ranked_lists(
        paths[:1], paths, torch.tensor([[2, 0, 1]]), tmp_path / "out" / "r.png", distances=[[0.1, 0.2, 0.3]]
    )
    assert out.is_file()
    with pytest.raises(ValueError, match="indices must be \\(Q, k\\)"):
        plot_ranked_lists(paths[:2], paths, np.array([[0, 1]]), tmp_path / "x.png")
    with pytest.raises(ValueError, match="pass both query_pids and gallery_pids"):
        plot_ranked_lists(paths[:1], paths, np.array([[0, 1]]), tmp_path / "x.png", query_pids=[1])
    with pytest.raises(ValueError, match="indices must index gallery_images"):
        plot_ranked_lists(paths[:1], paths, np.array([[0, 5]]), tmp_path / "x.png")


class _Result:
    def __init__(self, cmc, mean_ap):
        self.cmc, self.mAP = np.asarray(cmc), mean_ap


def test_cmc_plot_of_several_runs_and_validation(tmp_path):
    runs = {"a": np.linspace(0.2, 1.0, 30), "b": _Result([0.5, 0.7, 0.9], 0.42)}
    plot_cmc(runs, tmp_path / "cmc.png", max_rank=20)
    _only_png(tmp_path, ["cmc.png"])
    with pytest.raises(ValueError, match="not percentages"):
        plot_cmc({"pct": [50.0, 80.0]}, tmp_path / "bad.png")
    with pytest.raises(ValueError, match="runs is empty"):
        plot_cmc({}, tmp_path / "bad.png")
    assert not (tmp_path / "bad.png").exists()


def test_pca_recovers_the_dominant_directions():
    # an ellipse with semi-axes 10 and 1 (zero-mean, uncorrelated), rotated into 5-D and shifted
    theta = 2 * np.pi * np.arange(200) / 200
    t, s = 10 * np.cos(theta), np.sin(theta)
    rotation, _ = np.linalg.qr(np.random.default_rng(0).normal(size=(5, 5)))
    coords = np.stack([t, s, np.zeros(200), np.zeros(200), np.zeros(200)], axis=1)
    xy = pca_2d(coords @ rotation.T + 3.0)
    np.testing.assert_allclose(np.abs(xy[:, 0]), np.abs(t), atol=1e-8)
    np.testing.assert_allclose(np.abs(xy[:, 1]), np.abs(s), atol=1e-8)


def test_modality_projection_plot(tmp_path):
    rng = np.random.default_rng(1)
    vis, ir = rng.normal(size=(12, 8)), torch.randn(9, 8, generator=torch.Generator().manual_seed(0))
    plot_modality_projection(vis, ir, tmp_path / "p.png")
    plot_modality_projection(
        vis, ir, tmp_path / "ids.png", visible_pids=np.arange(12) % 4, infrared_pids=np.arange(9) % 3
    )
    _only_png(tmp_path, ["p.png", "ids.png"])
    with pytest.raises(ValueError, match="differ in dimension"):
        plot_modality_projection(vis, ir[:, :4], tmp_path / "x.png")
    with pytest.raises(ValueError, match="Valid values are \\['pca', 'tsne'\\]"):
        plot_modality_projection(vis, ir, tmp_path / "x.png", method="umap")


def _literal_gradcam(model, images, modality):
    """Grad-CAM written out from its definition on the public encoder API (no hooks)."""
    x = images.clone()
    with torch.enable_grad():
        fmap = model.image_encoder.forward_features(x, modality)
        f_g, _ = model.image_encoder.pool(fmap)
        logits = model.head_global(f_g).logits
        score = logits.gather(1, logits.argmax(1, keepdim=True)).sum()
        grads = torch.autograd.grad(score, fmap)[0]
    cam = torch.relu((grads.mean(dim=(2, 3))[:, :, None, None] * fmap).sum(1, keepdim=True)).detach()
    cam = F.interpolate(cam, size=images.shape[-2:], mode="bilinear", align_corners=False)[:, 0]
    return cam / cam.flatten(1).max(1).values[:, None, None]


def test_gradcam_and_activation_maps_match_their_definitions(tiny_model):
    images = torch.randn(3, 3, H, W, generator=torch.Generator().manual_seed(0))
    for modality in ("visible", "infrared"):
        maps = activation_maps(tiny_model, images, modality)
        assert maps.shape == (3, H, W) and float(maps.min()) >= 0 and torch.allclose(maps.amax((1, 2)), torch.ones(3))
        torch.testing.assert_close(maps, _literal_gradcam(tiny_model, images, modality), atol=1e-4, rtol=1e-4)
    with torch.no_grad():
        fmap = tiny_model.image_encoder.forward_features(images, "infrared")
    act = F.interpolate(fmap.pow(2).sum(1, keepdim=True), size=(H, W), mode="bilinear", align_corners=False)[:, 0]
    act = act / act.flatten(1).max(1).values[:, None, None]
    torch.testing.assert_close(activation_maps(tiny_model, images, "infrared", method="activation"), act)
    assert not tiny_model.training and all(p.grad is None for p in tiny_model.parameters())


def test_gradcam_on_a_frozen_vit_model_and_reference_scores():
    from csdn.clip import tiny_state_dict
    from csdn.models import CSDN

    model = CSDN.from_clip(tiny_state_dict("ViT", seed=0), 4, image_size=(H, W)).requires_grad_(False)
    images = torch.randn(2, 3, H, W, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ref = model.eval().encode_image(images.flip(0), "visible")
    model.train()
    maps = activation_maps(model, images, "visible", reference=ref)
    assert maps.shape == (2, H, W) and torch.isfinite(maps).all() and model.training
    with pytest.raises(ValueError, match="Valid values are \\['gradcam', 'activation'\\]"):
        activation_maps(model, images, "visible", method="saliency")
    with pytest.raises(ValueError, match="cannot find the last stage"):
        activation_maps(torch.nn.Linear(2, 2), images, "visible")


def test_heatmap_overlay_rows_and_shape_check(tiny_model, tmp_path):
    images = torch.randn(4, 3, H, W, generator=torch.Generator().manual_seed(2))
    maps = activation_maps(tiny_model, images, "visible")
    plot_heatmaps(images, {"A": maps, "B": maps.flip(2)}, tmp_path / "h.png", titles=list("abcd"))
    _only_png(tmp_path, ["h.png"])
    with pytest.raises(ValueError, match="expected \\(4, 64, 32\\)"):
        plot_heatmaps(images, maps[:2], tmp_path / "x.png")


def test_evaluation_report_writes_every_plot(tiny_model, tmp_path):
    from csdn.data import SYSUMM01
    from csdn.data.synthetic import make_sysu
    from csdn.inference import FeatureExtractor, search

    split = SYSUMM01(make_sysu(tmp_path / "sysu", 2, 1, 3, images_per_cam=2)).test(trial=0)
    q = FeatureExtractor(tiny_model, modality="infrared", image_size=(H, W))([s.path for s in split.query])
    g = FeatureExtractor(tiny_model, modality="visible", image_size=(H, W))([s.path for s in split.gallery])
    dist = torch.cdist(q, g)
    assert search(q, g, topk=3, metric="euclidean").indices.tolist() == dist.argsort(1)[:, :3].tolist()
    written = write_evaluation_plots(
        tmp_path / "plots", split.query, split.gallery, dist, results={"run": np.array([0.5, 1.0])},
        query_feats=q, gallery_feats=g, model=tiny_model, image_size=(H, W), topk=3, max_queries=3,
    )  # fmt: skip
    names = ["ranked_lists", "cmc", "projection", "heatmaps_query", "heatmaps_top1"]
    assert sorted(written) == sorted(names)
    _only_png(tmp_path / "plots", [f"{n}.png" for n in names])


def test_matplotlib_is_lazy_and_its_absence_names_the_extra(tmp_path, monkeypatch):
    code = "import sys, csdn.viz, csdn.export; assert 'matplotlib' not in sys.modules and 'onnx' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    with pytest.raises(ImportError, match=r"matplotlib is not installed; it comes with the 'viz' extra"):
        plot_cmc({"a": [1.0]}, tmp_path / "c.png")


def test_plot_evaluation_from_an_evaluator_and_its_report(tiny_model, tmp_path):
    from csdn.data import SYSUMM01
    from csdn.data.synthetic import make_sysu
    from csdn.evaluation import VIReIDEvaluator
    from csdn.viz import plot_evaluation

    dataset = SYSUMM01(make_sysu(tmp_path / "sysu", 2, 1, 3, images_per_cam=2))
    evaluator = VIReIDEvaluator(dataset, height=H, width=W, trials=[0, 1])
    report = evaluator.run(tiny_model)
    written = plot_evaluation(tmp_path / "plots", evaluator, tiny_model, report, image_size=(H, W), max_queries=2)
    assert sorted(written) == ["cmc", "heatmaps_query", "heatmaps_top1", "projection", "ranked_lists"]
    assert all(path.is_file() for path in written.values())


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_gradcam_on_cuda_matches_cpu(tiny_model):
    import copy

    images = torch.randn(2, 3, H, W, generator=torch.Generator().manual_seed(5))
    cpu = activation_maps(tiny_model, images, "infrared")
    gpu = activation_maps(copy.deepcopy(tiny_model).to("cuda"), images.to("cuda"), "infrared")
    assert gpu.device.type == "cuda"
    torch.testing.assert_close(gpu.cpu(), cpu, atol=1e-3, rtol=1e-3)
