"""Synthetic SYSU-MM01, RegDB and LLCM folders with small, learnable person images.

Each identity gets a fixed body layout: an 8-band horizontal stripe code on the torso and legs (a distinct code
per id for up to 256 ids), torso width, head size and leg gap. Visible cameras render it in colour (bright and
dark clothing colours of the identity, random coloured background); infrared cameras render the *same* layout
as a single-channel intensity image (bright bands bright, dark bands dim, dark background). Every image adds
pose jitter (shift, scale), illumination gain and Gaussian noise. Identity is therefore recoverable across
modalities from shape and stripe geometry, but not from colour.

The writers produce the exact public layouts read by :class:`~csdn.data.SYSUMM01`, :class:`~csdn.data.RegDB` and
:class:`~csdn.data.LLCM`, and the CSV lists read by :class:`~csdn.data.CSVDataset`, deterministically for a
given ``seed``; every file is written atomically.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Sequence

import numpy as np
from PIL import Image

from .._io import atomic_path, atomic_write_text
from .samples import Modality

__all__ = ["render_person", "make_sysu", "make_regdb", "make_llcm", "make_csv"]

_BANDS = 8
_TOP, _BOTTOM = -0.28, 0.46  # body extent as a fraction of the height, relative to the centre


def _identity(seed: int, pid: int) -> dict:
    """Fixed appearance parameters of one identity (independent of modality)."""
    code = int(np.random.default_rng([seed, 7919]).permutation(256)[pid % 256])
    rng = np.random.default_rng([seed, pid])
    return {
        "bits": np.array([(code >> b) & 1 for b in range(_BANDS)], dtype=bool),
        "torso": rng.uniform(0.22, 0.36),
        "head": rng.uniform(0.055, 0.085),
        "gap": rng.uniform(0.02, 0.08),
        "hi": rng.uniform(0.55, 1.0, 3),
        "lo": rng.uniform(0.0, 0.3, 3),
    }


def render_person(
    pid: int, modality: str, rng: np.random.Generator, image_size: tuple[int, int] = (64, 32), seed: int = 0
) -> np.ndarray:
    """Render one image of identity ``pid``.

    Args:
        pid: identity number (its appearance depends on ``pid`` and ``seed`` only).
        modality: ``"visible"`` (colour) or ``"infrared"`` (equal channels).
        rng: draws the per-image pose jitter, background, gain and noise.
        image_size: ``(height, width)`` in pixels.
        seed: dataset seed; the same ``(seed, pid)`` always gives the same identity.

    Returns:
        ``(H, W, 3)`` uint8 array.
    """
    modality = Modality.parse(modality).value
    height, width = image_size
    ident = _identity(seed, pid)
    scale = rng.uniform(0.9, 1.1)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    py = ((yy + 0.5) / height - 0.5 - rng.uniform(-0.04, 0.04)) / scale  # fraction of the height
    px = ((xx + 0.5) / width - 0.5 - rng.uniform(-0.07, 0.07)) / scale  # fraction of the width
    head = (px * width) ** 2 + ((py + 0.36) * height) ** 2 < (ident["head"] * height) ** 2
    in_body = (py >= _TOP) & (py <= _BOTTOM) & (np.abs(px) < ident["torso"])
    legs_gap = (py > 0.1) & (np.abs(px) < ident["gap"])
    body = in_body & ~legs_gap
    band = np.clip(((py - _TOP) / ((_BOTTOM - _TOP) / _BANDS)).astype(int), 0, _BANDS - 1)
    bright = ident["bits"][band] & body
    if modality == Modality.VISIBLE.value:
        image = np.broadcast_to(rng.uniform(0.2, 0.8, 3), (height, width, 3)).copy()
        image[body & ~bright] = np.clip(ident["lo"] + rng.normal(0, 0.04, 3), 0, 1)
        image[bright] = np.clip(ident["hi"] + rng.normal(0, 0.04, 3), 0, 1)
        image[head] = (0.85, 0.65, 0.5)
        image *= rng.uniform(0.8, 1.15)
    else:
        level = np.full((height, width), rng.uniform(0.05, 0.25), dtype=np.float64)
        level[body & ~bright] = 0.45
        level[bright] = 0.85
        level[head] = 0.95
        image = np.repeat((level * rng.uniform(0.85, 1.1))[..., None], 3, axis=2)
    noise = rng.normal(0, 0.03, (height, width, 1 if modality == Modality.INFRARED.value else 3))
    return (np.clip(image + noise, 0, 1) * 255).round().astype(np.uint8)


def _write_image(path: str, array: np.ndarray, grey: bool = False) -> None:
    image = Image.fromarray(array[..., 0] if grey else array)
    ext = os.path.splitext(path)[1].lower()
    options = {"quality": 92} if ext == ".jpg" else {}
    with atomic_path(path) as tmp:
        image.save(tmp, format={".jpg": "JPEG", ".png": "PNG", ".bmp": "BMP"}[ext], **options)


def _check_counts(**counts: int) -> None:
    for name, value in counts.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"Argument {name} must be a positive integer, got {value!r}.")


def _cam_subset(rng: np.random.Generator, cams: Sequence[int], missing_prob: float) -> list[int]:
    """Cameras that saw an identity: each kept with probability 1 - missing_prob, at least one kept."""
    keep = [c for c in cams if rng.random() >= missing_prob]
    return keep or [int(rng.choice(cams))]


def _split_ids(rng: np.random.Generator, sizes: Sequence[int]) -> list[list[int]]:
    pids = rng.permutation(np.arange(1, sum(sizes) + 1)).tolist()
    out, start = [], 0
    for size in sizes:
        out.append(sorted(pids[start : start + size]))
        start += size
    return out


def make_sysu(
    root: str | os.PathLike,
    num_train_ids: int = 16,
    num_val_ids: int = 4,
    num_test_ids: int = 8,
    images_per_cam: int = 4,
    image_size: tuple[int, int] = (64, 32),
    seed: int = 0,
    missing_cam_prob: float = 0.15,
) -> str:
    """Write a SYSU-MM01-layout folder: ``exp/{train,val,test}_id.txt`` and ``cam1..cam6/<pid:04d>/NNNN.jpg``.

    Args:
        root: output folder (created).
        num_train_ids: identities in ``exp/train_id.txt`` (pids ``1..total``, shuffled over the three lists).
        num_val_ids: identities in ``exp/val_id.txt``.
        num_test_ids: identities in ``exp/test_id.txt``.
        images_per_cam: images per (id, camera) folder.
        image_size: ``(height, width)`` of every image.
        seed: makes the whole tree deterministic.
        missing_cam_prob: chance that an identity is absent from a camera (at least one visible and one
            infrared camera are always kept), exercising the "existing folders only" rule.

    Returns:
        ``root`` as a string.
    """
    _check_counts(
        num_train_ids=num_train_ids, num_val_ids=num_val_ids, num_test_ids=num_test_ids, images_per_cam=images_per_cam
    )
    root = os.fspath(root)
    rng = np.random.default_rng([seed, 1])
    splits = _split_ids(rng, (num_train_ids, num_val_ids, num_test_ids))
    for name, ids in zip(("train", "val", "test"), splits, strict=True):
        atomic_write_text(os.path.join(root, "exp", f"{name}_id.txt"), ",".join(map(str, ids)) + "\n")
    for cam in range(1, 7):
        os.makedirs(os.path.join(root, f"cam{cam}"), exist_ok=True)
    for pid in sorted(p for ids in splits for p in ids):
        for mod, cams in ((Modality.VISIBLE.value, (1, 2, 4, 5)), (Modality.INFRARED.value, (3, 6))):
            for cam in _cam_subset(rng, cams, missing_cam_prob):
                for n in range(1, images_per_cam + 1):
                    path = os.path.join(root, f"cam{cam}", f"{pid:04d}", f"{n:04d}.jpg")
                    _write_image(path, render_person(pid, mod, rng, image_size, seed))
    return root


def make_regdb(
    root: str | os.PathLike,
    num_ids: int = 20,
    images_per_id: int = 4,
    image_size: tuple[int, int] = (64, 32),
    seed: int = 0,
    num_trials: int = 10,
) -> str:
    """Write a RegDB-layout folder: ``Visible/<pid>/*.bmp``, ``Thermal/<pid>/*.bmp`` (grey) and the split files.

    Split file ``t`` (``idx/{train,test}_{visible,thermal}_t.txt``) puts a seeded half of the ids in train and
    the rest in test; labels in each file are ``0..n-1`` in sorted-pid order, as in the public files.

    Returns:
        ``root`` as a string.
    """
    _check_counts(num_ids=num_ids, images_per_id=images_per_id, num_trials=num_trials)
    if num_ids < 2:
        raise ValueError(f"Argument num_ids must be at least 2 (train and test halves), got {num_ids}.")
    root = os.fspath(root)
    rng = np.random.default_rng([seed, 2])
    files: dict[str, dict[int, list[str]]] = {"visible": {}, "thermal": {}}
    for pid in range(1, num_ids + 1):
        for tag, folder, mod in (("visible", "Visible", "visible"), ("thermal", "Thermal", "infrared")):
            names = [f"{folder}/{pid}/{tag[0]}_{pid:04d}_{n:02d}.bmp" for n in range(1, images_per_id + 1)]
            for rel in names:
                _write_image(os.path.join(root, rel), render_person(pid, mod, rng, image_size, seed), tag == "thermal")
            files[tag][pid] = names
    for trial in range(1, num_trials + 1):
        order = np.random.default_rng([seed, 3, trial]).permutation(np.arange(1, num_ids + 1)).tolist()
        halves = {"train": sorted(order[: num_ids // 2]), "test": sorted(order[num_ids // 2 :])}
        for split, ids in halves.items():
            for tag in ("visible", "thermal"):
                lines = [f"{rel} {label}" for label, pid in enumerate(ids) for rel in files[tag][pid]]
                atomic_write_text(os.path.join(root, "idx", f"{split}_{tag}_{trial}.txt"), "\n".join(lines) + "\n")
    return root


def make_llcm(
    root: str | os.PathLike,
    num_train_ids: int = 16,
    num_test_ids: int = 8,
    images_per_cam: int = 3,
    image_size: tuple[int, int] = (64, 32),
    seed: int = 0,
    missing_cam_prob: float = 0.6,
) -> str:
    """Write an LLCM-layout folder: ``idx/`` lists, ``train_{vis,nir}/camK/<pid:04d>/`` and ``test_{vis,nir}/...``.

    Visible cameras are 1..9 and infrared cameras 1, 2, 4..9 (as in LLCM); each identity is seen by a random
    subset of them. ``idx/train_*.txt`` lines are ``train_vis/camK/<pid:04d>/<name>.jpg <label>`` with labels
    ``0..C-1`` in sorted-pid order.

    Returns:
        ``root`` as a string.
    """
    _check_counts(num_train_ids=num_train_ids, num_test_ids=num_test_ids, images_per_cam=images_per_cam)
    root = os.fspath(root)
    rng = np.random.default_rng([seed, 4])
    train_ids, test_ids = _split_ids(rng, (num_train_ids, num_test_ids))
    atomic_write_text(os.path.join(root, "idx", "test_id.txt"), ",".join(map(str, test_ids)) + "\n")
    cams = {
        "vis": (Modality.VISIBLE.value, tuple(range(1, 10))),
        "nir": (Modality.INFRARED.value, (1, 2, 4, 5, 6, 7, 8, 9)),
    }
    train_lines: dict[str, list[str]] = {"vis": [], "nir": []}
    for split, ids in (("train", train_ids), ("test", test_ids)):
        for tag, (mod, cam_list) in cams.items():
            os.makedirs(os.path.join(root, f"{split}_{tag}"), exist_ok=True)
            for label, pid in enumerate(ids):
                for cam in _cam_subset(rng, cam_list, missing_cam_prob):
                    for n in range(1, images_per_cam + 1):
                        rel = f"{split}_{tag}/cam{cam}/{pid:04d}/{pid:04d}_c{cam:02d}_{n:03d}_{tag}.jpg"
                        _write_image(os.path.join(root, rel), render_person(pid, mod, rng, image_size, seed))
                        if split == "train":
                            train_lines[tag].append(f"{rel} {label}")
    for tag, lines in train_lines.items():
        atomic_write_text(os.path.join(root, "idx", f"train_{tag}.txt"), "\n".join(lines) + "\n")
    return root


def make_csv(
    root: str | os.PathLike,
    num_train_ids: int = 8,
    num_test_ids: int = 4,
    images_per_cam: int = 2,
    image_size: tuple[int, int] = (64, 32),
    seed: int = 0,
) -> str:
    """Write a CSV-list dataset: ``images/<pid:04d>/*.jpg`` and ``{train,query,gallery}.csv`` lists.

    Visible cameras are 1 and 2, infrared cameras 1 and 3 (camera 1 films by day and by night, so a query and a
    gallery image can share identity and camera, which ``protocol="market"`` discounts). ``train.csv`` lists
    every image of the training ids; ``query.csv`` the infrared and ``gallery.csv`` the visible images of the
    test ids.

    Returns:
        ``root`` as a string.
    """
    _check_counts(num_train_ids=num_train_ids, num_test_ids=num_test_ids, images_per_cam=images_per_cam)
    root = os.fspath(root)
    rng = np.random.default_rng([seed, 5])
    train_ids, test_ids = _split_ids(rng, (num_train_ids, num_test_ids))
    cams = {Modality.VISIBLE.value: (1, 2), Modality.INFRARED.value: (1, 3)}
    rows: dict[str, list[tuple[str, int, int, str]]] = {"train": [], "query": [], "gallery": []}
    for pid in sorted(train_ids + test_ids):
        for mod, cam_list in cams.items():
            split = "train" if pid in train_ids else ("query" if mod == Modality.INFRARED.value else "gallery")
            for cam in cam_list:
                for n in range(1, images_per_cam + 1):
                    rel = f"images/{pid:04d}/{mod}_c{cam}_{n:02d}.jpg"
                    _write_image(os.path.join(root, rel), render_person(pid, mod, rng, image_size, seed))
                    rows[split].append((rel, pid, cam, mod))
    for split, lines in rows.items():
        text = io.StringIO()
        writer = csv.writer(text, lineterminator="\n")
        writer.writerow(("path", "pid", "cam", "modality"))
        writer.writerows(lines)
        atomic_write_text(os.path.join(root, f"{split}.csv"), text.getvalue())
    return root
