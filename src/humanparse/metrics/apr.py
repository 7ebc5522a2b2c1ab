"""PGN's AP^r: region-based AP over part instances, per part class (PGN §4).

A part instance is one (person, part class) region. For each class c = 1..C−1 and threshold t
(``Engineering-Course/CIHP_PGN evaluation/test_inst_part_ap.py::compute_class_ap``):

1. per image, G = GT instances of c present in the map (npos_c += |G|) and D = predicted instances of
   c present in the map, in ascending id order; an image without D contributes only its npos;
2. IoU(d, g) = |d∩g| / (|d| + |g| − |d∩g|); with ``matching='pgn'`` (default, the released code) d is
   a TP iff max_g IoU > t (**strict**) and **no GT is marked used**, so duplicates on one GT are all
   TPs and recall (and AP) can exceed 1; with ``matching='one_to_one'`` (VOC style) the predictions of
   an image are visited in descending score, each takes its max-IoU GT (first on ties) and is a TP iff
   IoU > t and that GT is still unused at t, with no fallback;
3. all class-c predictions sorted by descending score (stable), VOC all-point AP (see ``metrics.ap``).

mAP_t = mean over classes (``class_reduction='nanmean'``, default, or ``'mean'`` = PGN's ``np.mean``,
where one NaN class makes mAP_t NaN); ``apr_vol`` = mean of mAP_t over t = 0.1..0.9 (PGN's final
``np.mean(mAP)``); ``apr50``, ``apr60``, ``apr70`` and the per-class × threshold table. NaN table:
npos_c > 0 without predictions → 0; npos_c = 0 without predictions → 0; npos_c = 0 with
predictions → NaN.

All IoUs of an image come from one ``np.bincount`` of ``gt_index · (K_pred + 1) + pred_index`` over
its pixels. Since neither matching falls back to a second GT, a prediction is fully described by its
score, its best GT (first on ties) and that IoU: the per-image records hold just that.

Project convention for instance models (:func:`part_instances_from_predictions`, following
``soeaver/QANet lib/data/evaluation/parsing_eval.py::generate_parsing_result``): drop instances with
score < ``score_thresh`` (0.01), paste the rest in ascending score order, and every (instance, class)
region still visible is one part instance scored with the instance score (or its per-part score).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from humanparse.metrics.ap import THRESHOLDS, average_precision, descending_order
from humanparse.metrics.gather import GatheredMetric
from humanparse.metrics.instance import as_numpy, prediction_maps, sample_key, threshold_key

MATCHINGS = ("pgn", "one_to_one")
CLASS_REDUCTIONS = ("nanmean", "mean")


@dataclass
class PartInstances:
    """Part instances of one image: an id map (0 = none) and, per id 1..K, its class (0 = not a part
    instance, e.g. an id without a class line) and score (NaN for GT)."""

    id_map: np.ndarray  # (H, W) integer, ids 0..K
    classes: np.ndarray  # (K + 1,) int64, classes[0] = 0
    scores: np.ndarray  # (K + 1,) float64

    @classmethod
    def from_table(cls, id_map, ids, classes, scores=None) -> PartInstances:
        """From a table of (id, class[, score]) rows; ids absent from the table get class 0."""
        id_map = as_numpy(id_map)
        ids = np.asarray(ids, dtype=np.int64).reshape(-1)
        k = int(max(int(id_map.max(initial=0)), int(ids.max(initial=0))))
        cl = np.zeros(k + 1, dtype=np.int64)
        sc = np.full(k + 1, np.nan)
        cl[ids] = np.asarray(classes, dtype=np.int64).reshape(-1)
        if scores is not None:
            sc[ids] = np.asarray(scores, dtype=np.float64).reshape(-1)
        cl[0] = 0
        return cls(id_map, cl, sc)


def gt_part_instances(semantic, person_ids, num_classes: int) -> PartInstances:
    """GT part instances by the project rule: one per present (class c ≥ 1, person
    h ≥ 1) pair, numbered in (person, class) order — the numbering of
    :func:`humanparse.data.instances.part_instances`, computed with a bincount instead of ``np.unique``."""
    sem = as_numpy(semantic).astype(np.int64)
    pid = as_numpy(person_ids).astype(np.int64)
    if sem.shape != pid.shape:
        raise ValueError(f"semantic map {sem.shape} and person-id map {pid.shape} differ in size")
    c = num_classes
    valid = (sem > 0) & (sem < c) & (pid > 0)
    key = np.where(valid, pid * c + sem, 0)
    present = np.flatnonzero(np.bincount(key.reshape(-1), minlength=1))
    present = present[present > 0]
    lut = np.zeros(int(key.max(initial=0)) + 1, dtype=np.int64)
    lut[present] = np.arange(1, len(present) + 1)
    classes = np.concatenate([[0], present % c]).astype(np.int64)
    return PartInstances(lut[key], classes, np.full(len(present) + 1, np.nan))


def part_instances_from_predictions(
    parts,
    scores,
    shape: tuple[int, int],
    score_thresh: float = 0.01,
    part_scores=None,
    boxes=None,
    num_classes: int | None = None,
) -> PartInstances:
    """Project convention: instance predictions (overlapping per-person part maps + scores) → part instances.

    Instances with score < ``score_thresh`` are dropped, the rest pasted in ascending score order
    (stable), and each (instance, class) region still visible becomes one part instance, numbered by
    paste order then class. Its score is the instance score, or ``part_scores[d][c - 1]`` when given
    (QANet's per-part quality scores).
    """
    preds = prediction_maps(parts, shape, boxes)
    scores = as_numpy(scores).astype(np.float64).reshape(-1)
    if len(scores) != len(preds):
        raise ValueError(f"{len(preds)} part maps but {len(scores)} scores")
    n = shape[0] * shape[1]
    owner = np.zeros(n, dtype=np.int64)  # 1 + paste position of the instance owning the pixel
    label = np.zeros(n, dtype=np.int64)
    pasted = []
    for k in np.argsort(scores, kind="stable"):
        if scores[k] < score_thresh:
            continue
        pasted.append(int(k))
        p = preds[k]
        if num_classes is not None and p.value.size and p.value.max() >= num_classes:
            raise ValueError(f"instance {k}: part labels above {num_classes - 1}")
        owner[p.index] = len(pasted)
        label[p.index] = p.value
    cmax = int(label.max(initial=0)) + 1
    key = np.where(owner > 0, owner * cmax + label, 0)
    present = np.flatnonzero(np.bincount(key, minlength=1))
    present = present[present > 0]
    lut = np.zeros(int(key.max(initial=0)) + 1, dtype=np.int64)
    lut[present] = np.arange(1, len(present) + 1)
    inst = present // cmax - 1  # paste position
    cls = present % cmax
    src = np.asarray(pasted, dtype=np.int64)[inst] if len(present) else np.zeros(0, np.int64)
    if part_scores is not None:
        ps = [as_numpy(p).astype(np.float64).reshape(-1) for p in part_scores]
        sc = np.array([ps[s][c - 1] for s, c in zip(src, cls)], dtype=np.float64)
    else:
        sc = scores[src]
    id_map = lut[key].reshape(shape)
    dtype = np.uint16 if len(present) < 65536 else np.int64
    return PartInstances(
        id_map.astype(dtype), np.concatenate([[0], cls]).astype(np.int64), np.concatenate([[np.nan], sc])
    )


def image_apr_record(gt: PartInstances, pred: PartInstances, num_classes: int, where: str = "") -> dict:
    """Per-image record: per predicted part instance present in the map (ascending id) its class,
    score, best GT index among the same-class GT instances (first on ties; −1 if none) and that IoU;
    and the number of present GT instances per class."""
    g_map = as_numpy(gt.id_map).reshape(-1).astype(np.int64)
    p_map = as_numpy(pred.id_map).reshape(-1).astype(np.int64)
    if g_map.size != p_map.size or as_numpy(gt.id_map).shape != as_numpy(pred.id_map).shape:
        raise ValueError(
            f"{where}prediction is {as_numpy(pred.id_map).shape}, ground truth "
            f"{as_numpy(gt.id_map).shape}; maps must be at the original size"
        )
    c = num_classes
    if g_map.size and g_map.max() >= len(gt.classes):
        raise ValueError(f"{where}GT instance ids above the table")
    if p_map.size and (p_map.max() >= len(pred.classes)):
        extra = np.unique(p_map[p_map >= len(pred.classes)])[:10].tolist()
        raise ValueError(f"{where}predicted instance ids {extra} have no class/score line")
    gk = len(gt.classes)
    pk = len(pred.classes)
    counts = np.bincount(g_map * pk + p_map, minlength=gk * pk).reshape(gk, pk)
    g_area = counts.sum(1)
    p_area = counts.sum(0)
    g_cls = gt.classes.copy()
    p_cls = pred.classes.copy()
    g_ok = (g_area > 0) & (g_cls > 0) & (g_cls < c)
    g_ok[0] = False
    p_ok = (p_area > 0) & (p_cls > 0)
    p_ok[0] = False
    if (p_ok & (p_cls >= c)).any():
        bad = np.unique(p_cls[p_ok & (p_cls >= c)]).tolist()
        raise ValueError(f"{where}predicted part classes {bad} outside 1..{c - 1}")
    p_ids = np.flatnonzero(p_ok)
    g_ids = np.flatnonzero(g_ok)
    npos = np.bincount(g_cls[g_ids], minlength=c)[:c].astype(np.int64)
    inter = counts[np.ix_(g_ids, p_ids)].astype(np.float64)  # (G, D)
    union = g_area[g_ids, None] + p_area[None, p_ids] - inter
    iou = inter / np.maximum(union, 1)
    same = g_cls[g_ids, None] == p_cls[None, p_ids]
    iou = np.where(same, iou, -np.inf)
    if len(g_ids):
        best = np.argmax(iou, axis=0)  # first GT on ties
        ov = iou[best, np.arange(len(p_ids))]
    else:
        best = np.zeros(len(p_ids), dtype=np.int64)
        ov = np.full(len(p_ids), -np.inf)
    jstar = np.where(ov > -np.inf, best, -1)
    scores = pred.scores[p_ids]
    return {
        "classes": p_cls[p_ids].astype(np.int64),
        "scores": scores.astype(np.float64),
        "jstar": jstar.astype(np.int64),
        "ovmax": ov.astype(np.float64),
        "npos": npos,
    }


def _one_to_one_flags(rec_classes, rec_scores, rec_jstar, rec_ov, t: float, nan_score: str) -> np.ndarray:
    """TP flags of one image's predictions under ``one_to_one`` at threshold t (input order)."""
    tp = np.zeros(len(rec_scores), dtype=bool)
    order = descending_order(rec_scores, nan_score, "part-instance scores")
    used: set[tuple[int, int]] = set()
    for k in order:
        if rec_ov[k] > t:
            key = (int(rec_classes[k]), int(rec_jstar[k]))
            if key not in used:
                used.add(key)
                tp[k] = True
    return tp


def score_apr(
    records: Sequence[dict],
    num_classes: int,
    matching: str = "pgn",
    class_reduction: str = "nanmean",
    thresholds: Sequence[float] = THRESHOLDS,
    nan_score: str = "raise",
    class_names: Sequence[str] | None = None,
) -> dict[str, float]:
    """AP^r from per-image records in list order: ``apr<t>`` (mAP_t), ``apr_vol``, and the table
    ``apr/<class>/<t>``."""
    if matching not in MATCHINGS:
        raise ValueError(f"matching must be one of {MATCHINGS}, got {matching!r}")
    if class_reduction not in CLASS_REDUCTIONS:
        raise ValueError(f"class_reduction must be one of {CLASS_REDUCTIONS}, got {class_reduction!r}")
    c = num_classes
    names = list(class_names) if class_names is not None else [str(i) for i in range(c)]
    npos = np.zeros(c, dtype=np.int64)
    for r in records:
        npos += r["npos"]

    def cat(key, dt):
        return np.concatenate([r[key] for r in records]).astype(dt) if records else np.zeros(0, dt)

    classes = cat("classes", np.int64)
    scores = cat("scores", np.float64)
    ovmax = cat("ovmax", np.float64)
    # TP flags per threshold, in record order
    flags = np.zeros((len(thresholds), len(scores)), dtype=bool)
    if matching == "pgn":
        for i, t in enumerate(thresholds):
            flags[i] = ovmax > t
    else:
        off = 0
        for r in records:
            n = len(r["scores"])
            for i, t in enumerate(thresholds):
                flags[i, off : off + n] = _one_to_one_flags(
                    r["classes"], r["scores"], r["jstar"], r["ovmax"], t, nan_score
                )
            off += n
    table = np.zeros((c - 1, len(thresholds)))
    for cls in range(1, c):
        sel = np.flatnonzero(classes == cls)
        order = sel[descending_order(scores[sel], nan_score, f"scores of class {names[cls]}")]
        for i in range(len(thresholds)):
            tp = flags[i, order].astype(np.float64)
            table[cls - 1, i] = average_precision(tp, 1.0 - tp, int(npos[cls]))
    if class_reduction == "mean":
        m_ap = table.mean(0)
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            m_ap = np.nanmean(table, axis=0) if c > 1 else np.full(len(thresholds), np.nan)
    out: dict[str, float] = {}
    for i, t in enumerate(thresholds):
        out[f"apr{threshold_key(t)}"] = float(m_ap[i])
    out["apr_vol"] = float(np.mean(m_ap)) if len(m_ap) else float("nan")
    for cls in range(1, c):
        for i, t in enumerate(thresholds):
            out[f"apr/{names[cls]}/{threshold_key(t)}"] = float(table[cls - 1, i])
    out["num_pred_instances"] = float(len(scores))
    out["num_gt_instances"] = float(npos[1:].sum())
    return out


class PartInstanceAPMetric(GatheredMetric):
    """AP^r of PGN (``apr50``, ``apr60``, ``apr70``, ``apr_vol``, ``apr<t>``, ``apr/<class>/<t>``), PGN §4.

    ``update(preds, targets)`` takes one dict per image:

    * ``preds[i]``: either part instances — ``instance_map`` (H, W) ids, ``classes`` and ``scores``
      (per id 1..K, in id order) — or instance-model outputs ``parts`` (D, H, W) / cropped maps with
      ``boxes``, ``scores`` (D,) and optionally ``part_scores`` (D, C−1), turned into part instances
      with :func:`part_instances_from_predictions` (``instance_score_thresh``, default 0.01).
    * ``targets[i]``: ``semantic`` + ``person_ids`` (project rule), or ``instance_map`` + ``classes``
      (per id 1..K); ``image_id`` / ``order`` or ``meta``.

    Options: ``matching`` (``pgn`` | ``one_to_one``), ``class_reduction`` (``nanmean`` | ``mean``),
    ``nan_score`` (``raise`` | ``first``), ``thresholds``.
    """

    def __init__(
        self,
        num_classes: int,
        class_names: Sequence[str] | None = None,
        matching: str = "pgn",
        class_reduction: str = "nanmean",
        nan_score: str = "raise",
        instance_score_thresh: float = 0.01,
        thresholds: Sequence[float] = THRESHOLDS,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if matching not in MATCHINGS:
            raise ValueError(f"matching must be one of {MATCHINGS}, got {matching!r}")
        if class_reduction not in CLASS_REDUCTIONS:
            raise ValueError(f"class_reduction must be one of {CLASS_REDUCTIONS}, got {class_reduction!r}")
        self.num_classes = int(num_classes)
        self.class_names = (
            list(class_names) if class_names is not None else [str(i) for i in range(num_classes)]
        )
        self.matching = matching
        self.class_reduction = class_reduction
        self.nan_score = nan_score
        self.instance_score_thresh = float(instance_score_thresh)
        self.thresholds = tuple(float(t) for t in thresholds)

    def update(self, preds: Sequence[dict], targets: Sequence[dict]) -> None:
        if len(preds) != len(targets):
            raise ValueError(f"{len(preds)} predictions for {len(targets)} targets")
        for pred, target in zip(preds, targets):
            order, image_id = sample_key(target, self._seen)
            self._seen += 1
            if "instance_map" in target:
                g_map = as_numpy(target["instance_map"])
                k = int(g_map.max(initial=0))
                cl = as_numpy(target["classes"]).reshape(-1)
                gt = (
                    PartInstances.from_table(g_map, np.arange(1, len(cl) + 1), cl)
                    if len(cl)
                    else PartInstances(g_map, np.zeros(k + 1, np.int64), np.full(k + 1, np.nan))
                )
            else:
                gt = gt_part_instances(target["semantic"], target["person_ids"], self.num_classes)
            shape = as_numpy(gt.id_map).shape
            if "instance_map" in pred:
                cl = as_numpy(pred["classes"]).reshape(-1)
                sc = as_numpy(pred["scores"]).reshape(-1)
                p = PartInstances.from_table(pred["instance_map"], np.arange(1, len(cl) + 1), cl, sc)
            else:
                p = part_instances_from_predictions(
                    pred.get("parts"),
                    pred.get("scores", np.zeros(0)),
                    shape,
                    self.instance_score_thresh,
                    pred.get("part_scores"),
                    pred.get("boxes"),
                    self.num_classes,
                )
            if np.isnan(p.scores[1:][p.classes[1:] > 0]).any() and self.nan_score == "raise":
                raise ValueError(
                    f"image {image_id}: NaN part-instance scores; pass nan_score='first' to rank them "
                    "first as PGN does"
                )
            self.add(order, image_id, image_apr_record(gt, p, self.num_classes, f"image {image_id}: "))

    def score(self, records) -> dict[str, float]:
        return score_apr(
            [r[2] for r in records],
            self.num_classes,
            self.matching,
            self.class_reduction,
            self.thresholds,
            self.nan_score,
            self.class_names,
        )


def table_from_flat(
    metrics: dict[str, float], class_names: Sequence[str], thresholds: Sequence[float] = THRESHOLDS
) -> torch.Tensor:
    """The (C−1) × T per-class table back from the flat ``apr/<class>/<t>`` keys."""
    return torch.tensor(
        [[metrics[f"apr/{n}/{threshold_key(t)}"] for t in thresholds] for n in class_names[1:]],
        dtype=torch.float64,
    )
