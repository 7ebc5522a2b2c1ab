"""Parsing R-CNN inference after the network (paper §3, released ``parsing_rcnn/inference.py`` and
``parsing_eval.py``): per-detection probabilities → per-instance part maps in original pixels → the
semantic map.

* paste-back (``parsing_results``): the box, in original pixels, is enlarged by (M + 2) / M around its
  centre (M = 128) and truncated to int; the M×M probabilities are zero-padded to (M + 2)², resized
  bilinearly per channel to (x2 − x1 + 1) × (y2 − y1 + 1), argmax-ed, and written into a zero map
  clipped to the image;
* instance score = the detection's box score;
* semantic map (``parsing_png``): instances in ascending score order, those below
  ``semseg_score_thresh`` (0.3 in the CIHP configs, 0.05 in the MHP v2.0 ones) skipped, each one's
  non-zero labels pasted in turn (higher scores win overlaps), background elsewhere;
* flip TTA: the net returns the flipped views' probabilities flipped back but with their channels in
  the flipped frame; here the dataset's L/R swap (``ctx.flip_permutation``) is applied and the views
  are averaged.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor


def boxes_to_original(boxes: Tensor, affine) -> Tensor:
    """Continuous [x1, y1, x2, y2] boxes from input pixels to original pixels through the inverse of
    ``affine`` (3×3, original → input, pixel-centre convention: continuous X = pixel-centre x + 0.5)."""
    if affine is None or boxes.numel() == 0:
        return boxes.clone()
    inv = torch.linalg.inv(torch.as_tensor(np.asarray(affine, dtype=np.float64)))
    b = boxes.detach().to("cpu", torch.float64) - 0.5
    pts = []
    for xi, yi in ((0, 1), (2, 1), (0, 3), (2, 3)):
        p = torch.stack([b[:, xi], b[:, yi], torch.ones_like(b[:, 0])], 1) @ inv.T
        pts.append(p[:, :2])
    pts = torch.stack(pts, 1) + 0.5  # (N, 4 corners, 2)
    out = torch.cat([pts.min(1).values, pts.max(1).values], 1)
    return out.to(boxes.dtype)


def expand_boxes(boxes: Tensor, size: int) -> Tensor:
    """Enlarge boxes by (size + 2) / size about their centre (released ``expand_boxes``), float64."""
    b = boxes.to(torch.float64)
    half = (b[:, 2:] - b[:, :2]) * 0.5 * ((size + 2.0) / size)
    ctr = (b[:, 2:] + b[:, :2]) * 0.5
    return torch.cat([ctr - half, ctr + half], 1)


def paste_parsing(probs: Tensor, boxes: Tensor, image_size: tuple[int, int]) -> Tensor:
    """(N, H, W) uint8 label maps of N detections: ``probs`` (N, C, M, M) softmax probabilities,
    ``boxes`` (N, 4) continuous boxes in the pixels of the (H, W) image."""
    h_img, w_img = image_size
    n, _, m, m2 = probs.shape
    if m != m2:
        raise ValueError(f"parsing probabilities must be square, got {m}×{m2}")
    out = torch.zeros((n, h_img, w_img), dtype=torch.uint8)
    if n == 0:
        return out
    ib = expand_boxes(boxes.cpu(), m).to(torch.int32)  # truncation towards zero, as numpy's astype
    padded = F.pad(probs.float(), (1, 1, 1, 1))
    for i in range(n):
        x1, y1, x2, y2 = (int(v) for v in ib[i])
        w, h = max(x2 - x1 + 1, 1), max(y2 - y1 + 1, 1)
        x0c, x1c = max(x1, 0), min(x2 + 1, w_img)
        y0c, y1c = max(y1, 0), min(y2 + 1, h_img)
        if x1c <= x0c or y1c <= y0c:
            continue
        # bilinear, half-pixel centres, no antialias = OpenCV INTER_LINEAR, as the released code resizes
        up = F.interpolate(padded[i : i + 1], size=(h, w), mode="bilinear", align_corners=False)[0]
        lab = up.argmax(0)  # first maximum on ties, as numpy
        out[i, y0c:y1c, x0c:x1c] = lab[y0c - y1 : y1c - y1, x0c - x1 : x1c - x1].to("cpu", torch.uint8)
    return out


def semantic_map(parts: Tensor, scores: Tensor, score_thresh: float = 0.3) -> Tensor:
    """(H, W) int64 semantic map: instances by ascending score (stable), those with score <
    ``score_thresh`` skipped, non-zero labels pasted over the map (released ``parsing_png``)."""
    sem = torch.zeros(parts.shape[-2:], dtype=torch.int64)
    scores = torch.as_tensor(scores, dtype=torch.float64).cpu()
    for k in torch.argsort(scores, stable=True).tolist():
        if scores[k] < score_thresh:
            continue
        on = parts[k] != 0
        sem[on] = parts[k][on].to(torch.int64)
    return sem


def merge_flipped(det: dict, flip_permutation) -> Tensor:
    """Average of the plain and flipped-back views' probabilities, the flipped ones channel-swapped."""
    probs = det["parsing_probs"]
    if "parsing_probs_flipped" not in det:
        return probs
    if flip_permutation is None:
        raise ValueError("Parsing R-CNN flip TTA needs the dataset's L/R class swap (ctx.flip_permutation)")
    perm = torch.as_tensor(np.asarray(flip_permutation, dtype=np.int64), device=probs.device)
    if perm.numel() != probs.shape[1]:
        raise ValueError(f"flip permutation has {perm.numel()} entries for {probs.shape[1]} parsing classes")
    n_plain, n_flip = (int(v) for v in det.get("parsing_views", torch.tensor([1, 1])))
    # the flipped frame's channel c holds the original class perm[c]: out[:, perm[c]] = in[:, c]
    flipped = torch.empty_like(det["parsing_probs_flipped"])
    flipped[:, perm] = det["parsing_probs_flipped"]
    if n_plain == 0:
        return flipped
    return (probs * n_plain + flipped * n_flip) / (n_plain + n_flip)


