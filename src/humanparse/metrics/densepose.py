"""DensePose: GPS / GPSm similarities, COCO-style AP/AR with the DensePose matching rules, and RCP / AUC.

GPS and RCP: DensePose §2.2; GPSm, matching and accumulation: detectron2's evaluator.
The project follows detectron2's ``DensePoseCocoEval`` ("D2") exactly; the pieces:

1. **Per image** (:func:`image_records`, run where the predictions are, i.e. on every rank):
   the top 20 detections by score (stable sort); GPS(d, g) for every pair — each GT point is mapped
   into the detection box with the evaluators' /255 convention (x_b = dp_x·w_g/255, column =
   trunc(x_b + x_g − x_d), outside → background), read from the quantised IUV array, snapped to the
   nearest UV-vertex of its part, turned into a geodesic vertex and compared with the GT point's vertex;
   GPS = mean over all GT points of exp(−δ²/2κ²) with κ per part (default) or 0.255. GTs without
   ``dp_x`` get 0 against every detection. GPSm = sqrt(GPS · mask IoU) with the GT mask from the
   ``dp_masks`` union (zoomed bilinearly to the box, thresholded at 0.5) or the COCO segmentation,
   and the box IoU of every pair (crowd GT: intersection / detection area). The point part is
   vectorised over every (detection, point) pair of a whole batch of images (one gather, a lookup
   table for the 256² quantised UV values) and gives bit-identical GPS values to detectron2.
2. **Matching** (:func:`match_images`, rank 0, vectorised over images, thresholds and area ranges):
   D2 ``evaluateImg``: ignore = no ``dp_x`` (or area outside the range); non-ignored GTs are preferred;
   a match needs s ≥ t (best, ties to the later GT); crowd GTs can be matched again; an image whose GTs
   are all ignored (or that has none) ignores all its detections; the second pass at the last
   threshold gives each still unmatched detection the ignore flag of the unmatched GT with the highest
   box IoU ≥ 0.8 at every threshold (recording the match at the last threshold when that GT is
   ignored); unmatched detections outside the area range are ignored.
3. **Accumulation and summary** (:func:`accumulate`, :func:`summarize`): standard COCO, maxDets 20,
   area ranges all / medium / large, 101 recall points; −1 entries become NaN.
4. **RCP** (:func:`rcp_scores`): per-point geodesic errors e (metres, ∞ for background/outside),
   RCP(t) = fraction with e < t at 1..30 cm, AUC_a = mean(max(0, 1 − e/a)) (closed form of
   (1/a)∫₀^a RCP). ``single_person``: the prediction made on each GT box; ``multi_person``: the
   detection the matcher assigns to the GT at t = 0.5 (area all); unmatched → e = ∞.

:class:`DensePoseMetric` wraps this as a torchmetrics metric: ``update`` computes the per-image records
(small matrices), ``compute`` gathers them to rank 0 (:class:`~humanparse.metrics.gather.GatheredMetric`),
matches, accumulates and broadcasts. The standalone evaluator (:mod:`humanparse.metrics.densepose_results`)
runs the same functions.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from scipy.ndimage import zoom as nd_zoom

from humanparse.data.densepose_coco import segmentation_mask
from humanparse.data.densepose_surface import BodySurface, kappa_for, load_body_surface
from humanparse.data.meta import DENSEPOSE_COARSE_PARTS, DENSEPOSE_FINE_TO_COARSE
from humanparse.metrics.gather import GatheredMetric

log = logging.getLogger(__name__)

MAX_DETS = 20
AREA_RANGES = ((0.0, 1e10), (32.0**2, 96.0**2), (96.0**2, 1e10))
AREA_LABELS = ("all", "medium", "large")
REC_THRS = np.linspace(0.0, 1.0, 101)
SECOND_PASS_BOX_IOU = 0.8
MODES = ("gps", "gpsm", "iou")
MODE_PREFIX = {"gps": "dp_", "gpsm": "dp_gpsm_", "iou": "dp_segm_"}
RCP_CM = np.arange(1, 31)
KEY_ORDER = ("ap", "ap20", "ap30", "ap40", "ap50", "ap75", "apm", "apl", "ar", "ar50", "ar75", "arm", "arl")


def iou_thresholds(min_threshold: float = 0.5) -> np.ndarray:
    """0.50:0.05:0.95 by default; ``min_threshold`` 0.2 gives 0.20:0.05:0.95 (D2 ``min_iou_threshold``)."""
    if not 0.0 < min_threshold <= 0.95:
        raise ValueError(f"min_threshold must be in (0, 0.95], got {min_threshold}")
    return np.linspace(min_threshold, 0.95, int(np.round((0.95 - min_threshold) / 0.05)) + 1, endpoint=True)


def _np(x) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)


# --- ground truth ----------------------------------------------------------------------------------
@dataclass(eq=False)
class GTImage:
    """One image's ground truth in the form the per-image computation needs.

    ``points`` hold the dense points of the non-ignored GTs only, concatenated in GT order
    (``point_start[g]:point_start[g + 1]``)."""

    image_id: int
    height: int
    width: int
    bbox: np.ndarray  # (G, 4) float64 xywh
    area: np.ndarray  # (G,)
    crowd: np.ndarray  # (G,) bool
    ignore: np.ndarray  # (G,) bool: no dp_x
    point_start: np.ndarray  # (G + 1,)
    px: np.ndarray  # (P,) dp_x
    py: np.ndarray
    parts: np.ndarray  # (P,) dp_I
    geo: np.ndarray  # (P,) 1-based geodesic vertex of the GT point
    kappa: np.ndarray  # (P,)
    persons: list  # the person dicts (masks for GPSm)
    _masks: np.ndarray | None = None

    @property
    def num_gt(self) -> int:
        return len(self.area)

    def masks(self) -> np.ndarray:
        """(G, H, W) bool GT masks for GPSm / IoU (from the GT segmentation), built on first use."""
        if self._masks is None:
            m = np.zeros((self.num_gt, self.height, self.width), dtype=bool)
            for g, p in enumerate(self.persons):
                coarse = p["dp"]["coarse"] if p.get("dp") is not None else None
                if coarse is not None:
                    coarse = _np(coarse)
                    _, _, w, h = self.bbox[g]
                    binary = np.minimum(np.asarray(coarse, np.float64), 1.0)
                    z = nd_zoom(
                        binary, (float(max(h, 1)) / 256.0, float(max(w, 1)) / 256.0), order=1, prefilter=False
                    )
                    _paste(m[g], z > 0.5, self.bbox[g])
                elif p.get("mask") is not None:
                    m[g] = _np(p["mask"]).astype(bool)
                elif p.get("segmentation") is not None:
                    m[g] = segmentation_mask(p, self.height, self.width)
            self._masks = m
        return self._masks


def _paste(canvas: np.ndarray, mask: np.ndarray, bbox) -> tuple[int, int, int, int]:
    """Paste ``mask`` at (int x, int y) clipped as D2 ``_generate_rlemask_on_image``; returns the
    canvas window (y0, y1, x0, x1) that was written (may be empty)."""
    x, y, w, h = (float(v) for v in bbox)
    ih, iw = canvas.shape
    xi, yi = int(x), int(y)
    x0, x1 = max(xi, 0), min(int(x + w), iw, xi + mask.shape[1])
    y0, y1 = max(yi, 0), min(int(y + h), ih, yi + mask.shape[0])
    if x1 > x0 and y1 > y0:
        canvas[y0:y1, x0:x1] = mask[y0 - yi : y1 - yi, x0 - xi : x1 - xi]
    return y0, y1, x0, x1


def prepare_gt_images(
    images: Sequence[dict], surface: BodySurface, kappa: str | float = "per_part", category_id: int | None = 1
) -> list[GTImage]:
    """:class:`GTImage` per image dict ``{image_id, height, width, persons}`` (reader person format). The
    GT points of all images are snapped to the surface in one call."""
    out: list[GTImage] = []
    all_parts, all_u, all_v = [], [], []
    for im in images:
        persons = [
            p for p in im["persons"] if category_id is None or int(p.get("category_id", 1)) == category_id
        ]
        g = len(persons)
        bbox = np.array([np.asarray(p["bbox"], np.float64) for p in persons], dtype=np.float64).reshape(g, 4)
        ignore = np.array([not p["has_dp"] for p in persons], dtype=bool)
        counts = np.array([0 if ignore[i] else len(persons[i]["dp"]["x"]) for i in range(g)], dtype=np.int64)
        start = np.concatenate([[0], np.cumsum(counts)])
        dps = [p["dp"] for i, p in enumerate(persons) if not ignore[i]]

        def cat(key, dtype, dps=dps):
            return (
                np.concatenate([np.asarray(d[key], dtype).reshape(-1) for d in dps])
                if dps
                else np.zeros(0, dtype)
            )

        parts = cat("I", np.int64)
        all_parts.append(parts)
        all_u.append(cat("U", np.float64))
        all_v.append(cat("V", np.float64))
        out.append(
            GTImage(
                image_id=int(im["image_id"]),
                height=int(im["height"]),
                width=int(im["width"]),
                bbox=bbox,
                area=np.array([float(p["area"]) for p in persons], dtype=np.float64),
                crowd=np.array([bool(p["iscrowd"]) for p in persons], dtype=bool),
                ignore=ignore,
                point_start=start,
                px=cat("x", np.float64),
                py=cat("y", np.float64),
                parts=parts,
                geo=np.zeros(0, np.int64),
                kappa=kappa_for(parts, kappa),
                persons=persons,
            )
        )
    if out:
        geo = surface.nearest(np.concatenate(all_parts), np.concatenate(all_u), np.concatenate(all_v))
        sizes = np.cumsum([0] + [len(p) for p in all_parts])
        for i, gt in enumerate(out):
            gt.geo = geo[sizes[i] : sizes[i + 1]]
    return out


# --- detections ------------------------------------------------------------------------------------
def _as_xywh(det: dict) -> np.ndarray:
    if det.get("bbox") is not None:
        return _np(det["bbox"]).astype(np.float64).reshape(-1, 4)
    b = _np(det["boxes"]).astype(np.float64).reshape(-1, 4)
    return np.stack([b[:, 0], b[:, 1], b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]], 1)


def _check_iuv(arr, bbox, what: str) -> np.ndarray:
    a = _np(arr)
    if a.dtype != np.uint8:
        if a.size and (a.min() < 0 or a.max() > 255 or not np.all(a == np.round(a))):
            raise ValueError(f"{what}: uv must hold uint8 values (I 0..24, U·255, V·255)")
        a = a.astype(np.uint8)
    need_h, need_w = max(int(bbox[3]), 1), max(int(bbox[2]), 1)
    if a.ndim != 3 or a.shape[0] != 3 or a.shape[1] < need_h or a.shape[2] < need_w:
        raise ValueError(
            f"{what}: uv has shape {list(a.shape)} but its box {np.round(bbox, 2).tolist()} needs "
            f"[3, {need_h}, {need_w}] (I, U, V at the integer box size)"
        )
    return np.ascontiguousarray(a)


def _box_iou(dt: np.ndarray, gt: np.ndarray, crowd: np.ndarray) -> np.ndarray:
    """(D, G) box IoU with pycocotools ``bbIou`` arithmetic (crowd GT: intersection / detection area)."""
    if len(dt) == 0 or len(gt) == 0:
        return np.zeros((len(dt), len(gt)))
    dx, dy, dw, dh = (dt[:, i, None] for i in range(4))
    gx, gy, gw, gh = (gt[None, :, i] for i in range(4))
    w = np.minimum(dw + dx, gw + gx) - np.maximum(dx, gx)
    h = np.minimum(dh + dy, gh + gy) - np.maximum(dy, gy)
    inter = w * h
    da, ga = dw * dh, gw * gh
    union = np.where(crowd[None, :], da, da + ga - inter)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where((w > 0) & (h > 0), inter / union, 0.0)
    return out


def _point_errors(
    gt: GTImage,
    dbox: np.ndarray,
    iuvs: list[np.ndarray],
    surface: BodySurface,
    lut: np.ndarray,
    gidx: np.ndarray,
) -> np.ndarray:
    """(D, P) geodesic errors of the GT points (of GT ``gidx[p]``) against each detection
    (D2 ``computeOgps``)."""
    d, p = len(dbox), len(gt.px)
    if d == 0 or p == 0:
        return np.zeros((d, p))
    gb = gt.bbox[gidx]
    xb = gt.px * gb[:, 2] / 255.0
    yb = gt.py * gb[:, 3] / 255.0
    col = ((xb + gb[:, 0])[None, :] - dbox[:, 0, None]).astype(np.int64)
    row = ((yb + gb[:, 1])[None, :] - dbox[:, 1, None]).astype(np.int64)
    wd = dbox[:, 2].astype(np.int64)[:, None]
    hd = dbox[:, 3].astype(np.int64)[:, None]
    inside = (col >= 0) & (col < wd) & (row >= 0) & (row < hd)
    strides = np.array([a.shape[2] for a in iuvs], dtype=np.int64)
    sizes = np.array([a.shape[1] * a.shape[2] for a in iuvs], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    flat = np.concatenate([a.reshape(3, -1) for a in iuvs], axis=1)  # (3, total)
    idx = np.where(inside, offsets[:, None] + row * strides[:, None] + col, 0)
    vals = flat[:, idx]  # (3, D, P)
    parts = np.where(inside, vals[0], 0).astype(np.int64)
    parts[parts > 24] = 0
    pred = lut[parts, vals[1], vals[2]]
    return surface.distance(gt.geo[None, :], pred)


def _mask_iou(gt: GTImage, dbox: np.ndarray, iuvs: list[np.ndarray]) -> np.ndarray:
    """(D, G) mask IoU (pycocotools ``rleIou`` semantics) of the pasted I > 0 masks against the GT masks."""
    d, g = len(dbox), gt.num_gt
    out = np.zeros((d, g))
    if d == 0 or g == 0:
        return out
    masks = gt.masks()
    gt_area = masks.reshape(g, -1).sum(1)
    for k in range(d):
        x, y, w, h = dbox[k]
        m = iuvs[k][0] > 0
        xi, yi = int(x), int(y)
        x0, x1 = max(xi, 0), min(int(x + w), gt.width, xi + m.shape[1])
        y0, y1 = max(yi, 0), min(int(y + h), gt.height, yi + m.shape[0])
        if x1 <= x0 or y1 <= y0:
            continue
        crop = m[y0 - yi : y1 - yi, x0 - xi : x1 - xi]
        area = int(crop.sum())
        if area == 0:
            continue
        inter = (masks[:, y0:y1, x0:x1] & crop[None]).reshape(g, -1).sum(1)
        union = np.where(gt.crowd, area, area + gt_area - inter)
        out[k] = np.where(inter > 0, inter / np.maximum(union, 1), 0.0)
    return out


def _batched_errors_and_gps(
    gts: Sequence[GTImage],
    dboxes: Sequence[np.ndarray],
    iuvs: Sequence[list],
    surface: BodySurface,
    lut: np.ndarray,
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Per image, the (D, P) point errors and the (D, G) GPS of every (detection, GT) pair, computed for all
    images at once: one gather over every (detection, point) pair of the batch, then one mean per point
    count (rows of equal length are summed together, so each GPS is the same pairwise sum as ``np.mean``
    over that pair's points in the reference evaluators)."""
    n = len(gts)
    nd = np.array([len(b) for b in dboxes], np.int64)
    npnt = np.array([len(g.px) for g in gts], np.int64)
    ngt = np.array([g.num_gt for g in gts], np.int64)
    errs = [np.zeros((nd[i], npnt[i])) for i in range(n)]
    gps = [np.zeros((nd[i], ngt[i])) for i in range(n)]
    counts = nd * npnt
    if counts.sum() == 0:
        return errs, gps
    det_start = np.concatenate([[0], np.cumsum(nd)])
    pt_start = np.concatenate([[0], np.cumsum(npnt)])
    pair_start = np.concatenate([[0], np.cumsum(counts)])
    # points (with their GT box) and detections of the whole batch
    gb = np.concatenate(
        [g.bbox[np.repeat(np.arange(g.num_gt), np.diff(g.point_start))] for g in gts]
    ).reshape(-1, 4)
    px = np.concatenate([g.px for g in gts])
    py = np.concatenate([g.py for g in gts])
    geo = np.concatenate([g.geo for g in gts])
    kappa = np.concatenate([g.kappa for g in gts])
    xg = px * gb[:, 2] / 255.0 + gb[:, 0]  # the evaluators' /255 box mapping (D2 ``computeOgps``)
    yg = py * gb[:, 3] / 255.0 + gb[:, 1]
    dbox = np.concatenate([b.reshape(-1, 4) for b in dboxes])
    arrays = [a for lst in iuvs for a in lst]
    strides = np.array([a.shape[2] for a in arrays], np.int64)
    offsets = np.concatenate([[0], np.cumsum([a.shape[1] * a.shape[2] for a in arrays])[:-1]]).astype(
        np.int64
    )
    flat = np.concatenate([a.reshape(3, -1) for a in arrays], axis=1)
    # every (detection, point) pair of each image, detection-major
    img = np.repeat(np.arange(n), counts)
    k = np.arange(pair_start[-1]) - pair_start[img]
    d_loc = k // npnt[img]
    d = det_start[img] + d_loc
    p = pt_start[img] + (k - d_loc * npnt[img])
    col = (xg[p] - dbox[d, 0]).astype(np.int64)
    row = (yg[p] - dbox[d, 1]).astype(np.int64)
    inside = (
        (col >= 0) & (col < dbox[d, 2].astype(np.int64)) & (row >= 0) & (row < dbox[d, 3].astype(np.int64))
    )
    idx = np.where(inside, offsets[d] + row * strides[d] + col, 0)
    vals = flat[:, idx]
    parts = np.where(inside, vals[0], 0).astype(np.int64)
    parts[parts > 24] = 0
    err = surface.distance(geo[p], lut[parts, vals[1], vals[2]])
    term = np.exp(-(err**2) / (2 * (kappa[p] ** 2)))
    # GPS: one segment per (image, detection, non-ignored GT with points)
    seg_begin, seg_len, seg_cell, cells = [], [], [], [0]
    for i, g in enumerate(gts):
        if nd[i] == 0 or g.num_gt == 0:
            cells.append(cells[-1] + nd[i] * ngt[i])
            continue
        lens = np.where(g.ignore, 0, np.diff(g.point_start))
        dd, gg = np.divmod(np.arange(nd[i] * ngt[i]), ngt[i])
        seg_begin.append(pair_start[i] + dd * npnt[i] + g.point_start[gg])
        seg_len.append(lens[gg])
        seg_cell.append(cells[-1] + dd * ngt[i] + gg)
        cells.append(cells[-1] + nd[i] * ngt[i])
    flat_gps = np.zeros(cells[-1])
    if seg_begin:
        seg_begin, seg_len, seg_cell = (np.concatenate(a) for a in (seg_begin, seg_len, seg_cell))
        for length in np.unique(seg_len[seg_len > 0]):
            sel = seg_len == length
            rows = term[seg_begin[sel][:, None] + np.arange(length)[None, :]]
            flat_gps[seg_cell[sel]] = rows.sum(axis=1) / length
    for i in range(n):
        errs[i] = err[pair_start[i] : pair_start[i + 1]].reshape(nd[i], npnt[i])
        gps[i] = flat_gps[cells[i] : cells[i + 1]].reshape(nd[i], ngt[i])
    return errs, gps


