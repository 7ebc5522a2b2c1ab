"""DensePose metrics (detectron2's GPS/GPSm evaluation, the paper's RCP): hand-constructed cases for
every rule and quirk, RCP, and a two-process gloo run that equals the one-process numbers."""

from __future__ import annotations

import json
import math
import os
import socket

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from humanparse.data.densepose_coco import load_gt_images
from humanparse.data.densepose_surface import BodySurface
from humanparse.metrics.densepose import (
    DensePoseMetric,
    accumulate,
    image_record,
    iou_thresholds,
    match_images,
    prepare_gt_images,
    rcp_scores,
    score_records,
    summarize,
)
from humanparse.metrics.detection import BoxMAP
from humanparse.synthetic.densepose import synthetic_eval_set

# --- a tiny hand-made surface: torso back (1) and front (2) share geodesic vertex 2 (a seam) -----------
UV = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 0.0], [1.0, 1.0], [0.0, 0.0], [1.0, 1.0]])
PART = np.array([1, 1, 2, 2, 3, 3])
GEO = np.array([1, 2, 2, 3, 4, 5])
D = np.array(
    [
        [0.0, 0.1, 0.3, 1.0, 1.05],
        [0.1, 0.0, 0.2, 0.9, 0.95],
        [0.3, 0.2, 0.0, 0.8, 0.85],
        [1.0, 0.9, 0.8, 0.0, 0.05],
        [1.05, 0.95, 0.85, 0.05, 0.0],
    ],
    dtype=np.float32,
)
SURF = BodySurface(UV, PART, GEO, D, source="tiny")
TORSO_K, HAND_K = 0.351, 0.107


def person(bbox, *, pts=None, area=None, crowd=0, coarse=None, mask=None, pid=1):
    """A reader-format person; ``pts`` = list of (dp_x, dp_y, I, U, V) or None (no dp_x: ignored)."""
    has = pts is not None
    arr = np.asarray(pts if has else np.zeros((0, 5)), dtype=np.float64).reshape(-1, 5)
    return {
        "id": pid,
        "category_id": 1,
        "bbox": np.asarray(bbox, np.float64),
        "area": float(area or bbox[2] * bbox[3]),
        "iscrowd": crowd,
        "mask": mask,
        "segmentation": None,
        "has_dp": has,
        "dp": {
            "x": arr[:, 0],
            "y": arr[:, 1],
            "I": arr[:, 2].astype(np.int64),
            "U": arr[:, 3],
            "V": arr[:, 4],
            "coarse": coarse,
        },
    }


def image(persons, h=100, w=100, image_id=1):
    return {"image_id": image_id, "height": h, "width": w, "persons": persons}


def iuv(h, w, cells=()):
    a = np.zeros((3, h, w), np.uint8)
    for (r, c), val in cells:
        a[:, r, c] = val
    return a


def record(gt_image, dets, surface=SURF, **kw):
    gt = prepare_gt_images([gt_image], surface, kw.pop("kappa", "per_part"))[0]
    bbox = np.array([d[0] for d in dets], np.float64).reshape(-1, 4)
    det = {"bbox": bbox, "scores": np.array([d[1] for d in dets], np.float64), "iuv": [d[2] for d in dets]}
    return image_record(gt, det, surface, **kw)


GT_BOX = [10.0, 20.0, 51.0, 51.0]  # /255 maps dp_x to dp_x/5 exactly
POINTS = [
    (0, 0, 1, 0.1, 0.0),  # -> geo 1; prediction at (0, 0): I=1, U=V=0 -> geo 1 (δ = 0)
    (250, 250, 1, 0.9, 0.1),  # -> geo 2; prediction at (50, 50): I=2, U=V=1 -> geo 3 (δ = 0.2)
    (100, 100, 3, 0.0, 0.1),  # -> geo 4; prediction at (20, 20): background (δ = ∞)
    (255, 0, 1, 0.1, 0.0),  # /255: column 51 is outside the 51-px box (with /256 it would be column 50)
]
PRED = iuv(51, 51, [((0, 0), (1, 0, 0)), ((50, 50), (2, 255, 255)), ((0, 50), (1, 0, 0))])


