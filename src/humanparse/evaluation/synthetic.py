"""Synthetic multi-person GT and noisy predictions in the official file formats.

For the evaluator's tests and ``scripts/benchmark_evaluators.py``: CIHP-like images (a semantic
part map and a person-id map), noisy per-person predictions with misses, duplicates, false
positives and sub-threshold scores, and writers for every format :mod:`humanparse.evaluation`
reads (CIHP ``Category_ids`` / ``Human_ids`` / ``Instance_ids`` + txt, MHP v2 ``parsing_annos``,
per-person PNGs + ``scores.txt``, the MHP v2 submission, CIHP_PGN part instances, PGN edge maps).
The dataset readers' own synthetic generators live in :mod:`humanparse.synthetic`; this module
only needs label maps, so its default person model is a fast set of numpy shapes
(``render_scene`` from :mod:`humanparse.synthetic` can be plugged in through ``scene_fn``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from humanparse.data.io import write_label_png
from humanparse.metrics.apr import part_instances_from_predictions

CIHP_SWAP = {14: 15, 15: 14, 16: 17, 17: 16, 18: 19, 19: 18}


@dataclass
class InstanceSample:
    """One image: GT (``semantic``, ``person_ids``) and predicted persons (full-image part maps + scores)."""

    image_id: str
    semantic: np.ndarray
    person_ids: np.ndarray
    pred_parts: list[np.ndarray]
    pred_scores: list[float]

    @property
    def shape(self) -> tuple[int, int]:
        return self.semantic.shape


def _ellipse(h: int, w: int, cy: float, cx: float, ry: float, rx: float) -> np.ndarray:
    ys, xs = np.ogrid[:h, :w]
    return ((ys - cy) / max(ry, 0.5)) ** 2 + ((xs - cx) / max(rx, 0.5)) ** 2 <= 1.0


def _rect(h: int, w: int, y0: float, y1: float, x0: float, x1: float) -> np.ndarray:
    m = np.zeros((h, w), dtype=bool)
    m[max(0, int(y0)) : max(0, int(y1)), max(0, int(x0)) : max(0, int(x1))] = True
    return m


def shape_person(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """One person's CIHP part map (0 elsewhere) drawn from ellipses and boxes."""
    ph = rng.uniform(0.35, 0.9) * h
    pw = ph * rng.uniform(0.3, 0.45)
    cx = rng.uniform(0.1, 0.9) * w
    top = rng.uniform(0, max(1.0, h - ph))
    out = np.zeros((h, w), dtype=np.uint8)

    def put(mask, label):
        out[mask] = label

    legs_top, legs_bot = top + 0.55 * ph, top + 0.95 * ph
    put(_rect(h, w, legs_top, legs_bot, cx - 0.3 * pw, cx), 16)
    put(_rect(h, w, legs_top, legs_bot, cx, cx + 0.3 * pw), 17)
    if rng.random() < 0.7:
        put(
            _rect(h, w, legs_top, top + rng.uniform(0.7, 0.92) * ph, cx - 0.32 * pw, cx + 0.32 * pw),
            int(rng.choice([9, 12, 6])),
        )
    put(_rect(h, w, legs_bot, top + ph, cx - 0.3 * pw, cx - 0.02 * pw), 18)
    put(_rect(h, w, legs_bot, top + ph, cx + 0.02 * pw, cx + 0.3 * pw), 19)
    put(_rect(h, w, top + 0.2 * ph, top + 0.5 * ph, cx - 0.5 * pw, cx - 0.32 * pw), 14)
    put(_rect(h, w, top + 0.2 * ph, top + 0.5 * ph, cx + 0.32 * pw, cx + 0.5 * pw), 15)
    put(
        _rect(h, w, top + 0.18 * ph, top + 0.58 * ph, cx - 0.33 * pw, cx + 0.33 * pw),
        int(rng.choice([5, 7, 5, 10])),
    )
    if rng.random() < 0.2:
        put(_rect(h, w, top + 0.17 * ph, top + 0.22 * ph, cx - 0.2 * pw, cx + 0.2 * pw), 11)
    head = _ellipse(h, w, top + 0.09 * ph, cx, 0.09 * ph, 0.2 * pw)
    put(head, 13)
    put(head & _rect(h, w, 0, top + 0.07 * ph, 0, w), 2)
    if rng.random() < 0.25:
        put(_ellipse(h, w, top + 0.02 * ph, cx, 0.03 * ph, 0.22 * pw), 1)
    if rng.random() < 0.1:
        put(_rect(h, w, top + 0.07 * ph, top + 0.1 * ph, cx - 0.15 * pw, cx + 0.15 * pw), 4)
    if rng.random() < 0.1:
        put(_rect(h, w, top + 0.47 * ph, top + 0.52 * ph, cx - 0.52 * pw, cx - 0.3 * pw), 3)
    if rng.random() < 0.15:
        put(_rect(h, w, top + 0.9 * ph, top + 0.95 * ph, cx - 0.3 * pw, cx + 0.3 * pw), 8)
    return out