def image_records(
    gts: Sequence[GTImage],
    dets: Sequence[dict],
    surface: BodySurface,
    *,
    modes: Sequence[str] = ("gps", "gpsm"),
    keep_errors: bool = False,
    gt_iuvs: Sequence[Sequence | None] | None = None,
    max_dets: int = MAX_DETS,
    what: str = "",
    chunk_pairs: int = 2_000_000,
) -> list[dict]:
    """Everything the matcher and RCP need from each image (small arrays; gathered across processes).

    ``dets[i]``: ``bbox`` (D, 4) xywh (or ``boxes`` xyxy), ``scores`` (D,), ``iuv``: D arrays (3, h, w) uint8
    at the integer box size. ``gt_iuvs[i]``: optional predictions made on the GT boxes (one per GT or
    None), for single-person RCP; without them a detection whose box equals the GT box (within 1e-3 px)
    is used. Images are processed in chunks of about ``chunk_pairs`` (detection, point) pairs.
    """
    lut = surface.quantized_lut()
    prepared = []
    for gt, det in zip(gts, dets):
        where = f"{what}image {gt.image_id}"
        bbox = _as_xywh(det)
        scores = _np(det.get("scores", np.zeros(0))).astype(np.float64).reshape(-1)
        iuv_list = list(det.get("iuv", []))
        if not (len(bbox) == len(scores) == len(iuv_list)):
            raise ValueError(
                f"{where}: {len(bbox)} boxes, {len(scores)} scores and {len(iuv_list)} uv arrays"
            )
        order = np.argsort(-scores, kind="mergesort")[:max_dets]
        iuvs = [_check_iuv(iuv_list[j], bbox[j], f"{where} detection {j}") for j in order]
        prepared.append((bbox, scores, iuv_list, bbox[order], scores[order], iuvs))
    errs: list[np.ndarray] = []
    gps: list[np.ndarray] = []
    start = 0
    while start < len(gts):  # chunks bound the memory of the pair arrays
        stop, pairs = start, 0
        while stop < len(gts) and (
            stop == start or pairs + len(prepared[stop][3]) * len(gts[stop].px) <= chunk_pairs
        ):
            pairs += len(prepared[stop][3]) * len(gts[stop].px)
            stop += 1
        e, g = _batched_errors_and_gps(
            gts[start:stop],
            [q[3] for q in prepared[start:stop]],
            [q[5] for q in prepared[start:stop]],
            surface,
            lut,
        )
        errs += e
        gps += g
        start = stop
    records = []
    for i, gt in enumerate(gts):
        bbox, scores, iuv_list, dbox, dscore, iuvs = prepared[i]
        sims: dict[str, np.ndarray] = {}
        if "gps" in modes:
            sims["gps"] = gps[i]
        if "gpsm" in modes or "iou" in modes:
            miou = _mask_iou(gt, dbox, iuvs)
            if "gpsm" in modes:
                sims["gpsm"] = np.sqrt(miou * gps[i])
            if "iou" in modes:
                sims["iou"] = miou
        rec = {
            "image_id": gt.image_id,
            "gt_area": gt.area,
            "gt_crowd": gt.crowd,
            "gt_ignore": gt.ignore,
            "gt_points": np.diff(gt.point_start).astype(np.int32),
            "point_parts": gt.parts.astype(np.int8),
            "dt_score": dscore,
            "dt_area": dbox[:, 2] * dbox[:, 3],
            "box_iou": _box_iou(dbox, gt.bbox, gt.crowd),
            "sims": sims,
        }
        if keep_errors:
            rec["errors"] = errs[i].astype(np.float32)
            gidx = np.repeat(np.arange(gt.num_gt), np.diff(gt.point_start))
            gt_iuv = gt_iuvs[i] if gt_iuvs is not None else None
            rec["single_errors"], rec["single_missing"] = _single_person_errors(
                gt, bbox, scores, iuv_list, gt_iuv, surface, lut, gidx, f"{what}image {gt.image_id}"
            )
        records.append(rec)
    return records


