"""Box mAP: pycocotools ``COCOeval(iouType="bbox")`` directly (the COCO box AP).

Reported (fractions; NaN where COCO gives −1, i.e. an area range without ground truth): ``bbox_map``
(AP@[.50:.95], all areas, 100 detections), ``bbox_map50``, ``bbox_map75``, ``bbox_maps``, ``bbox_mapm``,
``bbox_mapl``. One category (person). Ground truth:

* DensePose-COCO: the json's person annotations with their ``area`` and standard COCO crowd handling
  (a detection matched to a crowd region is ignored; crowd regions can be matched repeatedly);
* CIHP / MHP v2.0 (project convention; no box GT is released): one box per person map, the tight extent
  [x_min, y_min, x_max − x_min + 1, y_max − y_min + 1], area = its pixel count, iscrowd = 0
  (:func:`boxes_from_person_maps`).
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Sequence

import numpy as np
import torch
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from humanparse.metrics.gather import GatheredMetric

BOX_KEYS = ("bbox_map", "bbox_map50", "bbox_map75", "bbox_maps", "bbox_mapm", "bbox_mapl")


def _np(x) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def _xywh(entry: dict) -> np.ndarray:
    if entry.get("bbox") is not None:
        return _np(entry["bbox"]).astype(np.float64).reshape(-1, 4)
    b = _np(entry["boxes"]).astype(np.float64).reshape(-1, 4)
    return np.stack([b[:, 0], b[:, 1], b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]], 1)


def boxes_from_person_maps(person_ids: np.ndarray) -> dict:
    """GT boxes of the persons of a person-id map (0 = background; the CIHP/MHP convention above):
    ``bbox`` (K, 4) xywh with inclusive extents + 1, ``area`` (K,) pixel counts, ``iscrowd`` zeros."""
    pid = np.asarray(person_ids)
    ids = [int(k) for k in np.unique(pid) if k != 0]
    boxes, areas = [], []
    for k in ids:
        ys, xs = np.nonzero(pid == k)
        boxes.append([xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1])
        areas.append(len(xs))
    return {
        "bbox": np.asarray(boxes, np.float64).reshape(-1, 4),
        "area": np.asarray(areas, np.float64),
        "iscrowd": np.zeros(len(ids), np.int64),
    }


def coco_box_ap(gt: COCO, detections: Sequence[dict]) -> dict[str, float]:
    """COCOeval(bbox) of ``detections`` (``image_id``, ``bbox`` xywh, ``score``, ``category_id``) against the
    COCO object ``gt``; the six summary numbers as fractions, −1 → NaN."""
    with contextlib.redirect_stdout(io.StringIO()):
        if detections:
            dt = gt.loadRes(
                [
                    {
                        "image_id": d["image_id"],
                        "category_id": d.get("category_id", 1),
                        "bbox": [float(v) for v in d["bbox"]],
                        "score": float(d["score"]),
                    }
                    for d in detections
                ]
            )
        else:  # pycocotools cannot load an empty result list
            dt = COCO()
            dt.dataset = {
                "images": list(gt.dataset["images"]),
                "categories": list(gt.dataset.get("categories", [])),
                "annotations": [],
            }
            dt.createIndex()
        ev = COCOeval(gt, dt, iouType="bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return {k: (float("nan") if v == -1 else float(v)) for k, v in zip(BOX_KEYS, ev.stats[:6])}


def coco_from_images(images: Sequence[dict], category_id: int = 1) -> COCO:
    """In-memory COCO ground truth from ``[{image_id, height, width, bbox (K, 4), area (K,), iscrowd (K,)}]``."""
    anns, imgs = [], []
    next_id = 1
    for im in images:
        imgs.append({"id": int(im["image_id"]), "height": int(im["height"]), "width": int(im["width"])})
        bbox = np.asarray(im["bbox"], np.float64).reshape(-1, 4)
        crowd = np.asarray(im.get("iscrowd", np.zeros(len(bbox))), np.int64).reshape(-1)
        area = np.asarray(im.get("area", bbox[:, 2] * bbox[:, 3]), np.float64).reshape(-1)
        for k in range(len(bbox)):
            anns.append(
                {
                    "id": next_id,
                    "image_id": int(im["image_id"]),
                    "category_id": category_id,
                    "bbox": bbox[k].tolist(),
                    "area": float(area[k]),
                    "iscrowd": int(crowd[k]),
                }
            )
            next_id += 1
    coco = COCO()
    coco.dataset = {
        "images": imgs,
        "annotations": anns,
        "categories": [{"id": category_id, "name": "person"}],
    }
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    return coco


class BoxMAP(GatheredMetric):
    """COCO box AP for one category, gathered to rank 0 and scored with pycocotools.

    ``update(preds, targets)``: per image, ``preds[i]``: ``boxes`` (D, 4) xyxy or ``bbox`` (D, 4) xywh and
    ``scores`` (D,); ``targets[i]``: ``image_id``, ``height``, ``width`` and either ``persons`` (reader
    person dicts: ``bbox``, ``area``, ``iscrowd``) or ``bbox`` / ``boxes`` (+ optional ``area``,
    ``iscrowd``), e.g. from :func:`boxes_from_person_maps`.
    """

    def __init__(self, category_id: int = 1, **kwargs):
        super().__init__(**kwargs)
        self.category_id = category_id

    def update(self, preds: Sequence[dict], targets: Sequence[dict]) -> None:
        if len(preds) != len(targets):
            raise ValueError(f"{len(preds)} predictions for {len(targets)} targets")
        for p, t in zip(preds, targets):
            if "persons" in t:
                persons = [q for q in t["persons"] if int(q.get("category_id", 1)) == self.category_id]
                gt = {
                    "bbox": np.array([_np(q["bbox"]).astype(np.float64) for q in persons]).reshape(-1, 4),
                    "area": np.array([float(q["area"]) for q in persons]),
                    "iscrowd": np.array([int(q["iscrowd"]) for q in persons], np.int64),
                }
            else:
                box = _xywh(t)
                gt = {
                    "bbox": box,
                    "area": _np(t.get("area", box[:, 2] * box[:, 3])).astype(np.float64),
                    "iscrowd": _np(t.get("iscrowd", np.zeros(len(box)))).astype(np.int64),
                }
            rec = {
                "image_id": int(t["image_id"]),
                "height": int(t["height"]),
                "width": int(t["width"]),
                **gt,
                "det_bbox": _xywh(p),
                "det_score": _np(p["scores"]).astype(np.float64).reshape(-1),
            }
            self.add(rec["image_id"], str(rec["image_id"]), rec)

    def score(self, records) -> dict[str, float]:
        recs = [r for _, _, r in records]
        gt = coco_from_images(recs, self.category_id)
        dets = [
            {"image_id": r["image_id"], "category_id": self.category_id, "bbox": b, "score": s}
            for r in recs
            for b, s in zip(r["det_bbox"].tolist(), r["det_score"].tolist())
        ]
        return coco_box_ap(gt, dets)
