"""Geometric augmentation that keeps every target consistent: one affine matrix per sample.

Every geometric step of the papers' recipes (random scale, rotation, horizontal flip, crop or
whole-image warp to the input size) is folded into a single 2×3 matrix ``M`` (original image pixels →
network input pixels, pixel-centre convention, i.e. the convention of ``cv2.warpAffine``). Images are
warped bilinearly, label-like maps with nearest neighbour (labels pad with 255, edge/id maps with 0),
keypoints and boxes by the same matrix, and a flip also permutes left/right classes and joints. The
matrix is stored in ``meta['affine']`` so that predictions go back to the original resolution with
its exact inverse (:mod:`humanparse.tasks.postprocess`).

Two placement modes cover the five papers:

* ``box`` (CE2P / CorrPM): the whole image box, padded to the input aspect ratio, is centred, scaled by
  ``s``, rotated by ``r`` and mapped onto the input. Evaluation uses ``s = 1, r = 0``.
* ``crop`` (DeepLab / Grapy-ML / PGN): the image is rescaled by ``s`` (optionally independent width
  and height factors) and a random ``input_size`` window is cut out; smaller images are padded
  bottom/right.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from humanparse.data.instances import tight_box
from humanparse.data.meta import COCO_JOINT_FLIP_PAIRS, IGNORE_INDEX, LIP_JOINT_FLIP_PAIRS

# label-like keys warped with nearest neighbour, and the value used where the warp pads
LABEL_BORDER = {
    "semantic": IGNORE_INDEX,
    "instance_edge": 0,
    "person_ids": 0,
    "instance_ids": 0,
    "level1": IGNORE_INDEX,
    "level2": IGNORE_INDEX,
}
# maps whose values are class ids and must follow the left/right swap on a flip
FLIP_SWAPPED = ("semantic",)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _h(m: np.ndarray) -> np.ndarray:
    """2×3 → 3×3 homogeneous."""
    return np.vstack([m, [0.0, 0.0, 1.0]])


def translate(tx: float, ty: float) -> np.ndarray:
    return np.array([[1.0, 0.0, tx], [0.0, 1.0, ty], [0.0, 0.0, 1.0]])


def scale_matrix(sx: float, sy: float | None = None) -> np.ndarray:
    sy = sx if sy is None else sy
    return np.array([[sx, 0.0, 0.0], [0.0, sy, 0.0], [0.0, 0.0, 1.0]])


def rotation_matrix(degrees: float) -> np.ndarray:
    """Counter-clockwise rotation in image coordinates (y down), as ``cv2.getRotationMatrix2D``."""
    a = math.radians(degrees)
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, s, 0.0], [-s, c, 0.0], [0.0, 0.0, 1.0]])


def mirror_matrix(width: int) -> np.ndarray:
    """x ← W − 1 − x (pixel-centre mirror)."""
    return np.array([[-1.0, 0.0, width - 1.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])


BOX_GEOMETRIES = ("pixel_centers", "ce2p")


def box_affine(
    image_size: tuple[int, int],
    input_size: tuple[int, int],
    scale: float = 1.0,
    rotation: float = 0.0,
    flip: bool = False,
    center: tuple[float, float] | None = None,
    box: tuple[float, float] | None = None,
    geometry: str = "pixel_centers",
) -> np.ndarray:
    """3×3 matrix for ``box`` mode. ``image_size`` and ``input_size`` are (H, W).

    The box (default: the whole image, centred at ((W−1)/2, (H−1)/2)) is padded to the input aspect
    ratio, scaled by ``scale`` and rotated by ``rotation`` degrees about its centre.

    ``geometry``: ``pixel_centers`` maps the W×H image box onto the input with the box centre at the
    input's centre pixel ((W_in−1)/2, (H_in−1)/2); ``ce2p`` is the released CE2P / CorrPM helper
    (``_box2cs([0, 0, W−1, H−1])`` + ``utils/transforms.py::get_affine_transform``): a (W−1)×(H−1) box whose
    centre goes to (W_in/2, H_in/2), half a pixel off and very slightly larger.
    """
    if geometry not in BOX_GEOMETRIES:
        raise ValueError(f"box geometry must be one of {BOX_GEOMETRIES}, got {geometry!r}")
    h, w = image_size
    oh, ow = input_size
    ce2p = geometry == "ce2p"
    cx, cy = center if center is not None else ((w - 1) / 2.0, (h - 1) / 2.0)
    bw, bh = box if box is not None else ((float(w - 1), float(h - 1)) if ce2p else (float(w), float(h)))
    aspect = ow / oh
    if bw > aspect * bh:
        bh = bw / aspect
    else:
        bw = bh * aspect
    bw *= scale
    m = translate(-cx, -cy)
    m = scale_matrix(ow / bw) @ m
    m = rotation_matrix(rotation) @ m
    m = (translate(ow / 2.0, oh / 2.0) if ce2p else translate((ow - 1) / 2.0, (oh - 1) / 2.0)) @ m
    if flip:
        m = m @ mirror_matrix(w)
    return m


def crop_affine(
    image_size: tuple[int, int],
    input_size: tuple[int, int],
    sx: float,
    sy: float,
    origin: tuple[float, float],
    flip: bool = False,
) -> np.ndarray:
    """3×3 matrix for ``crop`` mode: rescale by (sx, sy) like ``cv2.resize``, then cut at ``origin``."""
    h, w = image_size
    # cv2.resize pixel-centre mapping: x' = sx (x + 0.5) − 0.5
    m = translate(-0.5, -0.5)
    m = scale_matrix(sx, sy) @ m
    m = translate(0.5 - origin[0], 0.5 - origin[1]) @ m
    if flip:
        m = m @ mirror_matrix(w)
    return m


def warp_image(image: np.ndarray, m: np.ndarray, size: tuple[int, int], border=0) -> np.ndarray:
    oh, ow = size
    return cv2.warpAffine(
        image, m[:2], (ow, oh), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=border
    )


def warp_label(label: np.ndarray, m: np.ndarray, size: tuple[int, int], border: int) -> np.ndarray:
    oh, ow = size
    if label.dtype not in (np.uint8, np.uint16, np.float32):
        label = label.astype(np.uint16 if label.max(initial=0) > 255 else np.uint8)
    return cv2.warpAffine(
        label,
        m[:2],
        (ow, oh),
        flags=cv2.INTER_NEAREST,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=int(border),
    )


def transform_points(points: np.ndarray, m: np.ndarray) -> np.ndarray:
    """Apply a 3×3 affine to (N, 2) points (x, y)."""
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    return pts @ m[:2, :2].T + m[:2, 2]


def transform_boxes(boxes: np.ndarray, m: np.ndarray) -> np.ndarray:
    """Enclosing boxes (x1, y1, x2, y2) of the transformed corners."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    if len(boxes) == 0:
        return boxes
    x1, y1, x2, y2 = boxes.T
    corners = np.stack(
        [np.stack([x1, y1], 1), np.stack([x2, y1], 1), np.stack([x1, y2], 1), np.stack([x2, y2], 1)], 1
    )
    t = transform_points(corners.reshape(-1, 2), m).reshape(-1, 4, 2)
    out = np.concatenate([t.min(1), t.max(1)], 1)
    # a mirror swaps x1/x2 of each box; min/max already handles it
    return out