def image_record(
    gt: GTImage,
    det: dict,
    surface: BodySurface,
    *,
    modes: Sequence[str] = ("gps", "gpsm"),
    keep_errors: bool = False,
    gt_iuv: Sequence | None = None,
    max_dets: int = MAX_DETS,
    what: str = "",
) -> dict:
    """:func:`image_records` for one image."""
    return image_records(
        [gt],
        [det],
        surface,
        modes=modes,
        keep_errors=keep_errors,
        gt_iuvs=None if gt_iuv is None else [gt_iuv],
        max_dets=max_dets,
        what=what,
    )[0]


def _single_person_errors(
    gt: GTImage, bbox, scores, iuv_list, gt_iuv, surface, lut, gidx, what
) -> tuple[np.ndarray, int]:
    """(P,) errors of each GT point against the prediction on its own GT box (∞ where there is none) and
    the number of GTs with points that have no such prediction."""
    out = np.full(len(gt.px), np.inf, dtype=np.float32)
    missing = 0
    for j in range(gt.num_gt):
        s, e = gt.point_start[j], gt.point_start[j + 1]
        if e == s:
            continue
        arr = None
        if gt_iuv is not None:
            arr = gt_iuv[j] if j < len(gt_iuv) else None
        else:
            same = np.flatnonzero(np.all(np.abs(bbox - gt.bbox[j]) <= 1e-3, axis=1))
            if len(same):
                arr = iuv_list[same[np.argmax(scores[same])]]
        if arr is None:
            missing += 1
            continue
        arr = _check_iuv(arr, gt.bbox[j], f"{what} GT-box prediction {j}")
        err = _point_errors(gt, gt.bbox[j : j + 1], [arr], surface, lut, gidx)
        out[s:e] = err[0, s:e]
    return out, missing


