"""AP^p, PCP, the person-level part IoU and the Parsing R-CNN semantic map (Parsing R-CNN §4)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from helpers.reference_metrics import T9, app_loop, pair_iou
from humanparse.evaluation.synthetic import make_instance_samples
from humanparse.metrics.instance import (
    InstanceParsingMetric,
    PartMap,
    mean_part_iou,
    person_part_iou,
    persons_from_person_maps,
    persons_from_semantic,
    semantic_from_instances,
)

C = 6


def block(h, w, y0, y1, x0, x1, label, base=None):
    m = np.zeros((h, w), np.uint8) if base is None else base.copy()
    m[y0:y1, x0:x1] = label
    return m


def score(images, convention="prcnn", **kw):
    """images: list of (semantic, person_ids, pred maps, scores)."""
    m = InstanceParsingMetric(C, app_convention=convention, **kw)
    for i, (sem, pid, parts, scores) in enumerate(images):
        m.update(
            [{"parts": np.stack(parts) if parts else None, "scores": np.asarray(scores, float)}],
            [{"semantic": sem, "person_ids": pid, "image_id": f"im{i}", "order": i}],
        )
    return {k: float(v) for k, v in m.compute().items()}


def test_part_iou_counts_background_over_the_whole_image():
    gt = block(10, 10, 0, 2, 0, 2, 1)
    pred = block(10, 10, 0, 2, 1, 3, 1)
    iou = person_part_iou(
        persons_from_semantic(gt, (gt > 0).astype(np.uint8), C), [PartMap.from_array(pred)]
    )[0, 0]
    assert iou[1] == pytest.approx(2 / 6)
    assert iou[0] == pytest.approx(94 / 98)  # 100 pixels: the far-away background is counted
    assert np.isnan(iou[2:]).all()  # classes absent from both: NaN, skipped by the mean
    assert mean_part_iou(iou) == pytest.approx((2 / 6 + 94 / 98) / 2)
    assert iou == pytest.approx(pair_iou(pred, gt, C), nan_ok=True)


def test_gt_255_pixels_are_not_counted():
    gt = block(6, 6, 0, 3, 0, 3, 2)
    gt[0, 0] = 255
    pid = (gt > 0).astype(np.uint8)
    p1 = block(6, 6, 0, 3, 0, 3, 2)
    p2 = p1.copy()
    p2[0, 0] = 4  # a different label on the ignored pixel
    g = persons_from_semantic(gt, pid, C)
    a, b = person_part_iou(g, [PartMap.from_array(p1), PartMap.from_array(p2)])[:, 0]
    assert np.array_equal(a, b, equal_nan=True)
    assert a[2] == 1.0


def test_strict_threshold():
    # mIoU exactly 0.5: IoU_0 = 18/24 = 0.75 and IoU_1 = 2/8 = 0.25 on a 2x13 image
    gt = block(2, 13, 0, 1, 0, 5, 1)
    pred = block(2, 13, 0, 1, 3, 8, 1)
    g = persons_from_semantic(gt, (gt > 0).astype(np.uint8), C)
    assert mean_part_iou(person_part_iou(g, [PartMap.from_array(pred)]))[0, 0] == 0.5
    r = score([(gt, (gt > 0).astype(np.uint8), [pred], [0.9])])
    assert r["app40"] == 1.0 and r["app50"] == 0.0  # 0.5 > 0.5 is false


def test_greedy_matching_has_no_fallback_and_duplicates_are_fp():
    sem = block(10, 10, 0, 4, 0, 4, 1)
    sem = block(10, 10, 5, 9, 5, 9, 2, sem)
    pid = np.where(sem == 1, 1, np.where(sem == 2, 2, 0)).astype(np.uint8)
    a = np.where(pid == 1, sem, 0).astype(np.uint8)  # exact copy of person 1
    b = a.copy()
    b[5:7, 5:9] = 2  # mostly person 1, partly person 2: its best GT is person 1 again
    r = score([(sem, pid, [a, b], [0.9, 0.8])])
    # b is an FP at 0.3 although person 2 is free and above 0.3 for it (no fallback)
    g = persons_from_semantic(sem, pid, C)
    miou = mean_part_iou(person_part_iou(g, [PartMap.from_array(b)]))[0]
    assert miou[0] > miou[1] > 0.3
    assert r["app30"] == pytest.approx(0.5)  # TP, FP with 2 GT
    assert r["pcp30"] == pytest.approx(0.5)  # person 1 fully parsed, person 2 unmatched


def test_ties_go_to_the_first_gt_person():
    p = block(6, 6, 1, 4, 1, 4, 3)
    g = persons_from_person_maps([p, p.copy()], C)  # two identical (overlapping) GT persons
    m = InstanceParsingMetric(C)
    m.update(
        [{"parts": np.stack([p, p]), "scores": np.array([0.9, 0.8])}],
        [{"persons": [p, p.copy()], "image_id": "a", "order": 0}],
    )
    rec = m._records[0][2]
    assert rec["jstar"].tolist() == [0, 0]  # both pick the first on the tie
    assert len(g.layers) == 2  # overlapping persons go to separate layers
    r = {k: float(v) for k, v in m.compute().items()}
    assert r["app50"] == pytest.approx(0.5)  # the second one is an FP, not matched to the twin


def test_prediction_on_an_image_without_gt_is_a_false_positive():
    sem = block(8, 8, 0, 4, 0, 4, 1)
    pid = (sem > 0).astype(np.uint8)
    empty = np.zeros((8, 8), np.uint8)
    r = score([(sem, pid, [sem.copy()], [0.5]), (empty, empty, [sem.copy()], [0.9])])
    assert r["app50"] == pytest.approx(0.5)  # FP first (higher score), then the TP
    assert r["num_gt_persons"] == 1


def test_score_filter_per_convention():
    sem = block(8, 8, 0, 4, 0, 4, 1)
    pid = (sem > 0).astype(np.uint8)
    tiny = [(sem, pid, [sem.copy()], [0.0005])]
    assert score(tiny, "prcnn")["app50"] == 0.0  # < 0.001: skipped
    assert score(tiny, "mhp_official")["app50"] == 1.0  # no filter
    small = [(sem, pid, [sem.copy()], [0.005])]
    assert score(small, "prcnn")["app50"] == 1.0
    assert score(small, "pet")["app50"] == 0.0  # < 0.01
    assert score(small, "prcnn", score_thresh=0.01)["app50"] == 0.0


def test_empty_gt_persons_counted_or_dropped():
    sem = block(8, 8, 0, 4, 0, 4, 1)
    pid = (sem > 0).astype(np.uint8)
    pid[6:8, 6:8] = 2  # person 2 has only background labels: no foreground
    imgs = [(sem, pid, [np.where(pid == 1, sem, 0).astype(np.uint8)], [0.9])]
    pr = score(imgs, "prcnn")
    mh = score(imgs, "mhp_official")
    assert (
        pr["num_gt_persons"] == 2 and pr["app50"] == pytest.approx(0.5) and pr["pcp50"] == pytest.approx(0.5)
    )
    assert mh["num_gt_persons"] == 1 and mh["app50"] == 1.0 and mh["pcp50"] == 1.0
    # the MHP code drops only maps without any non-zero pixel: a person labelled 255 only is kept
    a = block(8, 8, 0, 4, 0, 4, 1)
    only_ignore = block(8, 8, 5, 8, 5, 8, 255)
    g = persons_from_person_maps([a, only_ignore, np.zeros((8, 8), np.uint8)], C, drop_empty=True)
    assert g.count == 2


def test_pcp_counts_gt_parts_above_the_threshold():
    gt = block(8, 8, 0, 5, 0, 2, 1)
    gt[4, 1] = 2  # a 1-pixel part
    pred = gt.copy()
    pred[4, 1] = 1  # the small part is labelled as part 1
    r = score([(gt, (gt > 0).astype(np.uint8), [pred], [0.9])])
    g = persons_from_semantic(gt, (gt > 0).astype(np.uint8), C)
    iou = person_part_iou(g, [PartMap.from_array(pred)])[0, 0]
    assert iou[:3] == pytest.approx([54 / 54, 9 / 10, 0.0])  # background, part 1, the missed part 2
    assert mean_part_iou(iou) == pytest.approx(1.9 / 3)
    assert r["pcp50"] == pytest.approx(0.5)  # 1 of the 2 GT part labels has IoU > 0.5
    assert r["pcp10"] == pytest.approx(0.5)
    assert r["app70"] == 0.0 and r["pcp70"] == 0.0  # not a TP at 0.7: counts 0


def test_no_predictions_and_no_gt():
    sem = block(8, 8, 0, 4, 0, 4, 1)
    pid = (sem > 0).astype(np.uint8)
    r = score([(sem, pid, [], [])])
    assert all(r[f"app{int(t * 100)}"] == 0.0 and r[f"pcp{int(t * 100)}"] == 0.0 for t in T9)
    empty = np.zeros((8, 8), np.uint8)
    with pytest.warns(UserWarning, match="no GT person"):
        r = score([(empty, empty, [sem], [0.9])])
    assert math.isnan(r["app50"]) and math.isnan(r["pcp50"]) and math.isnan(r["app_vol"])


def test_predicted_label_out_of_range_is_an_error():
    sem = block(8, 8, 0, 4, 0, 4, 1)
    with pytest.raises(ValueError, match="outside 0..5"):
        score([(sem, (sem > 0).astype(np.uint8), [block(8, 8, 0, 2, 0, 2, 7)], [0.9])])


def test_semantic_paste_rule_and_empty_images():
    a = block(6, 6, 0, 4, 0, 4, 1)
    b = block(6, 6, 2, 6, 2, 6, 2)
    low = block(6, 6, 0, 1, 5, 6, 3)
    sem = semantic_from_instances(np.stack([b, a, low]), [0.5, 0.9, 0.2], (6, 6), semseg_score_thresh=0.3)
    assert sem[3, 3] == 1  # the higher score wins the overlap
    assert sem[5, 5] == 2 and sem[0, 5] == 0  # b elsewhere; the 0.2 instance is below the 0.3 threshold
    gt = a.copy()
    pid = (gt > 0).astype(np.uint8)
    imgs = [(gt, pid, [a], [0.9]), (gt, pid, [], [])]
    fixed = score(imgs)
    skip = score(imgs, prcnn_skip_empty=True)
    assert skip["pixel_acc"] == 1.0 and skip["semantic_images"] == 1
    assert fixed["pixel_acc"] == pytest.approx((36 + 20) / 72) and fixed["semantic_images"] == 2


def test_cropped_maps_with_boxes_equal_full_maps():
    sem = block(9, 7, 1, 6, 1, 5, 2)
    pid = (sem > 0).astype(np.uint8)
    full = block(9, 7, 2, 7, 1, 4, 2)
    crop = full[2:7, 1:4]
    m1, m2 = InstanceParsingMetric(C), InstanceParsingMetric(C)
    t = [{"semantic": sem, "person_ids": pid, "image_id": "x", "order": 0}]
    m1.update([{"parts": full[None], "scores": np.array([0.7])}], t)
    m2.update([{"parts": [crop], "boxes": np.array([[1, 2, 4, 7]]), "scores": np.array([0.7])}], t)
    assert m1.compute()["app_vol"] == m2.compute()["app_vol"]
    with pytest.raises(ValueError, match="leaves"):
        InstanceParsingMetric(C).update(
            [{"parts": [crop], "boxes": np.array([[5, 2, 8, 7]]), "scores": [0.7]}], t
        )


@pytest.mark.parametrize("convention", ["prcnn", "mhp_official", "pet"])
def test_matches_a_literal_implementation_on_random_sets(convention):
    samples = make_instance_samples(12, seed=3, size=(40, 30), persons=(1, 4), low_score=0.2)
    c = 20
    m = InstanceParsingMetric(c, app_convention=convention)
    m_maps = InstanceParsingMetric(c, app_convention=convention)
    images = []
    for i, s in enumerate(samples):
        ids = [k for k in np.unique(s.person_ids) if k > 0]
        gmaps = [np.where(s.person_ids == k, s.semantic, 0).astype(np.uint8) for k in ids]
        parts = np.stack(s.pred_parts) if s.pred_parts else None
        m.update(
            [{"parts": parts, "scores": s.pred_scores}],
            [{"semantic": s.semantic, "person_ids": s.person_ids, "image_id": s.image_id, "order": i}],
        )
        m_maps.update(
            [{"parts": parts, "scores": s.pred_scores}],
            [{"persons": gmaps, "semantic": s.semantic, "image_id": s.image_id, "order": i}],
        )
        images.append((gmaps, s.pred_parts, s.pred_scores))
    aps, pcps = app_loop(images, c, convention)
    r = {k: float(v) for k, v in m.compute().items()}
    r2 = {k: float(v) for k, v in m_maps.compute().items()}
    assert [r[f"app{int(t * 100)}"] for t in T9] == pytest.approx(aps, abs=1e-12)
    assert [r[f"pcp{int(t * 100)}"] for t in T9] == pytest.approx(pcps, abs=1e-12)
    assert r["app_vol"] == pytest.approx(np.mean(aps), abs=1e-12)
    assert 0 < r["app50"] < 1
    for k in ("app50", "app_vol", "pcp50", "miou"):
        assert r[k] == r2[k]


def test_pair_ious_match_per_pair_confusions_for_every_gt_form():
    rng = np.random.default_rng(1)
    for _ in range(40):
        h, w = rng.integers(3, 12, 2)
        n_gt, n_pred = rng.integers(0, 4), rng.integers(0, 4)
        pid = rng.integers(0, n_gt + 1, (h, w)).astype(np.uint8)
        sem = rng.integers(0, C, (h, w)).astype(np.uint8)
        sem[rng.random((h, w)) < 0.1] = 255
        preds = [np.where(rng.random((h, w)) < 0.5, rng.integers(0, C, (h, w)), 0) for _ in range(n_pred)]
        sp = [PartMap.from_array(p) for p in preds]
        ids = [k for k in np.unique(pid) if k > 0]
        iou = person_part_iou(persons_from_semantic(sem, pid, C), sp)
        iou16 = person_part_iou(persons_from_semantic(sem, pid.astype(np.uint16) * 1000, C), sp)
        assert np.array_equal(iou, iou16, equal_nan=True)
        # overlapping per-person maps (MHP): several layers
        maps = [
            np.where(rng.random((h, w)) < 0.4, rng.integers(0, C, (h, w)), 0).astype(np.uint8) for _ in ids
        ]
        iou_maps = person_part_iou(persons_from_person_maps(maps, C), sp)
        for d, p in enumerate(preds):
            for j, k in enumerate(ids):
                ref = pair_iou(p, np.where(pid == k, sem, 0), C)
                assert np.allclose(iou[d, j], ref, equal_nan=True)
                assert np.allclose(iou_maps[d, j], pair_iou(p, maps[j], C), equal_nan=True)


def test_int64_tensors_from_the_data_pipeline_give_the_same_numbers():
    import torch

    samples = make_instance_samples(4, seed=9, size=(40, 30), persons=(1, 4))
    m_np, m_t = InstanceParsingMetric(20), InstanceParsingMetric(20)
    for i, s in enumerate(samples):
        parts = np.stack(s.pred_parts) if s.pred_parts else np.zeros((0,) + s.shape, np.uint8)
        m_np.update(
            [{"parts": parts, "scores": s.pred_scores}],
            [{"semantic": s.semantic, "person_ids": s.person_ids, "image_id": s.image_id, "order": i}],
        )
        m_t.update(
            [{"parts": torch.from_numpy(parts.astype(np.int64)), "scores": torch.tensor(s.pred_scores)}],
            [
                {
                    "semantic": torch.from_numpy(s.semantic.astype(np.int64)),
                    "person_ids": torch.from_numpy(s.person_ids.astype(np.int64)),
                    "meta": {"id": s.image_id, "index": i},
                }
            ],
        )
    a, b = m_np.compute(), m_t.compute()
    assert all(torch.equal(a[k], b[k]) or (a[k].isnan() and b[k].isnan()) for k in a)


def test_generic_paths_for_many_classes_and_persons():
    # 130 classes: codes do not fit in a byte, so the bincount path runs; 14 CIHP persons with 20 classes
    # need two byte-sized layers
    rng = np.random.default_rng(2)
    for c, persons in ((130, 3), (20, 14)):
        h, w = 12, 14
        pid = rng.integers(0, persons + 1, (h, w)).astype(np.uint8)
        sem = rng.integers(0, c, (h, w)).astype(np.uint8)
        preds = [
            np.where(rng.random((h, w)) < 0.5, rng.integers(0, c, (h, w)), 0).astype(np.uint8)
            for _ in range(3)
        ]
        g = persons_from_semantic(sem, pid, c)
        assert len(g.layers) == (1 if c == 130 else 2)
        iou = person_part_iou(g, [PartMap.from_array(p) for p in preds])
        for d, p in enumerate(preds):
            for j, k in enumerate([k for k in np.unique(pid) if k > 0]):
                assert np.allclose(iou[d, j], pair_iou(p, np.where(pid == k, sem, 0), c), equal_nan=True)
