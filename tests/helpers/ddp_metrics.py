"""Worker of the two-process gloo test: each rank scores its shard of one synthetic set with every
DDP-aware metric (gathered instance metrics and sum-reduced count metrics) and writes the result."""

from __future__ import annotations

import json
import os
import warnings

import numpy as np
import torch
import torch.distributed as dist

from humanparse.data.targets import instance_edges
from humanparse.evaluation.synthetic import make_instance_samples
from humanparse.metrics import ATRMetric, InstanceEdgeMetric, InstanceParsingMetric, PartInstanceAPMetric

NUM_IMAGES = 7


def build() -> dict:
    return {
        "app": InstanceParsingMetric(20),
        "app_mhp": InstanceParsingMetric(20, app_convention="mhp_official"),
        "apr": PartInstanceAPMetric(20),
        "apr_o2o": PartInstanceAPMetric(20, matching="one_to_one"),
        "atr": ATRMetric(20),
        "edge": InstanceEdgeMetric(edge_input="probs"),
    }


def feed(metrics: dict, indices: list[int]) -> None:
    samples = make_instance_samples(NUM_IMAGES, seed=11, size=(64, 48), persons=(1, 4))
    rng = np.random.default_rng(0)
    noise = [rng.random(s.shape) for s in samples]
    for i in indices:
        s = samples[i]
        parts = np.stack(s.pred_parts) if s.pred_parts else None
        pred = [{"parts": parts, "scores": s.pred_scores}]
        tgt = [{"semantic": s.semantic, "person_ids": s.person_ids, "image_id": s.image_id, "order": i}]
        ids = [k for k in np.unique(s.person_ids) if k > 0]
        tgt_maps = [
            {
                "persons": [np.where(s.person_ids == k, s.semantic, 0) for k in ids],
                "image_id": s.image_id,
                "order": i,
                "semantic": s.semantic,
            }
        ]
        metrics["app"].update(pred, tgt)
        metrics["app_mhp"].update(pred, tgt_maps)
        metrics["apr"].update(pred, tgt)
        metrics["apr_o2o"].update(pred, tgt)
        sem_pred = torch.from_numpy(np.where(noise[i] < 0.3, 0, s.semantic % 20).astype(np.int64))
        metrics["atr"].update(sem_pred, torch.from_numpy(s.semantic.astype(np.int64)))
        metrics["edge"].update(torch.from_numpy(noise[i]), torch.from_numpy(instance_edges(s.person_ids)))


def results(metrics: dict) -> dict:
    out = {}
    for name, m in metrics.items():
        vals = m.compute()
        out[name] = {k: (v.tolist() if isinstance(v, torch.Tensor) else v) for k, v in vals.items()}
    return out


def shards(rank: int) -> list[list[int]]:
    """Round 1: uneven shards (5 / 2 images); round 2: rank 1 gets nothing."""
    return [[0, 1, 2, 4, 6] if rank == 0 else [3, 5], list(range(NUM_IMAGES)) if rank == 0 else []]


def worker(rank: int, world: int, init_file: str, out_dir: str) -> None:
    torch.set_num_threads(1)
    # an empty shard computes before any update; torchmetrics warns about that, which is expected here
    warnings.filterwarnings("ignore", message=".*was called before the ``update`` method.*")
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        metrics = build()
        rounds = []
        for indices in shards(rank):
            feed(metrics, indices)
            rounds.append(results(metrics))
            for m in metrics.values():
                m.reset()
        with open(os.path.join(out_dir, f"rank{rank}.json"), "w") as f:
            json.dump(rounds, f)
    finally:
        dist.destroy_process_group()


def single_process() -> dict:
    metrics = build()
    feed(metrics, list(range(NUM_IMAGES)))
    return results(metrics)