# --- matching --------------------------------------------------------------------------------------
@dataclass
class MatchResult:
    """Per image: ``dtm`` / ``dt_ignore`` (A, T, D) (matched GT index or −1), ``gtm`` (A, T, G)
    (matched detection index or −1) and ``gt_ignore`` (A, G)."""

    dtm: list[np.ndarray]
    dt_ignore: list[np.ndarray]
    gtm: list[np.ndarray]
    gt_ignore: list[np.ndarray]


def match_images(
    records: Sequence[dict],
    mode: str,
    thresholds: np.ndarray,
    area_ranges: Sequence[tuple[float, float]] = AREA_RANGES,
) -> MatchResult:
    """D2 ``evaluateImg`` for every image, area range and threshold (module docstring, step 2).

    Vectorised over images (grouped by GT count), area ranges and thresholds; the sequential part is the
    loop over the ≤ 20 detections of an image, in score order."""
    n = len(records)
    thr = np.asarray(thresholds, dtype=np.float64)
    nt, na = len(thr), len(area_ranges)
    rng = np.asarray(area_ranges, dtype=np.float64)
    res = MatchResult([None] * n, [None] * n, [None] * n, [None] * n)  # type: ignore[list-item]
    buckets: dict[tuple[int, int], list[int]] = {}
    for i, r in enumerate(records):
        g, d = len(r["gt_area"]), len(r["dt_score"])
        buckets.setdefault((1 << max(g - 1, 0).bit_length(), 1 << max(d - 1, 0).bit_length()), []).append(i)
    best_thr = np.minimum(thr, 1 - 1e-10)
    for (gb, db), idx in buckets.items():
        m = len(idx)
        sim = np.full((m, db, gb), -1.0)
        biou = np.full((m, db, gb), -1.0)
        gvalid = np.zeros((m, gb), bool)
        crowd = np.zeros((m, gb), bool)
        ig0 = np.zeros((m, gb), bool)
        garea = np.zeros((m, gb))
        dvalid = np.zeros((m, db), bool)
        darea = np.zeros((m, db))
        for k, i in enumerate(idx):
            r = records[i]
            g, d = len(r["gt_area"]), len(r["dt_score"])
            if g and d:
                sim[k, :d, :g] = r["sims"][mode]
                biou[k, :d, :g] = r["box_iou"]
            gvalid[k, :g] = True
            crowd[k, :g] = r["gt_crowd"]
            ig0[k, :g] = r["gt_ignore"]
            garea[k, :g] = r["gt_area"]
            dvalid[k, :d] = True
            darea[k, :d] = r["dt_area"]
        out_of_range = (garea[:, None, :] < rng[None, :, 0, None]) | (
            garea[:, None, :] > rng[None, :, 1, None]
        )
        gtig = (ig0[:, None, :] | out_of_range) & gvalid[:, None, :]  # (m, A, G)
        all_ig = ~np.any(gvalid[:, None, :] & ~gtig, axis=-1)  # (m, A)
        gtm = np.full((m, na, nt, gb), -1, np.int64)
        dtm = np.full((m, na, nt, db), -1, np.int64)
        dtig = np.zeros((m, na, nt, db), bool)
        gpos = np.arange(gb)
        avail_base = gvalid[:, None, None, :]
        for r_ in range(db):
            s = sim[:, r_, None, None, :]  # (m, 1, 1, G)
            avail = avail_base & ((gtm < 0) | crowd[:, None, None, :])
            cand = avail & (s >= best_thr[None, None, :, None]) & (s != 0.0)
            non = cand & ~gtig[:, :, None, :]
            has_non = non.any(-1)
            grp = np.where(has_non[..., None], non, cand & gtig[:, :, None, :])
            val = np.where(grp, s, -np.inf)
            top = val.max(-1, keepdims=True)
            pick = gb - 1 - np.argmax((grp & (val == top))[..., ::-1], axis=-1)  # ties: the later GT
            ok = grp.any(-1) & dvalid[:, r_, None, None]
            dtm[..., r_] = np.where(ok, pick, -1)
            dtig[..., r_] = ok & np.take_along_axis(gtig, pick, axis=2)
            mi, ai, ti = np.nonzero(ok)
            gtm[mi, ai, ti, pick[mi, ai, ti]] = r_
        dtig |= all_ig[:, :, None, None] & dvalid[:, None, None, :]
        # second pass at the last threshold: box IoU >= 0.8, ties to the later GT in ignore-last order
        last = nt - 1
        key = gtig * gb + gpos[None, None, :]  # position in D2's sorted GT list
        for r_ in range(db):
            need = dvalid[:, r_, None] & (dtm[:, :, last, r_] < 0)  # (m, A)
            b = biou[:, r_, None, :]  # (m, 1, G)
            avail = gvalid[:, None, :] & ((gtm[:, :, last, :] < 0) | crowd[:, None, :])
            cand = avail & (b >= SECOND_PASS_BOX_IOU)
            val = np.where(cand, b, -np.inf)
            top = val.max(-1, keepdims=True)
            pick = np.argmax(np.where(cand & (val == top), key, -1), axis=-1)  # (m, A)
            found = need & cand.any(-1)
            ig = np.take_along_axis(gtig, pick[..., None], -1)[..., 0]
            mi, ai = np.nonzero(found)
            dtig[mi, ai, :, r_] = ig[mi, ai, None]
            rec_ig = found & ig
            mi, ai = np.nonzero(rec_ig)
            dtm[mi, ai, last, r_] = pick[mi, ai]
            gtm[mi, ai, last, pick[mi, ai]] = r_
        outside = (darea[:, None, :] < rng[None, :, 0, None]) | (
            darea[:, None, :] > rng[None, :, 1, None]
        )  # (m, A, D)
        dtig |= (dtm < 0) & outside[:, :, None, :]
        for k, i in enumerate(idx):
            g, d = len(records[i]["gt_area"]), len(records[i]["dt_score"])
            res.dtm[i] = dtm[k, :, :, :d]
            res.dt_ignore[i] = dtig[k, :, :, :d]
            res.gtm[i] = gtm[k, :, :, :g]
            res.gt_ignore[i] = gtig[k, :, :g]
    return res


