"""Synthetic CIHP in the ``official`` layout (the CIHP release of CIHP_PGN, README "Datasets").

::

    <root>/Training/Images/<id>.jpg, Category_ids/<id>.png, Human_ids/<id>.png,
                    Instance_ids/<id>.png + <id>.txt, train_id.txt
    <root>/Validation/(same), val_id.txt
    <root>/Testing/Images/<id>.jpg, test_id.txt
    <root>/pseudo_pose/{train,val}.json      (COCO-17 pseudo keypoints, person_id = Human_ids value)
    <root>/synthetic.json

Scenes hold 2-5 persons standing side by side, overlapping and occluding each other (later persons
in front). ``Human_ids`` marks the labelled pixels of each person; ``Instance_ids`` follows the
observed encoding inst_id = class + 20·(human − 1), its txt lists ``inst_id class_id human_id``.

Ids are 7-digit and numbered globally: the splits interleave, as in the release. Traps: palette and grey-scale
label PNGs; person ids with gaps (``Human_ids`` values drawn from 1..12) in some images and persons
hidden entirely; rectangular 255 (ignore) regions; images without a pseudo-pose entry.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from humanparse.data.cihp import CIHP_SPLIT_DIRS
from humanparse.data.pseudo_pose import pseudo_pose_path, write_pseudo_pose
from humanparse.synthetic.pascal import instance_files
from humanparse.synthetic.scene import render_scene
from humanparse.synthetic.vocab import labels_for
from humanparse.synthetic.writer import (
    GENERATOR_VERSION,
    atomic_dataset_dir,
    check_image_size,
    draw_size,
    image_rng,
    pseudo_pose_entries,
    write_ids,
    write_index_png,
    write_jpeg,
    write_manifest,
)

NUM_CLASSES = 20
MAX_HUMAN_ID = 12  # PGN's val helper files have N <= 12


def global_ids(seed: int, counts: dict[str, int], digits: int = 7) -> dict[str, list[str]]:
    """Distinct zero-padded ids drawn from one global range and dealt to the splits at random
    (so the splits interleave, as CIHP's do); each list sorted."""
    rng = np.random.default_rng([seed, 303])
    total = sum(counts.values())
    nums = rng.choice(np.arange(1, 4 * total + 2), size=total, replace=False)
    out, start = {}, 0
    for split, n in counts.items():
        out[split] = sorted(f"{int(v):0{digits}d}" for v in nums[start : start + n])
        start += n
    return out


def cihp_maps(
    rng: np.random.Generator, scene, gap_prob: float, ignore_prob: float
) -> tuple[np.ndarray, np.ndarray, dict[int, int]]:
    """(Category_ids, Human_ids, scene person id -> written Human_ids value) of one scene."""
    category = labels_for(scene.tags, scene.parts, "cihp")
    present = [p.person_id for p in scene.persons if (category[scene.person_ids == p.person_id] > 0).any()]
    if rng.random() < gap_prob and len(present) < MAX_HUMAN_ID:
        values = np.sort(rng.choice(np.arange(1, MAX_HUMAN_ID + 1), size=len(present), replace=False))
    else:
        values = np.arange(1, len(present) + 1)
    mapping = {int(k): int(v) for k, v in zip(present, values)}
    lut = np.zeros(256, np.uint8)
    for k, v in mapping.items():
        lut[k] = v
    humans = np.where(category > 0, lut[scene.person_ids], 0).astype(np.uint8)
    if rng.random() < ignore_prob:
        h, w = category.shape
        bh, bw = max(2, h // 6), max(2, w // 6)
        y, x = int(rng.integers(0, h - bh + 1)), int(rng.integers(0, w - bw + 1))
        category[y : y + bh, x : x + bw] = 255
        humans[y : y + bh, x : x + bw] = 0
    return category, humans, mapping


def generate_cihp(
    root,
    num_train: int = 100,
    num_val: int = 20,
    num_test: int = 10,
    image_size: tuple[int, int] = (128, 192),
    seed: int = 0,
    *,
    persons: tuple[int, int] = (2, 5),
    gap_prob: float = 0.15,
    ignore_prob: float = 0.1,
    palette_every: int = 4,
    missing_pose_frac: float = 0.03,
    jpeg_quality: int = 95,
) -> dict:
    """Write a synthetic CIHP dataset (official layout) under ``root``; atomic, deterministic by ``seed``.

    Returns ``root``, ``counts``, ``ids`` (split -> ids), ``persons`` (id -> written Human_ids values),
    ``missing_pose``, ``manifest`` and ``seconds``.
    """
    t0 = time.perf_counter()
    lo, hi = check_image_size(image_size)
    pmin, pmax = int(persons[0]), int(persons[1])
    if not 1 <= pmin <= pmax <= MAX_HUMAN_ID:
        raise ValueError(f"persons must be (min, max) with 1 <= min <= max <= {MAX_HUMAN_ID}, got {persons}")
    counts = {"train": int(num_train), "val": int(num_val), "test": int(num_test)}
    ids = global_ids(seed, counts)
    person_values: dict[str, list[int]] = {}
    missing: list[str] = []
    manifest = {
        "generator": "humanparse.synthetic.cihp",
        "version": GENERATOR_VERSION,
        "dataset": "cihp",
        "layout": "official",
        "seed": seed,
        "counts": counts,
        "image_size": [lo, hi],
        "persons": [pmin, pmax],
        "gap_prob": gap_prob,
        "ignore_prob": ignore_prob,
        "palette_every": palette_every,
        "missing_pose_frac": missing_pose_frac,
    }
    with atomic_dataset_dir(root) as tmp:
        for split in ("train", "val", "test"):
            sdir = tmp / CIHP_SPLIT_DIRS[split]
            for sub in (
                ("Images",) if split == "test" else ("Images", "Category_ids", "Human_ids", "Instance_ids")
            ):
                (sdir / sub).mkdir(parents=True)
            entries: list[dict] = []
            for i, image_id in enumerate(ids[split]):
                rng = image_rng(seed, split, i)
                h, w = draw_size(rng, (lo, hi))
                scene = render_scene(rng, h, w, int(rng.integers(pmin, pmax + 1)))
                write_jpeg(sdir / "Images" / f"{image_id}.jpg", scene.image, jpeg_quality)
                if split == "test":
                    continue
                category, humans, mapping = cihp_maps(rng, scene, gap_prob, ignore_prob)
                person_values[image_id] = sorted(mapping.values())
                palette = i % palette_every == palette_every - 1
                write_index_png(sdir / "Category_ids" / f"{image_id}.png", category, palette)
                write_index_png(sdir / "Human_ids" / f"{image_id}.png", humans)
                inst, txt = instance_files(category, humans, NUM_CLASSES)
                write_index_png(sdir / "Instance_ids" / f"{image_id}.png", inst)
                (sdir / "Instance_ids" / f"{image_id}.txt").write_text(txt)
                if rng.random() < missing_pose_frac or (split == "train" and i == 1):
                    missing.append(image_id)
                else:
                    entries += pseudo_pose_entries(rng, image_id, scene, mapping)
            write_ids(sdir / f"{split}_id.txt", ids[split])
            if split != "test":
                write_pseudo_pose(pseudo_pose_path(tmp, split), entries)
        write_manifest(tmp, manifest)
    return {
        "root": str(Path(root)),
        "counts": counts,
        "ids": ids,
        "persons": person_values,
        "missing_pose": sorted(missing),
        "manifest": manifest,
        "seconds": time.perf_counter() - t0,
    }
