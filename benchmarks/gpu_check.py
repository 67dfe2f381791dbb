"""One-command GPU check: the CUDA-marked tests, then one table of throughputs and peak GPU memory.

Usage: ``python benchmarks/gpu_check.py [--json PATH] [--skip-tests]`` on a machine with a CUDA GPU (under 5 minutes
on one GPU). ``--device cpu --tiny`` runs every measurement with tiny sizes on the CPU, to check the script itself.

Rows (see docs/performance.md, "GPU check"):

- stage-3 training images/s of an RN50-size CSDN (random init) at 288x144, one step = 8 ids x 4 images per
  modality (64 visible views + 32 infrared images), the stage-3 loss from ``csdn.losses`` (unit weights), Adam,
  in fp32 and in bf16 autocast + channels_last;
- extraction images/s with the flip augmentation (``encode_images``, batch 64), fp32 and bf16;
- stage-3 loader images/s (warm image cache, ``loader_workers`` workers) with the augmentations in the loader
  (CPU) and with ``augment_on="device"`` (uint8 batches augmented on the GPU), to set beside the training rows:
  a loader slower than the training step means the GPU waits;
- ``evaluate`` and fused re-ranking (``distance(..., rerank=True)``, 2048-d features) at SYSU single-shot and
  Market-1501 sizes, on the GPU and on the CPU (same data);
- peak GPU memory of each row.

The table is printed and written as JSON (``--json``, default ``gpu_check.json`` in the working directory).
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
FULL = {
    "clip": dict(
        embed_dim=1024, vision_layers=(3, 4, 6, 3), vision_width=64, transformer_width=512, transformer_layers=12
    ),
    "image_size": (288, 144),
    "ids": 8,
    "per_id": 4,
    "num_classes": 395,
    "train_steps": 10,
    "extract_batch": 64,
    "extract_steps": 10,
    "warmup": 2,
    "sysu": (3803, 301),
    "market": (3368, 15913),
    "dim": 2048,
    "loader_source": (384, 192),
    "loader_batches": 20,
    "loader_workers": 4,
}
TINY = {
    "clip": {},
    "image_size": (32, 16),
    "ids": 2,
    "per_id": 2,
    "num_classes": 4,
    "train_steps": 1,
    "extract_batch": 2,
    "extract_steps": 1,
    "warmup": 1,
    "sysu": (40, 12),
    "market": (30, 50),
    "dim": 16,
    "loader_source": (40, 20),
    "loader_batches": 2,
    "loader_workers": 0,
}


def run_cuda_tests() -> dict[str, Any]:
    """``pytest -m cuda`` over the test suite in a subprocess; returns its counts and exit code."""
    cmd = [sys.executable, "-m", "pytest", "-q", "-m", "cuda", "-p", "no:cacheprovider", str(ROOT / "tests")]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=False)
    return {"returncode": proc.returncode, **parse_pytest_summary(proc.stdout)}


def parse_pytest_summary(output: str) -> dict[str, int]:
    """Counts of the last pytest summary line (``3 passed, 1 skipped in 2.0s`` -> passed=3, skipped=1)."""
    lines = [line for line in output.splitlines() if re.search(r"\bin [0-9.]+s", line)]
    counts = {"passed": 0, "failed": 0, "skipped": 0, "errors": 0, "deselected": 0}
    for number, word in re.findall(r"(\d+) (passed|failed|skipped|errors?|deselected)", lines[-1] if lines else ""):
        counts["errors" if word.startswith("error") else word] = int(number)
    return counts


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(device: torch.device, fn, steps: int, warmup: int = 2) -> float:
    """Seconds per call of ``fn`` (after ``warmup`` untimed calls), synchronised on the device."""
    for _ in range(warmup):
        fn()
    _sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        fn()
    _sync(device)
    return (time.perf_counter() - start) / steps


def _peak_reset(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def _peak_gib(device: torch.device) -> float | None:
    return torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None


def build_model(sizes: dict, device: torch.device):
    """CSDN on a random-init CLIP (RN50 architecture for the full sizes, the tiny RN test CLIP otherwise)."""
    from csdn.clip import tiny_state_dict
    from csdn.models import CSDN

    state = tiny_state_dict("RN", **sizes["clip"])
    return CSDN.from_clip(state, sizes["num_classes"], image_size=sizes["image_size"], device=device)


def stage3_step_fn(model, sizes: dict, device: torch.device, bf16: bool):
    """A closure running one stage-3 training step (forward, the stage-3 loss terms, backward, Adam)."""
    from csdn.losses import CrossEntropyLabelSmooth, ModalitySeparationLoss, WeightedRegularizedTriplet

    model.train()
    bank = torch.randn(sizes["num_classes"], model.image_encoder.proj_dim, device=device)
    model.set_text_bank(torch.nn.functional.normalize(bank, dim=1))  # computed once per epoch in training: fixed
    params = [p for group in model.freeze_for_stage(3).values() for p in group]
    optimizer = torch.optim.Adam(params, lr=1e-5)
    ce, wrt, msel = CrossEntropyLabelSmooth(0.1), WeightedRegularizedTriplet(), ModalitySeparationLoss(sizes["per_id"])
    n = sizes["ids"] * sizes["per_id"]
    labels = torch.arange(sizes["ids"], device=device).repeat_interleave(sizes["per_id"])
    fmt = torch.channels_last if bf16 else torch.contiguous_format
    visible = torch.randn(2 * n, 3, *sizes["image_size"], device=device).to(memory_format=fmt)
    infrared = torch.randn(n, 3, *sizes["image_size"], device=device).to(memory_format=fmt)
    all_labels = torch.cat([labels, labels, labels])

    def step() -> None:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            out = model.joint_image_features(visible, infrared)
        f_g, f_p = out.f_g.float(), out.f_p.float()
        loss = ce(out.logits_g.float(), all_labels) + ce(out.logits_p.float(), all_labels)
        loss = loss + wrt(f_g, all_labels) + wrt(f_p, all_labels)
        loss = loss + msel(f_g[:n], f_g[2 * n :], labels, labels) + msel(f_p[:n], f_p[2 * n :], labels, labels)
        loss = loss + ce(model.hse_logits(f_p).float(), all_labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step, 3 * n


def train_rows(sizes: dict, device: torch.device) -> list[dict]:
    rows = []
    for bf16 in (False, True):
        model = build_model(sizes, device)
        if bf16:
            model = model.to(memory_format=torch.channels_last)
        _peak_reset(device)
        step, images = stage3_step_fn(model, sizes, device, bf16)
        seconds = _timed(device, step, sizes["train_steps"], sizes["warmup"])
        label = "bf16 + channels_last" if bf16 else "fp32"
        rows.append(_row(f"stage-3 training ({label})", device, images / seconds, "images/s", _peak_gib(device)))
        del model, step
    return rows


def extraction_rows(sizes: dict, device: torch.device) -> list[dict]:
    from csdn.evaluation.features import encode_images

    model = build_model(sizes, device).eval()
    images = torch.randn(sizes["extract_batch"], 3, *sizes["image_size"], device=device)
    rows = []
    for bf16 in (False, True):
        _peak_reset(device)

        def run(bf16: bool = bf16) -> None:
            with torch.inference_mode(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                encode_images(model, images, "infrared", flip=True)

        seconds = _timed(device, run, sizes["extract_steps"], sizes["warmup"])
        label = "bf16" if bf16 else "fp32"
        rows.append(
            _row(f"extraction with flip ({label})", device, len(images) / seconds, "images/s", _peak_gib(device))
        )
    return rows


def loader_rows(sizes: dict, device: torch.device) -> list[dict]:
    """Stage-3 loader images/s with CPU and with device-side augmentation (synthetic JPEGs, warm image cache)."""
    import tempfile

    from torch.utils.data import DataLoader

    from csdn.data import SYSUMM01, CrossModalityDataset, CrossModalityIdentitySampler, build_train_transforms
    from csdn.data.synthetic import make_sysu

    rows, workers = [], sizes["loader_workers"]
    with tempfile.TemporaryDirectory() as tmp:
        make_sysu(tmp, num_train_ids=12, num_val_ids=1, num_test_ids=2, images_per_cam=6,
                  image_size=sizes["loader_source"], missing_cam_prob=0.0)  # fmt: skip
        train = SYSUMM01(tmp).train
        sampler = CrossModalityIdentitySampler.from_split(
            train, sizes["ids"], sizes["per_id"], seed=0, sample_seeds=True
        )
        pairs = [tuple(p) for p in sampler]
        step = sampler.batch_size
        batches = [pairs[i : i + step] for i in range(0, len(pairs) - step + 1, step)]
        batches = (batches * sizes["loader_batches"])[: sizes["loader_batches"]]
        transforms = build_train_transforms(*sizes["image_size"])
        for where in ("cpu", "device"):
            dataset = CrossModalityDataset(train, transforms, image_cache="memory", augment_on=where)

            def one_pass(dataset=dataset) -> None:
                loader = DataLoader(
                    dataset, batch_sampler=batches, num_workers=workers, pin_memory=device.type == "cuda"
                )
                for batch in loader:
                    dataset.to_views(batch, device)

            seconds = _timed(device, one_pass, 1, warmup=1)  # the warm-up pass fills the image cache
            label = "in the loader (CPU)" if where == "cpu" else "on the device"
            images = 3 * step * len(batches)
            rows.append(_row(f"stage-3 loader, augmentation {label}, workers {workers}", device, images / seconds,
                             "images/s", None))  # fmt: skip
    return rows


def _features(num_q: int, num_g: int, dim: int, seed: int = 0) -> tuple[torch.Tensor, ...]:
    rng = np.random.default_rng(seed)
    ids = max(2, (num_q + num_g) // 40)
    q_pids, g_pids = rng.integers(0, ids, num_q), rng.integers(0, ids, num_g)
    centres = rng.normal(size=(ids, dim)).astype(np.float32)
    qf = centres[q_pids] + 1.5 * rng.normal(size=(num_q, dim)).astype(np.float32)
    gf = centres[g_pids] + 1.5 * rng.normal(size=(num_g, dim)).astype(np.float32)
    return (torch.from_numpy(x) for x in (qf, gf, q_pids, g_pids))


def evaluation_rows(sizes: dict, device: torch.device) -> list[dict]:
    """``evaluate`` (1 - cosine distances) and fused re-ranking at SYSU and Market sizes, on ``device`` and CPU."""
    from csdn.evaluation import distance, evaluate

    rows = []
    devices = [device] if device.type == "cpu" else [device, torch.device("cpu")]
    for case, protocol in (("sysu", "sysu"), ("market", "market")):
        num_q, num_g = sizes[case]
        qf, gf, q_pids, g_pids = _features(num_q, num_g, sizes["dim"])
        q_cams = np.full(num_q, 3) if protocol == "sysu" else np.ones(num_q, int)
        g_cams = np.full(num_g, 1) if protocol == "sysu" else np.full(num_g, 2)
        for dev in devices:
            dist = distance(qf, gf, device=dev)
            _peak_reset(dev)
            seconds = _timed(dev, partial(evaluate, dist, q_pids, g_pids, q_cams, g_cams, protocol), 3, 1)
            label = f"evaluate, {case} size {num_q}x{num_g}"
            rows.append(_row(label, dev, seconds, "s", _peak_gib(dev)))
            _peak_reset(dev)
            seconds = _timed(dev, partial(distance, qf, gf, "euclidean", rerank=True, device=dev), 1, 1)
            label = f"re-ranking (fused), {case} size {num_q}+{num_g}"
            rows.append(_row(label, dev, seconds, "s", _peak_gib(dev)))
    return rows


def _row(name: str, device: torch.device, value: float, unit: str, peak_gib: float | None) -> dict:
    return {"name": name, "device": device.type, "value": float(value), "unit": unit, "peak_gpu_gib": peak_gib}


def format_table(rows: list[dict]) -> str:
    """The rows as a fixed-width table (value, unit, device, peak GPU memory)."""
    lines = [f"{'measurement':52s} {'device':>6s} {'value':>12s} {'unit':9s} {'peak GPU':>9s}"]
    for r in rows:
        peak = "-" if r["peak_gpu_gib"] is None else f"{r['peak_gpu_gib']:.2f} GiB"
        lines.append(f"{r['name']:52s} {r['device']:>6s} {r['value']:12.3f} {r['unit']:9s} {peak:>9s}")
    return "\n".join(lines)


def environment(device: torch.device) -> dict[str, Any]:
    info = {"torch": torch.__version__, "device": str(device), "cpu_threads": torch.get_num_threads()}
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda", help="cuda (default) or cpu (only useful with --tiny)")
    parser.add_argument("--tiny", action="store_true", help="tiny sizes (checks the script, not the hardware)")
    parser.add_argument("--skip-tests", action="store_true", help="do not run pytest -m cuda first")
    parser.add_argument("--json", default="gpu_check.json", help="where to write the results (JSON)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print(
            "gpu_check: error: no CUDA device is available (torch.cuda.is_available() is False); run it on a "
            "machine with a GPU, or check the script itself with --device cpu --tiny",
            file=sys.stderr,
        )
        return 2
    sizes = TINY if args.tiny else FULL
    torch.manual_seed(0)
    start = time.perf_counter()
    tests = None if args.skip_tests else run_cuda_tests()
    if tests is not None:
        print(f"pytest -m cuda: {tests}")
    rows = train_rows(sizes, device) + extraction_rows(sizes, device) + evaluation_rows(sizes, device)
    rows += loader_rows(sizes, device)
    table = format_table(rows)
    print(table)
    result = {
        "environment": environment(device),
        "sizes": "tiny" if args.tiny else "full",
        "cuda_tests": tests,
        "rows": rows,
        "seconds": time.perf_counter() - start,
    }
    Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.json} ({result['seconds']:.0f} s)")
    return 1 if tests is not None and tests["returncode"] not in (0, 5) else 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    raise SystemExit(main())