class ParsingRCNNPostprocess:
    """Detections → the task contract's per-image prediction dict, in original pixels: ``instances``
    (``score`` = box score, ``box``, ``label``, ``parts`` (H, W) uint8 full-image part map, 0 outside the
    person) sorted by descending score, and ``semantic`` (H, W) int64."""

    produces = frozenset({"semantic", "instances", "instances.parts", "instances.box"})

    def __init__(self, semseg_score_thresh: float = 0.3, score_thresh: float = 0.0):
        self.semseg_score_thresh = float(semseg_score_thresh)
        self.score_thresh = float(score_thresh)

    def __call__(self, outputs: dict, batch: dict, ctx=None) -> list[dict]:
        dets = outputs["detections"] if isinstance(outputs, dict) else outputs
        metas = batch.get("meta") if isinstance(batch, dict) else None
        images = batch.get("image") if isinstance(batch, dict) else None
        perm = getattr(ctx, "flip_permutation", None) if ctx is not None else None
        results = []
        for i, d in enumerate(dets):
            meta = metas[i] if metas is not None else {}
            if "orig_size" in meta:
                size = tuple(int(v) for v in meta["orig_size"])
            elif images is not None:
                size = tuple(images[i].shape[-2:])
            else:
                raise ValueError(
                    "Parsing R-CNN postprocess: no meta['orig_size'] and no image to take the size from"
                )
            keep = torch.where(d["scores"] >= self.score_thresh)[0]
            scores = d["scores"][keep].detach().cpu()
            order = torch.argsort(scores, descending=True, stable=True)
            keep, scores = keep[order.to(keep.device)], scores[order]
            boxes = boxes_to_original(d["boxes"][keep].detach().cpu().float(), meta.get("affine"))
            probs = merge_flipped(d, perm)[keep]
            parts = paste_parsing(probs, boxes, size)
            labels = d["labels"][keep].cpu()
            instances = [
                {
                    "score": float(scores[k]),
                    "box": boxes[k].tolist(),
                    "label": int(labels[k]),
                    "parts": parts[k],
                }
                for k in range(len(keep))
            ]
            results.append(
                {"instances": instances, "semantic": semantic_map(parts, scores, self.semseg_score_thresh)}
            )
        return results
