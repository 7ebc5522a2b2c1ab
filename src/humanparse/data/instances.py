"""Persons and part instances derived from the official files (project conventions, below).

Shared by the multi-person readers, the instance metrics and the standalone evaluator, so the three
agree on what a GT person and a GT part instance are.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from humanparse.data.meta import IGNORE_INDEX


def tight_box(mask: np.ndarray) -> np.ndarray:
    """[x1, y1, x2, y2] (inclusive pixel extent) of a boolean mask, float32; zeros for an empty mask."""
    rows = np.flatnonzero(mask.any(1))  # row/column projections: cheaper than np.nonzero on every pixel
    if rows.size == 0:
        return np.zeros(4, np.float32)
    cols = np.flatnonzero(mask.any(0))
    return np.array([cols[0], rows[0], cols[-1], rows[-1]], dtype=np.float32)


def persons_from_ids(semantic: np.ndarray, person_ids: np.ndarray) -> list[dict]:
    """CIHP / converted PASCAL persons: person k's part map = semantic·[person_ids = k] for every id k > 0
    present, ordered by k. Each dict: ``id``, ``parts`` (full-image map, 0 outside the person,
    255 kept where the GT ignores), ``mask`` (bool), ``box`` [x1, y1, x2, y2] inclusive."""
    persons = []
    for k in np.unique(person_ids):
        if k == 0:
            continue
        m = person_ids == k
        parts = np.where(m, semantic, 0).astype(semantic.dtype)
        persons.append({"id": int(k), "parts": parts, "mask": m, "box": tight_box(m)})
    return persons


def persons_from_maps(maps: Sequence[np.ndarray], drop_empty: bool = False) -> list[dict]:
    """MHP v2.0 persons from the per-person part maps in sorted file order; with ``drop_empty``
    persons without foreground are skipped (the ``mhp_official`` convention)."""
    persons = []
    for i, parts in enumerate(maps):
        fg = (parts > 0) & (parts != IGNORE_INDEX)
        if drop_empty and not fg.any():
            continue
        persons.append({"id": i + 1, "parts": parts, "mask": fg, "box": tight_box(fg)})
    return persons


def paint_persons(maps: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(semantic map, person-id map) by painting person maps in order, later non-zero pixels overwriting
    (project convention for MHP, which ships no semantic map)."""
    if not maps:
        raise ValueError("no person maps to paint")
    h, w = maps[0].shape
    semantic = np.zeros((h, w), dtype=np.uint8)
    pid = np.zeros((h, w), dtype=np.uint16 if len(maps) > 255 else np.uint8)
    for i, parts in enumerate(maps):
        if parts.shape != (h, w):
            raise ValueError(f"person map {i} is {parts.shape}, expected {(h, w)}")
        on = parts > 0
        semantic[on] = parts[on]
        pid[on & (parts != IGNORE_INDEX)] = i + 1
    return semantic, pid


def part_instances(
    semantic: np.ndarray, person_ids: np.ndarray, num_classes: int
) -> tuple[np.ndarray, np.ndarray]:
    """GT part instances (project rule): one instance per present (class c ≥ 1, person h ≥ 1) pair.

    Returns (instance-id map (uint16, 0 = none, ids 1..K in (person, class) order) and a (K, 3) int64
    table of ``[instance_id, class_id, person_id]``. On CIHP the official ids satisfy
    inst_id = class + 20·(person − 1); this function numbers compactly instead — use the table.
    """
    sem = semantic.astype(np.int64)
    pid = person_ids.astype(np.int64)
    valid = (sem > 0) & (sem < num_classes) & (pid > 0)
    key = np.where(valid, pid * num_classes + sem, 0)
    # compact numbering by a presence table over the keys (linear time; np.unique would sort every pixel)
    present = np.bincount(key.ravel(), minlength=1) > 0
    present[0] = False
    keys = np.flatnonzero(present)
    lut = np.zeros(len(present), dtype=np.int64)
    lut[keys] = np.arange(1, len(keys) + 1)
    inst = lut[key].astype(np.uint16)
    table = np.stack([np.arange(1, len(keys) + 1), keys % num_classes, keys // num_classes], 1).astype(
        np.int64
    )
    return inst, table.reshape(-1, 3)


def instance_partition_mismatch(
    instance_ids: np.ndarray, semantic: np.ndarray, person_ids: np.ndarray, num_classes: int
) -> int:
    """Number of pixels where the shipped ``Instance_ids`` map does not induce the same partition as the
    (class, person) rule; 0 means they agree (a mismatch is logged and the Category/Human pair wins)."""
    derived, _ = part_instances(semantic, person_ids, num_classes)
    a = instance_ids.astype(np.int64).ravel()
    b = derived.astype(np.int64).ravel()
    if _one_to_one(a, b):  # linear-time test first; the counting below sorts every pixel
        return 0
    # same partition iff the pairing a <-> b is one-to-one
    pairs = np.unique(np.stack([a, b], 1), axis=0)
    bad_a = np.unique(pairs[:, 0], return_counts=True)[1] > 1
    bad_b = np.unique(pairs[:, 1], return_counts=True)[1] > 1
    if not bad_a.any() and not bad_b.any():
        return 0
    amb_a = np.unique(pairs[:, 0])[bad_a]
    amb_b = np.unique(pairs[:, 1])[bad_b]
    return int(np.isin(a, amb_a).sum() + np.isin(b, amb_b).sum())


def _one_to_one(a: np.ndarray, b: np.ndarray) -> bool:
    """True iff equal values of ``a`` always meet equal values of ``b`` and vice versa (same partition)."""
    a_to_b = np.zeros(int(a.max(initial=0)) + 1, dtype=np.int64)
    a_to_b[a] = b
    if not np.array_equal(a_to_b[a], b):
        return False
    b_to_a = np.zeros(int(b.max(initial=0)) + 1, dtype=np.int64)
    b_to_a[b] = a
    return bool(np.array_equal(b_to_a[b], a))