def shapes_scene(rng: np.random.Generator, h: int, w: int, num_persons: int) -> tuple[np.ndarray, np.ndarray]:
    """(semantic, person ids): persons painted in order, later ones in front; a few 255 patches."""
    sem = np.zeros((h, w), dtype=np.uint8)
    pid = np.zeros((h, w), dtype=np.uint8)
    for k in range(1, num_persons + 1):
        p = shape_person(rng, h, w)
        on = p > 0
        sem[on], pid[on] = p[on], k
    if rng.random() < 0.3:  # an ignore patch on a person boundary
        ys, xs = np.nonzero(pid)
        if len(ys):
            i = rng.integers(len(ys))
            sem[max(0, ys[i] - 2) : ys[i] + 2, max(0, xs[i] - 2) : xs[i] + 2] = 255
    return sem, pid


def noisy_predictions(
    rng: np.random.Generator,
    semantic: np.ndarray,
    person_ids: np.ndarray,
    *,
    miss: float = 0.1,
    duplicate: float = 0.3,
    false_positives: float = 1.0,
    low_score: float = 0.05,
) -> tuple[list[np.ndarray], list[float]]:
    """Per-person part maps (full image, overlapping) and scores derived from the GT with noise:
    shifted, patch-relabelled, left/right-swapped; some persons missed, some duplicated with a lower
    score, Poisson(``false_positives``) random blobs, and a fraction of scores below 0.002."""
    h, w = semantic.shape
    parts, scores = [], []
    clean = np.where(semantic == 255, 0, semantic).astype(np.uint8)

    def perturb(m: np.ndarray, strength: float) -> np.ndarray:
        dy, dx = (rng.integers(-3, 4, 2) * strength).astype(int)
        m = np.roll(np.roll(m, dy, 0), dx, 1)
        for _ in range(int(rng.integers(0, 4 * strength + 1))):
            ys, xs = np.nonzero(m)
            if not len(ys):
                break
            i = rng.integers(len(ys))
            r = int(rng.integers(2, 8))
            patch = (slice(max(0, ys[i] - r), ys[i] + r), slice(max(0, xs[i] - r), xs[i] + r))
            sub = m[patch]
            sub[sub > 0] = rng.integers(1, 20)
        if rng.random() < 0.2:
            lut = np.arange(256, dtype=np.uint8)
            for a, b in CIHP_SWAP.items():
                lut[a] = b
            m = lut[m]
        return m

    for k in np.unique(person_ids):
        if k == 0 or rng.random() < miss:
            continue
        base = np.where(person_ids == k, clean, 0).astype(np.uint8)
        q = rng.uniform(0.3, 1.5)
        parts.append(perturb(base, q))
        # a smooth squashing (no clipping): tied scores would make the order, hence AP, sort-dependent
        scores.append(float(0.06 + 0.93 / (1.0 + np.exp(-(3.0 - 2.0 * q + rng.normal(0, 0.4))))))
        if rng.random() < duplicate:
            parts.append(perturb(base, q + 1.0))
            scores.append(float(scores[-1] * rng.uniform(0.3, 0.9)))
    for _ in range(int(rng.poisson(false_positives))):
        m = np.zeros((h, w), dtype=np.uint8)
        m[
            _ellipse(h, w, rng.uniform(0, h), rng.uniform(0, w), rng.uniform(5, h / 4), rng.uniform(4, w / 5))
        ] = rng.integers(1, 20)
        parts.append(m)
        scores.append(float(rng.uniform(0.0, 0.6)))
    for i in range(len(scores)):
        if rng.random() < low_score:
            scores[i] = float(rng.uniform(0.0, 0.002))
    return parts, scores


