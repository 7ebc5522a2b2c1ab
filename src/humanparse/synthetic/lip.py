"""Synthetic LIP in the official on-disk layout (README "Datasets").

::

    <root>/TrainVal_images/train_id.txt, val_id.txt
    <root>/TrainVal_images/TrainVal_images/{train_images,val_images}/<id>.jpg
    <root>/TrainVal_parsing_annotations/TrainVal_parsing_annotations/{train_segmentations,val_segmentations}/<id>.png
    <root>/TrainVal_pose_annotations/lip_train_set.csv, lip_val_set.csv
    <root>/Testing_images/test_id.txt
    <root>/Testing_images/testing_images/<id>.jpg
    <root>/synthetic.json                      (generator manifest; readers ignore it)

Traps exercised: label PNGs in both mode ``L`` and palette mode ``P``; pose joints written as
``nan,nan,nan`` (outside the image, or occasionally an occluded joint left unannotated); a few
training images without any pose row; images of varied, non-square sizes.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from humanparse.data.meta import voc_palette
from humanparse.synthetic.scene import render_scene
from humanparse.synthetic.vocab import labels_for

GENERATOR_VERSION = "1"
SPLIT_CODES = {"train": 0, "val": 1, "test": 2}
_PALETTE = voc_palette(256).reshape(-1).tolist()

IMAGES_DIR = "TrainVal_images/TrainVal_images"
LABELS_DIR = "TrainVal_parsing_annotations/TrainVal_parsing_annotations"
POSE_DIR = "TrainVal_pose_annotations"
TEST_DIR = "Testing_images/testing_images"


def make_lip_sample(
    rng: np.random.Generator, height: int, width: int, *, unannotated_prob: float = 0.05
) -> dict:
    """One in-memory LIP sample.

    Returns a dict with ``image`` ((H, W, 3) uint8 RGB), ``label`` ((H, W) uint8, LIP classes 0..19),
    ``joints`` ((16, 2) float64 (x, y) pixels, NaN where absent: outside the image, or an occluded
    joint left unannotated with probability ``unannotated_prob``), ``visible`` ((16,) bool, present
    and not occluded) and ``scene`` (the :class:`~humanparse.synthetic.scene.Scene`).
    """
    scene = render_scene(rng, height, width, 1)
    person = scene.persons[0]
    joints = person.joints.copy()
    absent = ~person.in_image | (~person.visible & (rng.random(len(joints)) < unannotated_prob))
    joints[absent] = np.nan
    return {
        "image": scene.image,
        "label": labels_for(scene.tags, scene.parts, "lip"),
        "joints": joints,
        "visible": person.visible & ~absent,
        "scene": scene,
    }


def _pose_row(image_id: str, joints: np.ndarray, visible: np.ndarray) -> str:
    fields = [f"{image_id}.jpg"]
    for (x, y), v in zip(joints, visible):
        if np.isnan(x) or np.isnan(y):
            fields += ["nan", "nan", "nan"]
        else:
            fields += [str(int(round(x))), str(int(round(y))), str(int(v))]
    return ",".join(fields)


def _write_label(path: Path, label: np.ndarray, palette: bool) -> None:
    if palette:
        img = Image.fromarray(label, mode="P")
        img.putpalette(_PALETTE)
        img.save(path)
    elif not cv2.imwrite(str(path), label):
        raise OSError(f"could not write {path}")


def _write_jpeg(path: Path, image: np.ndarray, quality: int) -> None:
    if not cv2.imwrite(
        str(path), np.ascontiguousarray(image[..., ::-1]), [cv2.IMWRITE_JPEG_QUALITY, quality]
    ):
        raise OSError(f"could not write {path}")


def _ids_and_flags(
    seed: int, counts: dict[str, int], missing_pose_frac: float
) -> tuple[dict[str, list[str]], set[str]]:
    """Deterministic unique ids ``NNNNNN_NNNNNN`` per split, and the train ids without a pose row."""
    ids: dict[str, list[str]] = {}
    seen: set[str] = set()
    draws: list[tuple[float, str]] = []
    for split, n in counts.items():
        ids[split] = []
        for i in range(n):
            r = np.random.default_rng([seed, SPLIT_CODES[split], i, 1])
            a, b, u = int(r.integers(100000, 1000000)), int(r.integers(100000, 1000000)), float(r.random())
            while f"{a}_{b}" in seen:
                b = 100000 + (b - 99999) % 900000
            image_id = f"{a}_{b}"
            seen.add(image_id)
            ids[split].append(image_id)
            if split == "train":
                draws.append((u, image_id))
    missing = {image_id for u, image_id in draws if u < missing_pose_frac}
    if not missing and missing_pose_frac > 0 and len(draws) >= 2:
        missing.add(min(draws)[1])
    return ids, missing


def generate_lip(
    root: str | os.PathLike,
    num_train: int = 100,
    num_val: int = 20,
    num_test: int = 10,
    image_size: tuple[int, int] = (96, 160),
    seed: int = 0,
    *,
    missing_pose_frac: float = 0.03,
    palette_every: int = 4,
    jpeg_quality: int = 95,
) -> dict:
    """Write a synthetic LIP dataset in the official layout under ``root``.

    Image ``i`` of split ``s`` is drawn from ``np.random.default_rng([seed, code(s), i])`` (codes:
    train 0, val 1, test 2), so its content does not depend on the other images or on the counts.
    Each side of each image is drawn from ``image_size = (min_side, max_side)``. Every
    ``palette_every``-th label file (index ``i % palette_every == palette_every - 1``) is a palette
    PNG, the others mode ``L``. Train images whose id draws below ``missing_pose_frac`` (at least one
    when ``num_train >= 2``) have no pose row.

    Everything is written to ``<root>.tmp-<pid>`` and moved to ``root`` with :func:`os.replace` at the
    end, so a half-written dataset never appears under ``root``. Refuses (``FileExistsError``) when
    ``root`` exists and is not an empty directory.

    Returns a dict: ``root``, ``counts``, ``ids`` (split -> id list, in file order),
    ``missing_pose`` (sorted train ids without a pose row), ``palette_labels`` (sorted ids whose
    label PNG is mode ``P``), ``manifest`` (the ``synthetic.json`` content) and ``seconds``.
    """
    t0 = time.perf_counter()
    root = Path(root)
    if root.exists() and (not root.is_dir() or any(root.iterdir())):
        raise FileExistsError(f"{root} exists and is not an empty directory; refusing to overwrite it")
    lo, hi = int(image_size[0]), int(image_size[1])
    if not 16 <= lo <= hi:
        raise ValueError(
            f"image_size must be (min_side, max_side) with 16 <= min_side <= max_side, got {image_size}"
        )
    if palette_every < 1:
        raise ValueError("palette_every must be >= 1")
    counts = {"train": int(num_train), "val": int(num_val), "test": int(num_test)}
    ids, missing = _ids_and_flags(seed, counts, missing_pose_frac)

    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = root.parent / f"{root.name}.tmp-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    palette_ids: list[str] = []
    manifest = {
        "generator": "humanparse.synthetic.lip",
        "version": GENERATOR_VERSION,
        "dataset": "lip",
        "layout": "official",
        "seed": seed,
        "counts": counts,
        "image_size": [lo, hi],
        "missing_pose_frac": missing_pose_frac,
        "palette_every": palette_every,
        "jpeg_quality": jpeg_quality,
    }
    try:
        for sub in (
            f"{IMAGES_DIR}/train_images",
            f"{IMAGES_DIR}/val_images",
            f"{LABELS_DIR}/train_segmentations",
            f"{LABELS_DIR}/val_segmentations",
            POSE_DIR,
            TEST_DIR,
        ):
            (tmp / sub).mkdir(parents=True)
        for split in ("train", "val", "test"):
            rows: list[str] = []
            for i, image_id in enumerate(ids[split]):
                rng = np.random.default_rng([seed, SPLIT_CODES[split], i])
                h, w = int(rng.integers(lo, hi + 1)), int(rng.integers(lo, hi + 1))
                sample = make_lip_sample(rng, h, w)
                if split == "test":
                    _write_jpeg(tmp / TEST_DIR / f"{image_id}.jpg", sample["image"], jpeg_quality)
                    continue
                _write_jpeg(
                    tmp / IMAGES_DIR / f"{split}_images" / f"{image_id}.jpg", sample["image"], jpeg_quality
                )
                palette = i % palette_every == palette_every - 1
                if palette:
                    palette_ids.append(image_id)
                _write_label(
                    tmp / LABELS_DIR / f"{split}_segmentations" / f"{image_id}.png", sample["label"], palette
                )
                if image_id not in missing:
                    rows.append(_pose_row(image_id, sample["joints"], sample["visible"]))
            list_dir = tmp / ("Testing_images" if split == "test" else "TrainVal_images")
            (list_dir / f"{split}_id.txt").write_text("".join(f"{x}\n" for x in ids[split]))
            if split != "test":
                (tmp / POSE_DIR / f"lip_{split}_set.csv").write_text("".join(f"{r}\n" for r in rows))
        (tmp / "synthetic.json").write_text(json.dumps(manifest, indent=2) + "\n")
        os.replace(tmp, root)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return {
        "root": str(root),
        "counts": counts,
        "ids": ids,
        "missing_pose": sorted(missing),
        "palette_labels": sorted(palette_ids),
        "manifest": manifest,
        "seconds": time.perf_counter() - t0,
    }


def main(argv: list[str] | None = None) -> None:
    """``python -m humanparse.synthetic.lip ROOT [--train N --val N --test N --seed S]``."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("root")
    ap.add_argument("--train", type=int, default=100)
    ap.add_argument("--val", type=int, default=20)
    ap.add_argument("--test", type=int, default=10)
    ap.add_argument("--min-side", type=int, default=96)
    ap.add_argument("--max-side", type=int, default=160)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    info = generate_lip(args.root, args.train, args.val, args.test, (args.min_side, args.max_side), args.seed)
    print(f"wrote {info['root']}: {info['counts']} in {info['seconds']:.1f}s")


if __name__ == "__main__":
    main()
