"""Pseudo-pose keypoint files for datasets without pose annotations (format: README "Datasets").

CorrPM trains ATR and CIHP with keypoints predicted by a COCO-trained pose estimator and treated as
ground truth; neither the keypoints nor the estimator outputs are public. The project therefore
defines one file per split, ``<root>/pseudo_pose/<split>.json``::

    [
      {"image_id": "0000001", "person_id": 1,
       "keypoints": [x1, y1, s1, ..., x17, y17, s17],
       "source": "simplebaseline_res152_384x288 (coco) via humanparse"},
      ...
    ]

* ``keypoints``: 17 COCO keypoints in :data:`humanparse.data.meta.COCO_JOINTS` order, x = column and
  y = row in **original image pixels**; ``s`` is the estimator's confidence, ``s = 0`` means absent
  (then x, y are ignored). A reader may drop low-confidence joints with ``min_score``.
* ``person_id``: the ``Human_ids`` value of the person for CIHP, ``1`` for single-person ATR.
* ``source``: free text naming the estimator and checkpoint that produced the file (reports quote it).
* Entries may come in any order; an (image_id, person_id) pair may appear once. Images or persons
  without an entry have all 17 joints absent (readers count them in a warning).

The synthetic generators write this file from their person skeletons (``source: "synthetic"``).
Keypoint flips use the COCO pairs (1,2), (3,4), ..., (15,16) and heatmaps CorrPM's Gaussian
rule (:func:`humanparse.data.targets.pose_heatmaps`).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from humanparse.data.io import DataError
from humanparse.data.meta import COCO_JOINTS

NUM_COCO = len(COCO_JOINTS)
PSEUDO_POSE_DIR = "pseudo_pose"

PoseTable = dict[str, dict[int, np.ndarray]]


def pseudo_pose_path(root: str | os.PathLike, split: str) -> Path:
    """``<root>/pseudo_pose/<split>.json``."""
    return Path(root) / PSEUDO_POSE_DIR / f"{split}.json"


def read_pseudo_pose(path: str | os.PathLike, min_score: float = 0.0) -> PoseTable:
    """Parse a pseudo-pose file into ``image_id -> person_id -> (17, 3) float32 (x, y, present)``.

    A joint is present iff its score is > 0 and >= ``min_score``; absent joints are (0, 0, 0) as
    everywhere in the project. Malformed files raise :class:`DataError` naming the file and entry.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "pseudo-pose file is missing")
    try:
        entries = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DataError(path, f"not valid JSON ({e})") from e
    if not isinstance(entries, list):
        raise DataError(
            path,
            "expected a JSON list of {image_id, person_id, keypoints, source} entries "
            "(see README 'Datasets')",
        )
    out: PoseTable = {}
    for i, e in enumerate(entries):
        if not isinstance(e, dict) or not {"image_id", "person_id", "keypoints"} <= set(e):
            raise DataError(path, f"entry {i}: needs the keys image_id, person_id, keypoints (and source)")
        image_id = str(e["image_id"])
        try:
            pid = int(e["person_id"])
            kp = np.asarray(e["keypoints"], dtype=np.float64)
        except (TypeError, ValueError) as err:
            raise DataError(path, f"entry {i} ({image_id}): malformed person_id/keypoints ({err})") from err
        if pid < 1:
            raise DataError(path, f"entry {i} ({image_id}): person_id must be >= 1, got {pid}")
        if kp.shape != (3 * NUM_COCO,):
            raise DataError(
                path,
                f"entry {i} ({image_id}): keypoints must hold {3 * NUM_COCO} numbers "
                f"(17 COCO joints x (x, y, score)), got shape {kp.shape}",
            )
        kp = kp.reshape(NUM_COCO, 3)
        score = kp[:, 2]
        if not np.isfinite(score).all():
            raise DataError(path, f"entry {i} ({image_id}): non-finite keypoint score")
        present = (score > 0) & (score >= min_score) & np.isfinite(kp[:, :2]).all(1)
        arr = np.zeros((NUM_COCO, 3), dtype=np.float32)
        arr[present, :2] = kp[present, :2]
        arr[present, 2] = 1.0
        persons = out.setdefault(image_id, {})
        if pid in persons:
            raise DataError(path, f"entry {i}: duplicate entry for image {image_id!r} person {pid}")
        persons[pid] = arr
    return out


def absent_keypoints() -> np.ndarray:
    return np.zeros((NUM_COCO, 3), dtype=np.float32)


def pose_entry(image_id: str, person_id: int, keypoints: np.ndarray, scores: np.ndarray, source: str) -> dict:
    """One file entry from (17, 2) coordinates and (17,) scores (0 = absent; coordinates then written as 0)."""
    kp = np.asarray(keypoints, dtype=np.float64).reshape(NUM_COCO, 2)
    sc = np.asarray(scores, dtype=np.float64).reshape(NUM_COCO)
    flat: list[float] = []
    for (x, y), s in zip(kp, sc):
        if s <= 0 or not (math.isfinite(x) and math.isfinite(y)):
            flat += [0.0, 0.0, 0.0]
        else:
            flat += [round(float(x), 2), round(float(y), 2), round(float(s), 3)]
    return {"image_id": str(image_id), "person_id": int(person_id), "keypoints": flat, "source": source}


def write_pseudo_pose(path: str | os.PathLike, entries: Iterable[dict]) -> None:
    """Write a pseudo-pose file (atomically: temporary file + ``os.replace``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".tmp-{os.getpid()}")
    tmp.write_text(json.dumps(list(entries), separators=(",", ":")) + "\n", encoding="utf-8")
    os.replace(tmp, path)