def test_gps_by_hand_per_part_and_fixed_kappa_with_255_mapping():
    gt_img = image([person(GT_BOX, pts=POINTS)])
    r = record(gt_img, [(GT_BOX, 0.9, PRED)])
    d = float(np.float32(0.2))  # distances are stored as float32
    t = math.exp(-(d**2) / (2 * TORSO_K**2))
    assert r["sims"]["gps"][0, 0] == pytest.approx((1 + t + 0 + 0) / 4, abs=1e-12)
    rf = record(gt_img, [(GT_BOX, 0.9, PRED)], kappa="fixed")
    assert rf["sims"]["gps"][0, 0] == pytest.approx((1 + math.exp(-(d**2) / (2 * 0.255**2))) / 4, abs=1e-12)
    assert rf["sims"]["gps"][0, 0] != r["sims"]["gps"][0, 0]
    # the same prediction in a box 0.2 px to the right: point 0 at column trunc(−0.2) = 0 stays on its pixel,
    # point 1 moves to column 49 (background), point 3 to column trunc(50.8) = 50, now inside and correct
    r2 = record(gt_img, [([10.2, 20.0, 51.0, 51.0], 0.9, PRED)])
    assert r2["sims"]["gps"][0, 0] == pytest.approx((1 + 0 + 0 + 1) / 4, abs=1e-12)
    # 1 px to the right: point 0 falls outside (column −1)
    r3 = record(gt_img, [([11.0, 20.0, 51.0, 51.0], 0.9, PRED)])
    assert r3["sims"]["gps"][0, 0] == pytest.approx(1 / 4, abs=1e-12)


def test_quantised_uv_and_seams():
    gt_img = image([person(GT_BOX, pts=[(0, 0, 1, 0.0, 0.0)])])  # geo 1
    at = lambda u8: record(gt_img, [(GT_BOX, 0.9, iuv(51, 51, [((0, 0), (1, u8, 0))]))])["sims"]["gps"][0, 0]  # noqa: E731
    assert at(127) == 1.0  # 127/255 < 0.5: nearest vertex U = 0 (geo 1)
    assert at(128) == pytest.approx(math.exp(-0.01 / (2 * TORSO_K**2)))  # 128/255 > 0.5: U = 1 (geo 2)
    # chart seam: a GT point on the front chart at U≈0 and a prediction on the back chart at U=1 share geo 2
    seam = image([person(GT_BOX, pts=[(0, 0, 2, 0.05, 0.0)])])
    assert record(seam, [(GT_BOX, 0.9, iuv(51, 51, [((0, 0), (1, 255, 0))]))])["sims"]["gps"][0, 0] == 1.0


def test_gpsm_and_mask_iou_with_dp_masks_segmentation_and_crowd():
    coarse = np.zeros((256, 256), np.uint8)
    coarse[:, :128] = 1  # left half of the box
    left = iuv(51, 51)
    left[0, :, :] = 1
    gt_img = image([person(GT_BOX, pts=[(0, 0, 1, 0.0, 0.0)], coarse=coarse)])
    r = record(gt_img, [(GT_BOX, 0.9, PRED), (GT_BOX, 0.8, left)], modes=("gps", "gpsm", "iou"))
    # prediction 1 covers 3 pixels, the GT mask (zoomed) the left half of the box
    m = np.zeros((51, 51), bool)
    from scipy.ndimage import zoom

    m = zoom(np.minimum(coarse, 1).astype(np.float64), (51 / 256, 51 / 256), order=1, prefilter=False) > 0.5
    inter = int(m.sum())
    assert r["sims"]["iou"][1, 0] == pytest.approx(inter / (51 * 51))
    assert np.allclose(r["sims"]["gpsm"], np.sqrt(r["sims"]["gps"] * r["sims"]["iou"]))
    # no dp_masks: the COCO segmentation mask; crowd: intersection / detection area
    seg = np.zeros((100, 100), bool)
    seg[20:71, 10:35] = True
    crowd = image([person(GT_BOX, mask=seg, crowd=1)])
    rc = record(crowd, [(GT_BOX, 0.9, left)], modes=("iou",))
    assert rc["sims"]["iou"][0, 0] == pytest.approx(seg[20:71, 10:61].sum() / (51 * 51))
    plain = image([person(GT_BOX, mask=seg)])
    rp = record(plain, [(GT_BOX, 0.9, left)], modes=("iou",))
    assert rp["sims"]["iou"][0, 0] == pytest.approx(seg.sum() / (51 * 51))


