"""Parsing R-CNN end to end through the CLI: ``train experiment=parsing_rcnn_demo`` (tiny) validates with
AP^p, PCP, the Parsing R-CNN mIoU, box AP and AP^r; ``evaluate`` on its checkpoint reports the same numbers."""

from __future__ import annotations

import json

import pytest

from conftest import TINY_MODELS, run_cli

TINY_DEMO = [
    "experiment=parsing_rcnn_demo",
    "data.synthetic_options.num_train=8",
    "data.synthetic_options.num_val=4",
    "data.synthetic_options.num_test=2",
    "data.synthetic_options.image_size=[64,96]",
    "data.input_size=[64,96]",
    "data.num_workers=0",
    "trainer.max_epochs=1",
    "print_config=false",
    "++callbacks.progress_bar.refresh_rate=0",
    "test=false",
    *[o for o in TINY_MODELS["parsing_rcnn"] if not o.startswith("model.anchor")],
]


def test_demo_trains_and_evaluates_instance_metrics(tmp_path, cache_dir):
    run_cli("humanparse.train", *TINY_DEMO, cwd=tmp_path, cache_dir=cache_dir, timeout=600)
    runs = sorted((tmp_path / "logs").rglob("metrics.json"))
    assert len(runs) == 1
    rec = json.loads(runs[0].read_text())
    assert rec["status"] == "finished" and rec["model"] == "parsing_rcnn" and rec["global_step"] == 2
    m = rec["metrics"]
    # AP^p / PCP (instance_parsing), the Parsing R-CNN semantic map's mIoU, box AP, AP^r from the part maps
    for key in ("val/app_vol", "val/app50", "val/pcp50", "val/miou", "val/bbox_map", "val/apr_vol"):
        assert key in m, sorted(m)
        assert 0.0 <= m[key] <= 1.0
    ckpt = runs[0].parent / "checkpoints" / "last.ckpt"
    (tmp_path / "eval").mkdir()
    out = run_cli(
        "humanparse.evaluate",
        f"ckpt_path={ckpt}",
        "split=val",
        cwd=tmp_path / "eval",
        cache_dir=cache_dir,
        timeout=600,
    )
    assert "app_vol" in out.stdout and "pcp50" in out.stdout
    ev = json.loads(next((tmp_path / "eval" / "logs").rglob("metrics.json")).read_text())["metrics"]
    for key in ("val/app_vol", "val/app50", "val/pcp50", "val/miou"):
        assert ev[key] == pytest.approx(m[key], abs=1e-6)
