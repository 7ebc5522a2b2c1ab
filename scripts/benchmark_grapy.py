"""Grapy-ML speed and memory: the GPM net of ``model=grapy`` against the released ``GrapyNet`` and against its own
DeepLab v3+ trunk, measured side by side (issue 14, "Speed").

    PYTHONPATH=src python scripts/benchmark_grapy.py [--size 512] [--batch 1] [--threads 2] [--reps 5]
                                                    [--reference /path/to/Grapy-ML] [--device cpu|cuda]
                                                    [--cpu-time] [--no-memory]
                                                    [--json out.json]

Rows (C = 20, CIHP, eval-mode forward under ``torch.inference_mode``, random weights):

* **grapy**: :class:`humanparse.models.grapy.GrapyNet` (DeepLab v3+ on Xception-65 + GPM, levels 1-3);
* **released**: ``GrapyNet`` of ``Charleshhy/Grapy-ML`` (``networks/grapy_net.py``), imported from the checkout
  given by ``--reference`` or ``$GRAPY_ML_CODE`` (never part of this repository); the row is skipped when it is
  absent. Its hard-coded ``.cuda()`` calls are redirected to the chosen device and its unused imports
  (networkx, scipy) stubbed;
* **trunk**: :class:`humanparse.models.grapy.DeepLabV3PlusXception` alone, so grapy / trunk is the GPM's cost.

Forward passes of the models alternate within every repetition, so load on a shared machine hits them alike;
medians, minima and their ratios are printed. Memory: on CUDA the peak allocated memory of one forward; on CPU
the peak resident memory (``VmHWM``) of a fresh process that builds the model and runs one forward, next to its
resident memory once the model is built (each model measured in its own child process).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import multiprocessing as mp
import os
import platform
import statistics
import sys
import time
import types
from pathlib import Path

import torch
import torch.nn.functional as F

CIHP_LEVEL1 = [0] + [1] * 19
CIHP_LEVEL2 = [0, 1, 1, 3, 1, 2, 2, 2, 4, 4, 2, 2, 2, 1, 3, 3, 4, 4, 4, 4]
# released train_gpm.py category lists for CIHP (fine labels per level-1 / level-2 node)
RELEASED_LISTS = (
    [[0], list(range(1, 20))],
    [[0], [1, 2, 4, 13], [5, 6, 7, 10, 11, 12], [3, 14, 15], [8, 9, 16, 17, 18, 19]],
)


def reference_path(arg: str | None) -> Path | None:
    path = arg or os.environ.get("GRAPY_ML_CODE")
    if not path:
        return None
    p = Path(path)
    return p if (p / "networks" / "grapy_net.py").is_file() else None


def build(name: str, device: str, reference: Path | None) -> torch.nn.Module | None:
    from humanparse.models.grapy import DeepLabV3PlusXception, GrapyNet

    if name == "grapy":
        return (
            GrapyNet(20, "cihp", {"cihp": {"level1": CIHP_LEVEL1, "level2": CIHP_LEVEL2}}).to(device).eval()
        )
    if name == "trunk":
        return DeepLabV3PlusXception(20).to(device).eval()
    if reference is None:
        return None
    sys.path.insert(0, str(reference))
    for mod in ("networkx", "scipy", "scipy.sparse"):
        try:
            __import__(mod)
        except ImportError:
            sys.modules[mod] = types.ModuleType(mod)
    if device == "cpu":
        torch.Tensor.cuda = lambda self, *a, **k: self  # the released GPM hard-codes .cuda()
    if not hasattr(F, "upsample"):
        F.upsample = F.interpolate
    with contextlib.redirect_stdout(io.StringIO()):
        from networks import grapy_net  # type: ignore[import-not-found]

        net = grapy_net.GrapyNet(n_classes=20, os=16, hidden_layers=256)
    net.set_category_list(*RELEASED_LISTS)
    return net.to(device).eval()


def run(name: str, net: torch.nn.Module, x: torch.Tensor) -> None:
    if name == "released":
        net(x, training=False)
    else:
        net(x)


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def proc_status_mib(field: str) -> float:
    """``VmRSS`` / ``VmHWM`` of this process in MiB (``ru_maxrss`` would carry the parent's peak across exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024.0
    return float("nan")


def peak_memory_child(name: str, size: int, batch: int, threads: int, reference: str | None, queue) -> None:
    torch.set_num_threads(threads)
    ref = reference_path(reference)
    net = build(name, "cpu", ref)
    if net is None:
        queue.put(None)
        return
    built = proc_status_mib("VmRSS")
    with torch.inference_mode():
        run(name, net, torch.randn(batch, 3, size, size))
    queue.put((built, proc_status_mib("VmHWM")))


def cpu_memory(name: str, args) -> tuple[float, float] | None:
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    p = ctx.Process(
        target=peak_memory_child, args=(name, args.size, args.batch, args.threads, args.reference, q)
    )
    p.start()
    out = q.get()
    p.join()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument(
        "--reference", default=None, help="checkout of Charleshhy/Grapy-ML (default $GRAPY_ML_CODE)"
    )
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--no-memory", action="store_true")
    ap.add_argument(
        "--cpu-time",
        action="store_true",
        help="count the process's CPU seconds instead of wall time (less disturbed by other processes)",
    )
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    ref = reference_path(args.reference)
    if ref is None:
        print("released GrapyNet: skipped (no checkout given: --reference or $GRAPY_ML_CODE)")
    names = ["grapy", "released", "trunk"]
    nets = {n: build(n, args.device, ref) for n in names}
    nets = {n: m for n, m in nets.items() if m is not None}
    params = {n: sum(p.numel() for p in m.parameters()) for n, m in nets.items()}
    x = torch.randn(args.batch, 3, args.size, args.size, device=args.device)
    times: dict[str, list[float]] = {n: [] for n in nets}
    clock = time.process_time if args.cpu_time else time.perf_counter
    with torch.inference_mode():
        for n, m in nets.items():  # warm-up
            run(n, m, x)
        for _ in range(args.reps):
            for n, m in nets.items():
                sync(args.device)
                t = clock()
                run(n, m, x)
                sync(args.device)
                times[n].append(clock() - t)
    memory: dict[str, float | None] = {}
    built: dict[str, float | None] = {}
    if not args.no_memory:
        for n, m in nets.items():
            if args.device == "cuda":
                torch.cuda.reset_peak_memory_stats()
                base = torch.cuda.memory_allocated()
                with torch.inference_mode():
                    run(n, m, x)
                memory[n] = (torch.cuda.max_memory_allocated() - base) / 2**20
            else:
                built_peak = cpu_memory(n, args)
                memory[n] = None if built_peak is None else built_peak[1]
                built[n] = None if built_peak is None else built_peak[0]
    print(
        f"Grapy-ML forward at {args.size}x{args.size}, batch {args.batch}, {args.device}, "
        f"{args.threads} threads, {args.reps} reps, {'CPU' if args.cpu_time else 'wall'} time ({platform.processor() or platform.machine()})"
    )
    rows = {}
    for n in nets:
        med, best = statistics.median(times[n]), min(times[n])
        mem = memory.get(n)
        mem_s = (
            ""
            if mem is None
            else (f", peak {'allocated' if args.device == 'cuda' else 'RSS'} {mem:,.0f} MiB")
        )
        if built.get(n) is not None:
            mem_s += f" (model built: {built[n]:,.0f} MiB)"
        print(f"  {n:9s} median {med:.3f} s  min {best:.3f} s  ({params[n]:,} parameters{mem_s})")
        rows[n] = {
            "median_s": med,
            "min_s": best,
            "params": params[n],
            "memory_mib": mem,
            "built_mib": built.get(n),
        }
    ratios = {}
    if "released" in rows:
        ratios["grapy_vs_released"] = (
            rows["grapy"]["median_s"] / rows["released"]["median_s"],
            rows["grapy"]["min_s"] / rows["released"]["min_s"],
        )
    ratios["grapy_vs_trunk"] = (
        rows["grapy"]["median_s"] / rows["trunk"]["median_s"],
        rows["grapy"]["min_s"] / rows["trunk"]["min_s"],
    )
    for k, (a, b) in ratios.items():
        print(f"  {k}: {a:.2f}x (medians), {b:.2f}x (minima)")
    if args.json:
        Path(args.json).write_text(json.dumps({"args": vars(args), "rows": rows, "ratios": ratios}, indent=2))


if __name__ == "__main__":
    main()
