"""DensePose-RCNN post-processing (Güler et al. CVPR 2018 §3.1; detectron2 ``projects/DensePose``
``densepose/converters/chart_output_to_chart_result.py``): detections in input pixels → person instances in
original pixels with their per-box I/U/V charts, and the COCO-style results JSON of the DensePose
evaluators (one entry per detection: ``image_id``, ``category_id``, ``bbox`` [x, y, w, h], ``score``,
``uv`` the (3, int(h), int(w)) uint8 I / U·255 / V·255 array).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from humanparse.models.densepose.densepose_rcnn import densepose_iuv


def boxes_to_original(boxes: Tensor, affine) -> Tensor:
    """Continuous xyxy boxes in input pixels → original pixels through the inverse of the 3×3 pixel-centre
    placement ``affine`` (original → input; c' = M (c − ½) + ½), as the enclosing box of the mapped corners."""
    if boxes.numel() == 0:
        return boxes.reshape(0, 4).float()
    m = torch.as_tensor(np.asarray(affine, dtype=np.float64), dtype=torch.float64, device=boxes.device)
    inv = torch.linalg.inv(m)
    b = boxes.double()
    xs = torch.stack([b[:, 0], b[:, 2], b[:, 0], b[:, 2]], 1)
    ys = torch.stack([b[:, 1], b[:, 1], b[:, 3], b[:, 3]], 1)
    px = inv[0, 0] * (xs - 0.5) + inv[0, 1] * (ys - 0.5) + inv[0, 2] + 0.5
    py = inv[1, 0] * (xs - 0.5) + inv[1, 1] * (ys - 0.5) + inv[1, 2] + 0.5
    return torch.stack([px.min(1).values, py.min(1).values, px.max(1).values, py.max(1).values], 1).float()


def clip_boxes(boxes: Tensor, size: tuple[int, int]) -> Tensor:
    h, w = size
    out = boxes.clone()
    out[:, 0::2] = out[:, 0::2].clamp(0, w)
    out[:, 1::2] = out[:, 1::2].clamp(0, h)
    return out


def detection_instances(
    det: dict, affine, orig_size: tuple[int, int], score_threshold: float = 0.0
) -> list[dict]:
    """One image's detection dict (``boxes`` in input pixels, ``scores``, ``labels``, ``densepose_*`` maps,
    optional ``keypoints``) → the task contract's instances, in original pixels: ``score``, ``box``
    [x1, y1, x2, y2], ``label``, ``densepose`` {``iuv`` uint8 (3, h, w), ``box`` [x, y, w, h] ints} with
    w = max(int(x2 − x1), 1) (the per-box inference of :func:`densepose_iuv`), and ``keypoints`` (K, 3)
    in original pixels when the keypoint branch ran."""
    boxes = clip_boxes(boxes_to_original(det["boxes"], affine), orig_size)
    out = []
    m = torch.as_tensor(np.asarray(affine, dtype=np.float64))
    inv = torch.linalg.inv(m)
    for k in range(len(boxes)):
        score = float(det["scores"][k])
        if score < score_threshold:
            continue
        box = boxes[k]
        inst = {"score": score, "box": [float(c) for c in box], "label": int(det["labels"][k])}
        if "densepose_fine" in det:
            iuv = densepose_iuv(
                det["densepose_coarse"][k],
                det["densepose_fine"][k],
                det["densepose_u"][k],
                det["densepose_v"][k],
                box.tolist(),
            )
            x1, y1, x2, y2 = (float(c) for c in box)
            inst["densepose"] = {
                "iuv": iuv.cpu().numpy(),
                "box": [int(x1), int(y1), int(iuv.shape[2]), int(iuv.shape[1])],
            }
        if det.get("keypoints") is not None:
            kp = det["keypoints"][k].detach().double().cpu()
            xy = kp[:, :2] @ inv[:2, :2].T + inv[:2, 2]  # keypoints are pixel indices
            inst["keypoints"] = torch.cat([xy, kp[:, 2:3]], 1).numpy()
        out.append(inst)
    return out


class DensePosePostprocess:
    """Task-contract postprocess: ``outputs["detections"]`` → one ``{"instances": [...]}`` per image
    (:func:`detection_instances`), at most ``max_detections`` by score (20: the DensePose evaluators'
    maxDets)."""

    produces = frozenset({"instances", "instances.box", "instances.densepose"})

    def __init__(self, score_threshold: float = 0.0, max_detections: int = 20):
        self.score_threshold = float(score_threshold)
        self.max_detections = int(max_detections)

    def __call__(self, outputs: dict, batch: dict, ctx=None) -> list[dict]:
        preds = []
        # without placement records (a bare image batch) the input frame is the original frame
        metas = batch.get("meta") or [
            {"affine": np.eye(3), "orig_size": tuple(batch["image"].shape[-2:])}
            for _ in outputs["detections"]
        ]
        for det, meta in zip(outputs["detections"], metas):
            order = torch.argsort(det["scores"], descending=True, stable=True)[: self.max_detections]
            det = {
                k: (v[order] if torch.is_tensor(v) and v.ndim and len(v) == len(det["scores"]) else v)
                for k, v in det.items()
            }
            preds.append(
                {
                    "instances": detection_instances(
                        det, meta["affine"], tuple(meta["orig_size"]), self.score_threshold
                    )
                }
            )
        return preds


def metric_prediction(instances: Sequence[dict]) -> dict:
    """Instances of one image → the input of :class:`humanparse.metrics.densepose.DensePoseMetric`
    (``bbox`` COCO [x, y, w, h], ``scores``, ``iuv`` list)."""
    dps = [inst for inst in instances if inst.get("densepose") is not None]
    bbox = np.array(
        [[b[0], b[1], b[2] - b[0], b[3] - b[1]] for b in (inst["box"] for inst in dps)], dtype=np.float64
    ).reshape(-1, 4)
    return {
        "bbox": bbox,
        "scores": np.array([float(i["score"]) for i in dps], dtype=np.float64),
        "iuv": [np.asarray(i["densepose"]["iuv"], dtype=np.uint8) for i in dps],
    }


def results_entries(image_id: int, instances: Sequence[dict], category_id: int = 1) -> list[dict]:
    """Results-JSON entries of one image (the format ``evaluate_predictions metric=densepose`` reads; the
    ``uv`` array is written by :func:`write_results`)."""
    pred = metric_prediction(instances)
    return [
        {
            "image_id": int(image_id),
            "category_id": category_id,
            "bbox": b.tolist(),
            "score": float(s),
            "uv": uv,
        }
        for b, s, uv in zip(pred["bbox"], pred["scores"], pred["iuv"])
    ]


def write_results(path: str | Path, predictions: dict[int, Sequence[dict]], uv_format: str = "png") -> Path:
    """Write ``{image_id: instances}`` as a DensePose results JSON (``uv`` as base64 PNGs or nested lists),
    readable by ``python -m humanparse.evaluate_predictions metric=densepose``."""
    from humanparse.metrics.densepose_results import write_results as write_json

    entries = [e for iid, insts in predictions.items() for e in results_entries(iid, insts)]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_json(path, entries, uv_format=uv_format)


def load_results(path: str | Path) -> list[dict]:
    """The raw entries of a results JSON (for inspection; evaluation reads it itself)."""
    return json.loads(Path(path).read_text())
