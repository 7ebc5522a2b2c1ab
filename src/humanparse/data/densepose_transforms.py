"""Geometric transforms of DensePose persons: boxes, masks, keypoints and the dense points in their box frame.

Conventions of detectron2 DensePose: dense points in the 256×256 box frame; flips by its part and UV tables.

The image-level transform (:class:`~humanparse.data.transforms.AffineTransform`) decides one 3×3 matrix
``M`` per sample (pixel-centre convention) and stores it in ``meta['affine']``; a flip is folded into
it as ``M = M' · mirror(W)``. :class:`DensePoseTransform` wraps that transform and moves the persons
with the same matrix:

* **flip** (first, in the original frame, exactly as both reference repos do): box x ← W − x − w, mask
  and keypoints mirrored (COCO joints swapped), dense points x ← 256 − x (y unchanged), I through the
  fine flip table, U/V through ``UV_symmetry_transforms.mat`` (looked up with the old part at
  [⌊V·255⌋, ⌊U·255⌋]), coarse map mirrored then relabelled with the coarse flip table;
* **scale / crop / rotation** (the rest, ``M'``): points live in the box frame, so each point goes to
  the image (x_img = x + dp_x·w/256, the training convention), through ``M'``, and back into the new
  box, which is the enclosing box of the transformed box corners clipped to the input. Points that fall
  outside the clipped box are dropped; the 256×256 coarse map is resampled (nearest) with the same
  composite map; persons whose box becomes empty are dropped; keypoints outside the input are marked
  absent (v = 0); ``area`` scales with |det M|.

Without a UV symmetry table a flip is refused: the dataset checks :func:`transform_flips` when it is
built and raises then, never silently flipping I and x alone.
"""

from __future__ import annotations

import cv2
import numpy as np

from humanparse.data.densepose_format import UVSymmetry
from humanparse.data.meta import COCO_JOINT_FLIP_PAIRS, DENSEPOSE_COARSE_FLIP
from humanparse.data.transforms import Compose, mirror_matrix, transform_points, warp_label

_COARSE_LUT = DENSEPOSE_COARSE_FLIP.astype(np.uint8)
_COCO_PERM = np.arange(17)
for _a, _b in COCO_JOINT_FLIP_PAIRS:
    _COCO_PERM[_a], _COCO_PERM[_b] = _b, _a


def transform_flips(transform) -> bool:
    """Whether ``transform`` (a transform or a :class:`Compose`) can flip: any step in training mode with
    ``flip_prob > 0``."""
    if transform is None:
        return False
    if isinstance(transform, DensePoseTransform):
        return transform_flips(transform.base)
    steps = transform.transforms if isinstance(transform, Compose) else [transform]
    return any(getattr(t, "flip_prob", 0) > 0 and getattr(t, "train", True) for t in steps)


def flip_person(p: dict, width: int, symmetry: UVSymmetry) -> dict:
    """Mirror one person in an image of ``width`` pixels (part flip table + UV symmetry)."""
    q = dict(p)
    x, y, w, h = (float(v) for v in p["bbox"])
    q["bbox"] = np.array([width - x - w, y, w, h], dtype=np.float64)
    q["box"] = np.array([width - x - w, y, width - x, y + h], dtype=np.float32)
    q["mask"] = np.ascontiguousarray(p["mask"][:, ::-1])
    kp = np.array(p["keypoints"], dtype=np.float32, copy=True)
    present = kp[:, 2] > 0
    kp[present, 0] = width - 1 - kp[present, 0]  # keypoints are pixel indices (pixel-centre mirror)
    q["keypoints"] = kp[_COCO_PERM]
    dp = p["dp"]
    parts, u, v = (
        symmetry.flip_points(dp["I"], dp["U"], dp["V"]) if len(dp["I"]) else (dp["I"], dp["U"], dp["V"])
    )
    q["dp"] = {
        "x": 256.0 - np.asarray(dp["x"], np.float64),
        "y": np.asarray(dp["y"], np.float64).copy(),
        "I": np.asarray(parts, np.int64),
        "U": np.asarray(u, np.float64),
        "V": np.asarray(v, np.float64),
        "coarse": None if dp["coarse"] is None else _COARSE_LUT[np.ascontiguousarray(dp["coarse"][:, ::-1])],
    }
    return q


