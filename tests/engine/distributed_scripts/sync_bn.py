"""Global BatchNorm on 2 gloo ranks: run by torchrun and imported by the test (1 process, whole batch).

``python -m torch.distributed.run --standalone --nproc_per_node=2 sync_bn.py OUT_DIR`` writes ``OUT_DIR/rank{r}.pt``
with, per model, this rank's outputs, input gradients, summed parameter gradients, buffers and eval outputs.
"""

import sys

import torch
from torch import nn

from csdn.engine.distributed_ops import rank_slice
from csdn.engine.sync_batchnorm import convert_sync_batchnorm

N = 8  # global batch


def models() -> dict[str, nn.Module]:
    """Fresh float64 models (deterministic weights), keyed by name."""
    torch.manual_seed(0)
    conv = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(64, 5))
    built = {
        "bn1d": nn.BatchNorm1d(5),
        "bn2d_cumulative": nn.BatchNorm2d(3, momentum=None),
        "conv_bn": nn.Sequential(conv, nn.BatchNorm1d(5)),
    }
    for module in built.values():
        for bn in module.modules():
            if isinstance(bn, nn.modules.batchnorm._BatchNorm):  # non-trivial affine parameters
                bn.weight.data.uniform_(0.5, 1.5)
                bn.bias.data.uniform_(-0.5, 0.5)
    return {k: v.double() for k, v in built.items()}


def inputs(name: str, step: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Global input and loss weights of ``step`` (offset mean, so the variance formula matters)."""
    gen = torch.Generator().manual_seed(100 * step + len(name))
    shape = {"bn1d": (N, 5), "bn2d_cumulative": (N, 3, 4, 2), "conv_bn": (N, 3, 6, 6)}[name]
    x = 3.0 + 2.0 * torch.randn(shape, generator=gen, dtype=torch.float64)
    out_shape = (N, 5) if name != "bn2d_cumulative" else shape
    return x, torch.randn(out_shape, generator=gen, dtype=torch.float64)


def run(name: str, model: nn.Module, rank: int, world_size: int, reduce=lambda t: t) -> dict[str, torch.Tensor]:
    """Two training steps on this rank's slice (sum-of-weighted-outputs loss), then an eval forward."""
    result = {}
    model.train()
    for step in range(2):
        x, w = (rank_slice(t, rank, world_size) for t in inputs(name, step))
        x.requires_grad_(True)
        model.zero_grad()
        out = model(x)
        (out * w).sum().backward()  # the sum over ranks of these losses is the whole-batch loss
        result[f"out{step}"], result[f"x_grad{step}"] = out.detach(), x.grad
        for key, param in model.named_parameters():
            result[f"grad{step}.{key}"] = reduce(param.grad.clone())
    result.update({f"buffer.{k}": v.clone() for k, v in model.named_buffers()})
    model.eval()
    result["eval"] = model(rank_slice(inputs(name, 2)[0], rank, world_size)).detach()
    return result


def main(out_dir: str) -> None:
    torch.distributed.init_process_group("gloo")
    rank, world_size = torch.distributed.get_rank(), torch.distributed.get_world_size()

    def summed(t: torch.Tensor) -> torch.Tensor:
        torch.distributed.all_reduce(t)
        return t

    results = {}
    for name, model in models().items():
        results[name] = run(name, convert_sync_batchnorm(model, "cpu"), rank, world_size, summed)
    torch.save(results, f"{out_dir}/rank{rank}.pt")
    torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1])