# --- matching rules on hand-made records --------------------------------------------------------------
def rec(image_id, sims, *, ignore=None, crowd=None, area=None, scores=None, box_iou=None, dt_area=None):
    """A per-image record as :func:`image_record` makes it; ``sims`` is the (D, G) similarity matrix."""
    sims = np.asarray(sims, np.float64)
    d, g = sims.shape
    return {
        "image_id": image_id,
        "gt_area": np.full(g, 10000.0) if area is None else np.asarray(area, float),
        "gt_crowd": np.zeros(g, bool) if crowd is None else np.asarray(crowd, bool),
        "gt_ignore": np.zeros(g, bool) if ignore is None else np.asarray(ignore, bool),
        "gt_points": np.ones(g, np.int32),
        "point_parts": np.ones(g, np.int8),
        "dt_score": np.linspace(0.9, 0.5, d) if scores is None else np.asarray(scores, float),
        "dt_area": np.full(d, 10000.0) if dt_area is None else np.asarray(dt_area, float),
        "box_iou": np.zeros((d, g)) if box_iou is None else np.asarray(box_iou, float),
        "sims": {"gps": sims},
    }


def ap(records, **kw):
    return score_records(records, modes=("gps",), rcp=False, **kw)


def test_threshold_is_inclusive_and_ties_go_to_the_later_gt():
    assert ap([rec(1, [[0.5]])])["dp_ap50"] == pytest.approx(1.0)
    assert ap([rec(1, [[0.5]])])["dp_ap"] == pytest.approx(0.1)
    assert ap([rec(1, [[0.5 - 1e-12]])])["dp_ap"] == 0.0
    m = match_images([rec(1, [[0.7, 0.7]])], "gps", iou_thresholds())
    assert m.dtm[0][0, 0, 0] == 1 and m.gtm[0][0, 0, 1] == 0 and m.gtm[0][0, 0, 0] == -1


def test_non_ignored_gts_are_preferred_over_better_ignored_ones():
    m = match_images([rec(1, [[0.9, 0.6]], ignore=[True, False])], "gps", iou_thresholds())
    assert m.dtm[0][0, 0, 0] == 1 and not m.dt_ignore[0][0, 0, 0]  # TP on the non-ignored GT at t = 0.5
    assert m.dtm[0][0, 3, 0] == 0 and m.dt_ignore[0][0, 3, 0]  # t = 0.65: only the ignored one qualifies
    assert ap([rec(1, [[0.9, 0.6]], ignore=[True, False])])["dp_ap50"] == pytest.approx(1.0)


def test_ignored_gt_and_all_ignored_images_never_give_false_positives():
    good = rec(1, [[0.99]])
    # a detection on a GT without points, caught by the second pass (box IoU >= 0.8): not an FP
    assert ap([good, rec(2, [[0.0, 0.0]], ignore=[True, False], box_iou=[[0.85, 0.0]], scores=[0.95])])[
        "dp_ap"
    ] == pytest.approx(ap([good, rec(2, np.zeros((0, 2)), ignore=[True, False], scores=[])])["dp_ap"])
    # ... but an FP when the box IoU is below 0.8
    assert (
        ap([good, rec(2, [[0.0, 0.0]], ignore=[True, False], box_iou=[[0.75, 0.0]], scores=[0.95])])[
            "dp_ap50"
        ]
        < 1.0
    )
    # image whose GTs are all ignored, or that has none: its detections are ignored whatever their boxes
    all_ig = rec(3, [[0.0]], ignore=[True], box_iou=[[0.1]], scores=[0.99])
    no_gt = rec(4, np.zeros((2, 0)), scores=[0.99, 0.98])
    assert ap([good, all_ig, no_gt])["dp_ap"] == ap([good])["dp_ap"] == pytest.approx(1.0)