def accumulate(
    records: Sequence[dict], match: MatchResult, num_thresholds: int, num_areas: int = len(AREA_RANGES)
) -> tuple[np.ndarray, np.ndarray]:
    """COCO ``accumulate`` (pycocotools' rule): precision (T, R, A) and recall (T, A), −1 where absent.
    ``records`` must be in ascending image-id order (the evaluators' order, which decides score ties)."""
    nt, na, nr = num_thresholds, num_areas, len(REC_THRS)
    precision = -np.ones((nt, nr, na))
    recall = -np.ones((nt, na))
    keep = [i for i, r in enumerate(records) if len(r["gt_area"]) or len(r["dt_score"])]
    if not keep:
        return precision, recall
    scores = np.concatenate([records[i]["dt_score"] for i in keep])
    order = np.argsort(-scores, kind="mergesort")
    npigs = np.sum([(~match.gt_ignore[i]).sum(axis=-1) for i in keep], axis=0)  # (A,)
    all_dtm = np.concatenate([match.dtm[i] for i in keep], axis=2)[:, :, order]  # (A, T, N)
    all_dtig = np.concatenate([match.dt_ignore[i] for i in keep], axis=2)[:, :, order]
    for a in range(na):
        npig = int(npigs[a])
        if npig == 0:
            continue
        dtm, dtig = all_dtm[a], all_dtig[a]
        tps = (dtm >= 0) & ~dtig
        fps = (dtm < 0) & ~dtig
        tp_sum = np.cumsum(tps, axis=1).astype(np.float64)
        fp_sum = np.cumsum(fps, axis=1).astype(np.float64)
        nd = tp_sum.shape[1]
        for t in range(nt):
            tp, fp = tp_sum[t], fp_sum[t]
            rc = tp / npig
            pr = tp / (fp + tp + np.spacing(1))
            recall[t, a] = rc[-1] if nd else 0
            pr = np.maximum.accumulate(pr[::-1])[::-1] if nd else pr
            inds = np.searchsorted(rc, REC_THRS, side="left")
            q = np.zeros(nr)
            ok = inds < nd
            q[ok] = pr[inds[ok]]
            precision[t, :, a] = q
    return precision, recall


