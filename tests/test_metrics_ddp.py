"""Two gloo processes with uneven and empty shards give exactly the one-process numbers."""

from __future__ import annotations

import json
import math

import torch.multiprocessing as mp

from helpers import ddp_metrics


def same(a, b) -> bool:
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, float) and math.isnan(a):
        return isinstance(b, float) and math.isnan(b)
    return a == b


def test_two_processes_equal_one_process(tmp_path):
    mp.spawn(ddp_metrics.worker, args=(2, str(tmp_path / "init"), str(tmp_path)), nprocs=2, join=True)
    ref = json.loads(json.dumps(ddp_metrics.single_process()))
    assert ref["app"]["app50"] > 0 and ref["apr"]["apr50"] > 0 and ref["edge"]["edge_f1"] > 0
    for rank in (0, 1):
        rounds = json.loads((tmp_path / f"rank{rank}.json").read_text())
        for got in rounds:  # uneven shards, then an empty shard on rank 1
            for name, values in ref.items():
                for key, v in values.items():
                    assert same(v, got[name][key]), (rank, name, key, v, got[name][key])
