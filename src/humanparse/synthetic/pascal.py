"""Synthetic PASCAL-Person-Part in the ``graphonomy`` layout with the converted instance files
(layout: :mod:`humanparse.data.pascal`).

::

    <root>/pascal/JPEGImages/<id>.jpg
    <root>/pascal/SegmentationPart/<id>.png       (7 body-part classes; mode L, every 4th mode P)
    <root>/pascal/list/train_id.txt, val_id.txt (HHP-like), val_id_grapy.txt (Grapy-ML-like)
    <root>/pascal/Human_ids/<id>.png              (converted instance level)
    <root>/pascal/Instance_ids/<id>.png + <id>.txt (inst_id = class + 7·(human − 1); lines "inst class human")
    <root>/pascal/Category_ids/<id>.png           (the converted semantic map)
    <root>/synthetic.json

Images hold 1-4 persons (mean ≈ 2.2, as in the dataset). Part labels come from the body part
beneath each pixel (``labels_for``). Traps: the Grapy-ML val list differs from the HHP one (some HHP
ids missing, some extra images only in it, both disjoint from train); one val image's converted
``Category_ids`` does not reproduce ``SegmentationPart`` (the reader must report and exclude it);
person ids with gaps where a person is fully hidden.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from humanparse.data.meta import get_info
from humanparse.synthetic.scene import render_scene
from humanparse.synthetic.vocab import labels_for
from humanparse.synthetic.writer import (
    GENERATOR_VERSION,
    atomic_dataset_dir,
    check_image_size,
    draw_size,
    image_rng,
    write_ids,
    write_index_png,
    write_jpeg,
    write_manifest,
)

NUM_CLASSES = get_info("pascal_person_part").num_classes
PERSONS_P = (0.35, 0.3, 0.2, 0.15)  # 1..4 persons, mean 2.15


def pascal_ids(seed: int, counts: dict[str, int]) -> dict[str, list[str]]:
    """VOC-style ids ``YYYY_NNNNNN``, distinct across splits, each list sorted."""
    rng = np.random.default_rng([seed, 202])
    out: dict[str, list[str]] = {}
    seen: set[str] = set()
    for split, n in counts.items():
        ids = []
        while len(ids) < n:
            cand = f"{int(rng.integers(2008, 2011))}_{int(rng.integers(1, 8000)):06d}"
            if cand not in seen:
                seen.add(cand)
                ids.append(cand)
        out[split] = sorted(ids)
    return out


def instance_files(label: np.ndarray, humans: np.ndarray, num_classes: int) -> tuple[np.ndarray, str]:
    """CIHP-style ``Instance_ids`` map (inst = class + C·(human − 1)) and its txt lines."""
    on = (label > 0) & (label < num_classes) & (humans > 0)
    inst = np.where(on, label.astype(np.int64) + num_classes * (humans.astype(np.int64) - 1), 0)
    lines = []
    for v in np.unique(inst[inst > 0]):
        c, h = int(v - 1) % num_classes + 1, int(v - 1) // num_classes + 1
        lines.append(f"{int(v)} {c} {h}\n")
    return inst, "".join(lines)


def generate_pascal_person_part(
    root,
    num_train: int = 100,
    num_val: int = 20,
    num_test: int = 0,
    image_size: tuple[int, int] = (96, 160),
    seed: int = 0,
    *,
    palette_every: int = 4,
    jpeg_quality: int = 95,
) -> dict:
    """Write a synthetic PASCAL-Person-Part dataset (graphonomy layout + converted instance files).

    ``num_test`` is accepted for a uniform option set and ignored (val is the test set). The
    Grapy-ML-like val list drops ``max(1, num_val // 8)`` HHP ids and adds ``max(1, num_val // 6)``
    images of its own. Returns ``root``, ``counts``, ``ids`` (``train``, ``val``, ``val_grapy``),
    ``category_mismatch`` (ids whose converted Category_ids differs), ``manifest`` and ``seconds``.
    """
    t0 = time.perf_counter()
    lo, hi = check_image_size(image_size)
    n_drop = max(1, int(num_val) // 8) if num_val else 0
    n_add = max(1, int(num_val) // 6) if num_val else 0
    ids = pascal_ids(seed, {"train": int(num_train), "val": int(num_val), "extra": n_add})
    drop_rng = np.random.default_rng([seed, 203])
    dropped = set(drop_rng.choice(ids["val"], size=n_drop, replace=False).tolist()) if n_drop else set()
    ids["val_grapy"] = sorted([i for i in ids["val"] if i not in dropped] + ids["extra"])
    counts = {"train": len(ids["train"]), "val": len(ids["val"]), "val_grapy": len(ids["val_grapy"])}
    mismatch: list[str] = []
    manifest = {
        "generator": "humanparse.synthetic.pascal",
        "version": GENERATOR_VERSION,
        "dataset": "pascal_person_part",
        "layout": "graphonomy",
        "seed": seed,
        "counts": counts,
        "image_size": [lo, hi],
        "palette_every": palette_every,
    }
    with atomic_dataset_dir(root) as tmp:
        base = tmp / "pascal"
        for sub in ("JPEGImages", "SegmentationPart", "Human_ids", "Instance_ids", "Category_ids", "list"):
            (base / sub).mkdir(parents=True)
        for split in ("train", "val", "extra"):
            for i, image_id in enumerate(ids[split]):
                rng = image_rng(seed, split, i)
                h, w = draw_size(rng, (lo, hi))
                n = int(rng.choice(len(PERSONS_P), p=PERSONS_P)) + 1
                scene = render_scene(rng, h, w, n)
                label = labels_for(scene.tags, scene.parts, "pascal_person_part")
                humans = np.where(label > 0, scene.person_ids, 0).astype(np.uint8)
                write_jpeg(base / "JPEGImages" / f"{image_id}.jpg", scene.image, jpeg_quality)
                write_index_png(
                    base / "SegmentationPart" / f"{image_id}.png",
                    label,
                    i % palette_every == palette_every - 1,
                )
                write_index_png(base / "Human_ids" / f"{image_id}.png", humans)
                inst, txt = instance_files(label, humans, NUM_CLASSES)
                write_index_png(base / "Instance_ids" / f"{image_id}.png", inst)
                (base / "Instance_ids" / f"{image_id}.txt").write_text(txt)
                category = label
                if split == "val" and not mismatch and (label == 1).sum() > 4:
                    # the neck trap of the instance-level conversion: put the lowest head rows into the torso
                    category = label.copy()
                    rows = np.flatnonzero((label == 1).any(1))
                    band = np.zeros_like(label, dtype=bool)
                    band[rows[-1]] = True
                    category[band & (label == 1)] = 2
                    mismatch.append(image_id)
                write_index_png(base / "Category_ids" / f"{image_id}.png", category)
        write_ids(base / "list" / "train_id.txt", ids["train"])
        write_ids(base / "list" / "val_id.txt", ids["val"])
        write_ids(base / "list" / "val_id_grapy.txt", ids["val_grapy"])
        manifest["category_mismatch"] = mismatch
        write_manifest(tmp, manifest)
    return {
        "root": str(Path(root)),
        "counts": counts,
        "ids": ids,
        "category_mismatch": mismatch,
        "manifest": manifest,
        "seconds": time.perf_counter() - t0,
    }