def summarize(precision: np.ndarray, recall: np.ndarray, thresholds: np.ndarray) -> dict[str, float]:
    """D2 ``_summarizeUvs`` (maxDets 20): AP, [AP20, AP30, AP40,] AP50, AP75, APm, APl, AR, AR50, AR75, ARm,
    ARl as fractions; an entry without ground truth (−1 in COCO, −100 in D2's tables) is NaN."""

    def pick(arr: np.ndarray, thr: float | None, area: int) -> float:
        s = arr
        if thr is not None:
            s = s[np.where(np.abs(thr - thresholds) < 0.001)[0]]
        s = s[..., area] if s.ndim == 2 else s[:, :, area]
        s = s[s > -1]
        return float(np.mean(s)) if s.size else float("nan")

    out = {"ap": pick(precision, None, 0)}
    lo = float(thresholds.min())
    for t, name in ((0.2, "ap20"), (0.3, "ap30"), (0.4, "ap40")):
        if lo <= t + 0.001:
            out[name] = pick(precision, t, 0)
    out.update(
        {
            "ap50": pick(precision, 0.5, 0),
            "ap75": pick(precision, 0.75, 0),
            "apm": pick(precision, None, 1),
            "apl": pick(precision, None, 2),
            "ar": pick(recall, None, 0),
            "ar50": pick(recall, 0.5, 0),
            "ar75": pick(recall, 0.75, 0),
            "arm": pick(recall, None, 1),
            "arl": pick(recall, None, 2),
        }
    )
    return out


