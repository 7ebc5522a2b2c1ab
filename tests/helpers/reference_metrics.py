"""Slow, literal implementations of VOC AP, AP^p / PCP and AP^r (loops over predictions, pairs and
classes), written from the metric definitions, not from the vectorised code, to cross-check the
vectorised metrics on random sets."""

from __future__ import annotations

import numpy as np

T9 = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)


def voc_ap_loop(rec, prec):
    mrec = [0.0] + list(rec) + [1.0]
    mpre = [0.0] + list(prec) + [0.0]
    for i in range(len(mpre) - 1, 0, -1):
        mpre[i - 1] = max(mpre[i - 1], mpre[i])
    return sum((mrec[i + 1] - mrec[i]) * mpre[i + 1] for i in range(len(mrec) - 1) if mrec[i + 1] != mrec[i])


def ap_from_flags(tp, npos, eps=True):
    if len(tp) == 0:
        return 0.0
    if npos == 0:
        return float("nan")
    ctp = np.cumsum(tp)
    cfp = np.cumsum(1 - np.asarray(tp))
    den = np.maximum(ctp + cfp, np.finfo(np.float64).eps) if eps else ctp + cfp
    return voc_ap_loop(ctp / npos, ctp / den)


def pair_iou(pred, gt, c):
    """Person-level part IoU of one pair: confusion over all pixels with GT < C."""
    g = gt.reshape(-1).astype(np.int64)
    p = pred.reshape(-1).astype(np.int64)
    k = g < c
    cm = np.bincount(g[k] * c + p[k], minlength=c * c).reshape(c, c).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.diag(cm) / (cm.sum(0) + cm.sum(1) - np.diag(cm))


def app_loop(images, c, convention="prcnn", thresholds=T9):
    """images: list of (gt person maps, pred maps, scores). Returns (ap list, pcp list)."""
    thr = {"prcnn": 0.001, "mhp_official": None, "pet": 0.01}[convention]
    dets, gts = [], []
    for i, (gmaps, pmaps, scores) in enumerate(images):
        keep = [g for g in gmaps if not (convention == "mhp_official" and not (g > 0).any())]
        gts.append(keep)
        for p, s in zip(pmaps, scores):
            dets.append((s, i, p))
    npos = sum(len(g) for g in gts)
    order = sorted(range(len(dets)), key=lambda k: -dets[k][0])  # Python's sort is stable
    order = [k for k in order if thr is None or not dets[k][0] < thr]
    aps, pcps = [], []
    for t in thresholds:
        used = [set() for _ in gts]
        tp, pcp_vals = [], []
        for k in order:
            s, i, p = dets[k]
            ovmax, jmax, best = -np.inf, -1, None
            for j, g in enumerate(gts[i]):
                iou = pair_iou(p, g, c)
                m = np.nanmean(iou) if (~np.isnan(iou)).any() else np.nan
                if m > ovmax:
                    ovmax, jmax, best = m, j, iou
            if ovmax > t and jmax not in used[i]:
                used[i].add(jmax)
                tp.append(1)
                labels = {int(v) for v in np.unique(gts[i][jmax]) if 0 < v < c}
                n = sum(1 for cc in range(1, c) if best[cc] > t)
                pcp_vals.append(n / len(labels) if labels else 0.0)
            else:
                tp.append(0)
        aps.append(
            ap_from_flags(np.array(tp, float), npos, eps=convention != "mhp_official")
            if npos
            else float("nan")
        )
        pcps.append(sum(pcp_vals) / npos if npos else float("nan"))
    return aps, pcps


def apr_loop(images, c, matching="pgn", thresholds=T9):
    """images: list of (gt id map, gt classes per id (index = id), pred id map, pred classes, pred scores).
    Returns the (C-1) x T table."""
    table = np.zeros((c - 1, len(thresholds)))
    for cls in range(1, c):
        npos = 0
        scores, flags = [], []
        for g_map, g_cls, p_map, p_cls, p_sc in images:
            g_ids = [i for i in np.unique(g_map) if i > 0 and g_cls[i] == cls]
            p_ids = [i for i in np.unique(p_map) if i > 0 and p_cls[i] == cls]
            npos += len(g_ids)
            if not p_ids:
                continue
            ious = np.zeros((len(p_ids), len(g_ids)))
            for a, pi in enumerate(p_ids):
                for b, gi in enumerate(g_ids):
                    inter = np.sum((p_map == pi) & (g_map == gi))
                    ious[a, b] = inter / (np.sum(p_map == pi) + np.sum(g_map == gi) - inter)
            img_flags = np.zeros((len(p_ids), len(thresholds)))
            for ti, t in enumerate(thresholds):
                if matching == "pgn":
                    for a in range(len(p_ids)):
                        img_flags[a, ti] = 1.0 if len(g_ids) and ious[a].max() > t else 0.0
                else:
                    used = set()
                    for a in sorted(range(len(p_ids)), key=lambda a: -p_sc[p_ids[a]]):
                        if len(g_ids):
                            b = int(np.argmax(ious[a]))
                            if ious[a, b] > t and b not in used:
                                used.add(b)
                                img_flags[a, ti] = 1.0
            for a, pi in enumerate(p_ids):
                scores.append(p_sc[pi])
                flags.append(img_flags[a])
        order = sorted(range(len(scores)), key=lambda k: -scores[k])
        for ti in range(len(thresholds)):
            tp = np.array([flags[k][ti] for k in order])
            table[cls - 1, ti] = ap_from_flags(tp, npos)
    return table