# keypoint formats by joint count: 16 = LIP/MPII order, 17 = COCO order (pseudo-pose files)
KEYPOINT_FLIP_PAIRS: dict[int, tuple[tuple[int, int], ...]] = {
    16: LIP_JOINT_FLIP_PAIRS,
    17: COCO_JOINT_FLIP_PAIRS,
}


def pairs_permutation(num: int, pairs: Sequence[tuple[int, int]]) -> np.ndarray:
    perm = np.arange(num)
    for a, b in pairs:
        perm[a], perm[b] = b, a
    return perm


@dataclass
class FlipTables:
    """Left/right swap tables of one label space (from :class:`~humanparse.data.meta.DatasetInfo`)."""

    label_lut: np.ndarray  # (256,) uint8
    joint_perm: np.ndarray | None = None  # (J,) int

    @classmethod
    def from_info(cls, info, joint_pairs: Sequence[tuple[int, int]] | None = None) -> FlipTables:
        perm = (
            info.joint_flip_permutation(tuple(joint_pairs) if joint_pairs is not None else None)
            if info.num_joints
            else None
        )
        return cls(info.flip_permutation(), perm)

    def keypoint_perm(self, num_joints: int) -> np.ndarray:
        """Joint permutation of a horizontal flip for a ``num_joints`` keypoint array: the dataset's own
        table when it has that many joints (LIP, possibly with the CorrPM parity pairs), else the
        format's table (16 LIP/MPII, 17 COCO). Other counts are an error, never an unpermuted flip."""
        if self.joint_perm is not None and len(self.joint_perm) == num_joints:
            return self.joint_perm
        if num_joints in KEYPOINT_FLIP_PAIRS:
            return pairs_permutation(num_joints, KEYPOINT_FLIP_PAIRS[num_joints])
        raise ValueError(f"no left/right joint table for {num_joints} keypoints (known: 16 LIP, 17 COCO)")


