"""humanparse.benchmark: the JSON schema on a tiny model, the FLOP convention, the memory probe."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from conftest import TINY_DATA, TINY_MODELS, compose_cfg
from humanparse.benchmark import (
    RESULT_KEYS,
    SCHEMA,
    PeakMemory,
    benchmark,
    flop_counter,
    markdown_table,
    write_report,
)


def test_benchmark_json_schema(tmp_path, cache_dir):
    cfg = compose_cfg(
        "benchmark",
        TINY_DATA
        + TINY_MODELS["deeplabv3plus"]
        + [
            "benchmark.iters=2",
            "benchmark.warmup=1",
            "benchmark.paper_sizes.deeplabv3plus=[48,48]",
            "benchmark.devices=[cpu,cuda]",
        ],
        tmp_path,
        cache_dir,
    )
    report = benchmark(cfg)
    jpath, mpath = write_report(report, tmp_path / "out")
    data = json.loads(jpath.read_text())
    assert data["schema"] == SCHEMA
    assert {
        "created",
        "machine",
        "model",
        "dataset",
        "num_classes",
        "flops_convention",
        "settings",
        "results",
    } <= set(data)
    assert "multiply-add = 2 FLOPs" in data["flops_convention"]
    assert {"cpu", "cpu_count", "torch", "torch_threads", "gpu", "load_average"} <= set(data["machine"])
    m = data["model"]
    assert m["name"] == "deeplabv3plus" and m["backbone"] == "tu-mobilenetv3_small_050"
    assert isinstance(m["params"], int) and m["params"] > 1000 and m["trainable_params"] == m["params"]
    assert data["settings"] == {
        "warmup": 1,
        "iters": 2,
        "train_batch_size": 2,
        "infer_batch_size": 1,
        "precision": "32",
        "synthetic": True,
    }
    cpu = [r for r in data["results"] if r["device"] == "cpu"]
    assert [(r["size_name"], r["input_size"]) for r in cpu] == [("input", [64, 64]), ("paper", [48, 48])]
    expect_gpu = torch.cuda.is_available()
    assert len(data["results"]) == len(cpu) * (2 if expect_gpu else 1)
    for r in data["results"]:
        assert set(r) == set(RESULT_KEYS) and r["error"] is None
        for k in (
            "flops_inference_per_image",
            "flops_train_per_image",
            "train_step_s",
            "train_step_s_min",
            "train_images_per_s",
            "inference_s_per_batch",
            "inference_s_per_batch_min",
            "inference_images_per_s",
            "train_peak_mem_mb",
            "inference_peak_mem_mb",
        ):
            assert isinstance(r[k], float) and r[k] > 0, k
        assert (
            r["train_step_s_min"] <= r["train_step_s"]
            and r["inference_s_per_batch_min"] <= r["inference_s_per_batch"]
        )
        # a training step (forward + both backward products) costs about 3 forward passes
        assert 2.0 < r["flops_train_per_image"] / r["flops_inference_per_image"] < 3.5
        assert r["memory_kind"] == (
            "cuda_max_allocated" if r["device"].startswith("cuda") else "cpu_peak_rss"
        )
    big, small = cpu
    assert big["flops_inference_per_image"] > small["flops_inference_per_image"]  # 64² vs 48²
    table = mpath.read_text()
    assert table.count("| deeplabv3plus |") == len(data["results"]) and "multiply-add = 2 FLOPs" in table
    assert markdown_table([data]).splitlines()[-1] == table.strip().splitlines()[-1]


def test_grouped_convolution_backward_flops():
    """torch counts a depthwise convolution's weight gradient as dense; the benchmark's counter does not."""
    conv = torch.nn.Conv2d(8, 8, 3, padding=1, groups=8)
    x = torch.randn(2, 8, 16, 16, requires_grad=True)
    with FlopCounterMode(display=False) as fwd:
        conv(x)
    with flop_counter() as total:
        conv(x).sum().backward()
    # forward + input gradient + weight gradient, each 2·N·C·k²·H·W
    assert fwd.get_total_flops() == 2 * 2 * 8 * 9 * 16 * 16
    assert total.get_total_flops() == 3 * fwd.get_total_flops()


def test_peak_memory_cpu():
    with PeakMemory(torch.device("cpu")) as mem:
        a = np.ones(48 * 2**20 // 8)  # 48 MiB, touched
        a.sum()
    del a
    assert mem.peak_mb is not None and mem.delta_mb == pytest.approx(48, abs=16)
