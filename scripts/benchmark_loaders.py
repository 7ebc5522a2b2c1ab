"""Synthetic-set generation time / size and training-loader throughput per dataset.

    PYTHONPATH=src python scripts/benchmark_loaders.py [--datasets lip atr ...] [--workers 2] [--batches 20]
                                                       [--out loaders.json] [--cache DIR]

For each dataset the default synthetic set of ``conf/data/<name>.yaml`` (its ``synthetic_options``) is
generated into a fresh cache folder (timed, then its size on disk measured), and the training loader of
the same config (paper input size and augmentation, ``num_workers`` workers, the config's global batch
size on one process) is timed over ``--batches`` batches after two warm-up batches. Also times the
PGN instance-edge map computed vs. read back from the disk cache (``InstanceEdges(cache=disk)``).
Prints a Markdown table and writes JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from hydra import compose, initialize_config_module
from hydra.core.global_hydra import GlobalHydra
from omegaconf import OmegaConf, open_dict

import humanparse.utils.resolvers  # noqa: F401
from humanparse.data.datamodule import ensure_synthetic
from humanparse.synthetic.writer import dir_size

DATASETS = ("lip", "atr", "pascal_person_part", "cihp", "mhp_v2")


def compose_data(name: str, cache: Path, workers: int):
    GlobalHydra.instance().clear()
    with initialize_config_module(config_module="humanparse.conf", version_base="1.3"):
        cfg = compose(
            "train",
            overrides=[f"data={name}", "data.synthetic=true", f"data.num_workers={workers}"],
            return_hydra_config=False,
        )
    with open_dict(cfg):
        cfg.paths.cache_dir = str(cache)
        cfg.paths.data_dir = str(cache / "data")
        cfg.paths.root_dir = str(cache)
        cfg.paths.log_dir = str(cache / "logs")
        cfg.paths.output_dir = str(cache / "out")
    return cfg


def bench_dataset(name: str, cache: Path, workers: int, batches: int) -> dict:
    import hydra

    cfg = compose_data(name, cache, workers)
    opts = OmegaConf.to_container(cfg.data.synthetic_options, resolve=True)
    t0 = time.perf_counter()
    root = ensure_synthetic(cache, name, opts)
    gen_s = time.perf_counter() - t0
    dm = hydra.utils.instantiate(cfg.data)
    dm.setup("fit")
    loader = dm.train_dataloader()
    it = iter(loader)
    for _ in range(2):
        next(it)
    n, t0 = 0, time.perf_counter()
    for _ in range(batches):
        try:
            b = next(it)
        except StopIteration:
            it = iter(loader)
            b = next(it)
        n += b["image"].shape[0]
    dt = time.perf_counter() - t0
    return {
        "dataset": name,
        "synthetic_options": opts,
        "generation_s": round(gen_s, 2),
        "size_mb": round(dir_size(root) / 1e6, 2),
        "images": sum(v for k, v in opts.items() if k.startswith("num_")),
        "input_size": list(cfg.data.input_size),
        "batch_size": int(cfg.data.batch_size),
        "workers": workers,
        "augment_mode": cfg.data.augment.mode,
        "samples_per_s": round(n / dt, 1),
    }


def bench_instance_edges(cache: Path, reps: int = 200) -> dict:
    from humanparse.data.cihp import CIHPDataset
    from humanparse.data.targets import InstanceEdges, instance_edges
    from humanparse.synthetic import generate_cihp

    root = cache / "edges-cihp"
    if not root.exists():
        generate_cihp(root, num_train=4, num_val=0, num_test=0, image_size=(400, 500), seed=0)
    s = CIHPDataset(root, "train", persons=False).load(0)
    pid = s["person_ids"]
    t0 = time.perf_counter()
    for _ in range(reps):
        instance_edges(pid)
    compute = (time.perf_counter() - t0) / reps
    maker = InstanceEdges(cache="disk", cache_dir=cache / "edge-cache")
    maker(dict(s))
    t0 = time.perf_counter()
    for _ in range(reps):
        maker({k: v for k, v in s.items() if k != "instance_edge"})
    cached = (time.perf_counter() - t0) / reps
    return {
        "map_size": list(pid.shape),
        "compute_ms": round(1e3 * compute, 3),
        "disk_cache_ms": round(1e3 * cached, 3),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", nargs="+", default=list(DATASETS))
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--batches", type=int, default=20)
    ap.add_argument("--out", default="loaders.json")
    ap.add_argument("--cache", default=None, help="cache folder (default: a fresh temporary one)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    cache = Path(args.cache) if args.cache else Path(tempfile.mkdtemp(prefix="hp-bench-"))
    rows = [bench_dataset(n, cache, args.workers, args.batches) for n in args.datasets]
    edges = bench_instance_edges(cache)
    out = {
        "machine": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "torch": torch.__version__,
            "numpy": np.__version__,
        },
        "loaders": rows,
        "instance_edges": edges,
    }
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
    print(
        "| dataset | synthetic set (train/val/test, side px) | generation s | size MB | input | batch | "
        "workers | samples/s |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        o = r["synthetic_options"]
        print(
            f"| {r['dataset']} | {o['num_train']}/{o['num_val']}/{o['num_test']}, {o['image_size'][0]}-"
            f"{o['image_size'][1]} | {r['generation_s']} | {r['size_mb']} | {r['input_size'][0]}x{r['input_size'][1]} "
            f"({r['augment_mode']}) | {r['batch_size']} | {r['workers']} | {r['samples_per_s']} |"
        )
    print(
        f"\ninstance edges on a {edges['map_size'][0]}x{edges['map_size'][1]} person-id map: computed "
        f"{edges['compute_ms']} ms, read from the disk cache {edges['disk_cache_ms']} ms"
    )
    print(f"machine: {out['machine']}; JSON: {args.out}")


if __name__ == "__main__":
    main()
