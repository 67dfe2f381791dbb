"""The BN-train feature extraction with uneven and empty rank shares: run by torchrun (2 ranks) and plain python.

``python extract_bn.py DATASET_ROOT OUT_DIR`` extracts 9 visible images in batches of 4 (shares 2/2, 2/2, 0/1 on
two ranks) with BatchNorm in train mode and writes ``OUT_DIR/rank{r}.pt``: the features and the BN buffers.
Images are 64x32: at 32x16 the single-image batch leaves layer4's BatchNorm 2 positions, so ill-conditioned
that round-off shows.
"""

import sys

import torch

from csdn.data import SYSUMM01
from csdn.engine import apply_overrides, get_preset
from csdn.engine.build import build_csdn
from csdn.engine.distributed import cleanup_distributed, dist_info_from_env, init_distributed
from csdn.engine.feature_bank import extract_clip_features
from csdn.engine.sync_batchnorm import convert_sync_batchnorm


def main(root: str, out_dir: str) -> None:
    info = dist_info_from_env()
    init_distributed(torch.device("cpu"), info)
    cfg = apply_overrides(get_preset("demo"), ["data.height=64", "data.width=32", "data.num_workers=0"])
    train = SYSUMM01(root).train
    model = convert_sync_batchnorm(build_csdn(cfg, train.num_classes, torch.device("cpu")), "cpu")
    features = extract_clip_features(
        model, train.visible[:9], "visible", cfg.data, torch.device("cpu"), train_bn=True, batch_size=4,
        generator=torch.Generator().manual_seed(0),
    )  # fmt: skip
    buffers = {name: b.clone() for name, b in model.named_buffers() if "bn" in name or "downsample" in name}
    torch.save({"features": features, **buffers}, f"{out_dir}/rank{info.rank}.pt")
    cleanup_distributed()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
