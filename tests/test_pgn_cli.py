"""PGN through the real command lines: ``experiment=pgn_demo`` trains, and ``evaluate`` reports mIoU, AP^r and
instance-edge precision / recall / F1 from the checkpoint (same numbers as the run's own validation)."""

from __future__ import annotations

import json

import pytest

from conftest import run_cli

pytestmark = pytest.mark.slow

DEMO = (
    "experiment=pgn_demo",
    "data.synthetic_options.num_train=8",
    "data.synthetic_options.num_val=4",
    "data.synthetic_options.num_test=2",
    "data.synthetic_options.image_size=[64,80]",
    "data.input_size=[64,64]",
    "data.num_workers=0",
    "trainer.max_epochs=1",
    "print_config=false",
    "++callbacks.progress_bar.refresh_rate=0",
)


def test_pgn_demo_trains_and_evaluate_reports_its_metrics(tmp_path, cache_dir):
    run_cli("humanparse.train", *DEMO, "test=false", cwd=tmp_path, cache_dir=cache_dir)
    (rec_path,) = list((tmp_path / "logs").rglob("metrics.json"))
    rec = json.loads(rec_path.read_text())
    assert rec["status"] == "finished"
    for key in (
        "val/miou",
        "val/apr50",
        "val/apr_vol",
        "val/edge_precision",
        "val/edge_recall",
        "val/edge_f1",
        "val/app50",
    ):
        assert key in rec["metrics"], sorted(rec["metrics"])
    (tmp_path / "eval").mkdir()
    out = run_cli(
        "humanparse.evaluate",
        f"ckpt_path={rec_path.parent / 'checkpoints' / 'last.ckpt'}",
        "split=val",
        cwd=tmp_path / "eval",
        cache_dir=cache_dir,
    )
    assert "miou" in out.stdout and "apr_vol" in out.stdout and "edge_f1" in out.stdout
    ev = json.loads(next((tmp_path / "eval" / "logs").rglob("metrics.json")).read_text())["metrics"]
    for key in ("val/miou", "val/apr_vol", "val/edge_f1"):
        assert ev[key] == pytest.approx(rec["metrics"][key], abs=1e-6), key
