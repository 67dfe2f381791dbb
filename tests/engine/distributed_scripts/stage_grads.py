"""One step of every training stage: run by torchrun (2 ranks) and by plain python (1 process) in the test.

``python stage_grads.py DATASET_ROOT OUT_DIR`` writes ``OUT_DIR/rank{r}.pt``: for each stage the loss of its first
global batch and the gradients of its trained parameters after one backward through the trainer's own pieces
(DDP-averaged when distributed), then the model's buffers (BatchNorm statistics and counters, after the BN-train
extraction of stage 2 and the stage-3 step). The official quirks are on, so every path that draws randomness or
BatchNorm statistics (sampled bank, BN-train extraction, dropout text bank, stage-2 dropout) is covered.
"""

import sys

import torch

from csdn.data import SYSUMM01
from csdn.engine import apply_overrides, get_preset
from csdn.engine.build import build_csdn
from csdn.engine.distributed import cleanup_distributed, dist_info_from_env, init_distributed
from csdn.engine.trainer import Trainer

SETS = [
    "data.height=32",
    "data.width=16",
    "data.pad=2",
    "data.num_workers=0",
    "stage1.batch_size=8",
    "stage2.batch_size=16",
    "stage3.num_ids=4",
    "stage3.num_pos=2",
    "runtime.device=cpu",
    "quirks.bn_train_extraction=true",
    "quirks.dropout_text_bank=true",
    "quirks.sampled_feature_bank=true",
]


def main(root: str, out_dir: str) -> None:
    info = dist_info_from_env()
    init_distributed(torch.device("cpu"), info)
    cfg = apply_overrides(get_preset("demo"), [*SETS, f"runtime.output_dir={out_dir}/run{info.world_size}"])
    train = SYSUMM01(root).train
    model = build_csdn(cfg, train.num_classes, torch.device("cpu"))
    trainer = Trainer(cfg, model, train, dist_info=info)
    result = {}
    for stage in trainer.stages:
        stage.build_optimizer()  # freezes all but the stage's parameters
        stage.prepare(None)
        step = trainer._wrap(stage.step_module())
        model.train()
        loss, _ = stage.compute(step, next(iter(stage.batches(0))), trainer._autocast)
        loss.backward()
        grads = {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}
        result[f"stage{stage.index}"] = {"loss": loss.detach(), **grads}
        model.zero_grad(set_to_none=True)
        stage.finish()
    result["buffers"] = {name: b.clone() for name, b in model.named_buffers()}
    torch.save(result, f"{out_dir}/rank{info.rank}.pt")
    cleanup_distributed()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
