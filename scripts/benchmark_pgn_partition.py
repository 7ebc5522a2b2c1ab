"""Speed of the PGN instance partition (``humanparse.models.pgn.partition``) on one core.

    PYTHONPATH=src python scripts/benchmark_pgn_partition.py [--size 512] [--persons 5] [--images 10] [--reps 3]

Inputs are what the released ``test_pgn.py`` hands to the MATLAB tool, made from synthetic CIHP scenes
(``humanparse.data.synthetic``): the class map of ``--persons`` persons, an edge map round(255·p) with
p a blurred, noisy version of the persons' instance edges (so the thresholded edges are a few pixels wide,
with breaks and speckles, as a network's are), and a float32 score map. Per image the whole partition
runs — edges, regions, merge passes, person map and part instances — and the median over ``--reps`` is
kept; the script prints the per-image median, mean and maximum in milliseconds of wall time, and the CPU
time of the process (less disturbed by other processes on a shared machine). The target is 50 ms per
512×512 image with five persons (the released MATLAB code takes about 2 s).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import cv2  # noqa: E402
import numpy as np  # noqa: E402
from humanparse.data.synthetic.cihp import cihp_maps  # noqa: E402
from humanparse.data.synthetic.scene import render_scene  # noqa: E402

from humanparse.data.targets import instance_edges  # noqa: E402
from humanparse.models.pgn.partition import partition  # noqa: E402


def make_inputs(
    rng: np.random.Generator, size: int, persons: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    scene = render_scene(rng, size, size, persons)
    category, humans, _ = cihp_maps(rng, scene, 0.0, 0.0)
    e = instance_edges(humans).astype(np.float32)
    e = cv2.GaussianBlur(e, (0, 0), 1.5) * 2.0
    noise = cv2.GaussianBlur(rng.random((size, size)).astype(np.float32), (0, 0), 3.0)
    p = np.clip(e * rng.uniform(0.5, 1.2) + (noise - 0.5) * 0.6, 0, 1)
    edge_u8 = np.round(255 * p).astype(np.uint8)
    score = (rng.normal(8, 2, size=(size, size)) * (category > 0) + 3).astype(np.float32)
    return category.astype(np.uint8), edge_u8, score


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--persons", type=int, default=5)
    ap.add_argument("--images", type=int, default=10)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    cv2.setNumThreads(1)
    rng = np.random.default_rng(args.seed)
    times, cpus, persons, parts = [], [], [], []
    for _ in range(args.images):
        par, edge, score = make_inputs(rng, args.size, args.persons)
        partition(par, edge, score)  # warm-up
        reps, cpu = [], []
        for _ in range(args.reps):
            t, c = time.perf_counter(), time.process_time()
            res = partition(par, edge, score)
            reps.append(time.perf_counter() - t)
            cpu.append(time.process_time() - c)
        times.append(1000 * statistics.median(reps))
        cpus.append(1000 * statistics.median(cpu))
        persons.append(len(res.person_areas))
        parts.append(len(res.parts.classes))
    print(f"{args.images} images {args.size}x{args.size}, {args.persons} persons each, one core")
    print(f"persons found per image: {persons}; part instances: {parts}")
    print(
        f"partition ms/image: median {statistics.median(times):.1f}, mean {statistics.mean(times):.1f}, "
        f"max {max(times):.1f} (wall); CPU time median {statistics.median(cpus):.1f}, max {max(cpus):.1f}"
    )


if __name__ == "__main__":
    main()
