"""The CPU SyncBatchNorm: two gloo processes with half a batch each behave like BatchNorm on the whole batch."""

from __future__ import annotations

import os

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from humanparse.utils.syncbn import DistributedBatchNorm, convert
from test_metric_semantic import _free_port


def _worker(rank, port, x, out):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    torch.manual_seed(0)
    bn = convert(nn.Sequential(nn.BatchNorm2d(3)))[0]
    assert isinstance(bn, DistributedBatchNorm)
    with torch.no_grad():
        bn.weight.copy_(torch.tensor([1.0, 2.0, 0.5]))
    part = x[:3] if rank == 0 else x[3:]  # uneven shares: 3 and 2 samples
    y = bn(part)
    (y * torch.arange(y.numel()).view_as(y).float()).sum().backward()
    # DDP would all-reduce parameter gradients; do the same here
    g = bn.weight.grad.clone()
    dist.all_reduce(g)
    out[rank] = {"y": y.detach(), "grad": g, "rm": bn.running_mean.clone(), "rv": bn.running_var.clone()}
    dist.destroy_process_group()


@pytest.mark.slow
def test_two_process_sync_bn_equals_full_batch_bn():
    torch.manual_seed(1)
    x = torch.randn(5, 3, 4, 6) * 3 + 1
    ref = nn.BatchNorm2d(3)
    with torch.no_grad():
        ref.weight.copy_(torch.tensor([1.0, 2.0, 0.5]))
    y_ref = ref(x)
    w = torch.arange(y_ref[:3].numel()).view_as(y_ref[:3]).float()
    w2 = torch.arange(y_ref[3:].numel()).view_as(y_ref[3:]).float()
    ((y_ref[:3] * w).sum() + (y_ref[3:] * w2).sum()).backward()
    with mp.Manager() as m:
        out = m.dict()
        mp.spawn(_worker, args=(_free_port(), x, out), nprocs=2, join=True)
        res = dict(out)
    assert torch.allclose(torch.cat([res[0]["y"], res[1]["y"]]), y_ref, atol=1e-5)
    for r in (0, 1):
        assert torch.allclose(res[r]["grad"], ref.weight.grad, atol=1e-4)
        assert torch.allclose(res[r]["rm"], ref.running_mean, atol=1e-5)
        assert torch.allclose(res[r]["rv"], ref.running_var, atol=1e-5)


def test_single_process_is_plain_batchnorm():
    x = torch.randn(4, 3, 5, 5)
    a, b = nn.BatchNorm2d(3), convert(nn.BatchNorm2d(3))
    assert torch.allclose(a(x), b(x)) and torch.allclose(a.running_var, b.running_var)