def _to_image(m: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """Continuous image coordinates through a pixel-centre matrix: c' = M (c − ½) + ½."""
    return transform_points(np.asarray(pts, np.float64) - 0.5, m) + 0.5


def _box_frame(x: float, y: float, w: float, h: float) -> np.ndarray:
    """3×3 map from box-frame coordinates (0..256) to continuous image coordinates."""
    return np.array([[w / 256.0, 0.0, x], [0.0, h / 256.0, y], [0.0, 0.0, 1.0]])


def warp_person(p: dict, m: np.ndarray, input_size: tuple[int, int]) -> dict | None:
    """Move one (already flipped if needed) person through the 3×3 pixel-centre matrix ``m`` into an
    ``input_size`` (H, W) image; ``None`` if its box leaves the image."""
    oh, ow = input_size
    x, y, w, h = (float(v) for v in p["bbox"])
    corners = np.array([[x, y], [x + w, y], [x, y + h], [x + w, y + h]])
    t = _to_image(m, corners)
    x0, y0 = max(float(t[:, 0].min()), 0.0), max(float(t[:, 1].min()), 0.0)
    x1, y1 = min(float(t[:, 0].max()), float(ow)), min(float(t[:, 1].max()), float(oh))
    if x1 - x0 < 1.0 or y1 - y0 < 1.0:
        return None
    nw, nh = x1 - x0, y1 - y0
    q = dict(p)
    q["bbox"] = np.array([x0, y0, nw, nh], dtype=np.float64)
    q["box"] = np.array([x0, y0, x1, y1], dtype=np.float32)
    q["area"] = float(p["area"]) * abs(float(np.linalg.det(m[:2, :2])))
    q["mask"] = warp_label(p["mask"].astype(np.uint8), m, input_size, 0).astype(bool)
    kp = np.array(p["keypoints"], dtype=np.float32, copy=True)
    present = kp[:, 2] > 0
    kp[present, :2] = transform_points(kp[present, :2], m)
    inside = (kp[:, 0] >= 0) & (kp[:, 0] <= ow - 1) & (kp[:, 1] >= 0) & (kp[:, 1] <= oh - 1)
    kp[~(present & inside)] = 0.0
    q["keypoints"] = kp
    # box frame (old) -> image (old) -> image (new) -> box frame (new), continuous coordinates
    old = _box_frame(x, y, w, h)
    new_inv = np.linalg.inv(_box_frame(x0, y0, nw, nh))
    half = np.array([[1.0, 0.0, 0.5], [0.0, 1.0, 0.5], [0.0, 0.0, 1.0]])
    frame = new_inv @ half @ m @ np.linalg.inv(half) @ old
    dp = p["dp"]
    pts = transform_points(
        np.stack([np.asarray(dp["x"], np.float64), np.asarray(dp["y"], np.float64)], 1), frame
    )
    keep = (pts[:, 0] >= 0) & (pts[:, 0] <= 256) & (pts[:, 1] >= 0) & (pts[:, 1] <= 256)
    coarse = dp["coarse"]
    if coarse is not None:
        # the grid cell j covers [j, j+1): pixel-centre grid coordinates are box-frame coordinates − ½
        grid = np.linalg.inv(half) @ frame @ half  # forward map (src -> dst), as cv2.warpAffine expects
        coarse = cv2.warpAffine(
            np.ascontiguousarray(coarse, dtype=np.uint8),
            grid[:2],
            (256, 256),
            flags=cv2.INTER_NEAREST,
            borderMode=cv2.BORDER_CONSTANT,
            borderValue=0,
        )
    q["dp"] = {
        "x": pts[keep, 0],
        "y": pts[keep, 1],
        "I": np.asarray(dp["I"])[keep],
        "U": np.asarray(dp["U"])[keep],
        "V": np.asarray(dp["V"])[keep],
        "coarse": coarse,
    }
    return q


class DensePoseTransform:
    """Wraps an image-level transform and applies its affine to ``persons`` (see the module docstring)."""

    def __init__(self, base, symmetry: UVSymmetry | None):
        self.base = base
        self.symmetry = symmetry

    def bind(self, flip_tables) -> DensePoseTransform:
        if hasattr(self.base, "bind"):
            self.base.bind(flip_tables)
        return self

    def __call__(self, sample: dict, rng: np.random.Generator | None = None) -> dict:
        sample = dict(sample)
        persons = sample.pop("persons", [])
        width = sample["image"].shape[1]
        out = self.base(sample, rng)
        meta = out.get("meta", {})
        m = meta.get("affine")
        if m is None:
            out["persons"] = persons
            return out
        m = np.asarray(m, dtype=np.float64)
        if meta.get("flipped"):
            if self.symmetry is None:
                raise RuntimeError(
                    "DensePose flip without UV symmetry tables (the dataset should have refused this "
                    "configuration when it was built)"
                )
            persons = [flip_person(p, width, self.symmetry) for p in persons]
            m = m @ mirror_matrix(width)  # M = M' · mirror and the mirror is an involution
        out["persons"] = [
            q for p in persons if (q := warp_person(p, m, tuple(meta["input_size"]))) is not None
        ]
        return out
