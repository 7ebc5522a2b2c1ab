"""Synthetic ATR in the ``release`` layout (README "Datasets").

::

    <root>/humanparsing/JPEGImages/<id>.jpg
    <root>/humanparsing/SegmentationClassAug/<id>.png     (18 classes; mode L, every 4th mode P)
    <root>/pseudo_pose/{train,val}.json                   (COCO-17 pseudo keypoints)
    <root>/synthetic.json                                 (manifest; readers ignore it)

No list file is written: ATR has none, the reader computes the split by rule
(:func:`humanparse.data.atr.graphonomy_split`). The ids use the real prefixes (``2500_``, ``4565_``, ``997_``,
``fash_``, ``Multi_``, ``dataset10k_``) so the rule is exercised: there are more ``2500_`` ids than val
images, drawn from 1..2500 so that plain string order (``2500_10`` < ``2500_9``) differs from numeric order.
The manifest's ``reader_options`` carries the rule's ``val_count`` (= ``num_val``) for the data module.

Traps: palette and grey-scale label PNGs, images without a pseudo-pose entry, pose joints absent
(outside the image, back-facing face points, estimator misses).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from humanparse.data.atr import VAL_PREFIX, graphonomy_split
from humanparse.data.pseudo_pose import pseudo_pose_path, write_pseudo_pose
from humanparse.synthetic.scene import render_scene
from humanparse.synthetic.vocab import labels_for
from humanparse.synthetic.writer import (
    GENERATOR_VERSION,
    atomic_dataset_dir,
    check_image_size,
    draw_size,
    pseudo_pose_entries,
    write_index_png,
    write_jpeg,
    write_manifest,
)

OTHER_PREFIXES = ("4565_", "997_", "fash_", "Multi_", "dataset10k_")
# share of each prefix among the non-val ids, roughly as in the release (10,003 of 17,706 are dataset10k_)
OTHER_SHARES = (0.08, 0.08, 0.12, 0.12, 0.60)


def atr_ids(seed: int, num_train: int, num_val: int) -> dict[str, list[str]]:
    """ATR-like ids whose rule split (``val_count = num_val``) has ``num_train`` / ``num_val`` ids."""
    rng = np.random.default_rng([seed, 101])
    extra = min(num_train, max(1, num_val // 2)) if num_val else 0
    n2500 = num_val + extra
    nums = rng.choice(np.arange(1, 2501), size=n2500, replace=False)
    ids = [f"{VAL_PREFIX}{n}" for n in nums]
    seen = set(ids)
    while len(ids) < num_train + num_val:
        prefix = OTHER_PREFIXES[int(rng.choice(len(OTHER_PREFIXES), p=OTHER_SHARES))]
        cand = f"{prefix}{int(rng.integers(1, 20000))}"
        if cand not in seen:
            seen.add(cand)
            ids.append(cand)
    if num_val == 0:
        return {"train": sorted(ids), "val": []}
    return graphonomy_split(ids, num_val, VAL_PREFIX)


def generate_atr(
    root,
    num_train: int = 100,
    num_val: int = 20,
    num_test: int = 0,
    image_size: tuple[int, int] = (96, 160),
    seed: int = 0,
    *,
    palette_every: int = 4,
    missing_pose_frac: float = 0.03,
    jpeg_quality: int = 95,
) -> dict:
    """Write a synthetic ATR dataset (release layout) under ``root``; atomic and deterministic by ``seed``.

    ``num_test`` is accepted for a uniform option set and ignored: ATR has no test split. Image ``id``
    is drawn from ``default_rng([seed, split code, index])``. Returns ``root``, ``counts``, ``ids``
    (split -> ids by the rule), ``missing_pose``, ``palette_labels``, ``manifest`` and ``seconds``.
    """
    t0 = time.perf_counter()
    lo, hi = check_image_size(image_size)
    ids = atr_ids(seed, int(num_train), int(num_val))
    counts = {"train": len(ids["train"]), "val": len(ids["val"])}
    manifest = {
        "generator": "humanparse.synthetic.atr",
        "version": GENERATOR_VERSION,
        "dataset": "atr",
        "layout": "release",
        "seed": seed,
        "counts": counts,
        "image_size": [lo, hi],
        "reader_options": {"val_count": counts["val"]},
        "palette_every": palette_every,
        "missing_pose_frac": missing_pose_frac,
    }
    palette_ids: list[str] = []
    missing: list[str] = []
    with atomic_dataset_dir(root) as tmp:
        base = tmp / "humanparsing"
        for sub in ("JPEGImages", "SegmentationClassAug"):
            (base / sub).mkdir(parents=True)
        for split in ("train", "val"):
            entries: list[dict] = []
            for i, image_id in enumerate(ids[split]):
                rng = np.random.default_rng([seed, 0 if split == "train" else 1, i])
                h, w = draw_size(rng, (lo, hi))
                scene = render_scene(rng, h, w, 1)
                write_jpeg(base / "JPEGImages" / f"{image_id}.jpg", scene.image, jpeg_quality)
                palette = i % palette_every == palette_every - 1
                if palette:
                    palette_ids.append(image_id)
                write_index_png(
                    base / "SegmentationClassAug" / f"{image_id}.png",
                    labels_for(scene.tags, scene.parts, "atr"),
                    palette,
                )
                if rng.random() < missing_pose_frac or (split == "train" and i == 1):
                    missing.append(image_id)
                else:
                    entries += pseudo_pose_entries(rng, image_id, scene, {1: 1})
            write_pseudo_pose(pseudo_pose_path(tmp, split), entries)
        write_manifest(tmp, manifest)
    return {
        "root": str(Path(root)),
        "counts": counts,
        "ids": ids,
        "missing_pose": sorted(missing),
        "palette_labels": sorted(palette_ids),
        "manifest": manifest,
        "seconds": time.perf_counter() - t0,
    }
