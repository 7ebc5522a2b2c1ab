"""Distributed-aware samplers.

Lightning's automatic ``DistributedSampler`` pads the evaluation split so that every rank gets the
same number of samples, which counts the repeated images twice in a dataset-level confusion matrix
(detectron2 uses an ``InferenceSampler`` for the same reason). The data module therefore builds its
own samplers and the trainer runs with ``use_distributed_sampler=False``.
"""

from __future__ import annotations

import math

import torch
import torch.distributed as dist
from torch.utils.data import Sampler


def dist_info() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size(), dist.get_rank()
    return 1, 0


class EpochShuffleSampler(Sampler):
    """Training sampler yielding ``(index, epoch)`` pairs.

    Shuffles with a generator seeded by ``seed + epoch`` (identical on every rank), shards the
    permutation across ranks (padding by wrapping around, as ``DistributedSampler``) and passes the
    epoch to the dataset so that per-sample augmentation is reproducible, also after a resume.
    """

    def __init__(
        self,
        size: int,
        shuffle: bool = True,
        seed: int = 0,
        num_replicas: int | None = None,
        rank: int | None = None,
        drop_last: bool = False,
    ):
        ws, rk = dist_info()
        self.size = size
        self.shuffle = shuffle
        self.seed = seed
        self.num_replicas = num_replicas if num_replicas is not None else ws
        self.rank = rank if rank is not None else rk
        self.drop_last = drop_last
        self.epoch = 0
        if self.drop_last:
            self.num_samples = size // self.num_replicas
        else:
            self.num_samples = math.ceil(size / self.num_replicas)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.num_samples

    def __iter__(self):
        if self.shuffle:
            g = torch.Generator()
            g.manual_seed(self.seed + self.epoch)
            order = torch.randperm(self.size, generator=g).tolist()
        else:
            order = list(range(self.size))
        total = self.num_samples * self.num_replicas
        if total > len(order) and order:
            order = (order * math.ceil(total / len(order)))[:total]
        else:
            order = order[:total]
        for i in order[self.rank : total : self.num_replicas]:
            yield (i, self.epoch)


class InferenceSampler(Sampler):
    """Contiguous, unpadded shards of ``range(size)``: each sample is evaluated exactly once
    (the detectron2 ``InferenceSampler`` rule)."""

    def __init__(self, size: int, num_replicas: int | None = None, rank: int | None = None):
        ws, rk = dist_info()
        self.size = size
        self.num_replicas = num_replicas if num_replicas is not None else ws
        self.rank = rank if rank is not None else rk
        shard = size // self.num_replicas
        left = size % self.num_replicas
        sizes = [shard + int(r < left) for r in range(self.num_replicas)]
        self.begin = sum(sizes[: self.rank])
        self.end = self.begin + sizes[self.rank]

    def __len__(self) -> int:
        return self.end - self.begin

    def __iter__(self):
        return iter(range(self.begin, self.end))
