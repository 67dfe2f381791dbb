"""Training configuration: one dataclass field per hyper-parameter, YAML/JSON round trip, ``key=value`` overrides.

The defaults below are the official CSDN hyper-parameters for SYSU-MM01 (SPEC §1), with the cleaned-up procedure
(``quirks`` off). Named presets (``sysu``, ``regdb``, ``llcm``: the official procedure; ``sysu-clean``, ...;
``demo``) and ablation variants live in :mod:`csdn.engine.presets`.

Example:
    >>> cfg = apply_overrides(TrainConfig(), ["stage3.epochs=60", "runtime.amp=bf16"])
    >>> save_config(cfg, "run/config.yaml")
    >>> load_config("run/config.yaml") == cfg
    True
"""

from __future__ import annotations

import dataclasses
import json
import os
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from .._io import atomic_write_text
from ..models.factory import ModelConfig

__all__ = [
    "ModelConfig",
    "DataConfig",
    "PromptStageConfig",
    "ImageStageConfig",
    "RuntimeConfig",
    "QuirksConfig",
    "TrainConfig",
    "config_to_dict",
    "config_from_dict",
    "load_config",
    "save_config",
    "apply_overrides",
]


@dataclass
class DataConfig:
    """Where the images come from and how they are augmented."""

    dataset: str = "sysu"  # dataset reader: sysu, regdb, llcm, csv or a name given to csdn.data.register_dataset
    root: str = ""  # dataset root folder (raw public layout)
    trial: int = 1  # RegDB split used for training (1..10); ignored by SYSU-MM01 and LLCM
    height: int = 288  # input height in pixels
    width: int = 144  # input width in pixels
    pad: int = 10  # zero padding before the random crop, pixels
    flip_p: float = 0.5  # probability of the random horizontal flip
    erasing_p: float = 0.5  # probability of ChannelRandomErasing
    exchange_gray: int = 2  # ChannelExchange(gray): 2 (official) never converts to grey, 3 sometimes does
    adap_gray_p: float = 0.5  # probability of the luminance branch of ChannelAdapGray (infrared)
    val_ids: int = 0  # training identities held out as a validation split for periodic evaluation (0 = none)
    num_workers: int = 4  # DataLoader worker processes (0 = load in the main process)
    image_cache: Literal["auto", "memory", "disk", "off"] = "auto"  # resized-image cache (auto: memory if it fits)
    cache_memory_gb: float = 8.0  # memory the in-memory image cache may use, GiB (SYSU-MM01 at 288x144: 4.3 GiB)
    cache_dir: str = ""  # folder of the on-disk image cache ("" = .csdn_cache beside the training images)
    augment_on: Literal["cpu", "cuda"] = "cpu"  # stage-3 augmentation in the loader or batched on the GPU
    extract_batch_size: int = 128  # batch size for frozen-feature extraction and text-bank computation


@dataclass
class PromptStageConfig:
    """Stage 1 (prompt learners) or stage 2 (semantic integrator): SupCon on cached image features."""

    epochs: int = 60  # training epochs
    batch_size: int = 32  # stage 1: features per modality per step; stage 2: features per step (both modalities)
    lr: float = 3e-4  # peak learning rate (Adam)
    weight_decay: float = 1e-4  # Adam weight decay (L2)
    warmup_epochs: int = 5  # epochs of linear warm-up from warmup_lr_init to lr
    warmup_lr_init: float = 1e-5  # learning rate at epoch 0
    lr_min: float = 1e-6  # floor of the cosine schedule
    temperature: float = 1.0  # SupCon temperature tau (no L2 normalisation, official)


