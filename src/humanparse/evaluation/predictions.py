"""Prediction files in the formats the official evaluators read.

Instance parsing (AP^p / PCP, :mod:`humanparse.metrics.instance`):

* ``persons`` (project format; predictions may overlap, as real detectors' outputs do):
  ``<pred_dir>/<id>_<k>.png`` holds the part map of predicted person k of image ``<id>`` at the
  image's size (0 outside that person), and ``<pred_dir>/scores.txt`` has one line ``<id> <k> <score>``
  per predicted person. The lines define the predictions; their order is the tie order.
* ``mhp`` (MHP v2 submission, non-overlapping persons; read as
  ``ZhaoJ9014/Multi-Human-Parsing Evaluation/Multi-Human-Parsing/v2/eval_submission.py`` reads it):
  ``<pred_dir>/results.txt`` with one line per image ``<id> <tag_1> <score_1> <tag_2> <score_2> …``,
  ``<pred_dir>/global_seg/<id>.png`` (part labels) and ``<pred_dir>/global_tag/<id>.png`` (person tags).
  Person ``tag_i`` is ``global_seg · [global_tag = tag_i]``; a tag absent from ``global_tag`` is no
  prediction (the reference skips it). Both PNGs must be single-channel index images (the reference's
  ``cv2.imread(…, IMREAD_UNCHANGED)`` would turn palette PNGs into colours).

* ``predict``: what ``python -m humanparse.predict`` writes for instance models
  (``instances/<id>.json`` with a score and a part-map file per person).

Part instances (AP^r, :mod:`humanparse.metrics.apr`): the CIHP_PGN / LIP challenge format
``<pred_dir>/<id>.png`` (8- or 16-bit instance ids, 0 = none) and ``<pred_dir>/<id>.txt`` whose line k
(1-based) is ``<class_id> <score>`` of pixel value k. Ids listed in the txt but absent from the PNG are
dropped with a warning (PGN keeps their scores and misaligns them); PNG ids without a line are not
predictions.

Edges (:mod:`humanparse.metrics.edge`): ``<pred_dir>/<id>.png`` holding 255·p (what PGN's ``test_pgn.py``
writes to ``cihp_edge_maps``; edge iff value / 255 > threshold) or binary maps (non-zero = edge).
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np

from humanparse.data.io import DataError
from humanparse.evaluation.fastio import read_index_png
from humanparse.metrics.apr import PartInstances
from humanparse.metrics.instance import PartMap

APP_FORMATS = ("persons", "mhp", "predict")
EDGE_PRED = ("prob", "binary")


def _float(text: str, path: Path, lineno: int, nan_score: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise DataError(path, f"line {lineno}: score {text!r} is not a number") from None
    if math.isnan(v) and nan_score == "raise":
        raise DataError(
            path,
            f"line {lineno}: NaN score (pass nan_score=first to rank NaN first as the "
            "reference evaluators do)",
        )
    return v


class PersonPredictions:
    """``<id>_<k>.png`` + ``scores.txt``."""

    def __init__(
        self,
        pred_dir: str | os.PathLike,
        scores_file: str | os.PathLike | None = None,
        nan_score: str = "raise",
    ):
        self.root = Path(pred_dir)
        path = Path(scores_file) if scores_file else self.root / "scores.txt"
        if not path.is_file():
            raise DataError(path, "scores file (lines '<id> <k> <score>') is missing")
        self.entries: dict[str, list[tuple[str, float]]] = {}
        seen: dict[tuple[str, str], int] = {}
        for lineno, line in enumerate(path.read_text().splitlines(), 1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) != 3:
                raise DataError(path, f"line {lineno}: expected '<id> <k> <score>', got {line!r}")
            sid, k, s = parts
            if (sid, k) in seen:
                raise DataError(
                    path, f"line {lineno}: person {k} of image {sid} already listed on line {seen[sid, k]}"
                )
            seen[sid, k] = lineno
            self.entries.setdefault(sid, []).append((k, _float(s, path, lineno, nan_score)))
        self.scores_path = path

    def ids(self) -> set[str]:
        return set(self.entries)

    def read(self, sid: str, shape: tuple[int, int]) -> tuple[list[PartMap], np.ndarray]:
        maps, scores = [], []
        for k, s in self.entries.get(sid, []):
            path = self.root / f"{sid}_{k}.png"
            m = read_index_png(path)
            if m.shape != shape:
                raise DataError(
                    path,
                    f"prediction is {m.shape[1]}x{m.shape[0]} but the ground truth is "
                    f"{shape[1]}x{shape[0]}; person maps must be full-image at the original size",
                )
            maps.append(PartMap.from_array(m))
            scores.append(s)
        return maps, np.asarray(scores, dtype=np.float64)


class PredictOutputs:
    """The instance outputs of ``python -m humanparse.predict``: ``<pred_dir>/instances/<id>.json``
    (``instances``: ``id``, ``score``, ``file``) and the part maps it names
    (``instances/<id>/person_<k>.png``). An image without a json has no prediction; an instance without
    a part map (a mask-only model) is an error for AP^p."""

    def __init__(self, pred_dir: str | os.PathLike, nan_score: str = "raise"):
        self.root = Path(pred_dir)
        self.folder = self.root / "instances"
        if not self.folder.is_dir():
            raise DataError(self.folder, "no 'instances' folder of humanparse.predict outputs")
        self.nan_score = nan_score

    def ids(self) -> set[str]:
        return {p.stem for p in self.folder.glob("*.json")}

    def read(self, sid: str, shape: tuple[int, int]) -> tuple[list[PartMap], np.ndarray]:
        path = self.folder / f"{sid}.json"
        if not path.is_file():
            return [], np.zeros(0)
        try:
            records = json.loads(path.read_text())["instances"]
        except (ValueError, KeyError, TypeError) as e:
            raise DataError(path, f"not a humanparse.predict instance file ({e})") from None
        maps, scores = [], []
        for rec in records:
            if "file" not in rec or "score" not in rec:
                raise DataError(path, f"instance {rec.get('id')} has no part map file or no score")
            m = read_index_png(self.root / rec["file"])
            if m.shape != shape:
                raise DataError(
                    self.root / rec["file"],
                    f"part map is {m.shape[1]}x{m.shape[0]} but the ground truth is {shape[1]}x{shape[0]}",
                )
            s = float(rec["score"])
            if math.isnan(s) and self.nan_score == "raise":
                raise DataError(path, f"instance {rec.get('id')}: NaN score (pass nan_score=first)")
            maps.append(PartMap.from_array(m))
            scores.append(s)
        return maps, np.asarray(scores, dtype=np.float64)


class MHPSubmission:
    """``results.txt`` + ``global_seg/`` + ``global_tag/`` (MHP v2 submission format)."""

    def __init__(self, pred_dir: str | os.PathLike, nan_score: str = "raise"):
        self.root = Path(pred_dir)
        path = self.root / "results.txt"
        if not path.is_file():
            raise DataError(
                path, "MHP results file (lines '<id> <tag> <score> <tag> <score> ...') is missing"
            )
        self.entries: dict[str, list[tuple[int, float]]] = {}
        for lineno, line in enumerate(path.read_text().splitlines(), 1):
            parts = line.split()
            if not parts:
                continue
            sid, rest = parts[0], parts[1:]
            if len(rest) % 2:
                raise DataError(
                    path, f"line {lineno}: expected '<id>' then '<tag> <score>' pairs, got {line!r}"
                )
            if sid in self.entries:
                raise DataError(path, f"line {lineno}: image {sid} listed twice")
            persons = []
            for i in range(0, len(rest), 2):
                try:
                    tag = int(rest[i])
                except ValueError:
                    raise DataError(
                        path, f"line {lineno}: person tag {rest[i]!r} is not an integer"
                    ) from None
                persons.append((tag, _float(rest[i + 1], path, lineno, nan_score)))
            self.entries[sid] = persons
        self.results_path = path

    def ids(self) -> set[str]:
        return set(self.entries)

    def read(self, sid: str, shape: tuple[int, int]) -> tuple[list[PartMap], np.ndarray]:
        persons = self.entries.get(sid, [])
        if not persons:
            return [], np.zeros(0)
        seg_path, tag_path = self.root / "global_seg" / f"{sid}.png", self.root / "global_tag" / f"{sid}.png"
        seg = read_index_png(seg_path)
        tag = read_index_png(tag_path)
        for p, m in ((seg_path, seg), (tag_path, tag)):
            if m.shape != shape:
                raise DataError(
                    p, f"map is {m.shape[1]}x{m.shape[0]} but the ground truth is {shape[1]}x{shape[0]}"
                )
        maps, scores = [], []
        top = np.iinfo(tag.dtype).max
        for t, s in persons:
            on = tag == t if 0 <= t <= top else np.zeros(tag.shape, dtype=bool)
            if not on.any():  # tag absent from global_tag: skipped, as the reference does
                continue
            maps.append(PartMap.from_array(np.where(on, seg, 0).astype(seg.dtype)))
            scores.append(s)
        return maps, np.asarray(scores, dtype=np.float64)


def read_part_instances(
    pred_dir: str | os.PathLike, sid: str, shape: tuple[int, int], nan_score: str = "raise"
) -> tuple[PartInstances, list[str]]:
    """CIHP_PGN part-instance prediction of one image and the warnings it raised.

    A missing PNG *and* txt is an empty prediction (the image's GT still counts); one without
    the other is an error.
    """
    root = Path(pred_dir)
    png, txt = root / f"{sid}.png", root / f"{sid}.txt"
    if not png.is_file() and not txt.is_file():
        return PartInstances(np.zeros(shape, np.int64), np.zeros(1, np.int64), np.full(1, np.nan)), [
            f"{png}: no prediction for image {sid} (counted as empty)"
        ]
    if not txt.is_file():
        raise DataError(txt, "part-instance table (lines '<class_id> <score>') is missing")
    inst = read_index_png(png)
    if inst.shape != shape:
        raise DataError(
            png,
            f"prediction is {inst.shape[1]}x{inst.shape[0]} but the ground truth is "
            f"{shape[1]}x{shape[0]}; maps must be at the original size",
        )
    classes, scores = [], []
    for lineno, line in enumerate(txt.read_text().splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) < 2:
            raise DataError(txt, f"line {lineno}: expected '<class_id> <score>', got {line!r}")
        try:
            classes.append(int(parts[0]))
        except ValueError:
            raise DataError(txt, f"line {lineno}: class {parts[0]!r} is not an integer") from None
        scores.append(_float(parts[1], txt, lineno, nan_score))
    k = len(classes)
    warnings: list[str] = []
    present = np.bincount(inst.reshape(-1).astype(np.int64), minlength=k + 1)
    absent = [i for i in range(1, k + 1) if present[i] == 0]
    if absent:
        warnings.append(
            f"{txt}: {len(absent)} listed instance id(s) absent from {png.name} (e.g. {absent[:5]}); dropped"
        )
    extra = np.flatnonzero(present[k + 1 :]) + k + 1
    if len(extra):
        warnings.append(f"{png}: instance id(s) {extra[:5].tolist()} have no line in {txt.name}; ignored")
    pi = PartInstances.from_table(inst, np.arange(1, k + 1), classes, scores)
    return pi, warnings


def read_edge_prediction(
    pred_dir: str | os.PathLike,
    sid: str,
    shape: tuple[int, int],
    edge_pred: str = "prob",
    edge_threshold: float = 0.5,
) -> np.ndarray:
    """Boolean edge map from ``<id>.png`` (``prob``: value / 255 > threshold; ``binary``: non-zero)."""
    path = Path(pred_dir) / f"{sid}.png"
    if not path.is_file():
        raise DataError(path, f"edge prediction is missing (id {sid} is in the list)")
    m = read_index_png(path)
    if m.shape != shape:
        raise DataError(
            path, f"edge map is {m.shape[1]}x{m.shape[0]} but the ground truth is {shape[1]}x{shape[0]}"
        )
    if edge_pred == "prob":
        if m.dtype != np.uint8:
            raise DataError(path, "probability edge maps are 8-bit (255·p)")
        return m.astype(np.float64) / 255.0 > edge_threshold
    if edge_pred == "binary":
        return m != 0
    raise ValueError(f"edge_pred must be one of {EDGE_PRED}, got {edge_pred!r}")
