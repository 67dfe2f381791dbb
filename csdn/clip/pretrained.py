"""OpenAI CLIP checkpoints: names and URLs, reading their weights as data, and ``load``.

Each URL carries the file's full SHA-256 as its second-to-last path component; :mod:`csdn.clip.cache`
checks cached files against it and verifies downloads before they are moved into place.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch

from .._untrusted import check_tensor_sizes, first_line, printable, quoted, regular_file
from .build import build_model
from .cache import CACHE_ENV as CACHE_ENV
from .cache import DownloadError as DownloadError
from .cache import default_cache_dir as default_cache_dir
from .cache import download as download
from .cache import url_sha256 as url_sha256
from .model import CLIP
from .pos_embed import to_hw
from .torchscript import ArchiveLimitError, ArchiveReadError, is_torchscript, read_torchscript_state_dict

logger = logging.getLogger(__name__)

_BASE_URL = "https://openaipublic.azureedge.net/clip/models"
_MODELS = {
    "RN50": f"{_BASE_URL}/afeb0e10f9e5a86da6080e35cf09123aca3b358a0c3e3b6c78a7b63bc04b6762/RN50.pt",
    "RN101": f"{_BASE_URL}/8fa8567bab74a42d41c5915025a8e4538c3bdbe8804a470a72f30b0d94fab599/RN101.pt",
    "RN50x4": f"{_BASE_URL}/7e526bd135e493cef0776de27d5f42653e6b4c8bf9e0f653bb11773263205fdd/RN50x4.pt",
    "RN50x16": f"{_BASE_URL}/52378b407f34354e150460fe41077663dd5b39c54cd0bfd2b27167a4a06ec9aa/RN50x16.pt",
    "RN50x64": f"{_BASE_URL}/be1cfb55d75a9666199fb2206c106743da0f6468c9d327f3e0d0a543a9919d9c/RN50x64.pt",
    "ViT-B/32": f"{_BASE_URL}/40d365715913c9da98579312b702a82c18be219cc2a73407c4526f58eba950af/ViT-B-32.pt",
    "ViT-B/16": f"{_BASE_URL}/5806e77cd80f8b59890b7e101eabd078d9fb84e6937f9e85e4ecb61988df416f/ViT-B-16.pt",
    "ViT-L/14": f"{_BASE_URL}/b8cca3fd41ae0c99ba7e8951adf17d267cdb84cd88be6f7c2e0eca1737a03836/ViT-L-14.pt",
    "ViT-L/14@336px": f"{_BASE_URL}/3035c92b350959924f9f00213499208652fc7ea050643e8b385c2dac08641f02/ViT-L-14-336px.pt",
}
#: Per-channel RGB mean and std of OpenAI CLIP's training images (inputs in [0, 1]).
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def available_models() -> list[str]:
    """Names of the official OpenAI CLIP checkpoints that :func:`load` can download."""
    return list(_MODELS)


def model_url(name: str) -> str:
    """URL of an official checkpoint.

    Raises:
        ValueError: If ``name`` is not one of :func:`available_models`.
    """
    if name not in _MODELS:
        raise ValueError(f"Unknown CLIP model {name!r}. Valid names are {available_models()}")
    return _MODELS[name]


def _jit_load_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """``torch.jit.load(path).state_dict()``: runs code stored in the file (only with ``trust_code=True``)."""
    with warnings.catch_warnings():  # torch >= 2.9 flags torch.jit as deprecated; the archives remain
        warnings.filterwarnings("ignore", message=r".*torch\.jit\.load.*deprecated", category=FutureWarning)
        return dict(torch.jit.load(str(path), map_location="cpu").state_dict())


def read_state_dict(path: str | os.PathLike, *, trust_code: bool = False) -> dict[str, torch.Tensor]:
    """Read a CLIP state dict from a TorchScript archive or a plain state-dict file, on the CPU, as data only.

    Accepted: OpenAI's TorchScript archives (and any ``torch.jit.save``-d CLIP), read by the data-only
    :func:`~csdn.clip.torchscript.read_torchscript_state_dict` (no code stored in the file runs);
    ``torch.save(state_dict)`` and ``{"state_dict": state_dict}``, read with ``torch.load(weights_only=True)``.
    A ``module.`` prefix (from DataParallel/DDP) is stripped from every key of a plain file.

    Args:
        path: The checkpoint file.
        trust_code: Only for a TorchScript archive the data-only reader refuses (e.g. a class restoring itself
            with its own ``__setstate__``): load it with ``torch.jit.load`` instead, which runs code stored in
            the file. Never needed for OpenAI's releases.

    Raises:
        FileNotFoundError: If ``path`` does not exist.
        ValueError: If the file is neither a TorchScript archive nor a state dict of tensors, or is an archive
            that cannot be read without running its code (:class:`~csdn.clip.torchscript.ArchiveReadError`,
            whose message suggests ``trust_code=True``).
    """
    path = regular_file(path, "checkpoint file")
    hint = "expected an OpenAI CLIP TorchScript archive or a torch.save()-d state dict of tensors"
    if is_torchscript(path):
        try:
            return read_torchscript_state_dict(path)
        except ArchiveReadError as err:
            if not trust_code or isinstance(err, ArchiveLimitError):  # the opt-in lifts no size budget
                raise
            logger.warning("%s; trust_code=True: loading it with torch.jit.load", str(err).split(". If you")[0])
        try:
            return _jit_load_state_dict(path)
        except Exception as err:  # torch raises RuntimeError/... for archives it cannot load either
            raise ValueError(
                f"could not read checkpoint {printable(path)} with torch.jit.load ({first_line(err)})"
            ) from err
    try:
        obj: Any = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises RuntimeError/UnpicklingError/EOFError/... for foreign files
        raise ValueError(f"could not read checkpoint {printable(path)}: {hint} ({first_line(err)})") from err
    check_tensor_sizes(obj, path)
    if isinstance(obj, Mapping) and isinstance(obj.get("state_dict"), Mapping):
        obj = obj["state_dict"]
    if not isinstance(obj, Mapping) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ValueError(f"checkpoint {printable(path)} holds a {type(obj).__name__}, not a state dict; {hint}")
    return {(k[len("module.") :] if k.startswith("module.") else k): v for k, v in obj.items()}


def build_preprocess(image_size: int | tuple[int, int]) -> Callable[[Any], torch.Tensor]:
    """Image transform for a CLIP of input size ``image_size`` (torchvision transforms v2).

    Square sizes follow OpenAI (bicubic resize of the shorter side, centre crop); a non-square ``(H, W)``
    resizes directly to ``(H, W)`` (person crops are not cropped). Output: float ``(3, H, W)`` normalised
    with :data:`CLIP_MEAN` / :data:`CLIP_STD`. Accepts PIL images, tensors and numpy arrays (HWC).
    """
    from torchvision.transforms import InterpolationMode, v2

    height, width = to_hw(image_size, "image_size")
    square = height == width
    return v2.Compose(
        [
            v2.ToImage(),
            v2.RGB(),
            v2.Resize(height if square else (height, width), InterpolationMode.BICUBIC, antialias=True),
            v2.CenterCrop((height, width)),
            v2.ToDtype(torch.float32, scale=True),
            v2.Normalize(CLIP_MEAN, CLIP_STD),
        ]
    )


def resolve(
    name_or_path: str | os.PathLike, download_root: str | os.PathLike | None = None, argument: str = "name_or_path"
) -> Path:
    """The local file a CLIP name or path stands for: an official name is downloaded (SHA-256 verified) into the
    cache unless it is already there; a local path is used as it is and never touches the network.

    Args:
        name_or_path: One of :func:`available_models` or the path of a checkpoint file (``~`` expanded).
        download_root: Cache directory (default :func:`default_cache_dir`).
        argument: How the caller names this value in error messages (e.g. ``"model.clip"``).

    Raises:
        FileNotFoundError: ``name_or_path`` is neither an available model nor an existing file.
        DownloadError: A ``FileNotFoundError``: the named model is not cached and cannot be downloaded.
    """
    if str(name_or_path) in _MODELS:
        return download(_MODELS[str(name_or_path)], download_root)
    path = Path(name_or_path).expanduser()
    if not path.exists() and not path.is_symlink():
        raise FileNotFoundError(
            f"{argument}={quoted(name_or_path)} not found: it is neither an available model {available_models()} "
            "nor an existing CLIP checkpoint file"
        )
    return regular_file(path, argument)


def load(
    name_or_path: str | os.PathLike,
    device: str | torch.device = "cpu",
    jit: bool = False,
    download_root: str | os.PathLike | None = None,
    *,
    image_size: int | tuple[int, int] | None = None,
    last_stride: int | None = None,
    trust_code: bool = False,
) -> tuple[CLIP, Callable[[Any], torch.Tensor]]:
    """Load a CLIP by official name (downloaded and verified) or from a local checkpoint file.

    Args:
        name_or_path: One of :func:`available_models` or a path to a TorchScript archive / state dict. A
            local path never touches the network.
        device: Device of the returned model (fp32).
        jit: Must be False. The eager model is always returned (OpenAI's archives were traced on CUDA with
            fixed input sizes); TorchScript archives are still accepted, their weights are used.
        download_root: Cache directory (default :func:`default_cache_dir`).
        image_size: Vision input ``(H, W)``; see :func:`~csdn.clip.build.build_model`.
        last_stride: ResNet layer4 stride; see :func:`~csdn.clip.build.build_model`.
        trust_code: Let a TorchScript archive that the data-only reader refuses be loaded with
            ``torch.jit.load`` (runs code stored in the file); see :func:`read_state_dict`.

    Returns:
        ``(model, preprocess)``: the eval-mode model and the matching image transform.

    Raises:
        NotImplementedError: If ``jit`` is True.
        FileNotFoundError: If ``name_or_path`` is neither a known name nor an existing file.
        ValueError: If the file is not a CLIP checkpoint, or is a TorchScript archive that cannot be read
            without running its code (the message suggests ``trust_code=True``).
        DownloadError: A ``FileNotFoundError``: the named model is not cached and cannot be downloaded (no
            network, unreachable host, wrong SHA-256); the message says where to put the file.
    """
    if jit:
        raise NotImplementedError(
            "jit=True is not supported: csdn.clip returns the eager model built from the checkpoint's weights "
            "(same outputs); call torch.jit.script/trace on it yourself if you need TorchScript"
        )
    path = resolve(name_or_path, download_root)
    model = build_model(
        read_state_dict(path, trust_code=trust_code), image_size=image_size, last_stride=last_stride
    ).to(device)
    return model, build_preprocess(model.image_size)