@dataclass
class ImageStageConfig:
    """Stage 3: image side (stems, trunk, attnpool, heads, GeM p) with the fixed fused text bank."""

    epochs: int = 120  # training epochs
    num_ids: int = 8  # identities per batch (P)
    num_pos: int = 4  # images per identity and modality (K); visible gives 2 views -> 2PK visible + PK infrared
    lr: float = 3e-4  # base learning rate (Adam)
    fast_lr_mult: float = 2.0  # learning-rate multiplier for classifier weights and the GeM exponent p
    weight_decay: float = 5e-4  # Adam weight decay (L2)
    warmup_epochs: int = 10  # epochs of linear warm-up from warmup_factor * lr to lr
    warmup_factor: float = 0.01  # learning-rate factor at epoch 0
    milestones: tuple[int, ...] = (40, 70)  # epochs at which the learning rate is multiplied by gamma
    gamma: float = 0.1  # multiplicative decay at each milestone
    id_weight: float = 1.0  # weight of each identity CE term (f_g and f_p classifiers)
    msel_weight: float = 1.0  # weight of each modality-separation (MSEL) term
    lambda1: float = 0.15  # weight of each weighted-regularised-triplet (WRT) term
    lambda2: float = 0.05  # weight of the HSE CE of visible view 1 against the fused text bank
    lambda3: float = 0.1  # weight of the HSE CE of the infrared images against the fused text bank
    label_smoothing: float = 0.0  # label smoothing of the identity CE (0 = plain CE, official)


@dataclass
class QuirksConfig:
    """Switches reproducing behaviours of the official code (off = the corrected behaviour; see docs).

    The dataset presets ``sysu``/``regdb``/``llcm`` turn all three on (the paper's procedure); their ``-clean``
    variants and the bare defaults here leave them off (:mod:`csdn.engine.presets`).
    """

    bn_train_extraction: bool = False  # official: BN in train mode while the stage-2 image features are extracted
    dropout_text_bank: bool = False  # official: integrator dropout active when the stage-3 text bank is computed
    sampled_feature_bank: bool = False  # official: stage-1/2 features of one identity-sampler pass, not every image


@dataclass
class RuntimeConfig:
    """How the run executes: devices, precision, seeds, logging, checkpoints, evaluation."""

    output_dir: str = "runs/csdn"  # run folder: config, logs, metrics.jsonl, checkpoints/
    device: str = "auto"  # "auto" (cuda:LOCAL_RANK if available else cpu), "cpu", "cuda", "cuda:1", ...
    seed: int = 1  # seed of every random generator the run creates
    deterministic: bool = False  # torch.use_deterministic_algorithms(True) (+ cuDNN determinism)
    amp: Literal["none", "bf16", "fp16"] = "none"  # autocast precision of the forward passes (fp16 adds a GradScaler)
    channels_last: bool = False  # use channels_last memory format for the image side
    grad_clip_norm: float = 0.0  # clip the global gradient norm to this value (0 = off)
    checkpoint_every: int = 1  # save checkpoints/last.pt every N epochs (and always at the end of a stage)
    keep_last: int = 0  # also keep the N most recent checkpoints as checkpoints/epoch_<stage>_<epoch>.pt (0 = none)
    eval_every: int = 0  # evaluate every N stage-3 epochs (0 = only after training)
    eval_trials: int = 1  # gallery trials used by periodic evaluation (the final evaluation uses all)
    log_every: int = 50  # every N iterations of an epoch: a progress line + metrics record (0 = epoch lines only)
    log_lines: int = 5  # at least this many progress lines per epoch, however short (0 = every log_every only)
    progress: bool = True  # tqdm bars on a TTY (rank 0); off a TTY, feature-extraction progress lines
    tensorboard: bool = False  # also write TensorBoard scalars (needs the tensorboard package)