def warp_keypoints(
    keypoints: np.ndarray, m: np.ndarray, flip: bool, flip_tables: FlipTables | None
) -> np.ndarray:
    """Keypoints ``(..., J, 3)`` (x, y, present) through ``m``; on a flip the left/right joints swap.
    Absent joints stay (0, 0, 0)."""
    kp = np.array(keypoints, dtype=np.float32, copy=True)
    present = kp[..., 2] > 0
    if present.any():
        kp[present, :2] = transform_points(kp[present, :2], m)
    kp[~present] = 0.0
    if flip and flip_tables is not None:
        kp = kp[..., flip_tables.keypoint_perm(kp.shape[-2]), :]
    return kp


# --- per-person targets (region-based models) ----------------------------------------------------
@dataclass(frozen=True)
class PersonWarp:
    """What a per-person warper needs: the matrix, output size, flip flag and the swap tables."""

    m: np.ndarray
    input_size: tuple[int, int]
    flip: bool
    flip_tables: FlipTables | None


# person-dict key -> function(value, PersonWarp) -> warped value. Readers that add a new per-person
# array (e.g. DensePose points) register a warper for it with :func:`register_person_warper`; an array
# without a warper is an error, so no target is silently left in the original frame.
PERSON_WARPERS: dict[str, Callable[[object, PersonWarp], object]] = {}
# per-person entries that do not depend on geometry (copied as they are)
PERSON_PASSTHROUGH = {"id", "index", "score", "label", "iscrowd", "empty", "source"}


def register_person_warper(key: str):
    """Decorator: ``@register_person_warper("dense")`` makes ``fn(value, PersonWarp)`` warp ``person[key]``."""

    def deco(fn):
        PERSON_WARPERS[key] = fn
        return fn

    return deco


@register_person_warper("mask")
def _warp_mask(mask: np.ndarray, w: PersonWarp) -> np.ndarray:
    return warp_label(np.asarray(mask, dtype=np.uint8), w.m, w.input_size, 0).astype(bool)


@register_person_warper("parts")
def _warp_parts(parts: np.ndarray, w: PersonWarp) -> np.ndarray:
    # 0 outside the image: "not this person" (the person's mask pads with False alike)
    out = warp_label(parts, w.m, w.input_size, 0)
    if w.flip and w.flip_tables is not None:
        out = (
            w.flip_tables.label_lut[out]
            if out.dtype == np.uint8
            else w.flip_tables.label_lut[out.astype(np.int64)]
        )
    return out


@register_person_warper("keypoints")
def _warp_person_keypoints(kp: np.ndarray, w: PersonWarp) -> np.ndarray:
    return warp_keypoints(kp, w.m, w.flip, w.flip_tables)


def warp_person(person: dict, w: PersonWarp) -> dict:
    """One per-person dict through the warp. ``box`` ([x1, y1, x2, y2], inclusive pixel extent) is
    recomputed tightly from the warped ``mask`` when there is one (so it always encloses the mask, also
    under rotation), else moved with :func:`transform_boxes`. ``empty`` records a person left without
    any pixel inside the output."""
    out: dict = {}
    for key, value in person.items():
        if key == "box" or value is None:
            continue
        if key in PERSON_WARPERS:
            out[key] = PERSON_WARPERS[key](value, w)
        elif key in PERSON_PASSTHROUGH or np.ndim(value) == 0:
            out[key] = value
        else:
            raise KeyError(
                f"per-person entry {key!r} has no warper: register one with "
                "humanparse.data.transforms.register_person_warper"
            )
    if "mask" in out:
        out["box"] = tight_box(out["mask"])
        out["empty"] = not bool(out["mask"].any())
    elif person.get("box") is not None:
        oh, ow = w.input_size
        b = transform_boxes(np.asarray(person["box"], np.float64)[None], w.m)[0]
        b = np.clip(b, 0, [ow - 1, oh - 1, ow - 1, oh - 1])
        out["box"] = b.astype(np.float32)
        out["empty"] = bool(b[2] <= b[0] or b[3] <= b[1])
    return out


