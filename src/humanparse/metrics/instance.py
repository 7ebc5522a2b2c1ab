"""Instance-level human parsing: AP^p, PCP and the person-level part IoU (Parsing R-CNN §4; MHP v2.0).

Per image the expensive part — the part IoU of every (prediction, GT person) pair — is computed
once, in ``update``, with one ``np.bincount`` per image (per GT "layer", see below) over the
predictions' non-zero pixels, and reduced to a compact record: per prediction its score, its best GT
person j* and mIoU (ovmax) and, per threshold, PCP's count of well-parsed GT parts of that pair;
per GT person its number of part labels. Because the matching (below) has no fallback to the
second-best GT, these few numbers are all the rank-0 scoring needs
(:class:`humanparse.metrics.gather.GatheredMetric`); no map is gathered.

Person-level part IoU. For prediction d and GT person g the C×C confusion runs over **all
image pixels** whose GT value is < C (255 ignored); pixels outside both persons count as background,
so background enters the mean and raises it for small persons. IoU_c = n_cc / (row_c + col_c − n_cc),
NaN when the class is absent from both maps, and mIoU(d, g) = nan-mean over c (background included).
Writing J for the joint histogram over the pixels where both maps are non-zero, N for the number
of pixels and nz for non-zero counts, every entry follows without touching the zero/zero pixels:
n_00 = N − nz_g − nz_d + ΣJ, row_0 = N − nz_g, col_b = hist_d[b] − J[255, b] (b ≥ 1) and
col_0 = (N − nz_d) − (hist_g[255] − Σ_b J[255, b]).

GT persons may overlap (MHP: one full-image map per person). They are split greedily into layers
of pairwise-disjoint persons; CIHP persons (Category_ids × Human_ids) always form one layer. The
reference code (Parsing R-CNN ``parsing_eval.py::cal_one_mean_iou``, MHP ``eval_mhp.py``) instead
builds one full-image confusion per pair, reading the GT PNG again for every pair.

Matching and conventions (option ``app_convention``):

============== =================== ===================== ======================== ===============
convention     score filter        empty GT persons      precision denominator    APp_vol
============== =================== ===================== ======================== ===============
``prcnn``      skip score < 0.001  counted in npos       max(tp + fp, eps)        mean
``mhp_official`` none              dropped               tp + fp                  mean
``pet``        skip score < 0.01   counted               max(tp + fp, eps)        nan-mean
============== =================== ===================== ======================== ===============

"Empty" follows the MHP v2 code: a person map with no non-zero pixel (a person labelled only 255 is
kept). Predictions are pooled over images and sorted by descending score (stable); j* = argmax_g
mIoU (first on ties); at each t a prediction is a TP iff ovmax > t (**strict**) and j* is not yet
used at t, otherwise an FP — no fallback, and predictions on images without GT are FPs. PCP_t sums,
over the TPs at t, n/m (n = #{c ≥ 1: IoU_c > t}, m = #distinct GT labels of j* in (0, C); 0 when
m = 0) and divides by npos. npos = 0 gives NaN (with a warning); no predictions give 0.

Semantic map: the one Parsing R-CNN builds from instance predictions (``parsing_eval.py::
parsing_png``): instances in ascending score order, those below ``semseg_score_thresh`` skipped, the
non-zero labels of each pasted over the map. It feeds a semantic confusion matrix (``nan`` convention).
Every image enters (no detection = all-background map, project fix); ``prcnn_skip_empty=True``
reproduces the reference, whose images without any detection never reach the matrix.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import torch

from humanparse.metrics.ap import EPS, THRESHOLDS, average_precision, descending_order
from humanparse.metrics.gather import GatheredMetric
from humanparse.metrics.hist import confusion_counts
from humanparse.metrics.semantic import scores_from_confmat

APP_CONVENTIONS = ("prcnn", "mhp_official", "pet")
# score filter of each convention: PRCNN.SCORE_THRESH, none, QANet PARSING.SCORE_THRESH
DEFAULT_SCORE_THRESH = {"prcnn": 0.001, "mhp_official": None, "pet": 0.01}
IGNORE = 255
# bins of one bincount call; larger prediction sets are processed in chunks
_MAX_BINS = 1 << 22
# cv2.calcHist counts in float32: exact below 2**24 per bin, so images up to 16.7 Mpixel take that path
_CV_EXACT = 1 << 24


def threshold_key(t: float) -> str:
    """0.5 -> '50' (the suffix of ``app50``, ``pcp50``, ``apr50``)."""
    return f"{int(round(t * 100)):d}"


# ------------------------------------------------------------------------------------------------
# inputs


def as_numpy(x) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def as_label_array(x) -> np.ndarray:
    """Integer label map as uint8 (or uint16) when its values allow: the int64 tensors of the data
    pipeline would otherwise take the slower generic paths."""
    a = as_numpy(x)
    if a.dtype in (np.uint8, np.uint16) or a.size == 0 or a.dtype.kind not in "iub":
        return a
    lo, hi = int(a.min()), int(a.max())
    if lo >= 0 and hi < 256:
        return a.astype(np.uint8)
    if lo >= 0 and hi < 65536:
        return a.astype(np.uint16)
    return a


class PartMap:
    """One predicted person's full-image part map (0 outside the person).

    Kept dense as uint8 when the labels fit — then every per-image count is one ``cv2.calcHist`` —
    and otherwise as the flat indices and values of its non-zero pixels. Either view is built on
    first use.
    """

    def __init__(
        self,
        dense: np.ndarray | None = None,
        index: np.ndarray | None = None,
        value: np.ndarray | None = None,
        shape: tuple[int, int] | None = None,
    ):
        if dense is None and (index is None or value is None or shape is None):
            raise ValueError("a part map needs a dense array, or flat indices, values and the image shape")
        self.dense = dense
        self.shape = tuple(dense.shape) if dense is not None else tuple(shape)
        self._index = None if index is None else np.asarray(index, dtype=np.int64)
        self._value = None if value is None else np.asarray(value, dtype=np.int64)

    @classmethod
    def from_array(
        cls, label, offset: tuple[int, int] | None = None, shape: tuple[int, int] | None = None
    ) -> PartMap:
        """From a full-image map, or from a box-cropped map placed at ``offset=(x0, y0)`` in an image of
        ``shape``."""
        label = as_label_array(label)
        if label.ndim != 2:
            raise ValueError(f"a part map must be 2-D, got shape {label.shape}")
        if offset is not None:
            x0, y0 = int(offset[0]), int(offset[1])
            h, w = shape
            if x0 < 0 or y0 < 0 or y0 + label.shape[0] > h or x0 + label.shape[1] > w:
                raise ValueError(
                    f"a cropped part map of size {label.shape} at (x0, y0) = ({x0}, {y0}) leaves the "
                    f"{w}x{h} image"
                )
            full = np.zeros((h, w), dtype=label.dtype)
            full[y0 : y0 + label.shape[0], x0 : x0 + label.shape[1]] = label
            label = full
        if label.dtype == np.uint8:
            return cls(dense=np.ascontiguousarray(label))
        flat = label.reshape(-1)
        idx = np.flatnonzero(flat)
        return cls(index=idx, value=flat[idx], shape=label.shape)

    @property
    def index(self) -> np.ndarray:
        if self._index is None:
            self._index = np.flatnonzero(self.dense.reshape(-1))
            self._value = self.dense.reshape(-1)[self._index].astype(np.int64)
        return self._index

    @property
    def value(self) -> np.ndarray:
        if self._value is None:
            _ = self.index
        return self._value

    def label_range(self) -> tuple[int, int]:
        if self.dense is not None:
            return int(self.dense.min()), int(self.dense.max())
        return int(self.value.min(initial=0)), int(self.value.max(initial=0))

    def histogram(self, num_classes: int) -> np.ndarray:
        """Counts of labels 0..C-1 over the non-zero pixels (entry 0 stays 0)."""
        if self.dense is not None and self.dense.size < _CV_EXACT:
            h = cv2.calcHist([self.dense], [0], self.dense, [num_classes], [0, num_classes])
            return h.reshape(-1).astype(np.int64)
        return np.bincount(self.value, minlength=num_classes)[:num_classes]


def prediction_maps(parts, shape: tuple[int, int], boxes=None) -> list[PartMap]:
    """Predictions as :class:`PartMap`: ``parts`` is a (D, H, W) stack / list of full-image maps, or,
    with ``boxes`` ((D, 4) integer ``[x0, y0, x1, y1]``, end exclusive), a list of box-cropped maps."""
    if parts is None:
        return []
    if boxes is None:
        arr = parts if isinstance(parts, (list, tuple)) else as_label_array(parts)
        out = []
        for p in arr:
            if p.shape != tuple(shape):
                raise ValueError(
                    f"a predicted part map is {tuple(p.shape)}, the ground truth {tuple(shape)}; maps "
                    "must be at the GT's original size (or pass boxes for cropped maps)"
                )
            out.append(PartMap.from_array(p))
        return out
    boxes = as_numpy(boxes).astype(np.int64).reshape(-1, 4)
    if len(boxes) != len(parts):
        raise ValueError(f"{len(parts)} part maps but {len(boxes)} boxes")
    out = []
    for p, b in zip(parts, boxes):
        if tuple(p.shape) != (b[3] - b[1], b[2] - b[0]):
            raise ValueError(
                f"cropped part map of shape {tuple(p.shape)} does not match its box {b.tolist()}"
            )
        out.append(PartMap.from_array(p, (b[0], b[1]), shape))
    return out


def check_prediction_labels(preds: Sequence[PartMap], num_classes: int, where: str = "prediction") -> None:
    for k, p in enumerate(preds):
        lo, hi = p.label_range()
        if hi >= num_classes or lo < 0:
            v = p.value
            bad = np.unique(v[(v >= num_classes) | (v < 0)])[:10].tolist()
            raise ValueError(f"{where} {k}: predicted part labels {bad} outside 0..{num_classes - 1}")


class CodeLayer:
    """Disjoint GT persons of one image as a code per pixel: ``local_index · (C + 1) + value`` (value 255
    stored as C). ``members[i]`` is the global index of local person i + 1. Codes with local index 0
    (no person of the layer) or value 0 are never used. When the codes fit in a byte the layer keeps
    a dense uint8 code map (one ``cv2.calcHist`` per prediction); otherwise it keeps an int64 code map
    or computes codes on demand from the person-id and part maps through two look-up tables."""

    def __init__(
        self,
        members: np.ndarray,
        num_classes: int,
        code: np.ndarray | None = None,
        person_ids: np.ndarray | None = None,
        semantic: np.ndarray | None = None,
        rank_lut: np.ndarray | None = None,
        value_lut: np.ndarray | None = None,
    ):
        self.members = np.asarray(members, dtype=np.int64)
        self._c = num_classes
        self._code = code
        self._pid, self._sem, self._rank, self._val = person_ids, semantic, rank_lut, value_lut
        self.dense8 = None
        k = (len(self.members) + 1) * (num_classes + 1)
        if k <= 256:
            if code is not None and code.size < _CV_EXACT:
                self.dense8 = code.astype(np.uint8).reshape(1, -1)
            elif (
                person_ids is not None
                and person_ids.dtype == np.uint8
                and semantic.dtype == np.uint8
                and person_ids.size < _CV_EXACT
            ):
                lut = np.zeros(256, dtype=np.uint8)
                lut[: len(rank_lut)] = rank_lut  # ranks <= len(members) < 256 here
                r = cv2.LUT(person_ids, lut)
                v = cv2.LUT(semantic, value_lut.astype(np.uint8))
                # r·(C+1) + v <= K − 1 <= 255; codes with r = 0 or v = 0 are dropped by the caller
                self.dense8 = (r * np.uint8(num_classes + 1) + v).astype(np.uint8).reshape(1, -1)

    @property
    def num_codes(self) -> int:
        return (len(self.members) + 1) * (self._c + 1)

    def codes(self, index: np.ndarray) -> np.ndarray:
        if self._code is not None:
            return self._code[index]
        if self.dense8 is not None:
            return self.dense8.reshape(-1)[index].astype(np.int64)
        r = self._rank[self._pid[index]]
        v = self._val[self._sem[index]]
        return np.where((r > 0) & (v > 0), r * (self._c + 1) + v, 0)


@dataclass
class PersonsGT:
    """GT persons of one image, prepared for :func:`person_part_iou` (see the module docstring).

    ``hist[g, c]`` counts GT value c (c < C) of person g over the non-zero pixels, ``hist[g, C]`` its
    255 pixels; ``nz[g]`` its non-zero pixels (255 included); ``num_labels[g]`` the number of distinct
    labels in (0, C); ``layers`` the :class:`CodeLayer` groups of pairwise-disjoint persons.
    """

    num_pixels: int
    num_classes: int
    hist: np.ndarray
    nz: np.ndarray
    num_labels: np.ndarray
    layers: list[CodeLayer]

    @property
    def count(self) -> int:
        return int(self.nz.shape[0])


def _check_gt_values(arr: np.ndarray, num_classes: int, what: str) -> None:
    bad = (arr >= num_classes) & (arr != IGNORE)
    if bad.any():
        raise ValueError(
            f"{what}: GT values {np.unique(arr[bad])[:10].tolist()} are neither classes "
            f"0..{num_classes - 1} nor {IGNORE}"
        )


def persons_from_semantic(
    semantic: np.ndarray, person_ids: np.ndarray, num_classes: int, drop_empty: bool = False
) -> PersonsGT:
    """CIHP persons (:func:`humanparse.data.instances.persons_from_ids`): person k's
    map is ``semantic · [person_ids = k]`` for every id k > 0 present, in increasing k. With
    ``drop_empty`` persons without any non-zero pixel are left out (``mhp_official``)."""
    c = num_classes
    sem = as_numpy(semantic)
    pid = as_numpy(person_ids)
    if sem.shape != pid.shape:
        raise ValueError(f"semantic map {sem.shape} and person-id map {pid.shape} differ in size")
    if pid.size and pid.min() < 0:
        raise ValueError("person ids must be >= 0")
    sem = sem.reshape(-1)
    pid = pid.reshape(-1)
    if sem.dtype == np.uint8 and pid.dtype == np.uint8 and sem.size < (1 << 24):
        # joint (person id, part value) histogram in one C pass (counts exact below 2**24 pixels)
        top = int(pid.max(initial=0)) + 1
        joint = cv2.calcHist([pid, sem], [0, 1], None, [top, 256], [0, top, 0, 256]).astype(np.int64)
        ids = np.arange(top)
    else:  # 16-bit maps: the same histogram over the person ids present
        if sem.size and sem.max() > IGNORE:
            _check_gt_values(sem, c, "semantic map")
        pid64 = pid.astype(np.int64)
        ids = np.flatnonzero(np.bincount(pid64, minlength=1))
        lut = np.zeros(int(ids[-1]) + 1 if len(ids) else 1, dtype=np.int64)
        lut[ids] = np.arange(len(ids))
        joint = np.bincount(lut[pid64] * 256 + sem.astype(np.int64), minlength=len(ids) * 256).reshape(
            -1, 256
        )
    values = joint.sum(0)
    if values[c:IGNORE].any():
        bad = np.flatnonzero(values[c:IGNORE]) + c
        raise ValueError(
            f"semantic map: GT values {bad[:10].tolist()} are neither classes 0..{c - 1} nor {IGNORE}"
        )
    rows = np.flatnonzero(joint.sum(1))
    rows = rows[ids[rows] > 0]
    joint = joint[rows]
    present = ids[rows].astype(np.int64)
    g = len(present)
    hist = np.zeros((g, c + 1), dtype=np.int64)
    hist[:, 1:c] = joint[:, 1:c]
    hist[:, c] = joint[:, IGNORE]
    nz = hist.sum(1)
    keep = nz > 0 if drop_empty else np.ones(g, dtype=bool)
    hist, nz = hist[keep], nz[keep]
    value_lut = np.arange(256, dtype=np.int64)
    value_lut[IGNORE] = c
    kept_ids = present[keep]
    # one byte per code (dense OpenCV path) needs uint8 maps and few persons per layer
    dense_ok = sem.dtype == np.uint8 and pid.dtype == np.uint8
    per_layer = _persons_per_layer(c, len(kept_ids)) if dense_ok else max(len(kept_ids), 1)
    layers = []
    for s0 in range(0, max(len(kept_ids), 1), per_layer):
        chunk = kept_ids[s0 : s0 + per_layer]
        lut = np.zeros(int(present.max(initial=0)) + 1, dtype=np.int64)
        lut[chunk] = np.arange(1, len(chunk) + 1)
        layers.append(
            CodeLayer(
                np.arange(s0, s0 + len(chunk)),
                c,
                person_ids=pid,
                semantic=sem,
                rank_lut=lut,
                value_lut=value_lut,
            )
        )
    return PersonsGT(sem.size, c, hist, nz, (hist[:, 1:c] > 0).sum(1), layers)


def _persons_per_layer(num_classes: int, count: int) -> int:
    """Persons per layer: as many as keep the codes in one byte (dense OpenCV path), else all."""
    cap = 256 // (num_classes + 1) - 1
    return cap if cap >= 1 else max(count, 1)


def persons_from_person_maps(maps, num_classes: int, drop_empty: bool = False) -> PersonsGT:
    """Persons given as full-image part maps (MHP v2 ``parsing_annos``, channel 0), in the given order.
    With ``drop_empty`` maps without any non-zero pixel are left out (the MHP v2 code drops
    ``np.sum(mask_gt > 0) == 0``; a map holding only 255 is kept)."""
    c = num_classes
    flat, n = [], None
    for k, m in enumerate(maps):
        m = as_numpy(m)
        _check_gt_values(m, c, f"GT person map {k}")
        if n is None:
            n, shape = m.size, m.shape
        elif m.shape != shape:
            raise ValueError(f"GT person map {k} is {m.shape}, the first one {shape}")
        f = m.reshape(-1).astype(np.int64)
        if drop_empty and not f.any():
            continue
        flat.append(f)
    n = 0 if n is None else n
    g = len(flat)
    hist = np.zeros((g, c + 1), dtype=np.int64)
    layers: list[tuple[np.ndarray, list[int]]] = []
    occupied: list[np.ndarray] = []
    cap = _persons_per_layer(c, len(flat))
    for k, f in enumerate(flat):
        idx = np.flatnonzero(f)
        val = np.where(f[idx] == IGNORE, c, f[idx])
        hist[k] = np.bincount(val, minlength=c + 1)
        free = [i for i, occ in enumerate(occupied) if len(layers[i][1]) < cap and not occ[idx].any()]
        if free:
            li = free[0]
        else:
            layers.append((np.zeros(n, dtype=np.int64), []))
            occupied.append(np.zeros(n, dtype=bool))
            li = len(layers) - 1
        code, members = layers[li]
        members.append(k)
        code[idx] = len(members) * (c + 1) + val
        occupied[li][idx] = True
    hist[:, 0] = 0
    nz = hist.sum(1)
    return PersonsGT(
        n,
        c,
        hist,
        nz,
        (hist[:, 1:c] > 0).sum(1),
        [CodeLayer(np.asarray(members, dtype=np.int64), c, code=code) for code, members in layers],
    )


# ------------------------------------------------------------------------------------------------
# person-level part IoU of every (prediction, GT person) pair


def person_part_iou(gt: PersonsGT, preds: Sequence[PartMap]) -> np.ndarray:
    """(D, G, C) float64 per-class IoU of every (prediction, GT person) pair, NaN for classes absent
    from both maps (formulas in the module docstring). The joint histogram of each prediction
    with each GT layer is one ``cv2.calcHist`` masked by the prediction (dense uint8 maps), or one
    ``np.bincount`` over the predictions' non-zero pixels."""
    c, n = gt.num_classes, gt.num_pixels
    d_count, g_count = len(preds), gt.count
    out = np.full((d_count, g_count, c), np.nan)
    if d_count == 0 or g_count == 0:
        return out
    pred_hist = np.full((d_count, c), -1, dtype=np.int64)  # filled from the first layer's histograms
    joint = np.zeros((d_count, g_count, c + 1, c), dtype=np.int64)  # [d, g, gt value (C = 255), pred value]
    for layer in gt.layers:
        members = layer.members
        gl = len(members)
        k = layer.num_codes
        sparse = []
        for d, p in enumerate(preds):
            if layer.dense8 is not None and p.dense is not None:
                pd = p.dense.reshape(1, -1)  # both as one row: calcHist wants equal 2-D shapes
                h = cv2.calcHist([layer.dense8, pd], [0, 1], pd, [k, c], [0, k, 0, c]).astype(np.int64)
                joint[d, members] = h.reshape(gl + 1, c + 1, c)[1:]
                if pred_hist[d, 0] < 0:  # every non-zero prediction pixel has some code: the column sums
                    pred_hist[d] = h.sum(0)
            else:
                sparse.append(d)
        per_pred = k * c
        chunk = max(1, _MAX_BINS // per_pred)
        for s in range(0, len(sparse), chunk):
            part = sparse[s : s + chunk]
            keys = np.concatenate(
                [(i * k + layer.codes(preds[d].index)) * c + preds[d].value for i, d in enumerate(part)]
            )
            cnt = np.bincount(keys, minlength=len(part) * per_pred).reshape(len(part), gl + 1, c + 1, c)
            joint[np.asarray(part)[:, None], members[None, :]] = cnt[:, 1:]
    for d in np.flatnonzero(pred_hist[:, 0] < 0):
        pred_hist[d] = preds[d].histogram(c)
    pred_hist[:, 0] = 0
    nz_d = pred_hist[:, 1:].sum(1)
    joint[:, :, 0, :] = 0  # GT value 0 is not a non-zero GT pixel; its entries are derived below
    joint[:, :, :, 0] = 0
    both = joint.sum((2, 3))  # (D, G) pixels where both maps are non-zero
    cls = np.arange(1, c)
    inter = np.zeros((d_count, g_count, c), dtype=np.int64)
    inter[:, :, 1:] = joint[:, :, cls, cls]
    inter[:, :, 0] = n - gt.nz[None, :] - nz_d[:, None] + both
    row = np.empty((g_count, c), dtype=np.int64)
    row[:, 1:] = gt.hist[:, 1:c]
    row[:, 0] = n - gt.nz
    ign_pred = joint[:, :, c, :]  # (D, G, C): pred value b on GT-255 pixels (b >= 1)
    col = np.empty((d_count, g_count, c), dtype=np.int64)
    col[:, :, 1:] = pred_hist[:, None, 1:] - ign_pred[:, :, 1:]
    col[:, :, 0] = (n - nz_d)[:, None] - (gt.hist[None, :, c] - ign_pred[:, :, 1:].sum(2))
    union = row[None] + col - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(union > 0, inter / np.maximum(union, 1), np.nan)
    return out


def mean_part_iou(iou: np.ndarray) -> np.ndarray:
    """nan-mean over the class axis; a pair with every class absent (all-255 GT) gives NaN."""
    valid = ~np.isnan(iou)
    cnt = valid.sum(-1)
    s = np.where(valid, iou, 0.0).sum(-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(cnt > 0, s / np.maximum(cnt, 1), np.nan)


# ------------------------------------------------------------------------------------------------
# Parsing R-CNN's semantic map from instance predictions


def paste_instances(
    preds: Sequence[PartMap], scores: np.ndarray, num_pixels: int, score_thresh: float = 0.0
) -> np.ndarray:
    """Flat semantic map: instances in ascending score order (stable), those with score < ``score_thresh``
    skipped, non-zero labels pasted over the map, so higher scores win overlaps."""
    small = all(p.dense is not None for p in preds)
    out = np.zeros(num_pixels, dtype=np.uint8 if small else np.int64)
    scores = np.asarray(scores, dtype=np.float64)
    for k in np.argsort(scores, kind="stable"):
        if scores[k] < score_thresh:
            continue
        p = preds[k]
        if small:
            flat = p.dense.reshape(-1)
            np.copyto(out, flat, where=flat != 0)
        else:
            out[p.index] = p.value
    return out


def semantic_from_instances(
    parts, scores, shape: tuple[int, int], semseg_score_thresh: float = 0.3, boxes=None
) -> np.ndarray:
    """The Parsing R-CNN semantic map of one image as an (H, W) int64 array."""
    preds = prediction_maps(parts, shape, boxes)
    return paste_instances(
        preds, as_numpy(scores).reshape(-1), shape[0] * shape[1], semseg_score_thresh
    ).reshape(shape)


def sparse_confusion(
    semantic_gt: np.ndarray, pred_flat: np.ndarray, num_classes: int
) -> tuple[np.ndarray, np.ndarray]:
    """Semantic confusion of one image as (flat bin indices, counts) of its non-zero bins (compact record)."""
    c = num_classes
    _check_gt_values(semantic_gt, c, "semantic GT")
    cm = confusion_counts(semantic_gt.reshape(-1), pred_flat.reshape(-1), c).reshape(-1)
    nzb = np.flatnonzero(cm)
    return nzb.astype(np.int32), cm[nzb]


# ------------------------------------------------------------------------------------------------
# per-image record and rank-0 scoring


def image_app_record(
    gt: PersonsGT,
    preds: Sequence[PartMap],
    scores,
    *,
    semantic_gt: np.ndarray | None = None,
    semseg_score_thresh: float = 0.3,
    thresholds: Sequence[float] = THRESHOLDS,
) -> dict:
    """Compact per-image record: for each prediction its score, best GT index (−1: none), ovmax and,
    per threshold t, the number of GT part classes c ≥ 1 of that pair with IoU_c > t (PCP's n); the
    GT persons' label counts; the sparse semantic-map confusion. A few numbers per prediction instead of
    full-image maps, so that gathering a whole split to rank 0 stays cheap."""
    c = gt.num_classes
    scores = np.asarray(as_numpy(scores), dtype=np.float64).reshape(-1)
    if len(scores) != len(preds):
        raise ValueError(f"{len(preds)} predicted part maps but {len(scores)} scores")
    check_prediction_labels(preds, c)
    iou = person_part_iou(gt, preds)
    d_count = len(preds)
    jstar = np.full(d_count, -1, dtype=np.int64)
    ovmax = np.full(d_count, -np.inf)
    pcp_n = np.zeros((d_count, len(thresholds)), dtype=np.int32)
    if d_count and gt.count:
        miou = mean_part_iou(iou)
        m = np.where(np.isnan(miou), -np.inf, miou)  # NaN never wins (reference: NaN > ovmax is False)
        j = np.argmax(m, axis=1)  # first index on ties = strict ">" scan
        ov = m[np.arange(d_count), j]
        ok = ov > -np.inf
        jstar[ok], ovmax[ok] = j[ok], ov[ok]
        best = iou[np.flatnonzero(ok), j[ok], 1:]  # (matched, C - 1); NaN compares False
        with np.errstate(invalid="ignore"):
            pcp_n[ok] = np.stack([(best > t).sum(1) for t in thresholds], 1) if len(thresholds) else 0
    rec = {
        "scores": scores,
        "jstar": jstar,
        "ovmax": ovmax,
        "pcp_n": pcp_n,
        "thresholds": tuple(thresholds),
        "num_labels": gt.num_labels.astype(np.int64),
        "num_gt": gt.count,
        "num_pred": d_count,
    }
    if semantic_gt is not None:
        sem = as_numpy(semantic_gt)
        if sem.size != gt.num_pixels and gt.num_pixels:
            raise ValueError(f"semantic GT has {sem.size} pixels, the person maps {gt.num_pixels}")
        pasted = paste_instances(preds, scores, sem.size, semseg_score_thresh)
        rec["confusion"] = sparse_confusion(sem, pasted, c)
    return rec


def score_app(
    records: Sequence[dict],
    num_classes: int,
    app_convention: str = "prcnn",
    score_thresh: float | None | str = "default",
    thresholds: Sequence[float] = THRESHOLDS,
    prcnn_skip_empty: bool = False,
    class_names: Sequence[str] | None = None,
    nan_score: str = "raise",
) -> dict[str, float]:
    """AP^p_t, PCP_t and the Parsing R-CNN semantic scores from per-image records in list order.

    Keys: ``app<t>`` / ``pcp<t>`` per threshold (``app50``, ``pcp50``, …), ``app_vol``, and, when the
    records carry confusions, ``miou``, ``pixel_acc``, ``mean_acc`` and ``iou/<class>``.
    """
    if app_convention not in APP_CONVENTIONS:
        raise ValueError(f"app_convention must be one of {APP_CONVENTIONS}, got {app_convention!r}")
    if score_thresh == "default":
        score_thresh = DEFAULT_SCORE_THRESH[app_convention]
    c = num_classes
    offsets = np.cumsum([0] + [r["num_gt"] for r in records])
    npos = int(offsets[-1])

    def cat(key, empty):
        return np.concatenate([r[key] for r in records]) if records else empty

    scores = cat("scores", np.zeros(0))
    jloc = cat("jstar", np.zeros(0, np.int64))
    ovmax = cat("ovmax", np.zeros(0))
    for r in records:
        if tuple(r["thresholds"]) != tuple(thresholds):
            raise ValueError(
                f"records were made for thresholds {r['thresholds']}, scored at {tuple(thresholds)}"
            )
    pcp_n = (
        np.concatenate([r["pcp_n"] for r in records]) if records else np.zeros((0, len(thresholds)), np.int32)
    )
    img = (
        np.concatenate([np.full(r["num_pred"], i) for i, r in enumerate(records)])
        if records
        else np.zeros(0, np.int64)
    )
    num_labels = cat("num_labels", np.zeros(0, np.int64))
    jglob = np.where(jloc >= 0, offsets[img.astype(np.int64)] + jloc, -1) if len(jloc) else jloc
    keep = np.ones(len(scores), dtype=bool) if score_thresh is None else ~(scores < float(score_thresh))
    order = descending_order(scores[keep], nan_score, what="instance scores")
    sel = np.flatnonzero(keep)[order]
    s_ov, s_j, s_n = ovmax[sel], jglob[sel], pcp_n[sel]
    eps_floor = app_convention != "mhp_official"
    out: dict[str, float] = {}
    aps = []
    if npos == 0:
        warnings.warn("AP^p / PCP: no GT person in the evaluated images; returning NaN", stacklevel=2)
    for ti, t in enumerate(thresholds):
        cand = np.flatnonzero(s_ov > t)
        tp = np.zeros(len(sel))
        if len(cand):
            _, first = np.unique(s_j[cand], return_index=True)  # the first candidate per GT takes it
            tp[cand[first]] = 1.0
        fp = 1.0 - tp
        ap = float("nan") if npos == 0 else average_precision(tp, fp, npos, eps_floor=eps_floor)
        if npos == 0:
            pcp = float("nan")
        else:
            hit = np.flatnonzero(tp > 0)
            n = s_n[hit, ti]
            m = num_labels[s_j[hit]] if len(hit) else np.zeros(0, np.int64)
            vals = np.zeros(npos)  # unmatched GT persons count 0; np.mean over all npos, as the references
            vals[: len(hit)] = np.where(m > 0, n / np.maximum(m, 1), 0.0)
            pcp = float(np.mean(vals))
        key = threshold_key(t)
        out[f"app{key}"] = ap
        out[f"pcp{key}"] = pcp
        aps.append(ap)
    aps_arr = np.asarray(aps, dtype=np.float64)
    if app_convention == "pet":
        out["app_vol"] = float(np.nanmean(aps_arr)) if (~np.isnan(aps_arr)).any() else float("nan")
    else:
        out["app_vol"] = float(aps_arr.mean()) if len(aps_arr) else float("nan")
    if records and all("confusion" in r for r in records):
        kept = [r for r in records if not (prcnn_skip_empty and r["num_pred"] == 0)]
        idx = (
            np.concatenate([r["confusion"][0] for r in kept]).astype(np.int64)
            if kept
            else np.zeros(0, np.int64)
        )
        cnt = np.concatenate([r["confusion"][1] for r in kept]) if kept else np.zeros(0, np.int64)
        # float64 weights are exact for counts below 2**53
        cm = np.bincount(idx, weights=cnt, minlength=c * c).astype(np.int64)
        used = len(kept)
        sem = scores_from_confmat(torch.from_numpy(cm.reshape(c, c)), "nan")
        out["miou"] = float(sem["miou"])
        out["pixel_acc"] = float(sem["pixel_acc"])
        out["mean_acc"] = float(sem["mean_acc"])
        names = list(class_names) if class_names is not None else [str(i) for i in range(c)]
        for name, v in zip(names, sem["iou"].tolist()):
            out[f"iou/{name}"] = float(v)
        out["semantic_images"] = float(used)
    out["num_predictions"] = float(len(sel))
    out["num_gt_persons"] = float(npos)
    return out


# ------------------------------------------------------------------------------------------------
# torchmetrics wrapper


def sample_key(target: dict, fallback: int) -> tuple[int, str]:
    """(position in the evaluation list, image id) of a target dict (top level or its ``meta``)."""
    meta = target.get("meta", {}) if isinstance(target.get("meta"), dict) else {}
    order = target.get("order", target.get("index", meta.get("index", fallback)))
    image_id = target.get("image_id", target.get("id", meta.get("id", order)))
    if isinstance(order, torch.Tensor):
        order = int(order)
    return int(order), str(image_id)


class InstanceParsingMetric(GatheredMetric):
    """AP^p (``app10`` … ``app90``, ``app50``, ``app_vol``), PCP (``pcp10`` … ``pcp90``, ``pcp50``) and
    the Parsing R-CNN semantic mIoU (``miou``, ``iou/<class>``), Parsing R-CNN §4.

    ``update(preds, targets)`` takes one dict per image:

    * ``preds[i]``: ``parts`` — (D, H, W) full-image part maps (0 outside the person; they may
      overlap), or a list of box-cropped maps with ``boxes`` (D, 4) ``[x0, y0, x1, y1]`` (end
      exclusive); ``scores`` (D,).
    * ``targets[i]``: ``semantic`` + ``person_ids`` (CIHP: persons = semantic·[ids = k]) or
      ``persons`` (G, H, W) person part maps (MHP; the semantic GT is then painted from them unless
      ``semantic`` is given); ``image_id`` and ``order`` (position in the split) or a ``meta`` dict
      with ``id`` / ``index``.

    Options: ``app_convention`` (``prcnn`` | ``mhp_official`` | ``pet``), ``score_thresh`` (default:
    the convention's), ``semseg_score_thresh`` (0.3; 0.05 in the MHP-v2 configs),
    ``prcnn_skip_empty``, ``thresholds``, ``nan_score`` (``raise`` | ``first``).
    """

    def __init__(
        self,
        num_classes: int,
        class_names: Sequence[str] | None = None,
        app_convention: str = "prcnn",
        score_thresh: float | None | str = "default",
        semseg_score_thresh: float = 0.3,
        prcnn_skip_empty: bool = False,
        thresholds: Sequence[float] = THRESHOLDS,
        compute_semantic: bool = True,
        nan_score: str = "raise",
        **kwargs,
    ):
        super().__init__(**kwargs)
        if app_convention not in APP_CONVENTIONS:
            raise ValueError(f"app_convention must be one of {APP_CONVENTIONS}, got {app_convention!r}")
        self.num_classes = int(num_classes)
        self.class_names = (
            list(class_names) if class_names is not None else [str(i) for i in range(num_classes)]
        )
        self.app_convention = app_convention
        self.score_thresh = score_thresh
        self.semseg_score_thresh = float(semseg_score_thresh)
        self.prcnn_skip_empty = bool(prcnn_skip_empty)
        self.thresholds = tuple(float(t) for t in thresholds)
        self.compute_semantic = compute_semantic
        self.nan_score = nan_score

    def update(self, preds: Sequence[dict], targets: Sequence[dict]) -> None:
        if len(preds) != len(targets):
            raise ValueError(f"{len(preds)} predictions for {len(targets)} targets")
        drop = self.app_convention == "mhp_official"
        for pred, target in zip(preds, targets):
            order, image_id = sample_key(target, self._seen)
            self._seen += 1
            semantic = target.get("semantic")
            semantic = None if semantic is None else as_label_array(semantic)
            if "persons" in target:
                maps = [as_label_array(m) for m in target["persons"]]
                gt = persons_from_person_maps(maps, self.num_classes, drop_empty=drop)
                if semantic is None and self.compute_semantic and maps:
                    from humanparse.data.instances import paint_persons

                    semantic = paint_persons(maps)[0]
                if not maps and semantic is None:
                    raise ValueError(
                        f"image {image_id}: no GT person maps and no semantic map; pass 'semantic' "
                        "so that the image size is known"
                    )
                shape = maps[0].shape if maps else as_numpy(semantic).shape
            else:
                gt = persons_from_semantic(
                    semantic, as_label_array(target["person_ids"]), self.num_classes, drop_empty=drop
                )
                shape = semantic.shape
            maps_pred = prediction_maps(pred.get("parts"), tuple(shape), pred.get("boxes"))
            rec = image_app_record(
                gt,
                maps_pred,
                pred.get("scores", np.zeros(0)),
                semantic_gt=as_numpy(semantic) if (self.compute_semantic and semantic is not None) else None,
                semseg_score_thresh=self.semseg_score_thresh,
                thresholds=self.thresholds,
            )
            self.add(order, image_id, rec)

    def score(self, records) -> dict[str, float]:
        return score_app(
            [r[2] for r in records],
            self.num_classes,
            self.app_convention,
            self.score_thresh,
            self.thresholds,
            self.prcnn_skip_empty,
            self.class_names,
            self.nan_score,
        )


__all__ = [
    "APP_CONVENTIONS",
    "CodeLayer",
    "DEFAULT_SCORE_THRESH",
    "EPS",
    "InstanceParsingMetric",
    "PersonsGT",
    "PartMap",
    "image_app_record",
    "mean_part_iou",
    "paste_instances",
    "person_part_iou",
    "persons_from_person_maps",
    "persons_from_semantic",
    "prediction_maps",
    "score_app",
    "semantic_from_instances",
    "threshold_key",
]
