"""docs/adding_a_model.md, executed: a toy model from one folder (``tests/toy_model/toyfcn``) plus one yaml in
a user config folder (``tests/toy_model/conf/model/toyfcn.yaml``) trains and evaluates through the real
command lines, on a single- and a multi-person dataset, with no edit of humanparse."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import TINY_DATA, run_cli

pytestmark = pytest.mark.slow

TOY = Path(__file__).resolve().parent / "toy_model"


def test_toy_model_from_a_user_folder_trains_and_evaluates(tmp_path, cache_dir):
    env = {"HUMANPARSE_CONFIG_DIR": str(TOY / "conf"), "PYTHONPATH": str(TOY)}
    args = [
        "model=toyfcn",
        "data=cihp",
        *TINY_DATA,
        "data.synthetic_options.image_size=[64,80]",
        "data.limit_val=4",
        "trainer.max_epochs=2",
        "print_config=false",
        "test=false",
        "++callbacks.progress_bar.refresh_rate=0",
    ]
    run_cli("humanparse.train", *args, cwd=tmp_path, cache_dir=cache_dir, env=env)
    runs = sorted(p.parent for p in (tmp_path / "logs").rglob("metrics.json"))
    assert len(runs) == 1
    rec = json.loads((runs[0] / "metrics.json").read_text())
    assert rec["status"] == "finished" and rec["model"] == "toyfcn"
    # its postprocess gives semantic maps and instances: every CIHP metric but the edge one is computed
    for k in ("val/miou", "val/app50", "val/pcp50", "val/apr50", "val/bbox_map"):
        assert k in rec["metrics"], k
    assert list(rec["skipped_metrics"]) == ["cihp/edge"]
    (tmp_path / "eval").mkdir()
    out = run_cli(
        "humanparse.evaluate",
        f"ckpt_path={runs[0] / 'checkpoints' / 'last.ckpt'}",
        "split=val",
        cwd=tmp_path / "eval",
        cache_dir=cache_dir,
        env=env,
    )
    assert "miou" in out.stdout and "app50" in out.stdout and "not computed: cihp/edge" in out.stdout
