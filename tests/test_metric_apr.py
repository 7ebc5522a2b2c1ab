"""PGN AP^r over part instances (PGN)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from helpers.reference_metrics import T9, apr_loop
from humanparse.data.instances import part_instances
from humanparse.evaluation.synthetic import make_instance_samples
from humanparse.metrics.apr import (
    PartInstanceAPMetric,
    PartInstances,
    gt_part_instances,
    image_apr_record,
    part_instances_from_predictions,
    score_apr,
)

C = 4


def run(images, **kw):
    """images: list of (gt id map, gt classes (index = id), pred id map, pred classes, pred scores)."""
    m = PartInstanceAPMetric(C, **kw)
    for i, (gm, gc, pm, pc, ps) in enumerate(images):
        m.update(
            [{"instance_map": pm, "classes": pc[1:], "scores": ps[1:]}],
            [{"instance_map": gm, "classes": gc[1:], "image_id": str(i), "order": i}],
        )
    return {k: float(v) for k, v in m.compute().items()}


def one_gt_image():
    gm = np.zeros((6, 6), np.int64)
    gm[0:3, 0:3] = 1  # one GT instance of class 1
    return gm, np.array([0, 1])


def test_duplicates_all_count_under_pgn_matching():
    gm, gc = one_gt_image()
    pm = np.zeros((6, 6), np.int64)
    pm[0:3, 0:2] = 1  # IoU 6/9
    pm[0:3, 2] = 2  # IoU 3/9 with the same GT
    img = (gm, gc, pm, np.array([0, 1, 1]), np.array([np.nan, 0.9, 0.8]))
    pgn = run([img])
    # both are TPs at 0.3: recall reaches 2, AP = 2 (the closing sentinel has precision 0)
    assert pgn["apr/1/30"] == pytest.approx(2.0)
    assert pgn["apr/1/50"] == pytest.approx(1.0)  # only the first is above 0.5
    o2o = run([img], matching="one_to_one")
    assert o2o["apr/1/30"] == pytest.approx(1.0)  # the duplicate is an FP


def test_strict_threshold_and_no_fallback_in_one_to_one():
    gm = np.zeros((4, 8), np.int64)
    gm[:, 0:4] = 1
    gm[:, 4:8] = 2
    gc = np.array([0, 1, 1])
    pm = np.zeros((4, 8), np.int64)
    pm[:, 0:2] = 1  # IoU exactly 0.5 with GT 1
    pm[:, 2:5] = 2  # IoU 2/5 with GT 1 (best), 1/6 with GT 2
    pc, ps = np.array([0, 1, 1]), np.array([np.nan, 0.9, 0.8])
    r = run([(gm, gc, pm, pc, ps)])
    assert r["apr/1/30"] == pytest.approx(1.0)  # two TPs on 2 GT
    assert r["apr/1/40"] == pytest.approx(0.5)  # IoU 0.4 > 0.4 is false
    assert r["apr/1/50"] == pytest.approx(0.0)  # IoU 0.5 > 0.5 is false
    o2o = run([(gm, gc, pm, pc, ps)], matching="one_to_one")
    # second prediction's best GT (1) is taken at 0.1; no fallback to GT 2 (IoU 1/6 > 0.1)
    assert o2o["apr/1/10"] == pytest.approx(0.5)


def test_nan_table_and_class_reduction():
    gm, gc = one_gt_image()
    # class 1: npos 1, no prediction -> 0; class 2: npos 0, no prediction -> 0;
    # class 3: npos 0, one prediction -> NaN
    pm = np.zeros((6, 6), np.int64)
    pm[4:6, 4:6] = 1
    img = (gm, gc, pm, np.array([0, 3]), np.array([np.nan, 0.5]))
    r = run([img])
    assert r["apr/1/50"] == 0.0 and r["apr/2/50"] == 0.0 and math.isnan(r["apr/3/50"])
    assert r["apr50"] == 0.0  # nanmean over classes 1, 2
    pgn = run([img], class_reduction="mean")
    assert math.isnan(pgn["apr50"]) and math.isnan(pgn["apr_vol"])  # PGN's np.mean


def test_classes_absent_and_prediction_ids_without_pixels():
    gm, gc = one_gt_image()
    pm = gm.copy()
    # id 2 is listed (class 1) but has no pixel: dropped instead of misaligning scores
    rec = image_apr_record(
        PartInstances.from_table(gm, [1], [1]), PartInstances.from_table(pm, [1, 2], [1, 1], [0.4, 0.9]), C
    )
    assert rec["scores"].tolist() == [0.4] and rec["npos"].tolist() == [0, 1, 0, 0]
    r = score_apr([rec], C)
    assert r["apr/1/90"] == 1.0 and r["apr/2/10"] == 0.0


def test_nan_scores_raise_or_rank_first():
    gm, gc = one_gt_image()
    pm = np.zeros((6, 6), np.int64)
    pm[0:3, 0:3] = 1
    pm[5, 5] = 2
    img = (gm, gc, pm, np.array([0, 1, 1]), np.array([np.nan, 0.9, np.nan]))
    with pytest.raises(ValueError, match="NaN"):
        run([img])
    r = run([img], nan_score="first")
    # the NaN-scored FP ranks first: precision 1/2 at recall 1
    assert r["apr/1/50"] == pytest.approx(0.5)


def test_instance_model_convention():
    a = np.zeros((5, 5), np.uint8)
    a[0:3, 0:3] = 1
    a[2, 0:3] = 2
    b = np.zeros((5, 5), np.uint8)
    b[2:5, 2:5] = 3
    low = np.zeros((5, 5), np.uint8)
    low[4, 0] = 1
    pi = part_instances_from_predictions(np.stack([b, a, low]), [0.6, 0.8, 0.005], (5, 5), score_thresh=0.01)
    # paste order: b (0.6) then a (0.8) over it; 'low' is dropped; ids by paste order, then class
    assert pi.classes.tolist() == [0, 3, 1, 2] and pi.scores[1:].tolist() == [0.6, 0.8, 0.8]
    assert pi.id_map[2, 2] == 3  # a's class-2 row won the overlap with b
    assert pi.id_map[4, 4] == 1 and pi.id_map[4, 0] == 0
    ps = part_instances_from_predictions(
        np.stack([b, a]), [0.6, 0.8], (5, 5), part_scores=[[0.1, 0.2, 0.3], [0.7, 0.5, 0.0]]
    )
    assert ps.scores[1:].tolist() == [0.3, 0.7, 0.5]  # QANet's per-part scores


def test_gt_rule_matches_the_shared_derivation():
    rng = np.random.default_rng(0)
    sem = rng.integers(0, 20, (30, 20)).astype(np.uint8)
    sem[0] = 255
    pid = rng.integers(0, 4, (30, 20)).astype(np.uint8)
    ours = gt_part_instances(sem, pid, 20)
    inst, table = part_instances(sem, pid, 20)
    assert np.array_equal(ours.id_map, inst)
    assert ours.classes[1:].tolist() == table[:, 1].tolist()


def test_sixteen_bit_ids():
    gm = np.arange(1, 301, dtype=np.int64).reshape(15, 20)
    gc = np.concatenate([[0], np.ones(300, np.int64)])
    pm = gm.copy()
    ps = np.concatenate([[np.nan], np.linspace(1, 0.1, 300)])
    r = run([(gm, gc, pm, gc, ps)])
    assert r["apr/1/90"] == 1.0 and r["num_gt_instances"] == 300


@pytest.mark.parametrize("matching", ["pgn", "one_to_one"])
def test_matches_a_literal_implementation_on_random_sets(matching):
    samples = make_instance_samples(10, seed=5, size=(40, 30), persons=(1, 4))
    c = 20
    m = PartInstanceAPMetric(c, matching=matching)
    images = []
    for i, s in enumerate(samples):
        parts = np.stack(s.pred_parts) if s.pred_parts else None
        m.update(
            [{"parts": parts, "scores": s.pred_scores}],
            [{"semantic": s.semantic, "person_ids": s.person_ids, "image_id": s.image_id, "order": i}],
        )
        g = gt_part_instances(s.semantic, s.person_ids, c)
        p = part_instances_from_predictions(s.pred_parts, s.pred_scores, s.shape, 0.01)
        images.append((g.id_map, g.classes, p.id_map, p.classes, p.scores))
    table = apr_loop(images, c, matching)
    r = {k: float(v) for k, v in m.compute().items()}
    ours = np.array([[r[f"apr/{cls}/{int(t * 100)}"] for t in T9] for cls in range(1, c)])
    assert np.allclose(ours, table, equal_nan=True, atol=1e-12)
    assert r["apr50"] == pytest.approx(np.nanmean(table[:, 4]))
    assert 0 < r["apr_vol"] < 1.5


def test_flat_names():
    gm, gc = one_gt_image()
    m = PartInstanceAPMetric(C, class_names=["bg", "a", "b", "c"])
    m.update([{"instance_map": gm, "classes": [1], "scores": [0.5]}], [{"instance_map": gm, "classes": [1]}])
    f = m.flat(prefix="test")
    # classes b and c have neither GT nor predictions: AP 0 (sentinel-only curve), counted in the mean
    assert f["test/apr50"] == pytest.approx(1 / 3) and f["test/apr/a/90"] == 1.0 and "test/apr_vol" in f
