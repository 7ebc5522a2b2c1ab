"""Timing helpers shared by the detector benchmarks (benchmark_parsing_rcnn.py, benchmark_densepose_rcnn.py):
device synchronisation, the timed training step, peak memory, one fresh process per measurement."""

from __future__ import annotations

import multiprocessing as mp
import resource
import statistics
import time
from collections.abc import Callable

import torch


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def time_training_steps(
    net, images: torch.Tensor, targets: list[dict], reps: int, device: str
) -> list[float]:
    """Seconds of ``reps`` SGD steps of a detector that returns its loss dict (after one warm-up step)."""
    net.train()
    opt = torch.optim.SGD([p for p in net.parameters() if p.requires_grad], lr=1e-4, momentum=0.9)
    times = []
    for i in range(reps + 1):
        sync(device)
        t = time.perf_counter()
        loss = sum(net(images, targets).values())
        opt.zero_grad()
        loss.backward()
        opt.step()
        sync(device)
        if i:
            times.append(time.perf_counter() - t)
    return times


def summary(job: dict, params: int, times: list[float], rois) -> dict:
    """The result row: timings, parameters and the process's peak memory (GPU allocator or CPU RSS)."""
    if job["device"] == "cuda":
        mem = torch.cuda.max_memory_allocated() / 2**20
    else:
        mem = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    return {
        **job,
        "params": params,
        "median_s": statistics.median(times),
        "min_s": min(times),
        "peak_mem_mib": mem,
        "rois": rois,
    }


def run_isolated(measure: Callable[[dict], dict], job: dict) -> dict:
    """``measure(job)`` in a fresh process, so peak memory belongs to that one measurement."""
    with mp.get_context("spawn").Pool(1) as pool:
        return pool.apply(measure, (job,))
