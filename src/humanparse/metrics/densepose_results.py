"""Standalone DensePose evaluation of a COCO-style results file (``metric=densepose`` of
:mod:`humanparse.evaluate_predictions`).

``python -m humanparse.evaluate_predictions metric=densepose results=<results.json> gt=<densepose json>
eval_data=<dir>|synthetic [kappa=per_part|fixed] [modes=[gps,gpsm]] [min_threshold=0.5] [rcp=true]
[rcp_setting=single_person|multi_person] [rcp_results=<json>] [bbox=true] [output=<metrics.json>]``

Results: a JSON list, one entry per detection, as the original DensePose evaluator reads it
(detectron2 DensePose's results format): ``image_id``, ``category_id`` (1 = person; others are skipped),
``bbox`` [x, y, w, h] (image pixels), ``score`` and ``uv``: the I/U/V maps at the detection's integer
box size as a 3 × int(h) × int(w) uint8 array (part index 0-24; U·255; V·255), either as nested lists or
as a base64-encoded RGB PNG whose three channels are I, U·255, V·255 (:func:`encode_uv`).

Ground truth: a DensePose-COCO json (every image of it is scored, as in detectron2). Geodesic data:
``eval_data`` is the folder of the official ``SMPL_subdiv.mat``, ``SMPL_SUBDIV_TRANSFORM.mat``,
``Pdist_matrix.pkl`` (user-provided, not redistributable), a ``.npz`` body surface, or ``synthetic``.
RCP ``single_person`` reads the predictions made on the GT boxes from ``rcp_results`` (same format; a
result belongs to the GT whose box it repeats within 1e-3 px), or from ``results`` when not given.
``bbox=true`` adds COCO box AP (pycocotools) of the same detections.

Prints the table (percent) and writes a JSON with the metrics (fractions; null = undefined), counts and
timings.
"""

from __future__ import annotations

import base64
import io
import json
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
from omegaconf import DictConfig, ListConfig
from PIL import Image

from humanparse.data.densepose_coco import images_from_coco, read_coco
from humanparse.data.densepose_surface import load_body_surface
from humanparse.data.io import DataError
from humanparse.metrics.densepose import MODES, image_records, prepare_gt_images, score_records
from humanparse.metrics.detection import coco_box_ap


def encode_uv(iuv: np.ndarray) -> str:
    """Base64 PNG of a (3, h, w) uint8 I/U/V array (channels = I, U·255, V·255)."""
    a = np.asarray(iuv, dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(a.transpose(1, 2, 0)), mode="RGB").save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def decode_uv(value, where: str) -> np.ndarray:
    """(3, h, w) uint8 from nested lists or a base64 PNG string."""
    if isinstance(value, str):
        try:
            with Image.open(io.BytesIO(base64.b64decode(value, validate=True))) as im:
                if im.mode != "RGB":
                    raise ValueError(f"PNG mode {im.mode}, expected RGB (I, U·255, V·255)")
                arr = np.asarray(im).transpose(2, 0, 1)
        except (ValueError, OSError) as e:
            raise ValueError(f"{where}: 'uv' is not a base64 RGB PNG ({e})") from e
        return np.ascontiguousarray(arr)
    try:
        arr = np.asarray(value)
    except (ValueError, TypeError) as e:
        raise ValueError(
            f"{where}: 'uv' is neither nested lists of equal length nor a base64 PNG ({e})"
        ) from e
    if arr.ndim != 3 or arr.shape[0] != 3 or arr.dtype == object:
        raise ValueError(
            f"{where}: 'uv' must be a 3 x h x w array (I, U·255, V·255), got shape {list(arr.shape)}"
        )
    if arr.size and (arr.min() < 0 or arr.max() > 255 or not np.issubdtype(arr.dtype, np.integer)):
        raise ValueError(f"{where}: 'uv' values must be integers 0..255")
    return arr.astype(np.uint8)