def test_second_pass_side_effect_turns_an_earlier_tp_into_an_ignored_detection():
    only_a = rec(1, [[0.72]], box_iou=[[0.6]], scores=[0.9])
    assert ap([only_a])["dp_ap"] == pytest.approx(0.5)  # TP at 0.50 ... 0.70
    with_b = rec(1, [[0.72, 0.0]], ignore=[False, True], box_iou=[[0.6, 0.9]], scores=[0.9])
    out = ap([with_b])
    assert out["dp_ap"] == 0.0 and out["dp_ar"] == 0.0
    m = match_images([with_b], "gps", iou_thresholds())
    assert m.dt_ignore[0][0].all() and m.dtm[0][0, -1, 0] == 1 and m.dtm[0][0, 0, 0] == 0


def test_crowd_gt_with_points_can_be_matched_twice_and_area_ranges():
    m = match_images([rec(1, [[0.9], [0.9]], crowd=[True])], "gps", iou_thresholds())
    assert m.dtm[0][0, 0].tolist() == [0, 0] and not m.dt_ignore[0][0, 0].any()
    out = ap([rec(1, [[0.99]], area=[50 * 50], dt_area=[50 * 50])])
    assert out["dp_apm"] == pytest.approx(1.0) and math.isnan(out["dp_apl"]) and math.isnan(out["dp_arl"])
    # an unmatched detection outside the area range is ignored in that range
    out = ap(
        [
            rec(
                1,
                [[0.99, 0.0], [0.0, 0.0]],
                area=[50 * 50, 200 * 200],
                dt_area=[50 * 50, 200 * 200],
                scores=[0.5, 0.9],
            )
        ]
    )
    assert out["dp_apm"] == pytest.approx(1.0) and out["dp_apl"] == 0.0


def test_gt_with_an_empty_dp_x_list_is_not_ignored_and_counts_as_a_miss():
    gt_img = image([person(GT_BOX, pts=[])])
    r = record(gt_img, [(GT_BOX, 0.9, PRED)])
    assert not r["gt_ignore"][0] and r["sims"]["gps"][0, 0] == 0.0
    out = ap([r])
    assert out["dp_ap"] == 0.0 and out["dp_ar"] == 0.0  # a miss, and the detection is a false positive
    ignored = record(image([person(GT_BOX, pts=None)]), [(GT_BOX, 0.9, PRED)])
    assert ignored["gt_ignore"][0] and math.isnan(ap([ignored])["dp_ap"])  # no valid GT at all


def test_empty_predictions_and_empty_ground_truth():
    out = ap([rec(1, np.zeros((0, 2)), scores=[], area=[50 * 50, 50 * 50])])
    assert out["dp_ap"] == 0.0 and out["dp_ar"] == 0.0 and out["dp_apm"] == 0.0 and math.isnan(out["dp_apl"])
    out = ap([rec(1, np.zeros((3, 0)), scores=[0.9, 0.8, 0.7])])
    assert all(math.isnan(v) for v in out.values())
    assert all(math.isnan(v) for v in ap([]).values())


def test_min_threshold_adds_ap20_ap30_ap40_and_changes_the_threshold_list():
    out = ap([rec(1, [[0.35]])], min_threshold=0.2)
    assert len(iou_thresholds(0.2)) == 16
    assert (
        out["dp_ap20"] == pytest.approx(1.0)
        and out["dp_ap30"] == pytest.approx(1.0)
        and out["dp_ap40"] == 0.0
        and out["dp_ap50"] == 0.0
    )
    assert out["dp_ap"] == pytest.approx(3 / 16)  # 0.20, 0.25, 0.30 of 16 thresholds, as in D2
    assert "dp_ap20" not in ap([rec(1, [[0.35]])])


