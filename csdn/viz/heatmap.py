"""Activation heatmaps of the image encoder's last stage (Grad-CAM style), overlaid on the input images.

The CSDN paper's Figure 4 compares such maps across model variants; :func:`plot_activation_maps` takes one
model or ``{variant: model}`` and draws one row per variant.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..data.images import preprocess
from ..evaluation.features import model_device
from ._common import denormalize, new_figure, save_figure

__all__ = ["METHODS", "activation_maps", "last_stage", "plot_activation_maps", "plot_heatmaps"]

#: ``gradcam``: gradient-weighted last-stage map (Selvaraju et al. 2017); ``activation``: channel-wise sum of
#: squared activations (the gradient-free map torchreid draws).
METHODS = ("gradcam", "activation")


def last_stage(model: nn.Module) -> nn.Module:
    """The module whose output is the last spatial stage: ``layer4`` (ResNet) or ``transformer`` (ViT)."""
    encoder = getattr(model, "image_encoder", None)
    for name in ("layer4", "transformer"):
        if encoder is not None and isinstance(getattr(encoder, name, None), nn.Module):
            return getattr(encoder, name)
    raise ValueError(
        f"cannot find the last stage of a {type(model).__name__}: expected model.image_encoder.layer4 (ResNet) or "
        ".transformer (ViT), as in csdn.models.CSDN"
    )


def _as_map(output: torch.Tensor, model: nn.Module) -> torch.Tensor:
    """Last-stage output -> spatial map ``(B, C, h, w)`` (ViT: patch tokens without the class token)."""
    if output.dim() == 4:
        return output
    h, w = model.image_encoder.grid_size  # type: ignore[union-attr, misc]  # duck-typed: a CSDN-like module
    return output[:, 1:].transpose(1, 2).reshape(output.shape[0], -1, h, w)


def _score(
    model: Any, images: torch.Tensor, modality: str, labels: Any, reference: torch.Tensor | None
) -> torch.Tensor:
    """Per-image scalar to explain: similarity to ``reference`` embeddings, else the identity logit."""
    if reference is not None:
        embedding = model.encode_image(images, modality)
        return (embedding * reference.to(embedding).expand_as(embedding)).sum(dim=1)
    logits = model.image_features(images, modality).logits_g
    target = logits.argmax(dim=1) if labels is None else torch.as_tensor(labels, device=logits.device).view(-1)
    return logits.gather(1, target[:, None]).squeeze(1)


def activation_maps(
    model: nn.Module,
    images: torch.Tensor,
    modality: str,
    *,
    method: str = "gradcam",
    labels: Sequence[int] | torch.Tensor | None = None,
    reference: torch.Tensor | None = None,
) -> torch.Tensor:
    """Heatmaps of the image encoder's last stage for preprocessed ``images (B, 3, H, W)`` of one modality.

    Args:
        model: A :class:`csdn.models.CSDN` (anything with ``image_encoder.layer4``/``.transformer``,
            ``image_features`` and ``encode_image``). Run in eval mode; its mode is restored afterwards.
        images: Model inputs ``(B, 3, H, W)`` (e.g. from :func:`csdn.data.images.preprocess`).
        modality: ``"visible"`` or ``"infrared"`` (selects the stem).
        method: One of :data:`METHODS`.
        labels: Grad-CAM target identities ``(B,)`` (training labels of the global classifier); default: each
            image's predicted identity.
        reference: Instead of an identity, explain the similarity to these embeddings ``(B, D)`` or ``(D,)``
            (e.g. a matched gallery image's ``encode_image``): the score is the inner product.

    Returns:
        ``(B, H, W)`` float maps in [0, 1] (each divided by its maximum), on the images' device.
    """
    if method not in METHODS:
        raise ValueError(f"Unknown value {method!r} for argument method. Valid values are {list(METHODS)}")
    stage, captured = last_stage(model), []
    handle = stage.register_forward_hook(lambda _module, _inputs, output: captured.append(output))
    was_training = model.training
    model.eval()
    try:
        with torch.set_grad_enabled(method == "gradcam"):
            x = images.detach().clone().requires_grad_(method == "gradcam")  # gradients flow even if frozen
            score = _score(model, x, modality, labels, reference)
            fmap = _as_map(captured[-1], model)
            if method == "gradcam":
                grads = _as_map(torch.autograd.grad(score.sum(), captured[-1])[0], model)
                cam = torch.relu((grads.mean(dim=(2, 3), keepdim=True) * fmap).sum(dim=1))
            else:
                cam = fmap.pow(2).sum(dim=1)
    finally:
        handle.remove()
        model.train(was_training)
    cam = F.interpolate(cam.detach()[:, None].float(), size=images.shape[-2:], mode="bilinear", align_corners=False)
    cam = cam[:, 0].clamp_min(0)
    return cam / cam.amax(dim=(1, 2), keepdim=True).clamp_min(1e-12)


def _display_batch(images: np.ndarray | torch.Tensor) -> np.ndarray:
    """Model inputs ``(B, 3, H, W)`` or display images ``(B, H, W, 3)`` -> floats ``(B, H, W, 3)`` in [0, 1]."""
    if isinstance(images, torch.Tensor) and images.dim() == 4 and images.shape[1] == 3:
        return denormalize(images)
    array = np.asarray(images)
    if array.ndim != 4 or array.shape[3] != 3:
        raise ValueError(f"images must be model inputs (B, 3, H, W) or display images (B, H, W, 3), got {array.shape}")
    return array.astype(np.float32) / (255.0 if array.dtype == np.uint8 else 1.0)


def plot_heatmaps(
    images: np.ndarray | torch.Tensor,
    maps: torch.Tensor | np.ndarray | Mapping[str, torch.Tensor | np.ndarray],
    out: str | os.PathLike,
    *,
    titles: Sequence[str] | None = None,
    alpha: float = 0.5,
    cmap: str = "jet",
    title: str | None = None,
) -> Path:
    """Draw the images in a first row and each set of heatmaps overlaid on them in the rows below.

    Args:
        images: Model inputs ``(B, 3, H, W)`` (ImageNet-normalised tensor) or display images ``(B, H, W, 3)``
            (uint8 or floats in [0, 1]).
        maps: ``(B, H, W)`` maps in [0, 1], or ``{row name: maps}`` to compare variants (paper Fig. 4 style).
        out: PNG path (written atomically).
        titles: One caption per image (column).
        alpha: Opacity of the heatmap.
        cmap: Matplotlib colormap of the heatmap.
        title: Figure title.

    Returns:
        ``out`` as a Path.
    """
    shown = _display_batch(images)
    rows = maps if isinstance(maps, Mapping) else {"heatmap": maps}
    for name, m in rows.items():
        if tuple(np.shape(m)) != shown.shape[:3]:
            raise ValueError(f"maps {name!r} have shape {tuple(np.shape(m))}, expected {shown.shape[:3]} (B, H, W)")
    count, height, width = shown.shape[:3]
    cell = 1.2
    figure = new_figure(cell * count + 0.8, cell * height / width * (len(rows) + 1) + 0.5)
    grid = figure.subplots(len(rows) + 1, count, squeeze=False)
    for j in range(count):
        grid[0][j].imshow(shown[j])
        grid[0][j].set_title(titles[j] if titles else f"#{j}", fontsize=7)
        for i, (name, m) in enumerate(rows.items(), start=1):
            heat = m[j].detach().cpu().numpy() if isinstance(m, torch.Tensor) else np.asarray(m[j])
            grid[i][j].imshow(shown[j])
            grid[i][j].imshow(heat, cmap=cmap, alpha=alpha, vmin=0.0, vmax=1.0)
            if j == 0:
                grid[i][j].set_ylabel(name, fontsize=8)
    for axis in grid.flat:
        axis.set_xticks([])
        axis.set_yticks([])
    if title:
        figure.suptitle(title, fontsize=10)
    return save_figure(figure, out)


def plot_activation_maps(
    model: nn.Module | Mapping[str, nn.Module],
    inputs: Any,
    modality: str,
    out: str | os.PathLike,
    *,
    image_size: int | tuple[int, int] = (288, 144),
    method: str = "gradcam",
    labels: Sequence[int] | None = None,
    titles: Sequence[str] | None = None,
    alpha: float = 0.5,
) -> Path:
    """Preprocess ``inputs``, compute :func:`activation_maps` for one model or each of ``{name: model}``, plot.

    Args:
        model: A CSDN model, or ``{variant name: model}`` for a comparison (one row per variant).
        inputs: Images in any form :class:`csdn.FeatureExtractor` accepts (paths, PIL, arrays, tensors).
        modality: ``"visible"`` or ``"infrared"``.
        out: PNG path (written atomically).
        image_size: Model input ``(H, W)`` (the training size).
        method: One of :data:`METHODS`.
        labels: Grad-CAM target identities (default: predicted).
        titles: One caption per image.
        alpha: Heatmap opacity.

    Returns:
        ``out`` as a Path.
    """
    models = model if isinstance(model, Mapping) else {method: model}
    images = preprocess(inputs, image_size)
    maps = {}
    for name, m in models.items():
        device = model_device(m)
        maps[name] = activation_maps(m, images.to(device), modality, method=method, labels=labels).cpu()
    return plot_heatmaps(images, maps, out, titles=titles, alpha=alpha, title=f"{modality} images, {method}")
