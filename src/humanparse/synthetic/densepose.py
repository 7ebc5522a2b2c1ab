"""Synthetic DensePose-COCO in the ``d2`` layout (detectron2 DensePose's dataset layout).

::

    <root>/coco/train2014/COCO_train2014_<id:012d>.jpg
    <root>/coco/val2014/COCO_val2014_<id:012d>.jpg            (valminusminival and minival images)
    <root>/coco/annotations/densepose_{train2014,valminusminival2014,minival2014}.json
    <root>/densepose_eval_data/                               (synthetic stand-ins of the non-redistributable
        body_surface.npz, SMPL_subdiv.mat, SMPL_SUBDIV_TRANSFORM.mat,   files: synthetic.body_surface)
        Pdist_matrix.pkl, UV_symmetry_transforms.mat
    <root>/synthetic.json                                     (generator manifest)

Each image is a :func:`~humanparse.synthetic.scene.render_scene` with 1-3 persons. Every visible
person becomes a COCO person annotation: ``bbox`` (tight box of its visible pixels), ``area`` (pixel
count), ``iscrowd``, ``segmentation`` (polygons, or a compressed RLE for a fraction of persons),
``keypoints`` / ``num_keypoints`` (the skeleton's 17 COCO points: v = 2 visible, 1 occluded, 0 outside),
and, for annotated persons, the dense fields:

* ``dp_x``, ``dp_y``, ``dp_I``, ``dp_U``, ``dp_V``: points sampled as the DensePose annotators were
  given them (paper §2.1): per coarse part, k-means over the part's visible pixels with a number of
  points proportional to its area (≈100 per person, at most 14 per part); each point is the pixel
  nearest to a centroid, with the rendered fine chart and (U, V) there, and its position in the
  256×256 box frame: dp_x = (column + ½ − x)·256/w (the training convention).
* ``dp_masks``: 14 compressed RLEs over the box stretched to 256×256 (cell j samples image pixel
  ⌊x + (j + ½)·w/256⌋), one per coarse part, each dilated by one cell so neighbouring parts overlap
  (painting them in order, later parts win); ``[]`` for an absent part.

Traps exercised (quirks of the real annotations): persons without dense points (a fraction of the persons, and
every person smaller than ``min_dp_area`` pixels), crowd regions (``iscrowd = 1``, an uncompressed RLE
covering two small background persons, no points, no keypoints), empty ``dp_masks`` entries, image ids
not in file order, compressed and uncompressed RLEs next to polygons.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
import warnings
from pathlib import Path

import cv2
import numpy as np
from pycocotools import mask as mask_utils
from scipy.cluster.vq import kmeans2

from humanparse.data.meta import COCO_JOINTS, DENSEPOSE_FINE_FLIP, DENSEPOSE_FINE_TO_COARSE
from humanparse.synthetic import skeleton as S
from humanparse.synthetic.body_surface import write_synthetic_eval_data
from humanparse.synthetic.scene import Scene, render_scene

GENERATOR_VERSION = "1"
SPLITS = ("train", "valminusminival", "minival")
SPLIT_CODES = {"train": 0, "valminusminival": 1, "minival": 2}
IMAGE_DIRS = {"train": "train2014", "valminusminival": "val2014", "minival": "val2014"}
ANN_FILES = {
    "train": "densepose_train2014.json",
    "valminusminival": "densepose_valminusminival2014.json",
    "minival": "densepose_minival2014.json",
}
EVAL_DIR = "densepose_eval_data"
HEAD_CHARTS = (23, 24)
COCO_SKELETON = [
    [16, 14],
    [14, 12],
    [17, 15],
    [15, 13],
    [12, 13],
    [6, 12],
    [7, 13],
    [6, 7],
    [6, 8],
    [7, 9],
    [8, 10],
    [9, 11],
    [2, 3],
    [1, 2],
    [1, 3],
    [2, 4],
    [3, 5],
    [4, 6],
    [5, 7],
]
# COCO body keypoints -> LIP joint whose visibility the renderer reports
_COCO_TO_LIP = {
    "left_shoulder": S.L_SHOULDER,
    "right_shoulder": S.R_SHOULDER,
    "left_elbow": S.L_ELBOW,
    "right_elbow": S.R_ELBOW,
    "left_wrist": S.L_WRIST,
    "right_wrist": S.R_WRIST,
    "left_hip": S.L_HIP,
    "right_hip": S.R_HIP,
    "left_knee": S.L_KNEE,
    "right_knee": S.R_KNEE,
    "left_ankle": S.L_ANKLE,
    "right_ankle": S.R_ANKLE,
}


def _rle(mask: np.ndarray, compressed: bool = True) -> dict:
    r = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    if compressed:
        return {"size": [int(r["size"][0]), int(r["size"][1])], "counts": r["counts"].decode("ascii")}
    # uncompressed COCO RLE (what crowd annotations use): run lengths starting with a 0-run, column-major
    flat = np.asfortranarray(mask.astype(np.uint8)).ravel(order="F")
    change = np.flatnonzero(np.diff(flat)) + 1
    bounds = np.concatenate([[0], change, [flat.size]])
    counts = np.diff(bounds).tolist()
    if flat.size and flat[0] == 1:
        counts = [0] + counts
    return {"size": [int(mask.shape[0]), int(mask.shape[1])], "counts": [int(c) for c in counts]}


def _polygons(mask: np.ndarray) -> list[list[float]]:
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    polys = []
    for c in contours:
        c = c.reshape(-1, 2).astype(np.float64)
        if len(c) >= 3:
            polys.append([round(float(v), 2) for v in c.ravel()])
    return polys


def _keypoints(scene: Scene, k: int) -> tuple[list[int], int]:
    """COCO keypoints (17 × (x, y, v), integer pixels) of person ``k`` (1-based) and their count."""
    person = scene.persons[k - 1]
    pts = person.skeleton.coco_keypoints()
    h, w = scene.height, scene.width
    out: list[int] = []
    n = 0
    for name, (x, y) in zip(COCO_JOINTS, pts):
        xi, yi = int(round(x)), int(round(y))
        if not (0 <= xi < w and 0 <= yi < h):
            out += [0, 0, 0]
            continue
        if name in _COCO_TO_LIP:
            vis = bool(person.visible[_COCO_TO_LIP[name]])
        else:  # face points: seen when the person faces the camera and the head is visible there
            vis = (
                person.facing == "front"
                and scene.person_ids[yi, xi] == k
                and scene.parts[yi, xi] in HEAD_CHARTS
            )
        out += [xi, yi, 2 if vis else 1]
        n += 1
    return out, n


def sample_dense_points(
    rng: np.random.Generator,
    parts: np.ndarray,
    u: np.ndarray,
    v: np.ndarray,
    box: tuple[int, int, int, int],
    target: int = 100,
    max_per_part: int = 14,
) -> dict:
    """DensePose-style point annotation of one person (``parts``/``u``/``v`` are full-image maps of its
    visible body surface, 0 elsewhere; ``box`` = (x0, y0, x1, y1), x1/y1 exclusive)."""
    x0, y0, x1, y1 = box
    w, h = x1 - x0, y1 - y0
    crop = parts[y0:y1, x0:x1]
    coarse = DENSEPOSE_FINE_TO_COARSE[crop]
    total = int((coarse > 0).sum())
    xs_all, ys_all = [], []
    for c in range(1, 15):
        ys, xs = np.nonzero(coarse == c)
        if len(xs) == 0:
            continue
        n = int(min(max_per_part, max(1, round(target * len(xs) / max(total, 1))), len(xs)))
        coords = np.stack([xs, ys], 1).astype(np.float64)
        if n < len(xs):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # empty clusters just collapse onto one pixel below
                cent, _ = kmeans2(coords, n, iter=10, minit="++", rng=rng)
            nearest = np.argmin(((coords[None, :, :] - cent[:, None, :]) ** 2).sum(-1), axis=1)
            pick = np.unique(nearest)
        else:
            pick = np.arange(len(xs))
        xs_all.append(xs[pick])
        ys_all.append(ys[pick])
    cols = np.concatenate(xs_all) + x0 if xs_all else np.zeros(0, np.int64)
    rows = np.concatenate(ys_all) + y0 if ys_all else np.zeros(0, np.int64)
    return {
        "dp_x": [round(float(v), 4) for v in (cols + 0.5 - x0) * 256.0 / w],
        "dp_y": [round(float(v), 4) for v in (rows + 0.5 - y0) * 256.0 / h],
        "dp_I": [float(v) for v in parts[rows, cols]],
        "dp_U": [round(float(v), 6) for v in u[rows, cols]],
        "dp_V": [round(float(v), 6) for v in v[rows, cols]],
    }


def coarse_masks(parts: np.ndarray, box: tuple[int, int, int, int], dilate: bool = True) -> list:
    """The 14 ``dp_masks`` RLEs over the box stretched to 256×256 (``[]`` for absent parts)."""
    x0, y0, x1, y1 = box
    w, h = x1 - x0, y1 - y0
    cols = np.minimum(np.floor((np.arange(256) + 0.5) * w / 256.0).astype(np.int64), w - 1) + x0
    rows = np.minimum(np.floor((np.arange(256) + 0.5) * h / 256.0).astype(np.int64), h - 1) + y0
    grid = DENSEPOSE_FINE_TO_COARSE[parts[rows[:, None], cols[None, :]]]
    kernel = np.ones((3, 3), np.uint8)
    out: list = []
    for c in range(1, 15):
        m = (grid == c).astype(np.uint8)
        if not m.any():
            out.append([])
            continue
        if dilate:
            m = cv2.dilate(m, kernel)
        out.append(_rle(m > 0))
    return out


def make_densepose_image(
    rng: np.random.Generator,
    height: int,
    width: int,
    *,
    num_persons: int = 1,
    crowd: bool = False,
    no_dp_prob: float = 0.15,
    rle_prob: float = 0.2,
    min_dp_area: int = 300,
    points_per_person: int = 100,
    max_points_per_part: int = 14,
) -> dict:
    """One image and its annotations (without ``id``/``image_id``). With ``crowd``, two extra small
    persons are drawn behind the others and annotated together as one crowd region."""
    extra = 2 if crowd else 0
    scene = render_scene(rng, height, width, num_persons + extra)
    anns: list[dict] = []
    owners: list[int] = []  # scene person id of each annotation (0 for the crowd region)
    if crowd:
        union = np.isin(scene.person_ids, [1, 2])
        if union.any():
            ys, xs = np.nonzero(union)
            anns.append(
                {
                    "category_id": 1,
                    "iscrowd": 1,
                    "area": int(union.sum()),
                    "segmentation": _rle(union, compressed=False),
                    "bbox": [
                        float(xs.min()),
                        float(ys.min()),
                        float(xs.max() - xs.min() + 1),
                        float(ys.max() - ys.min() + 1),
                    ],
                    "keypoints": [0] * 51,
                    "num_keypoints": 0,
                }
            )
            owners.append(0)
    for person in scene.persons[extra:]:
        if person.box is None:
            continue
        k = person.person_id
        x0, y0, x1, y1 = person.box
        mask = person.mask
        area = int(mask.sum())
        polys = _polygons(mask)
        use_rle = rng.random() < rle_prob or not polys
        kps, nk = _keypoints(scene, k)
        ann = {
            "category_id": 1,
            "iscrowd": 0,
            "area": area,
            "bbox": [float(x0), float(y0), float(x1 - x0), float(y1 - y0)],
            "segmentation": _rle(mask) if use_rle else polys,
            "keypoints": kps,
            "num_keypoints": nk,
        }
        body = np.where(scene.person_ids == k, scene.parts, 0)
        annotate = (
            rng.random() >= no_dp_prob
            and area >= min_dp_area
            and (x1 - x0) >= 8
            and (y1 - y0) >= 8
            and (body > 0).any()
        )
        if annotate:
            ann.update(
                sample_dense_points(
                    rng, body, scene.u, scene.v, person.box, points_per_person, max_points_per_part
                )
            )
            ann["dp_masks"] = coarse_masks(body, person.box)
        anns.append(ann)
        owners.append(k)
    return {"image": scene.image, "scene": scene, "annotations": anns, "owners": owners}


def _iuv_in_box(
    scene: Scene, box, owner: int | None, rng: np.random.Generator, uv_noise: float, part_swap: float
) -> np.ndarray:
    """(3, max(int h, 1), max(int w, 1)) uint8 I/U·255/V·255 of the scene inside ``box`` (x, y, w, h): array
    cell (r, c) shows image pixel (⌊y + r + ½⌋, ⌊x + c + ½⌋); only person ``owner``'s pixels (any person's
    with ``None``) are foreground. U/V get Gaussian noise, a fraction of the cells the mirrored part."""
    x, y, w, h = box
    hh, ww = max(int(h), 1), max(int(w), 1)
    rows = np.floor(y + np.arange(hh) + 0.5).astype(np.int64)
    cols = np.floor(x + np.arange(ww) + 0.5).astype(np.int64)
    inside = ((rows >= 0) & (rows < scene.height))[:, None] & ((cols >= 0) & (cols < scene.width))[None, :]
    r = np.clip(rows, 0, scene.height - 1)[:, None]
    c = np.clip(cols, 0, scene.width - 1)[None, :]
    parts = scene.parts[r, c].astype(np.int64)
    fg = inside & (parts > 0) & ((scene.person_ids[r, c] == owner) if owner is not None else True)
    swap = rng.random(parts.shape) < part_swap
    parts = np.where(swap, DENSEPOSE_FINE_FLIP[parts], parts)
    u = np.clip(scene.u[r, c] + rng.normal(0.0, uv_noise, parts.shape), 0.0, 1.0)
    v = np.clip(scene.v[r, c] + rng.normal(0.0, uv_noise, parts.shape), 0.0, 1.0)
    out = np.zeros((3, hh, ww), dtype=np.uint8)
    out[0] = np.where(fg, parts, 0)
    out[1] = np.where(fg, (u * 255).astype(np.int64), 0)
    out[2] = np.where(fg, (v * 255).astype(np.int64), 0)
    return out


def synthetic_detections(
    rng: np.random.Generator,
    image: dict,
    *,
    box_jitter: float = 0.04,
    uv_noise: float = 0.03,
    part_swap: float = 0.03,
    miss_prob: float = 0.1,
    duplicate_prob: float = 0.25,
    false_positives: float = 0.5,
) -> list[dict]:
    """Noisy DensePose R-CNN-like outputs for one :func:`make_densepose_image` result (tests, benchmarks):
    a detection around most non-crowd persons (box jitter, U/V noise, some mirrored parts, lower-scored
    duplicates with larger jitter), plus Poisson(``false_positives``) boxes elsewhere. Each entry:
    ``bbox`` [x, y, w, h], ``score``, ``uv`` (3, int h, int w) uint8."""
    scene: Scene = image["scene"]
    dets = []
    for ann, owner in zip(image["annotations"], image["owners"]):
        if ann["iscrowd"] or rng.random() < miss_prob:
            continue
        x, y, w, h = ann["bbox"]
        copies = 1 + int(rng.random() < duplicate_prob)
        for j in range(copies):
            jit = rng.normal(0.0, box_jitter * (1 + 3 * j), 4) * np.array([w, h, w, h])
            x0, y0 = (
                float(np.clip(x + jit[0], 0, scene.width - 2)),
                float(np.clip(y + jit[1], 0, scene.height - 2)),
            )
            x1 = float(np.clip(x + jit[0] + max(w + jit[2], 2.0), x0 + 2, scene.width))
            y1 = float(np.clip(y + jit[1] + max(h + jit[3], 2.0), y0 + 2, scene.height))
            box = [x0, y0, x1 - x0, y1 - y0]  # detectors clip their boxes to the image
            score = float(
                np.clip(0.95 - 0.35 * j - 2.0 * np.abs(jit).sum() / (w + h) + rng.normal(0, 0.05), 0.01, 1.0)
            )
            dets.append(
                {"bbox": box, "score": score, "uv": _iuv_in_box(scene, box, owner, rng, uv_noise, part_swap)}
            )
    for _ in range(int(rng.poisson(false_positives))):
        w = float(rng.uniform(0.1, 0.4) * scene.width)
        h = float(rng.uniform(0.2, 0.6) * scene.height)
        box = [float(rng.uniform(0, scene.width - w)), float(rng.uniform(0, scene.height - h)), w, h]
        dets.append(
            {
                "bbox": box,
                "score": float(rng.uniform(0.05, 0.6)),
                "uv": _iuv_in_box(scene, box, None, rng, 3 * uv_noise, 0.2),
            }
        )
    return dets


def _write_jpeg(path: Path, image: np.ndarray, quality: int) -> None:
    if not cv2.imwrite(
        str(path), np.ascontiguousarray(image[..., ::-1]), [cv2.IMWRITE_JPEG_QUALITY, quality]
    ):
        raise OSError(f"could not write {path}")


def generate_densepose_coco(
    root: str | os.PathLike,
    num_train: int = 64,
    num_val: int = 32,
    num_test: int = 0,
    image_size: tuple[int, int] = (160, 256),
    seed: int = 0,
    *,
    num_valminusminival: int = 8,
    persons: tuple[int, int] = (1, 3),
    crowd_frac: float = 0.15,
    no_dp_prob: float = 0.15,
    rle_prob: float = 0.2,
    min_dp_area: int = 300,
    points_per_person: int = 100,
    max_points_per_part: int = 14,
    jpeg_quality: int = 95,
) -> dict:
    """Write a synthetic DensePose-COCO dataset (module docstring) under ``root``.

    ``num_train`` images go to ``train2014``, ``num_val`` to ``minival2014`` (the evaluation split) and
    ``num_valminusminival`` to ``valminusminival2014``. ``num_test`` only keeps the generators' common
    signature: the ``d2`` layout has no test split, so nothing is written for it.
    Image ``i`` of split ``s`` is drawn from ``np.random.default_rng([seed, code(s), i])`` (codes: train
    0, valminusminival 1, minival 2); each side from ``image_size = (min_side, max_side)``; 1 to
    ``persons[1]`` persons; a crowd region in a ``crowd_frac`` fraction of the images (at least one
    image per split holding two or more images). Written to ``<root>.tmp-<pid>`` and renamed at the end;
    refuses a non-empty existing ``root``.

    Returns ``root``, ``counts`` (images per split), ``stats`` (persons, annotated persons, crowd
    regions, points, empty ``dp_masks`` entries), ``manifest`` and ``seconds``.
    """
    t0 = time.perf_counter()
    root = Path(root)
    if root.exists() and (not root.is_dir() or any(root.iterdir())):
        raise FileExistsError(f"{root} exists and is not an empty directory; refusing to overwrite it")
    lo, hi = int(image_size[0]), int(image_size[1])
    if not 48 <= lo <= hi:
        raise ValueError(
            f"image_size must be (min_side, max_side) with 48 <= min_side <= max_side, got {image_size}"
        )
    pmin, pmax = int(persons[0]), int(persons[1])
    if not 1 <= pmin <= pmax:
        raise ValueError(f"persons must be (min, max) with 1 <= min <= max, got {persons}")
    counts = {"train": int(num_train), "valminusminival": int(num_valminusminival), "minival": int(num_val)}
    manifest = {
        "generator": "humanparse.synthetic.densepose",
        "version": GENERATOR_VERSION,
        "dataset": "densepose_coco",
        "layout": "d2",
        "seed": seed,
        "counts": counts,
        "image_size": [lo, hi],
        "persons": [pmin, pmax],
        "crowd_frac": crowd_frac,
        "no_dp_prob": no_dp_prob,
        "rle_prob": rle_prob,
        "min_dp_area": min_dp_area,
        "points_per_person": points_per_person,
        "max_points_per_part": max_points_per_part,
        "eval_data": EVAL_DIR,
        "uv_symmetry": f"{EVAL_DIR}/UV_symmetry_transforms.mat",
    }
    stats = {"images": 0, "persons": 0, "dp_persons": 0, "crowd": 0, "points": 0, "empty_dp_masks": 0}
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = root.parent / f"{root.name}.tmp-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    next_ann = 1_000_000 + 1000 * int(seed % 1000)
    try:
        for sub in ("coco/train2014", "coco/val2014", "coco/annotations"):
            (tmp / sub).mkdir(parents=True)
        write_synthetic_eval_data(tmp / EVAL_DIR)
        for split in SPLITS:
            n = counts[split]
            id_rng = np.random.default_rng([seed, SPLIT_CODES[split], 10**6])
            image_ids = (
                SPLIT_CODES[split] * 200_000 + 1 + id_rng.choice(199_999, size=n, replace=False)
            ).tolist()
            forced_crowd = int(id_rng.integers(0, n)) if n >= 2 else -1
            images, anns = [], []
            prefix = "COCO_train2014_" if split == "train" else "COCO_val2014_"
            for i, image_id in enumerate(image_ids):
                rng = np.random.default_rng([seed, SPLIT_CODES[split], i])
                h, w = int(rng.integers(lo, hi + 1)), int(rng.integers(lo, hi + 1))
                num = int(rng.integers(pmin, pmax + 1))
                crowd = bool(rng.random() < crowd_frac) or i == forced_crowd
                out = make_densepose_image(
                    rng,
                    h,
                    w,
                    num_persons=num,
                    crowd=crowd,
                    no_dp_prob=no_dp_prob,
                    rle_prob=rle_prob,
                    min_dp_area=min_dp_area,
                    points_per_person=points_per_person,
                    max_points_per_part=max_points_per_part,
                )
                file_name = f"{prefix}{image_id:012d}.jpg"
                _write_jpeg(tmp / "coco" / IMAGE_DIRS[split] / file_name, out["image"], jpeg_quality)
                images.append({"id": int(image_id), "file_name": file_name, "height": h, "width": w})
                for a in out["annotations"]:
                    a = {"id": next_ann, "image_id": int(image_id), **a}
                    next_ann += 1
                    anns.append(a)
                    stats["persons"] += 1
                    stats["crowd"] += int(a["iscrowd"])
                    if "dp_x" in a:
                        stats["dp_persons"] += 1
                        stats["points"] += len(a["dp_x"])
                        stats["empty_dp_masks"] += sum(1 for m in a["dp_masks"] if not m)
                stats["images"] += 1
            data = {
                "info": {
                    "description": f"humanparse synthetic DensePose-COCO ({split})",
                    "version": GENERATOR_VERSION,
                },
                "images": images,
                "annotations": anns,
                "categories": [
                    {
                        "id": 1,
                        "name": "person",
                        "supercategory": "person",
                        "keypoints": list(COCO_JOINTS),
                        "skeleton": COCO_SKELETON,
                    }
                ],
            }
            (tmp / "coco" / "annotations" / ANN_FILES[split]).write_text(json.dumps(data))
        manifest["stats"] = stats
        (tmp / "synthetic.json").write_text(json.dumps(manifest, indent=2) + "\n")
        os.replace(tmp, root)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return {
        "root": str(root),
        "counts": counts,
        "stats": stats,
        "manifest": manifest,
        "seconds": time.perf_counter() - t0,
    }


def main(argv: list[str] | None = None) -> None:
    """``python -m humanparse.synthetic.densepose ROOT [--train N --valminusminival N --minival N --seed S]``."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("root")
    ap.add_argument("--train", type=int, default=64)
    ap.add_argument("--valminusminival", type=int, default=8)
    ap.add_argument("--minival", type=int, default=32)
    ap.add_argument("--min-side", type=int, default=160)
    ap.add_argument("--max-side", type=int, default=256)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    info = generate_densepose_coco(
        args.root,
        args.train,
        args.minival,
        0,
        (args.min_side, args.max_side),
        args.seed,
        num_valminusminival=args.valminusminival,
    )
    print(f"wrote {info['root']}: {info['counts']} {info['stats']} in {info['seconds']:.1f}s")