def read_results(path: str | Path, image_ids: set[int], category_id: int = 1) -> tuple[dict[int, dict], int]:
    """Detections grouped by image: ``{image_id: {"bbox": (D, 4), "scores": (D,), "iuv": [...]}}`` and the
    number of entries of other categories that were skipped. Errors name the file and the entry."""
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "results file is missing")
    try:
        with open(path, encoding="utf-8") as f:
            entries = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DataError(path, f"malformed JSON ({e})") from e
    if not isinstance(entries, list):
        raise DataError(path, "results must be a JSON list of detections")
    grouped: dict[int, dict] = defaultdict(lambda: {"bbox": [], "scores": [], "iuv": []})
    skipped = 0
    for i, e in enumerate(entries):
        where = f"{path}: result {i}"
        if not isinstance(e, dict) or not {"image_id", "bbox", "score", "uv"} <= set(e):
            raise DataError(path, f"result {i} lacks image_id / bbox / score / uv")
        if int(e.get("category_id", category_id)) != category_id:
            skipped += 1
            continue
        iid = int(e["image_id"])
        if iid not in image_ids:
            raise DataError(
                path,
                f"result {i} refers to image {iid}, which is not in the ground truth "
                "(results do not correspond to this annotation file)",
            )
        try:
            box = np.asarray(e["bbox"], dtype=np.float64).reshape(4)
            score = float(e["score"])
        except (TypeError, ValueError) as err:
            raise DataError(path, f"result {i}: bbox must be 4 numbers and score a number ({err})") from err
        if not np.all(np.isfinite(box)) or box[2] < 0 or box[3] < 0 or not np.isfinite(score):
            raise DataError(path, f"result {i}: invalid bbox {box.tolist()} or score {score}")
        try:
            uv = decode_uv(e["uv"], where)
        except ValueError as err:
            raise DataError(path, str(err).replace(f"{path}: ", "")) from err
        g = grouped[iid]
        g["bbox"].append(box)
        g["scores"].append(score)
        g["iuv"].append(uv)
    out = {}
    for iid, g in grouped.items():
        out[iid] = {
            "bbox": np.array(g["bbox"]).reshape(-1, 4),
            "scores": np.array(g["scores"]),
            "iuv": g["iuv"],
        }
    return out, skipped


def _gt_box_predictions(gt, dets: dict | None) -> list | None:
    """Per GT of one image: the uv of the highest-scored result repeating its box (or None)."""
    if dets is None:
        return [None] * gt.num_gt
    out = []
    for j in range(gt.num_gt):
        same = np.flatnonzero(np.all(np.abs(dets["bbox"] - gt.bbox[j]) <= 1e-3, axis=1))
        out.append(dets["iuv"][same[np.argmax(dets["scores"][same])]] if len(same) else None)
    return out


