"""humanparse.reproduce: the table listing (buildable rows derived from conf/model), and an end-to-end run of
two rows of CorrPM Table 5 on tiny synthetic LIP, down to the compare table against those rows."""

from __future__ import annotations

import json

import pytest
import yaml

from conftest import TINY_MODELS, TINY_TRAIN, run_cli
from humanparse.compare.papers import load_paper_results
from humanparse.reproduce import experiment_config, table_rows


def test_rows_and_their_status(monkeypatch):
    papers = load_paper_results()
    rows = {r.method: r for r in table_rows(papers, "corrpm", "5")}
    assert len(rows) == 16
    assert rows["PB (HNL with edge)"].status == "buildable" and rows["PB (HNL with edge)"].variant == "PB"
    assert rows["CorrPM"].variant == "full"
    assert rows["DeepLabV2"].status.startswith("needs model 'deeplabv2'")  # listed, not dropped
    assert "no model configuration" in rows["JPPNet"].status
    grid = table_rows(papers, "corrpm", "6")
    assert len(grid) == 24 and grid[0].overrides == {"model.edge_weight": 0, "model.pose_weight": 0}
    # buildability follows conf/model: without corrpm.yaml nothing of Table 5 is buildable
    monkeypatch.setattr("humanparse.reproduce.built_models", lambda: {"deeplabv3plus"})
    assert all(r.status != "buildable" for r in table_rows(papers, "corrpm", "5"))
    cfg = experiment_config(rows["PK (HNL with pose)"])
    assert cfg["defaults"][0] == {"override /data": "lip"} and cfg["model"]["variant"] == "PK"
    assert cfg["paper_ref"] == [{"paper": "corrpm", "table": "5", "method": "PK (HNL with pose)"}]


def test_list_shows_every_table(tmp_path, cache_dir):
    out = run_cli("humanparse.reproduce", "list=true", cwd=tmp_path, cache_dir=cache_dir).stdout
    assert "corrpm:5  (lip; 10 of 16 rows buildable)" in out
    assert "✓ PKK (HNL with two pose features) [lip] → corrpm variant=PKK" in out
    # rows no configuration maps to are listed with the reason, never dropped
    assert "parsing_rcnn:1  (cihp;" in out and "no model configuration of this suite maps to this row" in out
    assert "grapy_ml:1" in out and "densepose:1" in out


@pytest.mark.slow
def test_reproduce_two_rows_end_to_end(tmp_path, cache_dir):
    over = [
        *TINY_TRAIN,
        *TINY_MODELS["corrpm"],
        "model.pretrained=null",
        "trainer.check_val_every_n_epoch=1",
        "trainer.limit_train_batches=2",
    ]
    out_dir = tmp_path / "rep"
    proc = run_cli(
        "humanparse.reproduce",
        "table=corrpm:5",
        "rows=[P,PB]",
        f"output={out_dir}",
        "overrides=[" + ",".join(f"'{o}'" for o in over) + "]",
        cwd=tmp_path,
        cache_dir=cache_dir,
        timeout=600,
    )
    assert "corrpm table 5: 2 of 2 rows buildable" in proc.stdout
    assert (
        "humanparse.train -m" in proc.stdout
        and "experiment=reproduce_corrpm_5_lip_p_parsing_only" in proc.stdout
    )
    records = sorted(json.loads(p.read_text())["variant"] for p in out_dir.glob("*/metrics.json"))
    assert records == ["P", "PB"]
    md = next((out_dir / "compare").glob("compare.md")).read_text()
    # each run compared with its own printed row of Table 5
    assert "corrpm T5 'P (parsing only)'" in md and "corrpm T5 'PB (HNL with edge)'" in md
    saved = yaml.safe_load((out_dir / "0" / "run_config.yaml").read_text())
    assert saved["paper_ref"] == [{"paper": "corrpm", "table": "5", "method": "P (parsing only)"}]
