"""Gradients of the whole-batch losses: run by torchrun (2 ranks, DDP) and imported by the test (1 process).

``python -m torch.distributed.run --standalone --nproc_per_node=2 loss_grads.py OUT_DIR`` writes
``OUT_DIR/rank{r}.pt``: for every loss case the DDP-averaged gradients, the BatchNorm buffers and the loss value of
rank ``r``. The model's BatchNorm is converted to the global one, so this also checks that the pieces compose.
"""

import sys

import torch
import torch.nn.functional as F
from torch import nn

from csdn.engine.distributed_ops import gather_chunks, gather_with_grad, global_mean, rank_slice, world
from csdn.engine.sync_batchnorm import convert_sync_batchnorm
from csdn.losses import ModalitySeparationLoss, SupConLoss, WeightedRegularizedTriplet

P, K, D_IN, D = 3, 2, 6, 5  # global batch: 3 identities x 2 images per modality


class Net(nn.Module):
    """Two heads on the images (one with BatchNorm); ``classifier`` is used on the gathered features."""

    def __init__(self) -> None:
        super().__init__()
        self.image = nn.Sequential(nn.Linear(D_IN, D), nn.BatchNorm1d(D))  # global statistics under DDP
        self.other = nn.Linear(D_IN, D)
        self.classifier = nn.Parameter(torch.randn(P, D))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.image(x), self.other(x)


def problem() -> tuple[dict[str, torch.Tensor], torch.Tensor, torch.Tensor, torch.Tensor]:
    """Initial weights, global visible inputs (P*K, D_IN), global infrared inputs, labels (P*K,), float64."""
    gen = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    state = {k: v.double() for k, v in Net().state_dict().items()}
    visible = torch.randn(P * K, D_IN, generator=gen, dtype=torch.float64)
    infrared = torch.randn(P * K, D_IN, generator=gen, dtype=torch.float64)
    return state, visible, infrared, torch.arange(P).repeat_interleave(K)


def case_loss(name: str, net: nn.Module, classifier: torch.Tensor, visible, infrared, labels) -> torch.Tensor:
    """Loss ``name`` of the global batch; ``visible``/``infrared``/``labels`` are this rank's slices."""
    image, other = net(torch.cat([visible, infrared]))  # local [visible; infrared] rows
    image, other = gather_chunks(image, 2), gather_chunks(other, 2)  # global [visible (B); infrared (B)]
    y = gather_with_grad(labels)
    y2 = torch.cat([y, y])
    vis, ir = image.chunk(2)
    if name == "supcon":
        criterion = SupConLoss(0.5)
        return criterion(image, other, y2, y2) + criterion(other, image, y2, y2)
    if name == "wrt":
        return WeightedRegularizedTriplet()(image, y2)
    if name == "msel":
        return ModalitySeparationLoss(num_pos=K)(vis, ir, y)
    if name == "ce":  # classifier applied to the gathered features
        return F.cross_entropy(image @ classifier.t(), y2)
    if name == "ce_per_sample":  # per-sample terms on the local slice, averaged over the global batch
        local_image, _ = net(torch.cat([visible, infrared]))
        return global_mean(F.cross_entropy(local_image @ classifier.t(), torch.cat([labels, labels]), reduction="none"))
    raise ValueError(name)


CASES = ("supcon", "wrt", "msel", "ce", "ce_per_sample")


def gradients(net: nn.Module, classifier: torch.Tensor, visible, infrared, labels) -> dict[str, dict]:
    """For every case: one forward/backward from the same weights; the (DDP-averaged) gradients and the loss."""
    out = {}
    for name in CASES:
        net.zero_grad()
        loss = case_loss(name, net, classifier, visible, infrared, labels)
        # DDP (find_unused_parameters=False) needs a gradient for every parameter: add exact zeros
        (loss + 0 * sum(p.sum() for p in net.parameters())).backward()
        params = dict(net.named_parameters())
        out[name] = {"loss": loss.detach(), **{k.removeprefix("module."): p.grad.clone() for k, p in params.items()}}
        out[name].update({k.removeprefix("module."): b.clone() for k, b in net.named_buffers()})
    return out


def main(out_dir: str) -> None:
    torch.distributed.init_process_group("gloo")
    state, visible, infrared, labels = problem()
    net = Net().double()
    net.load_state_dict(state)
    ddp = nn.parallel.DistributedDataParallel(convert_sync_batchnorm(net, "cpu"))
    rank, _ = world()
    result = gradients(ddp, ddp.module.classifier, *(rank_slice(t) for t in (visible, infrared, labels)))
    torch.save(result, f"{out_dir}/rank{rank}.pt")
    torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1])
