"""Evaluate *any* model with csdn's exact VI-ReID metrics and re-ranking: no CSDN, no csdn training involved.

Three ways in, from the most manual to the most automatic:

A. features from your own pipeline -> ``csdn.evaluation.distance`` (optionally re-ranked) -> ``evaluate`` with
   the dataset's protocol rules (SYSU-MM01: cam-3 queries ignore cam-2 gallery items, unique-identity CMC);
B. distance matrices you already have -> ``re_ranking`` (same numbers as the standard k-reciprocal code);
C. a module with ``encode_image(images, modality)`` -> ``VIReIDEvaluator`` runs every setting x trial.

    python examples/reuse_evaluator.py --root data/SYSU-MM01     # real data, 10 trials
    python examples/reuse_evaluator.py --synthetic --quick        # seconds on a CPU
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch
import torchvision
from torch import nn

from csdn.data import SYSUMM01, build_test_transform
from csdn.data.synthetic import make_sysu
from csdn.evaluation import VIReIDEvaluator, distance, evaluate, extract_features, re_ranking


class TorchvisionReID(nn.Module):
    """Any backbone becomes evaluable by giving it ``encode_image(images, modality)``.

    Here: a torchvision ResNet-18 (random weights: no download) shared by both modalities, global-average
    pooled, L2-normalised. Replace it with your model; the modality argument lets two-stream models pick a stem.
    """

    def __init__(self) -> None:
        super().__init__()
        resnet = torchvision.models.resnet18(weights=None)
        self.body = nn.Sequential(*list(resnet.children())[:-1])  # up to the global average pool

    def encode_image(self, images: torch.Tensor, modality: str) -> torch.Tensor:
        return nn.functional.normalize(self.body(images).flatten(1), dim=1)  # (B, 512)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    data = parser.add_mutually_exclusive_group(required=True)
    data.add_argument("--root", help="SYSU-MM01 folder")
    data.add_argument("--synthetic", action="store_true", help="use a small synthetic SYSU-MM01")
    parser.add_argument("--quick", action="store_true", help="one trial (CI)")
    return parser.parse_args(argv)


def run(root: Path, quick: bool) -> None:
    dataset = SYSUMM01(root)
    height, width = (64, 32) if quick else (288, 144)
    torch.manual_seed(0)  # the random backbone weights: examples may seed the global RNG, the library never does
    model = TorchvisionReID().eval()

    # A. Your own features (here extracted with csdn's loader helper; any (N, D) tensor or array works).
    split = dataset.test(mode="all", shot="single", trial=0)
    transform = build_test_transform(height, width)
    qf = extract_features(model, split.query, split.query_modality, transform, flip=False)
    gf = extract_features(model, split.gallery, split.gallery_modality, transform, flip=False)
    q_ids, g_ids = [s.pid for s in split.query], [s.pid for s in split.gallery]
    q_cams, g_cams = [s.cam for s in split.query], [s.cam for s in split.gallery]
    for rerank in (False, True):
        dist = distance(qf, gf, metric="cosine", rerank=rerank, k1=20, k2=6, lambda_value=0.3)
        result = evaluate(dist, q_ids, g_ids, q_cams, g_cams, protocol=split.protocol)
        print(f"A. {split.name}, rerank={rerank}: rank-1 {100 * result.rank1:.2f}%  mAP {100 * result.mAP:.2f}%  "
              f"mINP {100 * result.mINP:.2f}%  ({result.num_valid} valid queries)")  # fmt: skip

    # B. Precomputed distance matrices: the classic three-matrix re-ranking (euclidean inputs are squared inside,
    #    exactly like the reference implementation).
    q_g, q_q, g_g = torch.cdist(qf, gf), torch.cdist(qf, qf), torch.cdist(gf, gf)
    reranked = re_ranking(q_g.numpy(), q_q.numpy(), g_g.numpy(), k1=20, k2=6, lambda_value=0.3)
    result = evaluate(reranked, q_ids, g_ids, q_cams, g_cams, protocol="sysu")
    print(f"B. re_ranking on euclidean matrices: rank-1 {100 * result.rank1:.2f}%  mAP {100 * result.mAP:.2f}%")

    # C. The whole protocol (all/indoor x single/multi-shot, 10 gallery trials) for any encode_image model.
    evaluator = VIReIDEvaluator(dataset, height=height, width=width, flip=True, flip_mode="sum")
    report = evaluator.run(model, trials=1 if quick else None)
    print("C.", report.to_table(), sep="\n")


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.root:
        run(Path(args.root), args.quick)
        return
    with tempfile.TemporaryDirectory(prefix="csdn-reuse-") as tmp:
        run(Path(make_sysu(Path(tmp) / "sysu", num_train_ids=4, num_val_ids=1, num_test_ids=8, images_per_cam=3)), True)


if __name__ == "__main__":
    main()
