"""Standalone evaluator: reads ``<id>.png`` maps, prints the table, writes JSON, names bad files."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from humanparse import evaluate_predictions as ep
from humanparse.data.io import write_label_png
from humanparse.data.meta import voc_palette
from humanparse.metrics.semantic import SemanticParsingMetric


@pytest.fixture
def pred_set(tmp_path):
    rng = np.random.default_rng(0)
    gt_dir, pred_dir = tmp_path / "gt", tmp_path / "pred"
    gt_dir.mkdir(), pred_dir.mkdir()
    ids = [f"10{i}_{i}" for i in range(5)]
    metric = SemanticParsingMetric(20)
    for k, sid in enumerate(ids):
        h, w = rng.integers(20, 40, 2)
        gt = rng.integers(0, 20, (h, w)).astype(np.uint8)
        gt[0] = 255
        pred = np.where(rng.random((h, w)) < 0.6, gt, rng.integers(0, 20, (h, w))).astype(np.uint8)
        pred[gt == 255] = 3
        write_label_png(gt_dir / f"{sid}.png", gt, voc_palette() if k % 2 else None)
        write_label_png(pred_dir / f"{sid}.png", pred)
        metric.update(torch.from_numpy(pred), torch.from_numpy(gt))
    (tmp_path / "val_id.txt").write_text("\n".join(ids) + "\n")
    return tmp_path, metric.compute()


def test_semantic_matches_the_metric_and_writes_json(pred_set, capsys):
    root, ref = pred_set
    out = root / "res.json"
    code = ep.main(
        [
            f"gt_dir={root / 'gt'}",
            f"pred_dir={root / 'pred'}",
            f"list={root / 'val_id.txt'}",
            "metric=semantic",
            "dataset=lip",
            f"output={out}",
        ]
    )
    assert code == 0
    res = json.loads(out.read_text())
    assert res["num_images"] == 5
    assert res["metrics"]["miou"] == pytest.approx(float(ref["miou"]))
    assert res["metrics"]["pixel_acc"] == pytest.approx(float(ref["pixel_acc"]))
    assert res["metrics"]["iou/left_arm"] == pytest.approx(float(ref["iou"][14]))
    printed = capsys.readouterr().out
    assert "miou" in printed and "left_arm" in printed


def test_semantic_errors_name_the_file(pred_set, capsys):
    root, _ = pred_set
    pred = root / "pred" / "101_1.png"
    write_label_png(pred, np.zeros((3, 3), np.uint8))
    code = ep.main(
        [
            f"gt_dir={root / 'gt'}",
            f"pred_dir={root / 'pred'}",
            "metric=semantic",
            "num_classes=20",
            f"output={root / 'x.json'}",
        ]
    )
    assert code == 2
    err = capsys.readouterr().err
    assert "101_1.png" in err and "size" in err
    pred.unlink()
    assert (
        ep.main([f"gt_dir={root / 'gt'}", f"pred_dir={root / 'pred'}", "metric=semantic", "num_classes=20"])
        == 2
    )
    assert "prediction file is missing" in capsys.readouterr().err
    assert ep.main(["metric=nope", "pred_dir=."]) == 2