def evaluate_densepose(cfg: DictConfig) -> dict:
    """The ``metric=densepose`` evaluator (module docstring)."""
    for key in ("results", "gt"):
        if not cfg.get(key):
            raise ValueError(f"metric=densepose needs {key}=<file>")
    if cfg.get("eval_data") is None:
        raise ValueError(
            "metric=densepose needs eval_data=<folder with SMPL_subdiv.mat, SMPL_SUBDIV_TRANSFORM.mat, "
            "Pdist_matrix.pkl> (or eval_data=synthetic for data made by the synthetic generator)"
        )
    modes = cfg.get("modes", ["gps", "gpsm"])
    modes = list(modes) if isinstance(modes, (list, tuple, ListConfig)) else [str(modes)]
    if any(m not in MODES for m in modes):
        raise ValueError(f"modes must be a subset of {list(MODES)}, got {modes}")
    kappa = cfg.get("kappa", "per_part")
    category_id = int(cfg.get("category_id", 1))
    rcp = bool(cfg.get("rcp", True))
    if not cfg.get("output"):
        cfg.output = str(Path(cfg.results).resolve().parent / "densepose_metrics.json")
    t0 = time.perf_counter()
    coco = read_coco(cfg.gt)
    images = images_from_coco(coco, cfg.gt, category_id, decode_masks=False)
    for im in coco.dataset["images"]:
        if im.get("ignore_regions_x"):
            raise DataError(
                cfg.gt,
                f"image {im['id']} has ignore_regions_x/_y (PoseTrack-style ignore regions), "
                "which the DensePose metric does not implement",
            )
    ids = {im["image_id"] for im in images}
    dets, skipped = read_results(cfg.results, ids, category_id)
    rcp_dets = read_results(cfg.rcp_results, ids, category_id)[0] if cfg.get("rcp_results") else None
    surface = load_body_surface(cfg.eval_data)
    surface.quantized_lut()
    t_load = time.perf_counter()
    gts = prepare_gt_images(images, surface, kappa, category_id)
    empty = {"bbox": np.zeros((0, 4)), "scores": np.zeros(0), "iuv": []}
    single_person = cfg.get("rcp_setting", "single_person") == "single_person"
    gt_iuvs = (
        [_gt_box_predictions(gt, rcp_dets.get(gt.image_id)) for gt in gts]
        if (rcp and single_person and rcp_dets is not None)
        else None
    )
    records = image_records(
        gts,
        [dets.get(gt.image_id, empty) for gt in gts],
        surface,
        modes=modes,
        keep_errors=rcp,
        gt_iuvs=gt_iuvs,
        what=f"{cfg.results}: ",
    )
    metrics = score_records(
        records,
        modes=modes,
        min_threshold=float(cfg.get("min_threshold", 0.5)),
        rcp=rcp,
        rcp_setting=cfg.get("rcp_setting", "single_person"),
        rcp_curve=bool(cfg.get("rcp_curve", True)),
        rcp_per_part=bool(cfg.get("rcp_per_part", False)),
    )
    t_eval = time.perf_counter()
    if cfg.get("bbox", True):
        flat = [
            {"image_id": iid, "category_id": category_id, "bbox": b, "score": s}
            for iid, d in dets.items()
            for b, s in zip(d["bbox"].tolist(), d["scores"].tolist())
        ]
        metrics.update(coco_box_ap(coco, flat))
    t_end = time.perf_counter()
    n_gt = sum(g.num_gt for g in gts)
    return {
        "metrics": metrics,
        "num_images": len(images),
        "num_detections": int(sum(len(d["scores"]) for d in dets.values())),
        "num_gt": n_gt,
        "num_gt_with_points": int(sum(int((~g.ignore).sum()) for g in gts)),
        "num_points": int(sum(len(g.px) for g in gts)),
        "rcp_gt_without_gt_box_prediction": int(sum(r.get("single_missing", 0) for r in records))
        if single_person
        else 0,
        "skipped_other_categories": skipped,
        "eval_data": str(cfg.eval_data),
        "surface": {"uv_vertices": surface.num_uv, "geodesic_vertices": surface.num_geodesic},
        "settings": {
            "kappa": kappa,
            "modes": modes,
            "min_threshold": float(cfg.get("min_threshold", 0.5)),
            "rcp_setting": cfg.get("rcp_setting", "single_person"),
        },
        "timing_s": {
            "load": round(t_load - t0, 4),
            "evaluate": round(t_eval - t_load, 4),
            "bbox": round(t_end - t_eval, 4),
        },
    }


def write_results(path: str | Path, detections: list[dict], uv_format: str = "list") -> Path:
    """Write detections (``image_id``, ``bbox``, ``score``, ``uv`` (3, h, w) uint8, optional ``category_id``)
    as a results JSON with ``uv`` as nested lists (``list``) or base64 PNGs (``png``)."""
    if uv_format not in ("list", "png"):
        raise ValueError(f"uv_format must be 'list' or 'png', got {uv_format!r}")
    out = []
    for d in detections:
        uv = np.asarray(d["uv"], dtype=np.uint8)
        out.append(
            {
                "image_id": int(d["image_id"]),
                "category_id": int(d.get("category_id", 1)),
                "bbox": [float(v) for v in d["bbox"]],
                "score": float(d["score"]),
                "uv": uv.tolist() if uv_format == "list" else encode_uv(uv),
            }
        )
    path = Path(path)
    path.write_text(json.dumps(out))
    return path
