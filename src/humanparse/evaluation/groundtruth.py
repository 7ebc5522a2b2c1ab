"""Ground truth for the standalone evaluator, read from the official files by image id.

Layouts (as released; README "Datasets"):

* CIHP: ``<gt_dir>/Category_ids/<id>.png`` (parts 0..19, 255 ignore),
  ``<gt_dir>/Human_ids/<id>.png`` (person index, 0 = none), ``<gt_dir>/Instance_ids/<id>.png`` (part
  instances; with ``<id>.txt`` lines ``inst_id class_id human_id`` next to them or in the PGN helper folder
  ``Instance_part_val``), ``<gt_dir>/<split>_id.txt``. The converted PASCAL-Person-Part instance layout
  (:mod:`humanparse.data.pascal`) is the same. PGN's training layout keeps instance edges in
  ``edges/<id>.png``.
* MHP v2: ``<gt_dir>/parsing_annos/<id>_<NN>_<MM>.png`` (one 3-channel file per person;
  channel 0 is the label), persons in sorted file order; lists in ``<gt_dir>/../list/<split>.txt``.

Per-person maps follow :mod:`humanparse.data.instances`, part instances the project rule
(one per present Category × Human pair) or, on request, the shipped ``Instance_ids`` + txt table.
"""

from __future__ import annotations

import os
from collections import defaultdict
from pathlib import Path

import numpy as np

from humanparse.data.instances import paint_persons
from humanparse.data.io import DataError, read_id_list
from humanparse.data.targets import instance_edges
from humanparse.evaluation.fastio import read_index_png
from humanparse.metrics.apr import PartInstances, gt_part_instances
from humanparse.metrics.instance import PersonsGT, persons_from_person_maps, persons_from_semantic

GT_FORMATS = ("cihp", "mhp")
APR_GT = ("category_human", "instance_ids")
EDGE_GT = ("human_ids", "edges")


def _dir(root: Path, override, default: str) -> Path:
    return Path(override) if override else root / default


class CIHPGroundTruth:
    """CIHP-style GT (also the converted PASCAL-Person-Part instance layout)."""

    def __init__(
        self,
        gt_dir: str | os.PathLike,
        num_classes: int,
        category_dir=None,
        human_dir=None,
        instance_dir=None,
        instance_txt_dir=None,
        edge_dir=None,
    ):
        self.root = Path(gt_dir)
        if not self.root.is_dir():
            raise DataError(self.root, "ground-truth directory does not exist")
        self.num_classes = num_classes
        self.category_dir = _dir(self.root, category_dir, "Category_ids")
        self.human_dir = _dir(self.root, human_dir, "Human_ids")
        self.instance_dir = _dir(self.root, instance_dir, "Instance_ids")
        self.instance_txt_dir = Path(instance_txt_dir) if instance_txt_dir else self.instance_dir
        self.edge_dir = _dir(self.root, edge_dir, "edges")

    def default_ids(self, folder: Path | None = None) -> list[str]:
        """``<gt_dir>/*_id.txt`` when there is exactly one, else every PNG of ``folder`` (default
        ``Category_ids``), sorted."""
        lists = sorted(self.root.glob("*_id.txt"))
        if len(lists) == 1:
            return read_id_list(lists[0])
        folder = folder or self.category_dir
        ids = sorted(p.stem for p in folder.glob("*.png"))
        if not ids:
            raise DataError(
                folder,
                f"no ground-truth PNG files (and no single *_id.txt list in {self.root}); "
                "pass list=<ids file>",
            )
        return ids

    def semantic(self, sid: str) -> np.ndarray:
        return read_index_png(self.category_dir / f"{sid}.png", num_classes=self.num_classes)

    def person_ids(self, sid: str, shape: tuple[int, int] | None = None) -> np.ndarray:
        path = self.human_dir / f"{sid}.png"
        pid = read_index_png(path)
        if shape is not None and pid.shape != shape:
            raise DataError(
                path,
                f"person-id map is {pid.shape[1]}x{pid.shape[0]} but Category_ids is {shape[1]}x{shape[0]}",
            )
        return pid

    def persons(self, sid: str, drop_empty: bool = False) -> tuple[PersonsGT, np.ndarray]:
        """(persons as :mod:`humanparse.data.instances` builds them, semantic map)."""
        sem = self.semantic(sid)
        pid = self.person_ids(sid, sem.shape)
        return persons_from_semantic(sem, pid, self.num_classes, drop_empty=drop_empty), sem

    def part_instances(self, sid: str, source: str = "category_human") -> PartInstances:
        """GT part instances: the Category × Human rule (default) or ``Instance_ids`` + its txt table."""
        if source == "category_human":
            sem = self.semantic(sid)
            return gt_part_instances(sem, self.person_ids(sid, sem.shape), self.num_classes)
        if source != "instance_ids":
            raise ValueError(f"apr_gt must be one of {APR_GT}, got {source!r}")
        path = self.instance_dir / f"{sid}.png"
        inst = read_index_png(path)
        txt = self.instance_txt_dir / f"{sid}.txt"
        if not txt.is_file():
            raise DataError(txt, "instance table (lines 'inst_id class_id human_id') is missing")
        rows = []
        for lineno, line in enumerate(txt.read_text().splitlines(), 1):
            parts = line.split()
            if not parts:
                continue
            try:
                rows.append((int(parts[0]), int(parts[1])))
            except (ValueError, IndexError):
                raise DataError(
                    txt, f"line {lineno}: expected 'inst_id class_id human_id', got {line!r}"
                ) from None
        ids = np.array([r[0] for r in rows], dtype=np.int64)
        cls = np.array([r[1] for r in rows], dtype=np.int64)
        if len(ids) and (ids.min() < 1 or len(np.unique(ids)) != len(ids)):
            raise DataError(txt, "instance ids must be unique and >= 1")
        if len(cls) and ((cls < 1) | (cls >= self.num_classes)).any():
            raise DataError(txt, f"class ids outside 1..{self.num_classes - 1}")
        return PartInstances.from_table(inst, ids, cls)

    def edges(self, sid: str, source: str = "human_ids") -> np.ndarray:
        """Instance-edge GT: derived from ``Human_ids`` (PGN's ``write_edge.m``) or read from ``edges/``."""
        if source == "human_ids":
            return instance_edges(read_index_png(self.human_dir / f"{sid}.png"))
        if source == "edges":
            return read_index_png(self.edge_dir / f"{sid}.png")
        raise ValueError(f"edge_gt must be one of {EDGE_GT}, got {source!r}")


