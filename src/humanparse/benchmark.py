"""Model cost: parameters, FLOPs, training step time, inference throughput and peak memory.

``python -m humanparse.benchmark model=<model> data=<dataset> [experiment=<preset>] [benchmark.<key>=...]``

The config is ``conf/benchmark.yaml``: the groups of ``train.yaml`` plus a ``benchmark`` node, so any model
that trains can be measured, with its own criterion, optimiser and data pipeline. For every device
(``benchmark.devices``: the CPU, and the GPU when there is one) and every input size (the composed
``data.input_size`` as ``input``, the model's paper input size as ``paper``, and ``benchmark.sizes``):

* **parameters** (all / trainable);
* **FLOPs** per image with ``torch.utils.flop_counter.FlopCounterMode``: **one multiply-add = 2 FLOPs**;
  only convolutions, matrix products and attention are counted (normalisation, activations, pooling and
  resampling are not). ``inference`` = one ``predict_step`` (the whole inference path at batch size 1),
  ``train`` = one training step (forward, loss, backward) divided by the batch size;
* **training step** time (forward, loss, backward, optimiser step through Lightning's loop, excluding data
  loading and the host-to-device copy): the median over ``iters`` steps after ``warmup`` steps (the standard
  deviation beside it), and images/s from it;
* **inference** images/s of ``predict_step`` (the task's whole inference path, mapping back to the
  original size included) from the median over ``iters`` calls after ``warmup`` calls, in
  ``torch.inference_mode``;
* **peak memory**: GPU ``torch.cuda.max_memory_allocated`` over the timed phase (weights, gradients,
  optimiser state and activations); CPU the process's peak resident set size during the phase (Linux
  ``VmHWM``, reset before the phase through ``/proc/self/clear_refs``; elsewhere a sampling thread), with
  its increase over the phase's start (``*_delta_mb``). Freed memory is handed back first (garbage
  collection, ``malloc_trim``) so one phase does not inherit the previous phase's resident set; the CPU
  figure still includes the Python process itself (libraries, about 0.5-1 GB).

GPU timings synchronise the device around every timed step. Batches come from the dataset's synthetic set
(``benchmark.synthetic=true``), or from ``data.root``. Writes ``benchmark.json`` (schema
``humanparse.benchmark/1``, checked by the tests) and ``benchmark.md`` into the run folder and prints the
table.
"""

from __future__ import annotations

import copy
import ctypes
import gc
import json
import logging
import os
import platform
import socket
import threading
import time
import warnings
from pathlib import Path

import hydra
import pytorch_lightning as pl
import torch
from omegaconf import DictConfig, open_dict
from torch.utils.flop_counter import FlopCounterMode

import humanparse.utils.resolvers  # noqa: F401
from humanparse.utils.devices import resolve_precision
from humanparse.utils.errors import one_line_errors

log = logging.getLogger("humanparse.benchmark")

SCHEMA = "humanparse.benchmark/1"
FLOPS_CONVENTION = (
    "torch.utils.flop_counter.FlopCounterMode: one multiply-add = 2 FLOPs; convolutions, matrix "
    "products and attention only (normalisation, activations, pooling, resampling not counted)"
)
RESULT_KEYS = (
    "device",
    "size_name",
    "input_size",
    "flops_inference_per_image",
    "flops_train_per_image",
    "train_step_s",
    "train_step_s_std",
    "train_step_s_min",
    "train_images_per_s",
    "train_peak_mem_mb",
    "train_peak_mem_delta_mb",
    "inference_s_per_batch",
    "inference_s_per_batch_min",
    "inference_images_per_s",
    "inference_peak_mem_mb",
    "inference_peak_mem_delta_mb",
    "memory_kind",
    "error",
)


# --- FLOPs ----------------------------------------------------------------------------------------------
def _conv_backward_flop(
    grad_out_shape,
    x_shape,
    w_shape,
    _bias,
    _stride,
    _padding,
    _dilation,
    transposed,
    _output_padding,
    _groups,
    output_mask,
    out_shape=None,
    **kwargs,
) -> int:
    """``aten.convolution_backward`` FLOPs with grouped convolutions counted right.

    torch's formula counts the weight gradient of a grouped (e.g. depthwise) convolution as if it were
    dense, ``groups`` times too many; Xception and MobileNet encoders are mostly depthwise. Each weight-
    gradient multiply-add pairs one input and one output-gradient element exactly as the forward pass
    does, so that term equals the forward count; the input-gradient term is torch's own.
    """
    from torch.utils.flop_counter import conv_flop_count, get_shape

    flops = 0
    if output_mask[0]:
        flops += conv_flop_count(grad_out_shape, w_shape, get_shape(out_shape[0]), not transposed)
    if output_mask[1]:
        flops += conv_flop_count(x_shape, w_shape, grad_out_shape, transposed)
    return flops


