"""Box mAP: pycocotools COCOeval(bbox) wrapped as a gathered metric."""

from __future__ import annotations

import contextlib
import io
import math

import numpy as np
import pytest
from pycocotools.cocoeval import COCOeval

from humanparse.metrics.detection import (
    BOX_KEYS,
    BoxMAP,
    boxes_from_person_maps,
    coco_box_ap,
    coco_from_images,
)


def _images():
    return [
        {
            "image_id": 3,
            "height": 200,
            "width": 200,
            "bbox": [[10, 10, 60, 120], [100, 20, 50, 100]],
            "area": [5000, 4000],
            "iscrowd": [0, 0],
        },
        {
            "image_id": 7,
            "height": 200,
            "width": 200,
            "bbox": [[0, 0, 200, 200], [20, 30, 80, 150]],
            "area": [30000, 9000],
            "iscrowd": [1, 0],
        },
    ]


DETS = [
    {"image_id": 3, "bbox": [12, 11, 58, 118], "score": 0.9},
    {"image_id": 3, "bbox": [98, 25, 50, 90], "score": 0.6},
    {"image_id": 3, "bbox": [150, 150, 30, 30], "score": 0.95},  # false positive
    {"image_id": 7, "bbox": [22, 30, 78, 150], "score": 0.8},
    {"image_id": 7, "bbox": [120, 20, 60, 60], "score": 0.7},  # on the crowd region: ignored
]


def test_equals_cocoeval_and_nan_for_missing_area_ranges():
    gt = coco_from_images(_images())
    out = coco_box_ap(gt, DETS)
    with contextlib.redirect_stdout(io.StringIO()):
        ev = COCOeval(gt, gt.loadRes([{**d, "category_id": 1} for d in DETS]), "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    assert [out[k] for k in BOX_KEYS if not math.isnan(out[k])] == [v for v in ev.stats[:6] if v != -1]
    assert math.isnan(out["bbox_maps"])  # no small GT: COCO's -1
    assert 0 < out["bbox_map"] < 1


def test_crowd_regions_absorb_detections():
    imgs = _images()
    with_fp = coco_box_ap(
        coco_from_images(imgs), DETS[:4] + [{"image_id": 3, "bbox": [120, 150, 60, 40], "score": 0.7}]
    )
    on_crowd = coco_box_ap(coco_from_images(imgs), DETS)
    assert on_crowd["bbox_map50"] > with_fp["bbox_map50"]


def test_empty_detections_and_metric_matches_function():
    out = coco_box_ap(coco_from_images(_images()), [])
    assert out["bbox_map"] == 0.0 and math.isnan(out["bbox_maps"])
    m = BoxMAP()
    for im in _images():
        mine = [d for d in DETS if d["image_id"] == im["image_id"]]
        m.update(
            [
                {
                    "bbox": np.array([d["bbox"] for d in mine], float),
                    "scores": np.array([d["score"] for d in mine]),
                }
            ],
            [im],
        )
    got = {k: v.item() for k, v in m.compute().items()}
    ref = coco_box_ap(coco_from_images(_images()), DETS)
    assert all(
        (math.isnan(ref[k]) and math.isnan(got[k])) or got[k] == pytest.approx(ref[k], abs=1e-12)
        for k in BOX_KEYS
    )


def test_person_map_convention():
    pid = np.zeros((20, 30), np.uint8)
    pid[2:5, 3:9] = 1
    pid[10:20, 0:1] = 2
    gt = boxes_from_person_maps(pid)
    assert gt["bbox"].tolist() == [[3, 2, 6, 3], [0, 10, 1, 10]]
    assert gt["area"].tolist() == [18, 10] and gt["iscrowd"].tolist() == [0, 0]
    m = BoxMAP()
    m.update(
        [{"boxes": np.array([[3, 2, 9, 5]], float), "scores": np.array([0.9])}],
        [{"image_id": 1, "height": 20, "width": 30, **gt}],
    )
    out = m.compute()
    assert out["bbox_map50"].item() == pytest.approx(
        51 / 101
    )  # recall 0.5 at precision 1: 51 of 101 recall points