def make_instance_samples(
    n: int,
    seed: int = 0,
    size: tuple[int, int] = (256, 192),
    persons: tuple[int, int] = (1, 5),
    scene_fn: Callable | None = None,
    **noise,
) -> list[InstanceSample]:
    """``n`` CIHP-like images with noisy predictions. ``scene_fn(rng, h, w, num_persons)`` returns
    (semantic, person_ids); default :func:`shapes_scene`."""
    rng = np.random.default_rng(seed)
    h, w = size
    scene_fn = scene_fn or shapes_scene
    out = []
    for i in range(n):
        sem, pid = scene_fn(rng, h, w, int(rng.integers(persons[0], persons[1] + 1)))
        parts, scores = noisy_predictions(rng, sem, pid, **noise)
        out.append(InstanceSample(f"{i + 1:07d}", sem, pid, parts, scores))
    return out


# ------------------------------------------------------------------------------------------------
# writers


def write_cihp_gt(
    root: Path, samples: list[InstanceSample], split: str = "val", num_classes: int = 20
) -> Path:
    """CIHP layout: ``Category_ids``, ``Human_ids``, ``Instance_ids`` (+ ``<id>.txt`` lines
    ``inst_id class_id human_id`` with PGN's inst_id = class + C·(human − 1)), ``<split>_id.txt``."""
    root = Path(root)
    for d in ("Category_ids", "Human_ids", "Instance_ids"):
        (root / d).mkdir(parents=True, exist_ok=True)
    for s in samples:
        write_label_png(root / "Category_ids" / f"{s.image_id}.png", s.semantic)
        write_label_png(root / "Human_ids" / f"{s.image_id}.png", s.person_ids)
        sem = s.semantic.astype(np.int64)
        pid = s.person_ids.astype(np.int64)
        valid = (sem > 0) & (sem < num_classes) & (pid > 0)
        inst = np.where(valid, sem + num_classes * (pid - 1), 0)
        write_label_png(root / "Instance_ids" / f"{s.image_id}.png", inst)
        rows = sorted({(int(i), int(c), int(h)) for i, c, h in zip(inst[valid], sem[valid], pid[valid])})
        (root / "Instance_ids" / f"{s.image_id}.txt").write_text(
            "".join(f"{i} {c} {h}\n" for i, c, h in rows)
        )
    (root / f"{split}_id.txt").write_text("".join(f"{s.image_id}\n" for s in samples))
    return root


def write_mhp_gt(root: Path, samples: list[InstanceSample], split: str = "val", images: bool = False) -> Path:
    """MHP v2 layout: ``<root>/<split>/parsing_annos/<id>_<NN>_<MM>.png`` (3 channels, label in
    channel 0), ``<root>/list/<split>.txt``; with ``images`` also black ``<split>/images/<id>.jpg``
    (the official ``mhp_data.get_data`` reads them for the size)."""
    root = Path(root)
    ann = root / split / "parsing_annos"
    ann.mkdir(parents=True, exist_ok=True)
    (root / "list").mkdir(exist_ok=True)
    if images:
        (root / split / "images").mkdir(exist_ok=True)
    for s in samples:
        ids = [int(k) for k in np.unique(s.person_ids) if k > 0]
        for m, k in enumerate(ids, 1):
            lab = np.where(s.person_ids == k, s.semantic, 0).astype(np.uint8)
            rgb = np.zeros(lab.shape + (3,), dtype=np.uint8)
            rgb[..., 0] = lab
            Image.fromarray(rgb).save(ann / f"{s.image_id}_{len(ids):02d}_{m:02d}.png")
        if images:
            Image.fromarray(np.zeros(s.shape + (3,), np.uint8)).save(
                root / split / "images" / f"{s.image_id}.jpg"
            )
    (root / "list" / f"{split}.txt").write_text("".join(f"{s.image_id}\n" for s in samples))
    return root / split


