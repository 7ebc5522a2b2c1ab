"""Small things: last.ckpt is a link to the newest epoch, progress bar on short epochs, no "Total FLOPs: 0"."""

from __future__ import annotations

import json

import pytest

from humanparse.callbacks import ModelSummary, ProgressBar
from humanparse.train import train
from humanparse.utils.safety import safe_torch_load


def test_last_ckpt_is_a_link_to_the_newest_epoch(compose_train, tmp_path):
    train(compose_train("trainer.max_epochs=3", "test=false"))
    ckdir = tmp_path / "checkpoints"
    last = ckdir / "last.ckpt"
    assert last.is_symlink() and last.resolve().is_file()
    assert last.resolve().name == "epoch_002.ckpt"  # the newest epoch, whether or not it is the best
    assert safe_torch_load(last)["epoch"] == 2
    files = sorted(p.name for p in ckdir.iterdir() if not p.is_symlink())
    best = json.loads((tmp_path / "metrics.json").read_text())["best"]["path"]
    # at most the best checkpoint and the newest one: no second full copy, no stale epochs
    assert set(files) == {"epoch_002.ckpt", best.rsplit("/", 1)[-1]}
    rec = json.loads((tmp_path / "metrics.json").read_text())
    assert rec["hardware"]["precision"] == "32-true" and rec["hardware"]["accelerator"] == "cpu"


def test_progress_bar_refreshes_on_short_epochs():
    bar = ProgressBar(refresh_rate=10)
    assert [n for n in range(1, 7) if bar._should_update(n, 6)] == [1, 2, 3, 4, 5, 6]
    assert [n for n in range(1, 1001) if bar._should_update(n, 1000)][:2] == [10, 20]


def test_model_summary_omits_uncounted_flops(capsys):
    data = [
        (" ", ["0"]),
        ("Name", ["net"]),
        ("Type", ["Linear"]),
        ("Params", ["10"]),
        ("Mode", ["train"]),
        ("FLOPs", ["0"]),
    ]
    ModelSummary.summarize(data, 10, 10, 0.00004, {"train": 1, "eval": 0}, 0)
    out = capsys.readouterr().out
    assert "Total params" in out and "FLOPs" not in out
    ModelSummary.summarize(data, 10, 10, 0.00004, {"train": 1, "eval": 0}, 2000)
    assert "Total FLOPs" in capsys.readouterr().out


def test_console_scripts_license_and_extras():
    import importlib

    from conftest import REPO

    tomllib = pytest.importorskip("tomllib")  # Python 3.11+

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    scripts = project["scripts"]
    assert {
        "humanparse-train",
        "humanparse-evaluate",
        "humanparse-predict",
        "humanparse-export",
        "humanparse-reproduce",
        "humanparse-prepare",
    } <= set(scripts)
    for name, target in scripts.items():
        module, func = target.split(":")
        assert callable(getattr(importlib.import_module(module), func)), name
    assert project["license"]["text"] == "Apache-2.0"
    assert (
        "Apache License" in (REPO / "LICENSE").read_text()[:200]
        and "Version 2.0" in (REPO / "LICENSE").read_text()[:200]
    )
    assert (REPO / "CHANGELOG.md").read_text().startswith("# Changelog")
    dev = " ".join(project["optional-dependencies"]["dev"])
    assert "jupyter" in dev and "onnxruntime" in dev and "onnx>=" in dev