def warp_sample(
    sample: dict,
    m: np.ndarray,
    input_size: tuple[int, int],
    flip: bool,
    flip_tables: FlipTables | None,
    image_border=0,
) -> dict:
    """Apply the 3×3 matrix ``m`` (which already contains the mirror when ``flip``) to every target:
    label-like maps (nearest, :data:`LABEL_BORDER` padding, class swap for :data:`FLIP_SWAPPED`),
    keypoints ``(J, 3)`` / ``(P, J, 3)`` and every per-person dict of ``persons`` (:func:`warp_person`)."""
    out = dict(sample)
    out["image"] = warp_image(sample["image"], m, input_size, border=image_border)
    for key, border in LABEL_BORDER.items():
        if key in sample and sample[key] is not None:
            lab = warp_label(sample[key], m, input_size, border)
            if flip and key in FLIP_SWAPPED and flip_tables is not None:
                lab = (
                    flip_tables.label_lut[lab]
                    if lab.dtype == np.uint8
                    else flip_tables.label_lut[lab.astype(np.int64)]
                )
            out[key] = lab
    if sample.get("keypoints") is not None:
        # (J, 3) or (P, J, 3): x, y, present
        out["keypoints"] = warp_keypoints(sample["keypoints"], m, flip, flip_tables)
    if sample.get("persons") is not None:
        pw = PersonWarp(m, tuple(input_size), bool(flip), flip_tables)
        out["persons"] = [warp_person(p, pw) for p in sample["persons"]]
    meta = dict(sample.get("meta", {}))
    meta["affine"] = m.astype(np.float64)
    meta["input_size"] = tuple(input_size)
    meta["flipped"] = bool(flip)
    out["meta"] = meta
    return out