def write_person_predictions(pred_dir: Path, samples: list[InstanceSample]) -> Path:
    """``<id>_<k>.png`` + ``scores.txt`` (``<id> <k> <score>``)."""
    pred_dir = Path(pred_dir)
    pred_dir.mkdir(parents=True, exist_ok=True)
    lines = []
    for s in samples:
        for k, (p, sc) in enumerate(zip(s.pred_parts, s.pred_scores), 1):
            write_label_png(pred_dir / f"{s.image_id}_{k}.png", p)
            lines.append(f"{s.image_id} {k} {sc!r}\n")
    (pred_dir / "scores.txt").write_text("".join(lines))
    return pred_dir


def mhp_submission_maps(sample: InstanceSample) -> tuple[np.ndarray, np.ndarray, list[tuple[int, float]]]:
    """(global_seg, global_tag, [(tag, score)]): persons painted in ascending score order, tag = k."""
    seg = np.zeros(sample.shape, dtype=np.uint8)
    tag = np.zeros(sample.shape, dtype=np.uint8)
    for k in np.argsort(sample.pred_scores, kind="stable"):
        on = sample.pred_parts[k] > 0
        seg[on] = sample.pred_parts[k][on]
        tag[on] = k + 1
    persons = [(k + 1, sc) for k, sc in enumerate(sample.pred_scores)]
    return seg, tag, persons


def write_mhp_submission(pred_dir: Path, samples: list[InstanceSample]) -> Path:
    """``results.txt`` + ``global_seg/<id>.png`` + ``global_tag/<id>.png`` (MHP v2 submission)."""
    pred_dir = Path(pred_dir)
    (pred_dir / "global_seg").mkdir(parents=True, exist_ok=True)
    (pred_dir / "global_tag").mkdir(parents=True, exist_ok=True)
    lines = []
    for s in samples:
        seg, tag, persons = mhp_submission_maps(s)
        write_label_png(pred_dir / "global_seg" / f"{s.image_id}.png", seg)
        write_label_png(pred_dir / "global_tag" / f"{s.image_id}.png", tag)
        lines.append(s.image_id + "".join(f" {t} {sc!r}" for t, sc in persons) + "\n")
    (pred_dir / "results.txt").write_text("".join(lines))
    return pred_dir


def write_part_instance_predictions(
    pred_dir: Path, samples: list[InstanceSample], score_thresh: float = 0.01
) -> Path:
    """CIHP_PGN format (``<id>.png`` ids + ``<id>.txt`` ``class score``) via
    :func:`part_instances_from_predictions`."""
    pred_dir = Path(pred_dir)
    pred_dir.mkdir(parents=True, exist_ok=True)
    for s in samples:
        pi = part_instances_from_predictions(s.pred_parts, s.pred_scores, s.shape, score_thresh)
        write_label_png(pred_dir / f"{s.image_id}.png", pi.id_map)
        (pred_dir / f"{s.image_id}.txt").write_text(
            "".join(f"{int(c)} {float(sc)!r}\n" for c, sc in zip(pi.classes[1:], pi.scores[1:]))
        )
    return pred_dir


def write_edge_predictions(pred_dir: Path, samples: list[InstanceSample], seed: int = 0) -> Path:
    """Noisy edge probability maps written as 255·p (PGN's ``cihp_edge_maps``)."""
    from humanparse.data.targets import instance_edges

    rng = np.random.default_rng(seed)
    pred_dir = Path(pred_dir)
    pred_dir.mkdir(parents=True, exist_ok=True)
    for s in samples:
        e = instance_edges(s.person_ids).astype(np.float64)
        e = np.roll(e, int(rng.integers(-1, 2)), axis=1)
        p = np.clip(0.75 * e + rng.normal(0.15, 0.2, e.shape), 0, 1)
        write_label_png(pred_dir / f"{s.image_id}.png", np.rint(255 * p).astype(np.uint8))
    return pred_dir