@dataclass
class TrainConfig:
    """The full configuration of a CSDN training run (official SYSU-MM01 defaults)."""

    model: ModelConfig = field(default_factory=ModelConfig)  # backbone and components
    data: DataConfig = field(default_factory=DataConfig)  # dataset and augmentation
    stage1: PromptStageConfig = field(default_factory=PromptStageConfig)  # prompt learners
    stage2: PromptStageConfig = field(default_factory=lambda: PromptStageConfig(batch_size=64))  # integrator
    stage3: ImageStageConfig = field(default_factory=ImageStageConfig)  # image side
    quirks: QuirksConfig = field(default_factory=QuirksConfig)  # official-code behaviours
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)  # execution

    def __post_init__(self) -> None:
        validate_config(self)


# ---------------------------------------------------------------------------------------------------- validation


def _check(condition: bool, key: str, value: Any, expected: str) -> None:
    if not condition:
        raise ValueError(f"config {key}={value!r} is invalid: expected {expected}")


def validate_config(cfg: TrainConfig) -> None:
    """Check value ranges that types alone cannot express.

    Raises:
        ValueError: naming the first invalid field, its value and what is expected.
    """
    for name in ("stage1", "stage2"):
        stage = getattr(cfg, name)
        _check(stage.epochs >= 0, f"{name}.epochs", stage.epochs, "an integer >= 0")
        _check(stage.batch_size >= 2, f"{name}.batch_size", stage.batch_size, "an integer >= 2")
        _check(stage.lr > 0, f"{name}.lr", stage.lr, "a positive learning rate")
        _check(stage.temperature > 0, f"{name}.temperature", stage.temperature, "a positive temperature")
        _check(0 <= stage.warmup_epochs, f"{name}.warmup_epochs", stage.warmup_epochs, "an integer >= 0")
    s3 = cfg.stage3
    _check(s3.epochs >= 0, "stage3.epochs", s3.epochs, "an integer >= 0")
    _check(s3.num_ids >= 2, "stage3.num_ids", s3.num_ids, "at least 2 identities per batch (triplet losses)")
    _check(s3.num_pos >= 2, "stage3.num_pos", s3.num_pos, "at least 2 images per identity (triplet losses)")
    _check(s3.lr > 0, "stage3.lr", s3.lr, "a positive learning rate")
    _check(0 < s3.warmup_factor <= 1, "stage3.warmup_factor", s3.warmup_factor, "a factor in (0, 1]")
    _check(
        list(s3.milestones) == sorted(s3.milestones),
        "stage3.milestones",
        s3.milestones,
        "increasing epochs, e.g. 40,70",
    )
    _check(cfg.data.height > 0 and cfg.data.width > 0, "data.height/width", (cfg.data.height, cfg.data.width), "> 0")
    _check(cfg.data.num_workers >= 0, "data.num_workers", cfg.data.num_workers, "an integer >= 0")
    _check(cfg.data.cache_memory_gb >= 0, "data.cache_memory_gb", cfg.data.cache_memory_gb, "a number of GiB >= 0")
    _check(cfg.data.val_ids >= 0, "data.val_ids", cfg.data.val_ids, "an integer >= 0")
    _check(cfg.model.last_stride in (1, 2), "model.last_stride", cfg.model.last_stride, "1 or 2")
    _check(cfg.runtime.checkpoint_every >= 1, "runtime.checkpoint_every", cfg.runtime.checkpoint_every, ">= 1")
    _check(cfg.runtime.grad_clip_norm >= 0, "runtime.grad_clip_norm", cfg.runtime.grad_clip_norm, ">= 0 (0 = off)")
    _check(cfg.runtime.keep_last >= 0, "runtime.keep_last", cfg.runtime.keep_last, "an integer >= 0 (0 = none)")
    _check(cfg.runtime.log_every >= 0, "runtime.log_every", cfg.runtime.log_every, "an integer >= 0 (0 = off)")
    _check(cfg.runtime.log_lines >= 0, "runtime.log_lines", cfg.runtime.log_lines, "an integer >= 0 (0 = off)")
    _check(cfg.runtime.eval_trials >= 1, "runtime.eval_trials", cfg.runtime.eval_trials, "an integer >= 1")