class MHPGroundTruth:
    """MHP v2 GT: per-person ``parsing_annos`` files, indexed once by image key."""

    def __init__(self, gt_dir: str | os.PathLike, num_classes: int = 59, anno_dir=None):
        self.root = Path(gt_dir)
        self.num_classes = num_classes
        self.anno_dir = _dir(self.root, anno_dir, "parsing_annos")
        if not self.anno_dir.is_dir():
            raise DataError(self.anno_dir, "MHP parsing_annos directory does not exist")
        files: dict[str, list[str]] = defaultdict(list)
        for name in os.listdir(self.anno_dir):
            if name.endswith(".png"):
                if len(name) <= 10 or name[-10] != "_" or name[-7] != "_":
                    raise DataError(self.anno_dir / name, "MHP annotation names are <id>_<NN>_<MM>.png")
                files[name[:-10]].append(name)
        self.files = {k: sorted(v) for k, v in files.items()}

    def default_ids(self) -> list[str]:
        """``<gt_dir>/../list/<gt_dir name>.txt`` when it exists, else every annotated image key."""
        lst = self.root.parent / "list" / f"{self.root.name}.txt"
        if lst.is_file():
            return read_id_list(lst)
        if not self.files:
            raise DataError(self.anno_dir, "no annotation files")
        return sorted(self.files)

    def person_maps(self, sid: str) -> list[np.ndarray]:
        names = self.files.get(sid, [])
        maps = [
            read_index_png(self.anno_dir / n, num_classes=self.num_classes, channels="first") for n in names
        ]
        for n, m in zip(names[1:], maps[1:]):
            if m.shape != maps[0].shape:
                raise DataError(
                    self.anno_dir / n,
                    f"person map is {m.shape[1]}x{m.shape[0]}, {names[0]} is "
                    f"{maps[0].shape[1]}x{maps[0].shape[0]}",
                )
        return maps

    def persons(self, sid: str, drop_empty: bool = False) -> tuple[PersonsGT, np.ndarray]:
        """(persons in sorted file order, semantic map painted from them in that order)."""
        maps = self.person_maps(sid)
        if not maps:
            raise DataError(self.anno_dir, f"no annotation file for image {sid} ({sid}_NN_MM.png)")
        return persons_from_person_maps(maps, self.num_classes, drop_empty=drop_empty), paint_persons(maps)[0]


def ground_truth(gt_format: str, gt_dir, num_classes: int, **kwargs):
    if gt_format == "cihp":
        return CIHPGroundTruth(gt_dir, num_classes, **kwargs)
    if gt_format == "mhp":
        return MHPGroundTruth(gt_dir, num_classes, **kwargs)
    raise ValueError(f"gt_format must be one of {GT_FORMATS}, got {gt_format!r}")