def test_top_20_detections_per_image():
    gt_img = image([person(GT_BOX, pts=[(0, 0, 1, 0.0, 0.0)])])
    junk = [([60.0, 60.0, 20.0, 20.0], 0.9, iuv(20, 20)) for _ in range(20)]
    good = (GT_BOX, 0.1, iuv(51, 51, [((0, 0), (1, 0, 0))]))
    r = record(gt_img, junk + [good])
    assert len(r["dt_score"]) == 20 and r["sims"]["gps"].max() == 0.0
    assert ap([r])["dp_ar"] == 0.0
    best = (GT_BOX, 0.95, good[2])
    assert ap([record(gt_img, junk + [best])])["dp_ap"] == pytest.approx(1.0)


def test_summaries_from_hand_computed_precision():
    thr = iou_thresholds()
    recs = [rec(1, [[0.0, 0.0], [0.99, 0.0], [0.0, 0.0]], scores=[0.95, 0.9, 0.8])]
    m = match_images(recs, "gps", thr)
    prec, recall = accumulate(recs, m, len(thr))
    # order by score: FP (0.95), TP (0.9), FP (0.8); 2 GTs -> recall 0.5 with precision 1/2
    assert (
        np.allclose(recall[:, 0], 0.5)
        and np.allclose(prec[:, :51, 0], 0.5)
        and np.allclose(prec[:, 51:, 0], 0.0)
    )
    s = summarize(prec, recall, thr)
    assert s["ap"] == pytest.approx(51 * 0.5 / 101) and s["ar"] == 0.5


# --- RCP ----------------------------------------------------------------------------------------------
def test_rcp_auc_closed_form_and_curve():
    e = np.array([0.0, 0.05, 0.2, np.inf])
    out = rcp_scores(e)
    assert out["dp_auc10"] == pytest.approx((1 + 0.5 + 0 + 0) / 4)
    assert out["dp_auc30"] == pytest.approx((1 + (1 - 0.05 / 0.3) + (1 - 0.2 / 0.3) + 0) / 4)
    assert out["dp_rcp/01cm"] == 0.25 and out["dp_rcp/06cm"] == 0.5 and out["dp_rcp/21cm"] == 0.75
    # the AUC equals the integral of the RCP curve (fine numerical integration)
    t = np.linspace(0, 0.3, 30001)
    curve = (e[None, :] < t[:, None]).mean(1)
    assert out["dp_auc30"] == pytest.approx(np.trapezoid(curve, t) / 0.3, abs=1e-4)
    assert math.isnan(rcp_scores(np.zeros(0))["dp_auc10"])
    per = rcp_scores(np.array([0.0, np.inf]), parts=np.array([1, 3]), per_part=True)
    assert per["dp_auc10/torso"] == 1.0 and per["dp_auc10/right_hand"] == 0.0


def test_rcp_single_and_multi_person():
    gt_img = image([person(GT_BOX, pts=POINTS[:3])])
    far = ([60.0, 60.0, 30.0, 30.0], 0.99, iuv(30, 30))
    det = (GT_BOX, 0.9, PRED)
    r = record(gt_img, [far, det], keep_errors=True)
    single = score_records(
        [r], modes=("gps",), rcp_setting="single_person"
    )  # the detection repeating the GT box
    assert single["dp_auc30"] == pytest.approx((1 + (1 - 0.2 / 0.3) + 0) / 3)
    multi = score_records(
        [r], modes=("gps",), rcp_setting="multi_person"
    )  # the matched detection (GPS ≈ 0.63)
    assert multi["dp_auc30"] == pytest.approx(single["dp_auc30"])
    # explicit GT-box predictions win; a GT without any counts as all-wrong
    r2 = record(gt_img, [far, det], keep_errors=True, gt_iuv=[iuv(51, 51)])
    assert score_records([r2], modes=("gps",))["dp_auc30"] == 0.0
    r3 = record(gt_img, [far], keep_errors=True)
    assert r3["single_missing"] == 1 and score_records([r3], modes=("gps",))["dp_auc10"] == 0.0
    assert score_records([r3], modes=("gps",), rcp_setting="multi_person")["dp_auc10"] == 0.0


