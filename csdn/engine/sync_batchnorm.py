"""BatchNorm with statistics of the global batch on every rank, on CUDA (torch's) and on CPU/gloo (this one).

``torch.nn.SyncBatchNorm`` refuses CPU tensors (it needs the CUDA ``batch_norm_gather_stats`` kernels), so a
CPU / gloo job would otherwise normalise each rank's slice with its own statistics and train another model
than one process on the whole batch. :class:`GlobalBatchNorm` is the small CPU counterpart with the same
semantics, built from two autograd-aware ``all_reduce`` calls. :func:`convert_sync_batchnorm` picks the right
one for the device.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from .distributed_ops import all_reduce_with_grad

__all__ = ["GlobalBatchNorm", "convert_sync_batchnorm"]


def _group_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


class GlobalBatchNorm(_BatchNorm):
    """BatchNorm over ``(N, C, *)`` whose training statistics are those of all ranks' rows together.

    Training mode with a process group of several ranks: mean and biased variance per channel come from an
    ``all_reduce`` of the per-rank sums (first the sum and the row count, then the sum of squared deviations
    from the global mean, which is stabler than ``E[x^2] - E[x]^2``); the backward runs through the same
    reductions, so gradients are those of BatchNorm on the concatenated batch. Running statistics use the
    unbiased global variance and the momentum rule of ``nn.BatchNorm*d`` (cumulative average when
    ``momentum=None``); ``num_batches_tracked`` counts steps. Without a process group, with one rank, or in
    eval mode with running statistics it is plain ``F.batch_norm``. Every rank must call it the same number of
    times (it is collective).

    The constructor is ``nn.BatchNorm2d``'s: ``num_features`` (channels ``C``), ``eps``, ``momentum``,
    ``affine``, ``track_running_stats``, and the ``device``/``dtype`` of the parameters and buffers.
    """

    def _check_input_dim(self, input: torch.Tensor) -> None:
        if input.dim() < 2:
            raise ValueError(f"GlobalBatchNorm expects (N, C, *) input, got shape {tuple(input.shape)}")

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        self._check_input_dim(input)
        batch_stats = self.training or self.running_mean is None  # as nn.BatchNorm: no running stats -> batch
        if not batch_stats or _group_size() == 1:
            return super().forward(input)
        if input.shape[1] != self.num_features:
            raise ValueError(f"GlobalBatchNorm expects {self.num_features} channels, got shape {tuple(input.shape)}")
        dims = [0, *range(2, input.dim())]
        x = input.float() if input.dtype in (torch.float16, torch.bfloat16) else input
        rows = torch.tensor([x.numel() / x.shape[1]], dtype=x.dtype, device=x.device)
        totals = all_reduce_with_grad(torch.cat([x.sum(dims), rows]))  # (C + 1,): per-channel sums, rows
        count = totals[-1].detach()
        mean = totals[:-1] / count
        shape = [1, -1] + [1] * (input.dim() - 2)
        centered = x - mean.view(shape)
        var = all_reduce_with_grad(centered.pow(2).sum(dims)) / count  # biased, for normalising
        out = centered * torch.rsqrt(var + self.eps).view(shape)
        if self.affine:
            out = out * self.weight.view(shape) + self.bias.view(shape)
        if self.training and self.track_running_stats:
            self._update_running_stats(mean.detach(), var.detach(), count)
        return out.to(input.dtype)

    @torch.no_grad()
    def _update_running_stats(self, mean: torch.Tensor, var: torch.Tensor, count: torch.Tensor) -> None:
        tracked, running_mean, running_var = self.num_batches_tracked, self.running_mean, self.running_var
        if tracked is None or running_mean is None or running_var is None:  # track_running_stats=False
            return
        tracked.add_(1)
        momentum = 1.0 / float(tracked) if self.momentum is None else self.momentum
        unbiased = var * count / (count - 1) if count > 1 else var
        running_mean.lerp_(mean.to(running_mean.dtype), momentum)
        running_var.lerp_(unbiased.to(running_var.dtype), momentum)


def _copy_into(new: _BatchNorm, old: _BatchNorm) -> _BatchNorm:
    """Share ``old``'s parameters and buffers with ``new`` (like ``SyncBatchNorm.convert_sync_batchnorm``)."""
    if old.affine:
        new.weight, new.bias = old.weight, old.bias
    if old.track_running_stats:
        new.running_mean, new.running_var = old.running_mean, old.running_var
        new.num_batches_tracked = old.num_batches_tracked
    new.train(old.training)
    if hasattr(old, "qconfig"):
        new.qconfig = old.qconfig
    return new


def convert_sync_batchnorm(module: nn.Module, device_type: str) -> nn.Module:
    """Replace every ``nn.BatchNorm*d`` of ``module`` by a global-statistics BatchNorm (returns the new module).

    Args:
        module: the model (or a single BatchNorm layer); converted in place where possible.
        device_type: ``"cuda"`` -> ``torch.nn.SyncBatchNorm`` (torch's converter); anything else ->
            :class:`GlobalBatchNorm`. Parameters and buffers are shared with the original layers.

    Call it before wrapping the model in ``DistributedDataParallel`` and before building the optimizer (or
    pass the same parameter objects, which are kept).
    """
    if device_type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(module)
    if isinstance(module, _BatchNorm) and not isinstance(module, (GlobalBatchNorm, nn.SyncBatchNorm)):
        new = GlobalBatchNorm(
            module.num_features, module.eps, module.momentum, module.affine, module.track_running_stats
        )
        return _copy_into(new, module)
    for name, child in module.named_children():
        converted = convert_sync_batchnorm(child, device_type)
        if converted is not child:
            setattr(module, name, converted)
    return module