def flop_counter() -> FlopCounterMode:
    return FlopCounterMode(
        display=False, custom_mapping={torch.ops.aten.convolution_backward: _conv_backward_flop}
    )


# --- memory --------------------------------------------------------------------------------------------
def _status_kb(field: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def release_memory(device: torch.device | None = None) -> None:
    """Give freed memory back before a measurement: Python garbage, the CUDA cache, and glibc's free
    lists (``malloc_trim``), so an earlier, larger phase does not inflate the next one's resident set."""
    gc.collect()
    if device is not None and device.type == "cuda":
        torch.cuda.empty_cache()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: nothing to trim
        pass


class PeakMemory:
    """Peak memory over a ``with`` block: CUDA allocated bytes, or the process RSS on the CPU (MB)."""

    def __init__(self, device: torch.device):
        self.device = device
        self.peak_mb: float | None = None
        self.delta_mb: float | None = None
        self.kind = "cuda_max_allocated" if device.type == "cuda" else "cpu_peak_rss"
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._sampled = 0

    def _rss_mb(self) -> float | None:
        kb = _status_kb("VmRSS")
        if kb is not None:
            return kb / 1024.0
        try:
            import psutil

            return psutil.Process().memory_info().rss / 2**20
        except ImportError:  # pragma: no cover - psutil comes with wandb
            return None

    def _sample(self) -> None:
        while not self._stop.wait(0.002):
            v = self._rss_mb()
            if v is not None:
                self._sampled = max(self._sampled, v)

    def __enter__(self) -> PeakMemory:
        release_memory(self.device)
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            self.start = torch.cuda.memory_allocated(self.device) / 2**20
            torch.cuda.reset_peak_memory_stats(self.device)
            return self
        self.start = self._rss_mb()
        self._hwm = False
        try:  # Linux: "5" resets the peak RSS (VmHWM) of this process
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")
            self._hwm = _status_kb("VmHWM") is not None
        except OSError:
            self._hwm = False
        if not self._hwm:
            self._sampled = self.start or 0.0
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            self.peak_mb = torch.cuda.max_memory_allocated(self.device) / 2**20
        elif self._hwm:
            self.peak_mb = _status_kb("VmHWM") / 1024.0
        else:
            self._stop.set()
            self._thread.join()
            self.peak_mb = max(self._sampled, self._rss_mb() or 0.0)
        if self.peak_mb is not None and self.start is not None:
            self.delta_mb = max(0.0, self.peak_mb - self.start)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# --- machine -------------------------------------------------------------------------------------------
def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info() -> dict:
    info = {
        "hostname": socket.gethostname(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cpu": _cpu_name(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "gpu": None,
        "cuda": torch.version.cuda,
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    try:  # a busy machine explains slow, scattered timings
        info["load_average"] = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        info["load_average"] = None
    return info


# --- building ------------------------------------------------------------------------------------------
def _set_if_present(node: DictConfig, key: str, value) -> None:
    if node is not None and key in node:
        node[key] = value


def size_config(cfg: DictConfig, size, train_bs: int, infer_bs: int) -> DictConfig:
    """The run config for one input size: tiny synthetic split sizes, no workers, weights not downloaded."""
    c = copy.deepcopy(cfg)
    with open_dict(c):
        c.data.input_size = [int(size[0]), int(size[1])]
        _set_if_present(c.data, "batch_size", train_bs)
        _set_if_present(c.data, "eval_batch_size", infer_bs)
        _set_if_present(c.data, "num_workers", 0)
        _set_if_present(c.data, "limit_train", None)
        _set_if_present(c.data, "limit_val", None)
        if "synthetic" in c.data:
            c.data.synthetic = bool(cfg.benchmark.synthetic)
        opts = c.data.get("synthetic_options")
        if opts is not None:
            _set_if_present(opts, "num_train", max(train_bs, 2))
            _set_if_present(opts, "num_val", max(infer_bs, 2))
            _set_if_present(opts, "num_test", 1)
        # random weights: the cost does not depend on them, and nothing is downloaded
        _set_if_present(c.model, "pretrained", None)
        if c.model.get("net") is not None:
            _set_if_present(c.model.net, "pretrained", None)
    return c


def first_batches(cfg: DictConfig, requirements: dict | None = None) -> tuple[dict, dict, list[str]]:
    """One training batch and one evaluation batch from the configured datamodule (loaded once, untimed),
    adapted to what the model needs (derived targets, collate); and the evaluation datasets' names."""
    dm = hydra.utils.instantiate(cfg.data)
    dm.adapt_to_model(requirements or {}, str(cfg.model.get("name", "model")))
    dm.prepare_data()
    dm.setup("fit")
    train = next(iter(dm.train_dataloader()))
    loaders = dm.val_dataloader()
    val = next(iter(loaders[0] if isinstance(loaders, list) else loaders))
    return train, val, [s.name for s in dm.eval_sets()]


def _slice_batch(batch: dict, n: int) -> dict:
    out = {}
    for k, v in batch.items():
        out[k] = v[:n] if isinstance(v, (torch.Tensor, list)) else v
    return out


def _to_device(batch, device: torch.device):
    from lightning_fabric.utilities.apply_func import move_data_to_device

    return move_data_to_device(batch, device)


class _StepTimer(pl.Callback):
    """Times every training step (synchronised), counts FLOPs in the first, tracks memory after warm-up."""

    def __init__(self, device: torch.device, warmup: int, count_flops: bool):
        self.device, self.warmup, self.count_flops = device, warmup, count_flops
        self.times: list[float] = []
        self.flops: int | None = None
        self.memory = PeakMemory(device)
        self._fc: FlopCounterMode | None = None

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if batch_idx == self.warmup:
            self.memory.__enter__()
        if batch_idx == 0 and self.count_flops:
            self._fc = flop_counter()
            self._fc.__enter__()
        _sync(self.device)
        self._t0 = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        _sync(self.device)
        dt = time.perf_counter() - self._t0
        if self._fc is not None:
            self._fc.__exit__(None, None, None)
            self.flops = int(self._fc.get_total_flops())
            self._fc = None
        if batch_idx >= self.warmup:
            self.times.append(dt)

    def on_train_end(self, trainer, pl_module):
        if self.times:
            self.memory.__exit__(None, None, None)


class _Repeat:
    """The same (pre-loaded) batch ``n`` times: the training loop never waits for data."""

    def __init__(self, batch: dict, n: int):
        self.batch, self.n = batch, n

    def __len__(self) -> int:
        return self.n

    def __iter__(self):
        for _ in range(self.n):
            yield self.batch


def _timing_stats(xs: list[float]) -> tuple[float | None, float | None, float | None]:
    """Median (robust to a busy machine's stragglers), standard deviation and minimum of the timings."""
    if not xs:
        return None, None, None
    s = sorted(xs)
    mid = len(s) // 2
    med = s[mid] if len(s) % 2 else 0.5 * (s[mid - 1] + s[mid])
    m = sum(xs) / len(xs)
    std = (sum((x - m) ** 2 for x in xs) / (len(xs) - 1)) ** 0.5 if len(xs) > 1 else 0.0
    return med, std, s[0]


def measure_training(task, batch: dict, device: torch.device, bcfg: DictConfig, precision) -> dict:
    warmup, iters = int(bcfg.warmup), int(bcfg.iters)
    timer = _StepTimer(device, max(1, warmup), bool(bcfg.flops))
    steps = max(1, warmup) + iters
    trainer = pl.Trainer(
        accelerator="gpu" if device.type == "cuda" else "cpu",
        devices=[device.index or 0] if device.type == "cuda" else 1,
        precision=precision,
        max_steps=steps,
        max_epochs=1,
        limit_val_batches=0,
        num_sanity_val_steps=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[timer],
        use_distributed_sampler=False,
    )
    with warnings.catch_warnings():  # no validation here on purpose
        warnings.filterwarnings("ignore", message=".*validation_step.*")
        warnings.filterwarnings("ignore", message=".*LeafSpec.*")
        trainer.fit(task, train_dataloaders=_Repeat(batch, steps))
    bs = int(batch["image"].shape[0])
    mean, std, fastest = _timing_stats(timer.times)
    return {
        "flops_train_per_image": timer.flops / bs if timer.flops is not None else None,
        "train_step_s": mean,
        "train_step_s_std": std,
        "train_step_s_min": fastest,
        "train_images_per_s": bs / mean if mean else None,
        "train_peak_mem_mb": timer.memory.peak_mb,
        "train_peak_mem_delta_mb": timer.memory.delta_mb,
    }


def measure_inference(task, batch: dict, device: torch.device, bcfg: DictConfig) -> dict:
    task.eval().to(device)
    batch = _to_device(batch, device)
    bs = int(batch["image"].shape[0])
    out: dict = {}
    with torch.inference_mode():
        if bcfg.flops:
            one = _slice_batch(batch, 1)
            with flop_counter() as fc:
                task.predict_step(one, 0)
            out["flops_inference_per_image"] = float(fc.get_total_flops())
        for i in range(int(bcfg.warmup)):
            task.predict_step(batch, i)
        times = []
        with PeakMemory(device) as mem:
            for i in range(int(bcfg.iters)):
                _sync(device)
                t0 = time.perf_counter()
                task.predict_step(batch, i)
                _sync(device)
                times.append(time.perf_counter() - t0)
    mean, _, fastest = _timing_stats(times)
    out.update(
        inference_s_per_batch=mean,
        inference_s_per_batch_min=fastest,
        inference_images_per_s=bs / mean if mean else None,
        inference_peak_mem_mb=mem.peak_mb,
        inference_peak_mem_delta_mb=mem.delta_mb,
    )
    return out


def sizes_to_measure(cfg: DictConfig) -> dict[str, list[int]]:
    b = cfg.benchmark
    sizes: dict[str, list[int]] = {}
    if b.add_input_size:
        sizes["input"] = [int(v) for v in cfg.data.input_size]
    paper = (b.paper_sizes or {}).get(str(cfg.model.get("name")))
    if b.add_paper_size and paper is not None:
        sizes["paper"] = [int(v) for v in paper]
    for name, s in (b.sizes or {}).items():
        sizes[str(name)] = [int(v) for v in s]
    if not sizes:
        raise ValueError(
            "benchmark: no input size to measure (benchmark.sizes is empty and add_input_size=false)"
        )
    return sizes


def devices_to_measure(cfg: DictConfig) -> list[torch.device]:
    out = []
    for d in cfg.benchmark.devices:
        dev = torch.device(str(d))
        if dev.type == "cuda" and not torch.cuda.is_available():
            log.info("benchmark: no GPU here, skipping device %s", d)
            continue
        out.append(dev)
    return out


def _precision_label(precision, devices) -> str:
    """The training precision per measured device (``auto`` resolved: bf16/16-mixed on GPUs, 32 on CPUs)."""
    per = {d.type: resolve_precision(precision, "gpu" if d.type == "cuda" else "cpu") for d in devices}
    values = set(per.values())
    return values.pop() if len(values) == 1 else ", ".join(f"{k}: {v}" for k, v in per.items())


def benchmark(cfg: DictConfig) -> dict:
    b = cfg.benchmark
    if b.threads:
        torch.set_num_threads(int(b.threads))
    pl.seed_everything(cfg.get("seed", 0), workers=True)
    sizes = sizes_to_measure(cfg)
    devices = devices_to_measure(cfg)
    model_info: dict = {
        "name": cfg.model.get("name"),
        "variant": cfg.model.get("variant"),
        "backbone": cfg.model.get("backbone"),
        "target": cfg.model.get("_target_"),
    }
    results = []
    for name, size in sizes.items():
        c = size_config(cfg, size, int(b.train_batch_size), int(b.infer_batch_size))
        probe = hydra.utils.instantiate(c.model)
        needed = probe.data_requirements()
        del probe
        train_batch, val_batch, names = first_batches(c, needed)
        for device in devices:
            res = {k: None for k in RESULT_KEYS}
            res.update(
                device=str(device),
                size_name=name,
                input_size=list(size),
                memory_kind="cuda_max_allocated" if device.type == "cuda" else "cpu_peak_rss",
            )
            try:
                if b.train:
                    task = hydra.utils.instantiate(c.model)
                    task.eval_names = names
                    model_info["params"] = sum(p.numel() for p in task.parameters())
                    model_info["trainable_params"] = sum(
                        p.numel() for p in task.parameters() if p.requires_grad
                    )
                    res.update(
                        measure_training(
                            task,
                            train_batch,
                            device,
                            b,
                            resolve_precision(
                                c.trainer.get("precision", 32), "gpu" if device.type == "cuda" else "cpu"
                            ),
                        )
                    )
                    del task
                if b.inference:
                    task = hydra.utils.instantiate(c.model)
                    task.eval_names = names
                    model_info.setdefault("params", sum(p.numel() for p in task.parameters()))
                    model_info.setdefault(
                        "trainable_params", sum(p.numel() for p in task.parameters() if p.requires_grad)
                    )
                    res.update(measure_inference(task, val_batch, device, b))
                    del task
            except (RuntimeError, ValueError, KeyError, TypeError) as e:  # e.g. out of memory at one size
                log.error("benchmark %s at %s on %s failed: %s", model_info["name"], size, device, e)
                res["error"] = f"{type(e).__name__}: {e}"
            if device.type == "cuda":
                torch.cuda.empty_cache()
            results.append(res)
    report = {
        "schema": SCHEMA,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "machine": machine_info(),
        "model": model_info,
        "dataset": cfg.data.get("name"),
        "num_classes": cfg.data.get("num_classes"),
        "flops_convention": FLOPS_CONVENTION,
        "settings": {
            "warmup": int(b.warmup),
            "iters": int(b.iters),
            "train_batch_size": int(b.train_batch_size),
            "infer_batch_size": int(b.infer_batch_size),
            "precision": _precision_label(cfg.trainer.get("precision", 32), devices),
            "synthetic": bool(b.synthetic),
        },
        "results": results,
    }
    return report


def _f(v, fmt: str) -> str:
    return "–" if v is None else format(v, fmt)


def markdown_table(reports: list[dict]) -> str:
    """The README table: one line per model × device × input size."""
    if not reports:
        return ""
    m = reports[0]["machine"]
    lines = [
        f"Measured {reports[0]['created']} on {m['cpu']} ({m['cpu_count']} cores, {m['torch_threads']} torch threads"
        + (f", load average {m['load_average']}" if m.get("load_average") else "")
        + ")"
        + (f", GPU {m['gpu']}" if m.get("gpu") else "")
        + f"; torch {m['torch']}. FLOPs: {FLOPS_CONVENTION}. "
        f"Batch {reports[0]['settings']['train_batch_size']} for training, {reports[0]['settings']['infer_batch_size']} for "
        f"inference; {reports[0]['settings']['iters']} timed iterations after {reports[0]['settings']['warmup']} warm-up.",
        "",
        "| model | backbone | device | input (H×W) | params (M) | GFLOPs/img inference | GFLOPs/img train step | "
        "train step (s): median (min) | train img/s | train peak mem (MB) | inference img/s: median (best) | "
        "inference peak mem (MB) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for rep in reports:
        mi = rep["model"]
        for r in rep["results"]:
            size = f"{r['input_size'][0]}×{r['input_size'][1]} ({r['size_name']})"
            params = _f(mi.get("params") / 1e6 if mi.get("params") else None, ".2f")
            if r.get("error"):
                lines.append(
                    f"| {mi['name']} | {mi.get('backbone') or '–'} | {r['device']} | {size} | {params} | "
                    f"error: {r['error'][:60]} | | | | | | |"
                )
                continue
            gfl_inf = (
                r["flops_inference_per_image"] / 1e9
                if r.get("flops_inference_per_image") is not None
                else None
            )
            gfl_tr = r["flops_train_per_image"] / 1e9 if r.get("flops_train_per_image") is not None else None
            fastest = r.get("inference_s_per_batch_min")
            best_ips = rep["settings"]["infer_batch_size"] / fastest if fastest else None
            lines.append(
                f"| {mi['name']} | {mi.get('backbone') or '–'} | {r['device']} | {size} | {params} | {_f(gfl_inf, '.2f')} | "
                f"{_f(gfl_tr, '.2f')} | {_f(r['train_step_s'], '.3f')} ({_f(r.get('train_step_s_min'), '.3f')}) | "
                f"{_f(r['train_images_per_s'], '.2f')} | {_f(r['train_peak_mem_mb'], '.0f')} | "
                f"{_f(r['inference_images_per_s'], '.2f')} ({_f(best_ips, '.2f')}) | {_f(r['inference_peak_mem_mb'], '.0f')} |"
            )
    return "\n".join(lines)


def write_report(report: dict, out_dir: str | Path) -> tuple[Path, Path]:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    jpath, mpath = out / "benchmark.json", out / "benchmark.md"
    jpath.write_text(json.dumps(report, indent=2))
    mpath.write_text(markdown_table([report]) + "\n")
    return jpath, mpath


@hydra.main(version_base="1.3", config_path="conf", config_name="benchmark")
@one_line_errors
def main(cfg: DictConfig) -> None:
    report = benchmark(cfg)
    jpath, _ = write_report(report, cfg.benchmark.output_dir)
    print(markdown_table([report]))
    print(f"\nwritten: {jpath} and benchmark.md")
    if any(r.get("error") for r in report["results"]):
        log.warning("some measurements failed; see the error column")


if __name__ == "__main__":
    import sys

    from humanparse.utils.errors import run_main

    sys.exit(run_main(main))