class AffineTransform:
    """Random (train) or deterministic (eval) affine placement of a sample into ``input_size``.

    Args:
        input_size: (H, W) of the network input.
        mode: ``box`` (CorrPM/CE2P whole-image warp) or ``crop`` (DeepLab/Grapy-ML/PGN random crop).
        scale: (min, max) scale factor.
        scale_dist: ``uniform`` over ``scale``, or ``normal``: clip(N(0,1)·sigma + 1, min, max) (CE2P).
        scale_sigma: sigma of the ``normal`` scale distribution.
        aspect_jitter: ``crop`` mode only: draw width and height factors independently (Grapy-ML code).
        rotation: max |angle| in degrees; 0 disables rotation.
        rotation_prob: probability of rotating at all.
        rotation_dist: ``uniform`` in ±rotation, or ``normal``: clip(N(0,1)·rotation/2, ±rotation) (CE2P).
        flip_prob: probability of a horizontal flip (with left/right swaps).
        train: if false, the placement is deterministic (scale 1, no rotation, no flip; crop mode
            resizes the whole image box into the input, i.e. ``box`` placement).
        image_border: pad value of the warped image (0, or the mean colour).
        box_geometry: ``box`` mode's placement convention, ``pixel_centers`` or the released CE2P/CorrPM
            ``ce2p`` (:func:`box_affine`).
    """

    def __init__(
        self,
        input_size: Sequence[int],
        mode: str = "box",
        scale: Sequence[float] = (0.75, 1.25),
        scale_dist: str = "uniform",
        scale_sigma: float = 0.25,
        aspect_jitter: bool = False,
        rotation: float = 0.0,
        rotation_prob: float = 1.0,
        rotation_dist: str = "uniform",
        flip_prob: float = 0.5,
        train: bool = True,
        image_border: float | Sequence[float] = 0,
        box_geometry: str = "pixel_centers",
    ):
        if mode not in ("box", "crop"):
            raise ValueError(f"AffineTransform mode must be 'box' or 'crop', got {mode!r}")
        self.input_size = (int(input_size[0]), int(input_size[1]))
        self.mode = mode
        self.scale = (float(scale[0]), float(scale[1]))
        self.scale_dist = scale_dist
        self.scale_sigma = scale_sigma
        self.aspect_jitter = aspect_jitter
        self.rotation = float(rotation)
        self.rotation_prob = rotation_prob
        self.rotation_dist = rotation_dist
        self.flip_prob = flip_prob
        self.train = train
        self.image_border = tuple(image_border) if isinstance(image_border, Sequence) else image_border
        if box_geometry not in BOX_GEOMETRIES:
            raise ValueError(f"box_geometry must be one of {BOX_GEOMETRIES}, got {box_geometry!r}")
        self.box_geometry = box_geometry
        self.flip_tables: FlipTables | None = None

    def bind(self, flip_tables: FlipTables) -> AffineTransform:
        self.flip_tables = flip_tables
        return self

    def _draw_scale(self, rng: np.random.Generator) -> float:
        lo, hi = self.scale
        if self.scale_dist == "normal":
            return float(np.clip(rng.standard_normal() * self.scale_sigma + 1.0, lo, hi))
        return float(rng.uniform(lo, hi))

    def _draw_rotation(self, rng: np.random.Generator) -> float:
        if self.rotation <= 0 or rng.random() >= self.rotation_prob:
            return 0.0
        if self.rotation_dist == "normal":
            return float(np.clip(rng.standard_normal() * self.rotation / 2.0, -self.rotation, self.rotation))
        return float(rng.uniform(-self.rotation, self.rotation))

    def matrix(self, image_size: tuple[int, int], rng: np.random.Generator | None) -> tuple[np.ndarray, bool]:
        if not self.train or rng is None:
            return box_affine(image_size, self.input_size, geometry=self.box_geometry), False
        flip = bool(self.flip_prob > 0 and rng.random() < self.flip_prob)
        if self.mode == "box":
            s = self._draw_scale(rng)
            r = self._draw_rotation(rng)
            return box_affine(
                image_size, self.input_size, scale=s, rotation=r, flip=flip, geometry=self.box_geometry
            ), flip
        h, w = image_size
        sx = self._draw_scale(rng)
        sy = self._draw_scale(rng) if self.aspect_jitter else sx
        oh, ow = self.input_size
        ox = rng.uniform(0, max(0.0, w * sx - ow))
        oy = rng.uniform(0, max(0.0, h * sy - oh))
        m = crop_affine(image_size, self.input_size, sx, sy, (float(int(ox)), float(int(oy))), flip=flip)
        r = self._draw_rotation(rng)
        if r:
            c = ((ow - 1) / 2.0, (oh - 1) / 2.0)
            m = translate(*c) @ rotation_matrix(r) @ translate(-c[0], -c[1]) @ m
        return m, flip

    def __call__(self, sample: dict, rng: np.random.Generator | None = None) -> dict:
        h, w = sample["image"].shape[:2]
        m, flip = self.matrix((h, w), rng)
        return warp_sample(sample, m, self.input_size, flip, self.flip_tables, self.image_border)


def inverse_affine(m: np.ndarray) -> np.ndarray:
    return np.linalg.inv(np.asarray(m, dtype=np.float64))


class Normalize:
    """uint8 RGB HWC → float32 CHW, ``(x/255 − mean)/std``; ``bgr`` reorders channels first."""

    def __init__(
        self, mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD, bgr: bool = False
    ):
        self.mean = np.asarray(mean, dtype=np.float32).reshape(3, 1, 1)
        self.std = np.asarray(std, dtype=np.float32).reshape(3, 1, 1)
        self.bgr = bgr

    def __call__(self, sample: dict, rng=None) -> dict:
        img = sample["image"]
        if self.bgr:
            img = img[..., ::-1]
        x = img.transpose(2, 0, 1).astype(np.float32) / 255.0
        out = dict(sample)
        out["image"] = (x - self.mean) / self.std
        return out

    def denormalize(self, x: np.ndarray) -> np.ndarray:
        """CHW float → HWC uint8 RGB (for visualisation)."""
        img = (x * self.std + self.mean) * 255.0
        img = np.clip(img, 0, 255).astype(np.uint8).transpose(1, 2, 0)
        return img[..., ::-1] if self.bgr else img


class Compose:
    def __init__(self, transforms: Sequence):
        self.transforms = list(transforms)

    def bind(self, flip_tables: FlipTables) -> Compose:
        for t in self.transforms:
            if hasattr(t, "bind"):
                t.bind(flip_tables)
        return self

    def __call__(self, sample: dict, rng: np.random.Generator | None = None) -> dict:
        for t in self.transforms:
            sample = t(sample, rng)
        return sample
