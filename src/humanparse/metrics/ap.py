"""VOC all-point average precision and the score sorting shared by AP^p and AP^r.

Definition: PASCAL VOC2010+ ``voc_ap`` (all-point area, not 11-point, not COCO 101-point),
score sorting: stable descending sort. The reference implementations
(Parsing R-CNN ``parsing_eval.py::voc_ap``, MHP v2 ``voc_eval.py::voc_ap``, CIHP_PGN
``test_inst_part_ap.py::voc_ap``) run the precision envelope as a Python loop; here it is one
``np.maximum.accumulate`` over the reversed array, which gives the same values.
"""

from __future__ import annotations

import numpy as np

EPS = float(np.finfo(np.float64).eps)
# literal values: np.arange(0.1, 1.0, 0.1) drifts (0.30000000000000004) and would change strict ">" tests
THRESHOLDS: tuple[float, ...] = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
NAN_SCORE_POLICIES = ("raise", "first")


def voc_ap(rec: np.ndarray, prec: np.ndarray) -> float:
    """All-point AP of a precision/recall curve (monotone envelope, then area).

    ``mrec = [0, rec..., 1]``, ``mpre = [0, prec..., 0]``, precision made monotone from the right, area
    summed where recall changes. Recall above 1 (AP^r duplicates) is weighted by the closing
    ``mpre = 0`` sentinel, so AP can exceed 1, as in the reference.
    """
    rec = np.asarray(rec, dtype=np.float64)
    prec = np.asarray(prec, dtype=np.float64)
    mrec = np.concatenate(([0.0], rec, [1.0]))
    mpre = np.concatenate(([0.0], prec, [0.0]))
    # running max from the right; np.maximum propagates NaN exactly like the reference's loop
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]
    i = np.flatnonzero(mrec[1:] != mrec[:-1])
    return float(np.sum((mrec[i + 1] - mrec[i]) * mpre[i + 1]))


def average_precision(tp: np.ndarray, fp: np.ndarray, npos: int, eps_floor: bool = True) -> float:
    """AP from TP/FP flags already in descending-score order and ``npos`` GT items.

    ``prec_k = cumTP / max(cumTP + cumFP, eps)`` (``eps_floor``; the MHP official code divides by
    ``cumTP + cumFP`` directly, which only differs when a prefix has neither). Edge cases: no
    detections → 0 (sentinel-only curve, also when ``npos = 0``); ``npos = 0`` with detections → NaN
    (recall 0/0).
    """
    tp = np.asarray(tp, dtype=np.float64)
    fp = np.asarray(fp, dtype=np.float64)
    if tp.size == 0:
        return 0.0
    if npos == 0:
        return float("nan")
    ctp = np.cumsum(tp)
    cfp = np.cumsum(fp)
    rec = ctp / float(npos)
    denom = np.maximum(ctp + cfp, EPS) if eps_floor else ctp + cfp
    with np.errstate(invalid="ignore", divide="ignore"):
        prec = ctp / denom
    return voc_ap(rec, prec)


def descending_order(scores: np.ndarray, nan_score: str = "raise", what: str = "scores") -> np.ndarray:
    """Indices that sort ``scores`` in descending order, **stable** (ties keep their input order).

    NaN scores raise ``ValueError`` by default; ``nan_score='first'`` ranks them first (what the
    references' ``np.argsort(s)[::-1]`` does), keeping their input order among themselves.
    """
    if nan_score not in NAN_SCORE_POLICIES:
        raise ValueError(f"nan_score must be one of {NAN_SCORE_POLICIES}, got {nan_score!r}")
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    nan = np.isnan(s)
    if nan.any():
        if nan_score == "raise":
            raise ValueError(
                f"{int(nan.sum())} NaN value(s) in {what}; pass nan_score='first' to rank them "
                "first as the reference evaluators do"
            )
        key = np.where(nan, -np.inf, -s)
        return np.argsort(key, kind="stable")
    return np.argsort(-s, kind="stable")
