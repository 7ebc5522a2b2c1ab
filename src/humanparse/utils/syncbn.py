"""Synchronised BatchNorm that also works on CPU (gloo), as a Lightning ``LayerSync`` plugin.

``torch.nn.SyncBatchNorm`` only runs on GPU modules (DDP refuses it on CPU), so multi-process CPU runs
(``trainer=ddp trainer.accelerator=cpu``, the way the suite is tested) could not use the papers'
synchronised BN. :class:`DistributedBatchNorm` computes the batch statistics over every process with
differentiable ``all_reduce`` calls; on CUDA the entry point keeps using torch's fused SyncBatchNorm.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from pytorch_lightning.plugins.layer_sync import LayerSync
from torch import nn
from torch.distributed.nn.functional import all_reduce


class DistributedBatchNorm(nn.modules.batchnorm._BatchNorm):
    """BatchNorm over the union of the per-process batches (training mode, world size > 1).

    Statistics are exact two-pass ones (mean, then mean squared deviation) reduced with
    ``torch.distributed.nn.functional.all_reduce``, whose backward sums the gradients of every rank, so
    the gradients equal those of BatchNorm on the concatenated batch. Running statistics use the
    unbiased global variance, as ``nn.BatchNorm2d``. Outside distributed training it is plain BatchNorm.
    """

    def _check_input_dim(self, input: torch.Tensor) -> None:
        if input.dim() < 2:
            raise ValueError(f"expected at least 2-D input, got {input.dim()}-D")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (
            self.training and dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1
        ):
            return super().forward(x)
        c = x.shape[1]
        dims = [0] + list(range(2, x.dim()))
        shape = [1, c] + [1] * (x.dim() - 2)
        xf = x.float()
        count = torch.tensor([x.numel() // c], dtype=torch.float32, device=x.device)
        sums = all_reduce(torch.cat([xf.sum(dims), count]))
        n = sums[-1]
        mean = sums[:c] / n
        centred = xf - mean.view(shape)
        var = all_reduce((centred * centred).sum(dims)) / n
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked += 1
                m = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
                unbiased = var * n / (n - 1).clamp(min=1)
                self.running_mean.mul_(1 - m).add_(m * mean.to(self.running_mean.dtype))
                self.running_var.mul_(1 - m).add_(m * unbiased.to(self.running_var.dtype))
        y = centred * torch.rsqrt(var + self.eps).view(shape)
        if self.affine:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        return y.to(x.dtype)


def convert(module: nn.Module) -> nn.Module:
    """Replace every BatchNorm (1/2/3-d, torch SyncBatchNorm included) by :class:`DistributedBatchNorm`."""
    out = module
    if isinstance(module, nn.modules.batchnorm._BatchNorm) and not isinstance(module, DistributedBatchNorm):
        out = DistributedBatchNorm(
            module.num_features, module.eps, module.momentum, module.affine, module.track_running_stats
        )
        if module.affine:
            with torch.no_grad():
                out.weight = module.weight
                out.bias = module.bias
        if module.track_running_stats:
            out.running_mean = module.running_mean
            out.running_var = module.running_var
            out.num_batches_tracked = module.num_batches_tracked
    for name, child in module.named_children():
        out.add_module(name, convert(child))
    return out


class CPUSyncBatchNorm(LayerSync):
    """Lightning plugin: ``plugins=[CPUSyncBatchNorm()]`` in place of ``sync_batchnorm=True`` on CPU."""

    def apply(self, model: nn.Module) -> nn.Module:
        return convert(model)

    def revert(self, model: nn.Module) -> nn.Module:
        return model