def rcp_scores(
    errors: np.ndarray,
    parts: np.ndarray | None = None,
    curve: bool = True,
    per_part: bool = False,
    prefix: str = "dp_",
) -> dict[str, float]:
    """AUC10, AUC30 (and the RCP curve at 1..30 cm, and per coarse part AUCs) of per-point errors in metres."""
    e = np.asarray(errors, dtype=np.float64)
    out: dict[str, float] = {}

    def aucs(x: np.ndarray) -> tuple[float, float]:
        if x.size == 0:
            return float("nan"), float("nan")
        return float(np.mean(np.maximum(0.0, 1.0 - x / 0.10))), float(
            np.mean(np.maximum(0.0, 1.0 - x / 0.30))
        )

    out[f"{prefix}auc10"], out[f"{prefix}auc30"] = aucs(e)
    if curve:
        for t in RCP_CM:
            out[f"{prefix}rcp/{t:02d}cm"] = float(np.mean(e < t / 100.0)) if e.size else float("nan")
    if per_part and parts is not None:
        coarse = DENSEPOSE_FINE_TO_COARSE[np.asarray(parts, np.int64)]
        for c in range(1, len(DENSEPOSE_COARSE_PARTS)):
            a10, a30 = aucs(e[coarse == c])
            out[f"{prefix}auc10/{DENSEPOSE_COARSE_PARTS[c]}"] = a10
            out[f"{prefix}auc30/{DENSEPOSE_COARSE_PARTS[c]}"] = a30
    return out


def score_records(
    records: Sequence[dict],
    *,
    modes: Sequence[str] = ("gps", "gpsm"),
    min_threshold: float = 0.5,
    rcp: bool = True,
    rcp_setting: str = "single_person",
    rcp_curve: bool = True,
    rcp_per_part: bool = False,
) -> dict[str, float]:
    """All DensePose numbers from per-image records (fractions; NaN where undefined)."""
    if rcp_setting not in ("single_person", "multi_person"):
        raise ValueError(f"rcp_setting must be 'single_person' or 'multi_person', got {rcp_setting!r}")
    records = sorted(records, key=lambda r: r["image_id"])
    thr = iou_thresholds(min_threshold)
    out: dict[str, float] = {}
    matches = {}
    for mode in modes:
        match = match_images(records, mode, thr)
        matches[mode] = match
        prec, rec = accumulate(records, match, len(thr))
        for k, v in summarize(prec, rec, thr).items():
            out[MODE_PREFIX[mode] + k] = v
    if rcp and records and "errors" in records[0]:
        if rcp_setting == "single_person":
            errs = [r["single_errors"] for r in records]
            missing = sum(int(r["single_missing"]) for r in records)
            if missing:
                log.warning(
                    "single-person RCP: %d GT persons with points have no prediction on their GT box; their "
                    "points count as wrong (give GT-box predictions, or use rcp_setting=multi_person)",
                    missing,
                )
        else:
            mode = modes[0]
            match = matches[mode]
            t50 = int(np.where(np.abs(thr - 0.5) < 0.001)[0][0])
            errs = []
            for i, r in enumerate(records):
                start = np.concatenate([[0], np.cumsum(r["gt_points"])])
                e = np.full(int(start[-1]), np.inf, dtype=np.float32)
                for g in range(len(r["gt_area"])):
                    d = match.gtm[i][0, t50, g]
                    if d >= 0 and start[g + 1] > start[g]:
                        e[start[g] : start[g + 1]] = r["errors"][d, start[g] : start[g + 1]]
                errs.append(e)
        parts = np.concatenate([r["point_parts"] for r in records]) if records else np.zeros(0)
        out.update(rcp_scores(np.concatenate(errs) if errs else np.zeros(0), parts, rcp_curve, rcp_per_part))
    return out


