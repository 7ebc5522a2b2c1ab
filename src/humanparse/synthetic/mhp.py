"""Synthetic MHP v2.0 in the ``official`` layout (layout: :mod:`humanparse.data.mhp`).

::

    <root>/list/train.txt, val.txt, test_all.txt, test_inter_top20.txt, test_inter_top10.txt
    <root>/train/images/<id>.jpg     <root>/train/parsing_annos/<id>_<NN>_<MM>.png
    <root>/val/images/<id>.jpg       <root>/val/parsing_annos/<id>_<NN>_<MM>.png
    <root>/test/images/<id>.jpg
    <root>/synthetic.json

One annotation PNG per person, **3 channels**: channel 0 = that person's 59-class part map (0 off the
person), channels 1-2 = 0. ``MM`` is the drawing order (1 = furthest back), so painting the files in
sorted order, later overwriting, reproduces the rendered scene (the reader's semantic-map rule).

Traps: most person maps hold the visible pixels only, some (``amodal_prob``) the whole person
including what later persons hide, so person maps overlap; some images get an extra annotation file
whose map is empty (no foreground); fully hidden persons give empty maps as well.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from humanparse.synthetic.scene import render_scene
from humanparse.synthetic.vocab import tag_lut
from humanparse.synthetic.writer import (
    GENERATOR_VERSION,
    atomic_dataset_dir,
    check_image_size,
    draw_size,
    image_rng,
    write_ids,
    write_jpeg,
    write_manifest,
    write_three_channel_png,
)

MHP_LUT = tag_lut("mhp_v2")


def mhp_ids(seed: int, counts: dict[str, int]) -> dict[str, list[str]]:
    """Distinct integer ids (no padding) dealt to the splits at random; each list sorted numerically."""
    rng = np.random.default_rng([seed, 404])
    total = sum(counts.values())
    nums = rng.choice(np.arange(1, 3 * total + 2), size=total, replace=False)
    out, start = {}, 0
    for split, n in counts.items():
        out[split] = [str(int(v)) for v in sorted(nums[start : start + n])]
        start += n
    return out


def person_maps(rng: np.random.Generator, scene, amodal_prob: float, empty_prob: float) -> list[np.ndarray]:
    """The per-person 59-class maps of a scene in file order (drawing order, maybe one empty map)."""
    maps = []
    for p in scene.persons:
        tags = p.render.tags if rng.random() < amodal_prob else p.tags
        maps.append(MHP_LUT[tags])
    if rng.random() < empty_prob:
        maps.insert(int(rng.integers(0, len(maps) + 1)), np.zeros_like(maps[0]))
    return maps


def generate_mhp_v2(
    root,
    num_train: int = 100,
    num_val: int = 20,
    num_test: int = 10,
    image_size: tuple[int, int] = (128, 192),
    seed: int = 0,
    *,
    persons: tuple[int, int] = (2, 5),
    amodal_prob: float = 0.3,
    empty_prob: float = 0.1,
    jpeg_quality: int = 95,
) -> dict:
    """Write a synthetic MHP v2.0 dataset (official layout) under ``root``; atomic, deterministic by ``seed``.

    ``test_inter_top20`` / ``test_inter_top10`` are the first 20 % / 10 % (at least one id) of a seeded
    permutation of the test ids. At least one image with an empty person file is written when
    ``num_train >= 2``. Returns ``root``, ``counts``, ``ids``, ``num_persons`` (id -> number of person
    files), ``empty_persons`` (file names with an empty map), ``manifest`` and ``seconds``.
    """
    t0 = time.perf_counter()
    lo, hi = check_image_size(image_size)
    pmin, pmax = int(persons[0]), int(persons[1])
    if not 1 <= pmin <= pmax <= 98:
        raise ValueError(f"persons must be (min, max) with 1 <= min <= max <= 98, got {persons}")
    counts = {"train": int(num_train), "val": int(num_val), "test": int(num_test)}
    ids = mhp_ids(seed, counts)
    perm = np.random.default_rng([seed, 405]).permutation(len(ids["test"]))
    test_ids = [ids["test"][i] for i in perm]
    top20 = sorted(test_ids[: max(1, len(test_ids) // 5)], key=int) if test_ids else []
    top10 = sorted(test_ids[: max(1, len(test_ids) // 10)], key=int) if test_ids else []
    num_persons: dict[str, int] = {}
    empty: list[str] = []
    manifest = {
        "generator": "humanparse.synthetic.mhp",
        "version": GENERATOR_VERSION,
        "dataset": "mhp_v2",
        "layout": "official",
        "seed": seed,
        "counts": counts,
        "image_size": [lo, hi],
        "persons": [pmin, pmax],
        "amodal_prob": amodal_prob,
        "empty_prob": empty_prob,
    }
    with atomic_dataset_dir(root) as tmp:
        for sub in ("train/images", "train/parsing_annos", "val/images", "val/parsing_annos", "test/images"):
            (tmp / sub).mkdir(parents=True)
        for split in ("train", "val", "test"):
            for i, image_id in enumerate(ids[split]):
                rng = image_rng(seed, split, i)
                h, w = draw_size(rng, (lo, hi))
                scene = render_scene(rng, h, w, int(rng.integers(pmin, pmax + 1)))
                write_jpeg(tmp / split / "images" / f"{image_id}.jpg", scene.image, jpeg_quality)
                if split == "test":
                    continue
                force_empty = split == "train" and i == 0
                maps = person_maps(rng, scene, amodal_prob, 1.0 if force_empty else empty_prob)
                nn = len(maps)
                num_persons[image_id] = nn
                for mm, m in enumerate(maps, start=1):
                    name = f"{image_id}_{nn:02d}_{mm:02d}.png"
                    if not m.any():
                        empty.append(name)
                    write_three_channel_png(tmp / split / "parsing_annos" / name, m)
        write_ids(tmp / "list" / "train.txt", ids["train"])
        write_ids(tmp / "list" / "val.txt", ids["val"])
        write_ids(tmp / "list" / "test_all.txt", ids["test"])
        write_ids(tmp / "list" / "test_inter_top20.txt", top20)
        write_ids(tmp / "list" / "test_inter_top10.txt", top10)
        write_manifest(tmp, manifest)
    return {
        "root": str(Path(root)),
        "counts": counts,
        "ids": {**ids, "test_inter_top20": top20, "test_inter_top10": top10},
        "num_persons": num_persons,
        "empty_persons": sorted(empty),
        "manifest": manifest,
        "seconds": time.perf_counter() - t0,
    }