def test_metric_accepts_tensors_and_xyxy_boxes():
    m = DensePoseMetric(SURF, modes=("gps",))
    box = torch.tensor([[10.0, 20.0, 61.0, 71.0]])
    good = iuv(51, 51, [((0, 0), (1, 0, 0)), ((50, 50), (1, 255, 0)), ((20, 20), (3, 0, 0))])  # GPS 3/4
    m.update(
        [{"boxes": box, "scores": torch.tensor([0.9]), "iuv": [torch.from_numpy(good)]}],
        [image([person(GT_BOX, pts=POINTS)])],
    )
    out = m.compute()
    assert out["dp_ap50"].item() == pytest.approx(1.0) and "dp_auc10" in out
    with pytest.raises(ValueError, match="needs \\[3, 51, 51\\]"):
        m.update(
            [{"bbox": [GT_BOX], "scores": [0.9], "iuv": [PRED[:, :40]]}],
            [image([person(GT_BOX, pts=POINTS)])],
        )


# --- DDP ------------------------------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank, port, surface, images, preds, shards, out):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    torch.set_num_threads(1)
    dp = DensePoseMetric(surface, modes=("gps", "gpsm"), rcp_setting="multi_person")
    box = BoxMAP()
    idx = shards[rank]
    if idx:
        dp.update([preds[i] for i in idx], [images[i] for i in idx])
        box.update([preds[i] for i in idx], [images[i] for i in idx])
    res = {
        **{k: v.item() for k, v in dp.compute().items()},
        **{k: v.item() for k, v in box.compute().items()},
    }
    out[rank] = res
    dist.barrier()
    dist.destroy_process_group()


@pytest.fixture(scope="module")
def synthetic_set(tmp_path_factory):
    gt, dets = synthetic_eval_set(6, (64, 96), seed=5, uv_noise=0.05)
    path = tmp_path_factory.mktemp("dpeval") / "gt.json"
    path.write_text(json.dumps(gt))
    images = load_gt_images(path)
    preds = []
    for im in images:
        mine = [d for d in dets if d["image_id"] == im["image_id"]]
        preds.append(
            {
                "bbox": np.array([d["bbox"] for d in mine]).reshape(-1, 4),
                "scores": np.array([d["score"] for d in mine]),
                "iuv": [d["uv"] for d in mine],
            }
        )
    return images, preds


@pytest.mark.slow
def test_two_process_gloo_equals_one_process(synthetic_set):
    images, preds = synthetic_set
    single = DensePoseMetric("synthetic", modes=("gps", "gpsm"), rcp_setting="multi_person")
    single.update(preds, images)
    box = BoxMAP()
    box.update(preds, images)
    ref = {
        **{k: v.item() for k, v in single.compute().items()},
        **{k: v.item() for k, v in box.compute().items()},
    }
    assert 0 < ref["dp_ap"] < 1 and 0 < ref["bbox_map"] <= 1
    shards = [[0, 1, 2, 3, 4], [5]]  # uneven
    with mp.Manager() as manager:
        out = manager.dict()
        # fork: the children inherit the imported modules and the built surface (spawn re-imports everything)
        mp.start_processes(
            _worker,
            args=(_free_port(), single.surface, images, preds, shards, out),
            nprocs=2,
            join=True,
            start_method="fork",
        )
        results = dict(out)
    for rank in (0, 1):
        assert results[rank].keys() == ref.keys()
        for k, v in ref.items():
            assert (math.isnan(v) and math.isnan(results[rank][k])) or results[rank][k] == v, (rank, k)