# --- torchmetrics ----------------------------------------------------------------------------------
class DensePoseMetric(GatheredMetric):
    """DensePose AP/AR on GPS (``dp_*``) and GPSm (``dp_gpsm_*``), plus RCP / AUC10 / AUC30.

    Args:
        eval_data: geodesic tables: a folder with the official files (``SMPL_subdiv.mat``,
            ``SMPL_SUBDIV_TRANSFORM.mat``, ``Pdist_matrix.pkl``; README "Datasets"), a ``.npz``,
            ``"synthetic"``, or a :class:`~humanparse.data.densepose_surface.BodySurface`. Loaded on first
            use; a missing source raises an error naming the files and their URLs.
        kappa: ``per_part`` (default; D2) or ``fixed`` (0.255, the 2018 paper's Table 1).
        modes: similarities to report: ``gps``, ``gpsm``, ``iou`` (mask IoU alone, keys ``dp_segm_*``).
        min_threshold: 0.5 (default); 0.2 / 0.3 / 0.4 add AP20 / AP30 / AP40 (and, as in D2, then AP and AR
            average over the longer threshold list).
        rcp: also compute RCP / AUC10 / AUC30; ``rcp_setting``: ``single_person`` (predictions on the GT
            boxes, passed as ``gt_iuv`` or as detections with exactly the GT box) or ``multi_person``
            (the detection matched at GPS 0.5); ``rcp_curve`` adds ``dp_rcp/NNcm``; ``rcp_per_part`` adds
            per-coarse-part AUCs.
        category_id: the person category of the GT persons scored.

    ``update(preds, targets)``: one entry per image. ``preds[i]``: ``boxes`` (D, 4) xyxy or ``bbox`` (D, 4)
    COCO xywh, ``scores`` (D,), ``iuv`` (D arrays (3, int(h), int(w)) uint8: I 0..24, U·255, V·255), optional
    ``gt_iuv``. ``targets[i]``: ``image_id``, ``height``, ``width``, ``persons`` (reader person dicts at the
    original resolution, e.g. the sample's ``gt_persons``; see :func:`targets_from_batch`).
    """

    def __init__(
        self,
        eval_data: str | os.PathLike | BodySurface | None = None,
        kappa: str | float = "per_part",
        modes: Sequence[str] = ("gps", "gpsm"),
        min_threshold: float = 0.5,
        rcp: bool = True,
        rcp_setting: str = "single_person",
        rcp_curve: bool = True,
        rcp_per_part: bool = False,
        category_id: int = 1,
        **kwargs,
    ):
        super().__init__(**kwargs)
        bad = [m for m in modes if m not in MODES]
        if bad or not modes:
            raise ValueError(f"modes must be a non-empty subset of {MODES}, got {list(modes)}")
        kappa_for(np.array([1]), kappa)  # validates
        iou_thresholds(min_threshold)
        if rcp_setting not in ("single_person", "multi_person"):
            raise ValueError(f"rcp_setting must be 'single_person' or 'multi_person', got {rcp_setting!r}")
        self.eval_data = eval_data
        self.kappa = kappa
        self.modes = tuple(modes)
        self.min_threshold = float(min_threshold)
        self.rcp = rcp
        self.rcp_setting = rcp_setting
        self.rcp_curve = rcp_curve
        self.rcp_per_part = rcp_per_part
        self.category_id = category_id
        self._surface: BodySurface | None = eval_data if isinstance(eval_data, BodySurface) else None

    @property
    def surface(self) -> BodySurface:
        if self._surface is None:
            self._surface = load_body_surface(self.eval_data)
        return self._surface

    def update(self, preds: Sequence[dict], targets: Sequence[dict]) -> None:
        if len(preds) != len(targets):
            raise ValueError(f"{len(preds)} predictions for {len(targets)} targets")
        gts = prepare_gt_images(targets, self.surface, self.kappa, self.category_id)
        records = image_records(
            gts,
            preds,
            self.surface,
            modes=self.modes,
            keep_errors=self.rcp,
            gt_iuvs=[p.get("gt_iuv") for p in preds],
        )
        for gt, rec in zip(gts, records):
            self.add(gt.image_id, str(gt.image_id), rec)

    def score(self, records) -> dict[str, float]:
        return score_records(
            [r for _, _, r in records],
            modes=self.modes,
            min_threshold=self.min_threshold,
            rcp=self.rcp,
            rcp_setting=self.rcp_setting,
            rcp_curve=self.rcp_curve,
            rcp_per_part=self.rcp_per_part,
        )


def targets_from_batch(batch: dict) -> list[dict]:
    """Metric targets from an evaluation batch of the DensePose-COCO reader (``meta`` + ``gt_persons``)."""
    out = []
    for meta, persons in zip(batch["meta"], batch["gt_persons"]):
        h, w = meta["orig_size"]
        out.append({"image_id": int(meta["image_id"]), "height": int(h), "width": int(w), "persons": persons})
    return out