if __name__ == "__main__":
    main()


def synthetic_eval_set(
    num_images: int = 20,
    image_size: tuple[int, int] = (160, 256),
    seed: int = 0,
    *,
    persons: tuple[int, int] = (1, 3),
    crowd_frac: float = 0.15,
    **detection_options,
) -> tuple[dict, list[dict]]:
    """An in-memory DensePose-COCO ground truth (the json dict, no image files) and noisy detections for it
    (:func:`synthetic_detections`, each with ``image_id``): the input of metric tests and the benchmark."""
    lo, hi = int(image_size[0]), int(image_size[1])
    images, anns, dets = [], [], []
    next_ann = 1
    for i in range(num_images):
        rng = np.random.default_rng([seed, 7, i])
        h, w = int(rng.integers(lo, hi + 1)), int(rng.integers(lo, hi + 1))
        out = make_densepose_image(
            rng,
            h,
            w,
            num_persons=int(rng.integers(persons[0], persons[1] + 1)),
            crowd=bool(rng.random() < crowd_frac),
        )
        image_id = 1000 + 7 * i
        images.append({"id": image_id, "file_name": f"{image_id:012d}.jpg", "height": h, "width": w})
        for a in out["annotations"]:
            anns.append({"id": next_ann, "image_id": image_id, **a})
            next_ann += 1
        for d in synthetic_detections(rng, out, **detection_options):
            dets.append({"image_id": image_id, "category_id": 1, **d})
    gt = {
        "images": images,
        "annotations": anns,
        "categories": [
            {"id": 1, "name": "person", "keypoints": list(COCO_JOINTS), "skeleton": COCO_SKELETON}
        ],
    }
    return gt, dets
