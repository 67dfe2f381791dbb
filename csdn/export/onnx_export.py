"""Export one modality's image encoder of a CSDN model to ONNX (extra ``onnx``).

The exported graph maps preprocessed images ``images (B, 3, H, W)`` float32 (resized to the training size,
ImageNet-normalised: see :func:`csdn.data.build_test_transform`) to the test embedding ``features (B, D)``
(``CSDN.encode_image`` of that modality; with ``flip``, concatenated with the embedding of the mirrored image).
The batch dimension is dynamic. The preprocessing and the modality are recorded in the model's metadata.
"""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .._io import atomic_path
from .._optional import require
from .._version import __version__
from ..data import Modality
from ..data.images import check_image_size
from ..evaluation.features import FLIP_DEFAULT, FLIP_MODES, encode_images, model_device
from ..inference import load_model

logger = logging.getLogger(__name__)

__all__ = ["ImageEncoderExport", "export_onnx", "onnx_metadata", "verify_onnx"]

INPUT_NAME, OUTPUT_NAME = "images", "features"


class ImageEncoderExport(nn.Module):
    """``images (B, 3, H, W) -> features (B, D)`` for one fixed modality: the graph that gets exported.

    Args:
        model: Module with ``encode_image(images, modality)`` (e.g. :class:`csdn.models.CSDN`), in eval mode.
        modality: ``"visible"`` or ``"infrared"``.
        flip: Also embed the horizontally flipped image.
        flip_mode: ``"concat"`` (``(B, 2D)``, official) or ``"sum"`` (``(B, D)``); as in the evaluator.
    """

    def __init__(self, model: nn.Module, modality: str, flip: bool = FLIP_DEFAULT, flip_mode: str = "concat") -> None:
        super().__init__()
        if flip_mode not in FLIP_MODES:
            raise ValueError(f"Unknown value {flip_mode!r} for argument flip_mode. Valid values are {list(FLIP_MODES)}")
        self.model, self.modality = model, Modality.parse(modality).value
        self.flip, self.flip_mode = bool(flip), flip_mode

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Embed preprocessed images ``(B, 3, H, W)`` -> ``(B, D)`` (``(B, 2D)`` with flip and ``"concat"``)."""
        return encode_images(self.model, images, self.modality, self.flip, self.flip_mode)


def _metadata(modality: str, image_size: tuple[int, int], flip: str, dim: int) -> dict[str, str]:
    from ..data.transforms import IMAGENET_MEAN, IMAGENET_STD  # torchvision on first use (csdn --help)

    return {
        "producer": f"csdn {__version__}",
        "modality": modality,
        "input": f"{INPUT_NAME}: float32 (batch, 3, {image_size[0]}, {image_size[1]}), RGB resized to HxW (antialiased)"
        f", scaled to [0, 1], normalised with mean {list(IMAGENET_MEAN)} std {list(IMAGENET_STD)}",
        "output": f"{OUTPUT_NAME}: float32 (batch, {dim}); score = inner product (cosine for unit-norm rows)",
        "flip": flip,  # "none", "concat" or "sum"
    }


def _run_exporter(wrapper: nn.Module, example: torch.Tensor, target: Path, opset: int | None, dynamo: bool) -> None:
    if dynamo:
        require("onnxscript", "onnx")
        program = torch.onnx.export(
            wrapper, (example,), input_names=[INPUT_NAME], output_names=[OUTPUT_NAME], opset_version=opset,
            dynamic_shapes={"images": {0: torch.export.Dim("batch", min=1)}}, dynamo=True, verbose=False,
        )  # fmt: skip
        if program is None:  # only the legacy exporter returns None
            raise RuntimeError("torch.onnx.export(dynamo=True) returned no program")
        program.save(target, external_data=False)
        return
    with warnings.catch_warnings():  # the legacy tracer's shape-check and deprecation warnings are expected noise
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            wrapper, (example,), str(target), input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
            opset_version=opset or 17, dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
            dynamo=False,
        )  # fmt: skip


def export_onnx(
    checkpoint_or_model: str | os.PathLike | nn.Module,
    out: str | os.PathLike,
    modality: str,
    *,
    image_size: int | tuple[int, int] | None = None,
    flip: bool = FLIP_DEFAULT,
    flip_mode: str = "concat",
    opset: int | None = None,
    dynamo: bool = True,
) -> Path:
    """Export the ``modality`` image encoder of a trained model to an ONNX file with a dynamic batch dimension.

    Args:
        checkpoint_or_model: A ``csdn train`` checkpoint path or a module with ``encode_image(images, modality)``
            (see :func:`csdn.inference.load_model`). The model is exported on CPU in eval mode; a module's own
            train/eval mode is restored afterwards.
        out: Destination ``.onnx`` file, written atomically (a failed export leaves no file behind).
        modality: ``"visible"`` or ``"infrared"``: whose stem the graph contains.
        image_size: Input ``(H, W)`` (default: the checkpoint's training size, else ``(288, 144)``); the
            spatial size is fixed in the graph because the attention-pool positional embedding is.
        flip: Bake the official flip test-time augmentation into the graph.
        flip_mode: ``"concat"`` (``D`` doubles, official) or ``"sum"``.
        opset: ONNX opset (default: the exporter's own default; 17 for the legacy exporter).
        dynamo: Use torch's ``torch.export``-based exporter (needs ``onnxscript``); ``False`` uses the legacy
            TorchScript exporter.

    Returns:
        The path written.

    Raises:
        ImportError: if ``onnx`` (or, with ``dynamo``, ``onnxscript``) is missing, naming the extra.
        ValueError / FileNotFoundError: for a bad modality, model or checkpoint.
    """
    onnx = require("onnx", "onnx")
    modality = Modality.parse(modality).value
    model, trained_size = load_model(checkpoint_or_model, image_size=image_size)
    size = check_image_size(image_size or trained_size or (288, 144))
    device, was_training = model_device(model), model.training
    wrapper = ImageEncoderExport(model.cpu().eval(), modality, flip, flip_mode).eval()
    example = torch.zeros(2, 3, *size)  # batch 2: torch.export specialises dimensions of size 1
    try:
        with torch.no_grad():
            dim = int(wrapper(example).shape[1])
        with atomic_path(out) as tmp:
            _run_exporter(wrapper, example, tmp, opset, dynamo)
            proto = onnx.load(str(tmp))
            onnx.helper.set_model_props(proto, _metadata(modality, size, flip_mode if flip else "none", dim))
            onnx.checker.check_model(proto)
            onnx.save(proto, str(tmp))
    finally:
        model.to(device).train(was_training)
    logger.info("exported the %s image encoder (%dx%d -> %d-d) to %s", modality, *size, dim, out)
    return Path(out)


def verify_onnx(
    path: str | os.PathLike,
    model: nn.Module,
    modality: str,
    *,
    flip: bool = FLIP_DEFAULT,
    flip_mode: str = "concat",
    batch_size: int = 3,
    seed: int = 0,
) -> float:
    """Max absolute difference between onnxruntime and torch on a random batch (needs ``onnxruntime``).

    Args:
        path: An exported model.
        model: The torch model it was exported from.
        modality: The modality it was exported for.
        flip: Whether it was exported with flip.
        flip_mode: The flip mode it was exported with.
        batch_size: Rows of the random batch (use one other than 2 to exercise the dynamic batch).
        seed: Seed of the private generator drawing the batch.

    Returns:
        ``max |onnx - torch|`` over the batch's features.
    """
    ort = require("onnxruntime", "onnx")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    shape = session.get_inputs()[0].shape  # ["batch", 3, H, W]
    images = torch.randn(batch_size, 3, int(shape[2]), int(shape[3]), generator=torch.Generator().manual_seed(seed))
    device, was_training = model_device(model), model.training
    try:
        with torch.no_grad():
            expected = (
                ImageEncoderExport(model.eval(), modality, flip, flip_mode)(images.to(device)).float().cpu().numpy()
            )
    finally:
        model.train(was_training)
    (got,) = session.run([OUTPUT_NAME], {INPUT_NAME: images.numpy()})
    return float(np.abs(got - expected).max())


def onnx_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """The ``metadata_props`` csdn stored in an exported model (modality, input/output description, flip)."""
    onnx = require("onnx", "onnx")
    proto = onnx.load(str(path), load_external_data=False)
    return {prop.key: prop.value for prop in proto.metadata_props}