# ------------------------------------------------------------------------------------------- dict / file round trip


def config_to_dict(cfg: Any) -> dict[str, Any]:
    """Plain nested dict (tuples become lists) suitable for JSON, YAML and checkpoints."""

    def plain(value: Any) -> Any:
        if dataclasses.is_dataclass(value):
            return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
        if isinstance(value, (tuple, list)):
            return [plain(v) for v in value]
        return value

    return plain(cfg)


def _field_types(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _coerce(value: Any, annotation: Any, key: str) -> Any:
    """Convert ``value`` (from a file or a command line) to ``annotation``, or raise a ValueError naming ``key``."""
    origin = typing.get_origin(annotation)
    if origin is Literal:
        choices = typing.get_args(annotation)
        if value not in choices:
            raise ValueError(f"config {key}={value!r} is invalid: expected one of {', '.join(map(repr, choices))}")
        return value
    if origin is tuple:
        (item_type, *_) = typing.get_args(annotation)
        if isinstance(value, str):
            value = [v for v in value.strip("[]() ").split(",") if v.strip()]
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"config {key}={value!r} is invalid: expected a list such as 40,70")
        return tuple(_coerce(v.strip() if isinstance(v, str) else v, item_type, key) for v in value)
    if annotation is bool:
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in ("true", "1", "yes", "on"):
            return True
        if text in ("false", "0", "no", "off"):
            return False
        raise ValueError(f"config {key}={value!r} is invalid: expected true or false")
    if annotation in (int, float):
        if isinstance(value, bool):
            raise ValueError(f"config {key}={value!r} is invalid: expected a number ({annotation.__name__})")
        expected = "an integer" if annotation is int else "a number"
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise ValueError(f"config {key}={value!r} is invalid: expected {expected}") from None
        if annotation is float:
            return number
        if isinstance(value, int):
            return value
        if not number.is_integer():
            raise ValueError(f"config {key}={value!r} is invalid: expected {expected}")
        return int(str(value)) if isinstance(value, str) and str(value).strip().lstrip("-").isdigit() else int(number)
    if annotation is str:
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise ValueError(f"config {key}={value!r} is invalid: expected a string")
        return str(value)
    raise TypeError(f"unsupported config field type {annotation!r} for {key}")  # programming error


def _build(cls: type, data: dict[str, Any], prefix: str) -> Any:
    if not isinstance(data, dict):
        raise ValueError(f"config section {prefix.rstrip('.') or '<root>'!r} must be a mapping, got {data!r}")
    types = _field_types(cls)
    unknown = sorted(set(data) - set(types))
    if unknown:
        where = f"section {prefix.rstrip('.')!r}" if prefix else "the top level"
        raise ValueError(f"unknown config key {prefix + unknown[0]!r} in {where}; valid keys: {', '.join(types)}")
    defaults = {f.name: f for f in dataclasses.fields(cls)}
    kwargs = {}
    for name, value in data.items():
        annotation, key = types[name], prefix + name
        if isinstance(annotation, type) and dataclasses.is_dataclass(annotation):
            # a partial section keeps this field's own defaults (stage2 differs from stage1 in batch_size)
            factory = defaults[name].default_factory
            base = config_to_dict(factory()) if callable(factory) else {}
            if not isinstance(value, dict):
                raise ValueError(f"config section {key!r} must be a mapping of keys to values, got {value!r}")
            kwargs[name] = _build(annotation, {**base, **value}, key + ".")
        else:
            kwargs[name] = _coerce(value, annotation, key)
    return cls(**kwargs)


def config_from_dict(data: dict[str, Any]) -> TrainConfig:
    """Build a :class:`TrainConfig` from a (possibly partial) nested dict; missing keys keep their defaults.

    Raises:
        ValueError: for an unknown key or a value of the wrong type, naming the dotted key.
    """
    return _build(TrainConfig, data, "")


def load_config(path: str | os.PathLike) -> TrainConfig:
    """Read a YAML (``.yaml``/``.yml``) or JSON (``.json``) config file (partial files are fine).

    Raises:
        FileNotFoundError: if ``path`` does not exist.
        ValueError: for an unknown extension, malformed content, an unknown key or a badly typed value.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config file {str(path)!r} does not exist")
    text = path.read_text(encoding="utf-8")
    suffix = path.suffix.lower()
    if suffix in (".yaml", ".yml"):
        yaml = _import_yaml()
        try:
            data = yaml.safe_load(text) or {}
        except yaml.YAMLError as exc:
            raise ValueError(f"config file {str(path)!r} is not valid YAML: {exc}") from None
    elif suffix == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"config file {str(path)!r} is not valid JSON: {exc}") from None
    else:
        raise ValueError(f"config file {str(path)!r} has an unknown extension: expected .yaml, .yml or .json")
    return config_from_dict(data)


def save_config(cfg: TrainConfig, path: str | os.PathLike) -> Path:
    """Write ``cfg`` atomically as YAML or JSON, chosen by the extension of ``path``; returns the path."""
    path = Path(path)
    data = config_to_dict(cfg)
    suffix = path.suffix.lower()
    if suffix in (".yaml", ".yml"):
        text = _import_yaml().safe_dump(data, sort_keys=False)
    elif suffix == ".json":
        text = json.dumps(data, indent=2) + "\n"
    else:
        raise ValueError(f"config file {str(path)!r} has an unknown extension: expected .yaml, .yml or .json")
    atomic_write_text(path, text)
    return path


def _import_yaml() -> Any:
    try:
        import yaml
    except ImportError:
        raise ValueError("YAML configs need PyYAML: pip install 'csdn[yaml]' (or use a .json config)") from None
    return yaml


# ----------------------------------------------------------------------------------------------------- overrides


def apply_overrides(cfg: TrainConfig, overrides: list[str] | tuple[str, ...], *, fit: bool = True) -> TrainConfig:
    """Return a copy of ``cfg`` with ``section.key=value`` overrides applied (values typed like the field).

    Example: ``apply_overrides(cfg, ["stage3.milestones=30,60", "runtime.amp=bf16", "quirks.dropout_text_bank=true"])``.

    A stage's epochs set below its warm-up or milestones scales the schedule keys not also set, or is refused
    (``fit=False`` skips this; the rule: :mod:`csdn.engine.schedules`).

    Raises:
        ValueError: for a malformed item, an unknown key (the message lists the valid keys), a bad value, or
            epochs too short for a schedule that cannot be scaled.
    """
    data = config_to_dict(cfg)
    explicit = []
    for item in overrides:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ValueError(f"override {item!r} is malformed: expected section.key=value, e.g. stage3.epochs=60")
        section, dot, name = key.partition(".")
        if not dot or section not in data:
            raise ValueError(f"unknown config key {key!r}: expected section.key with section one of {', '.join(data)}")
        if name not in data[section]:
            raise ValueError(f"unknown config key {key!r}; valid keys in {section!r}: {', '.join(data[section])}")
        data[section][name] = raw.strip()
        explicit.append(key)
    if not fit:
        return config_from_dict(data)
    from .schedules import fit_schedules  # imports this module

    return fit_schedules(cfg, config_from_dict(data), explicit)


def config_differences(saved: Mapping[str, Any], current: Mapping[str, Any], ignore: tuple[str, ...] = ()) -> list[str]:
    """``"section.key: old -> new"`` for every value of ``current`` that differs in ``saved`` (nested dicts as
    produced by :func:`config_to_dict`), skipping the sections in ``ignore``."""
    return [
        f"{section}.{key}: {saved.get(section, {}).get(key)!r} -> {value!r}"
        for section, values in current.items()
        if section not in ignore
        for key, value in values.items()
        if saved.get(section, {}).get(key) != value
    ]
