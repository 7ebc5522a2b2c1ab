"""CIHP (Crowd Instance-level Human Parsing) reader: 20 classes, 2+ persons per image
(the ``instance-level_human_parsing`` release of PGN).

Layouts (``layout``):

* ``official`` (default), the ``instance-level_human_parsing`` archive::

      <root>/Training/   Images/<id>.jpg  Category_ids/<id>.png  Human_ids/<id>.png  Instance_ids/<id>.png  train_id.txt
      <root>/Validation/ (same folders)                                                                     val_id.txt
      <root>/Testing/    Images/<id>.jpg                                                                    test_id.txt

  plus, when present, the helper ``Instance_ids/<id>.txt`` (lines ``inst_id class_id human_id``; PGN
  ships the val ones as ``evaluation/Instance_part_val/<id>.txt``: point ``instance_txt_dir`` there).
  The colour renders (``Categories/``, ``Humans/``, ``Instances/``) are never read.
* ``graphonomy``: ``<root>/CIHP_4w/{Images, Category_ids, lists/{train,val}_id.txt}`` (semantic only).
* ``pgn``: ``<root>/CIHP/{images, labels, edges, list/{train,val}_id.txt}`` (semantic + the shipped
  PGN instance edges, read into ``instance_edge``).

Samples (official layout, labelled splits): ``semantic`` (Category_ids), ``person_ids`` (Human_ids,
any positive ids), ``instance_ids`` + ``instances`` (part instances by the project rule: one per
present (class c ≥ 1, person h ≥ 1) pair, numbered compactly with the table ``[id, class, person]``),
and ``persons`` (per-person dicts ordered by person id: ``id``, ``mask``, ``parts``, ``box`` and
``keypoints`` (17, 3) when a pseudo-pose file exists).

When ``Instance_ids`` exists it is checked against the (class, person) rule (same partition) and its
txt against the pixels; a mismatch is logged naming the file and the Category/Human pair wins.
Split membership comes only from the id files: CIHP ids are global across splits.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from humanparse.data.common import FolderDataset, dataset_dir, first_dir
from humanparse.data.instances import instance_partition_mismatch, part_instances, persons_from_ids
from humanparse.data.io import DataError, read_id_list, read_label
from humanparse.data.meta import get_info

log = logging.getLogger(__name__)

CIHP_SPLIT_DIRS = {"train": "Training", "val": "Validation", "test": "Testing"}
CIHP_LAYOUT_HELP = """expected one of the CIHP layouts:
  official (default): <root>/{Training,Validation,Testing}/Images/<id>.jpg, .../Category_ids/<id>.png,
                      .../Human_ids/<id>.png, .../Instance_ids/<id>.png, Training/train_id.txt,
                      Validation/val_id.txt, Testing/test_id.txt
  graphonomy:         <root>/CIHP_4w/{Images, Category_ids, lists/{train,val}_id.txt}
  pgn:                <root>/CIHP/{images, labels, edges, list/{train,val}_id.txt}
Download instance-level_human_parsing.tar.gz from {homepage} and unpack it into data.root, or run with
data.synthetic=true."""


def read_instance_txt(path: Path) -> np.ndarray:
    """``<id>.txt`` helper: lines ``inst_id class_id human_id`` -> int64 (K, 3)."""
    rows = []
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(path, f"unreadable instance txt ({e})") from e
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split()
        try:
            vals = [int(float(v)) for v in parts]
        except ValueError:
            vals = []
        if len(vals) != 3:
            raise DataError(path, f"line {lineno}: expected 'inst_id class_id human_id', got {line!r}")
        rows.append(vals)
    return np.asarray(rows, dtype=np.int64).reshape(-1, 3)


class InstanceMixin:
    """Person-id map, part instances and per-person dicts from ``Human_ids`` (+ ``Instance_ids``),
    shared by CIHP and the converted PASCAL-Person-Part instance files."""

    human_dir: Path | None = None
    instance_dir: Path | None = None
    category_dir: Path | None = None
    instance_txt_dir: Path | None = None

    def setup_instances(
        self,
        human_dir: Path | None,
        instance_dir: Path | None,
        category_dir: Path | None = None,
        persons: bool = True,
        instance_check: bool = True,
        instance_txt_dir: Path | None = None,
    ) -> None:
        self.human_dir = human_dir
        self.instance_dir = instance_dir
        self.category_dir = category_dir
        self.instance_txt_dir = instance_txt_dir or instance_dir
        self.with_persons = bool(persons)
        self.instance_check = bool(instance_check)
        self.issues: list[tuple[str, str]] = []
        self._reported: set[str] = set()

    def report(self, path, problem: str) -> None:
        """Log a tolerated data problem once per file and keep it for the dataset checker."""
        key = f"{path}: {problem}"
        if key in self._reported:
            return
        self._reported.add(key)
        self.issues.append((str(path), problem))
        log.warning("%s: %s", path, problem)

    def human_path(self, i: int) -> Path | None:
        return None if self.human_dir is None else self.human_dir / f"{self.ids[i]}.png"

    def instance_path(self, i: int) -> Path | None:
        return None if self.instance_dir is None else self.instance_dir / f"{self.ids[i]}.png"

    def instance_txt_path(self, i: int) -> Path | None:
        return None if self.instance_txt_dir is None else self.instance_txt_dir / f"{self.ids[i]}.txt"

    def category_path(self, i: int) -> Path | None:
        return None if self.category_dir is None else self.category_dir / f"{self.ids[i]}.png"

    def instance_files(self, i: int) -> dict:
        out: dict = {}
        if self.human_dir is not None:
            out["person_ids"] = self.human_path(i)
        return out

    def add_instances(self, index: int, sample: dict) -> None:
        """Add ``person_ids``, ``instance_ids``, ``instances`` and (``persons=True``) ``persons``."""
        image, sem = sample["image"], sample["semantic"]
        ipath = sample["meta"]["image_path"]
        hpath = self.human_path(index)
        pid = self.read_aux_label(hpath, image, ipath)
        C = self.info.num_classes
        inst, table = part_instances(sem, pid, C)
        sample["person_ids"] = pid
        sample["instance_ids"] = inst
        sample["instances"] = table
        sample["meta"]["sources"] = {"person_ids": [str(hpath)]}
        sample["meta"].setdefault("instance_valid", True)
        if self.instance_check:
            self._check_shipped_instances(index, image, ipath, sem, pid, inst, table)
        ids = [int(k) for k in np.unique(pid) if k > 0]
        if getattr(self, "keypoints", None) is not None:
            kps = [self.person_keypoints(self.ids[index], k) for k in ids]
            sample["keypoints"] = np.stack(kps) if kps else np.zeros((0, 17, 3), np.float32)
        if self.with_persons:
            persons = persons_from_ids(sem, pid)
            if "keypoints" in sample:
                for p, kp in zip(persons, sample["keypoints"]):
                    p["keypoints"] = kp.copy()
            sample["persons"] = persons

    def _check_shipped_instances(self, index, image, ipath, sem, pid, inst, table) -> None:
        spath = self.instance_path(index)
        if spath is None or not spath.is_file():
            return
        shipped = self.read_aux_label(spath, image, ipath)
        bad = instance_partition_mismatch(shipped, sem, pid, self.info.num_classes)
        if bad:
            self.report(
                spath,
                f"Instance_ids does not induce the (Category_ids, Human_ids) partition ({bad} pixels "
                "in ambiguous instances); using the Category/Human pairs",
            )
            return
        tpath = self.instance_txt_path(index)
        if tpath is None or not tpath.is_file():
            return
        txt = read_instance_txt(tpath)
        # shipped id -> derived id through the txt's (class, person) pairs; equal maps iff the txt is right
        derived_of_pair = {(int(c), int(h)): int(i) for i, c, h in table}
        lut = np.zeros(int(max(shipped.max(initial=0), txt[:, 0].max(initial=0))) + 1, dtype=np.int64)
        unknown = []
        for iid, c, h in txt:
            d = derived_of_pair.get((int(c), int(h)))
            if d is None:
                unknown.append(int(iid))
            elif 0 < iid < len(lut):
                lut[iid] = d
        wrong = int((lut[shipped] != inst).sum())
        if unknown or wrong:
            self.report(
                tpath,
                f"instance txt disagrees with the pixels ({wrong} pixels; ids without such a "
                f"(class, person) pair: {unknown[:10]}); using the Category/Human pairs",
            )


class CIHPDataset(InstanceMixin, FolderDataset):
    """CIHP multi-person parsing (20 classes) with persons and part instances.

    Args:
        root: dataset root (see ``CIHP_LAYOUT_HELP``).
        split: ``train``, ``val`` or ``test`` (images only; official layout).
        layout: ``official`` (default), ``graphonomy`` or ``pgn``.
        persons: build the per-person dicts (``False`` saves time for FCN-only training).
        instance_check: check the shipped ``Instance_ids`` / txt against the (class, person) rule.
        instance_txt_dir: folder of the ``<id>.txt`` helpers (default: next to ``Instance_ids``).
        edges: ``pgn`` layout: read the shipped ``edges/<id>.png`` into ``instance_edge``.
        pose / pose_file / pose_min_score: pseudo-pose keypoints (``person_id`` = Human_ids value).
        check_files: verify at construction that every listed file exists.
    """

    info = get_info("cihp")
    layout_help = CIHP_LAYOUT_HELP

    def __init__(
        self,
        root: str | Path,
        split: str = "train",
        layout: str = "official",
        persons: bool = True,
        instance_check: bool = True,
        instance_txt_dir: str | Path | None = None,
        edges: bool = True,
        pose: bool | str = "auto",
        pose_file: str | Path | None = None,
        pose_min_score: float = 0.0,
        check_files: bool = True,
        joint_flip_pairs=None,
    ):
        super().__init__(joint_flip_pairs)
        self.root = Path(root)
        self.split = split
        self.layout = layout
        if split not in CIHP_SPLIT_DIRS:
            raise ValueError(f"CIHP split must be train/val/test, got {split!r}")
        if layout not in self.info.layouts:
            raise ValueError(f"unknown CIHP layout {layout!r}; expected one of {self.info.layouts}")
        if not self.root.is_dir():
            raise self.not_found(f"root {self.root} does not exist")
        self.edge_dir: Path | None = None
        human = inst = None
        if layout == "official":
            base = dataset_dir(self.root, "instance-level_human_parsing")
            sdir = base / CIHP_SPLIT_DIRS[split]
            self.image_dir = first_dir(sdir / "Images")
            list_file = sdir / f"{split}_id.txt"
            if split != "test":
                self.label_dir = first_dir(sdir / "Category_ids")
                human = first_dir(sdir / "Human_ids")
                inst = first_dir(sdir / "Instance_ids")
                if self.label_dir is None or human is None:
                    raise self.not_found(f"{sdir}/Category_ids or {sdir}/Human_ids not found")
        else:
            if split == "test":
                raise ValueError(f"the CIHP {layout} layout has no test split")
            if layout == "graphonomy":
                base = dataset_dir(self.root, "CIHP_4w")
                self.image_dir = first_dir(base / "Images")
                self.label_dir = first_dir(base / "Category_ids")
                list_file = base / "lists" / f"{split}_id.txt"
            else:
                base = dataset_dir(self.root, "CIHP")
                self.image_dir = first_dir(base / "images")
                self.label_dir = first_dir(base / "labels")
                self.edge_dir = first_dir(base / "edges") if edges else None
                list_file = base / "list" / f"{split}_id.txt"
            if self.label_dir is None:
                raise self.not_found(f"label folder not found under {base}")
        if self.image_dir is None:
            raise self.not_found("image folder not found")
        if not list_file.is_file():
            raise self.not_found(f"id list {list_file} not found")
        self.ids = read_id_list(list_file)
        txt_dir = None
        if instance_txt_dir:
            txt_dir = Path(instance_txt_dir)
            txt_dir = txt_dir if txt_dir.is_absolute() else base / txt_dir
        self.setup_instances(
            human, inst, persons=persons, instance_check=instance_check, instance_txt_dir=txt_dir
        )
        if split != "test":
            self.load_pseudo_pose(self.root, pose, pose_file, pose_min_score)
        if check_files:
            self.check_files()

    def edge_path(self, i: int) -> Path | None:
        return None if self.edge_dir is None else self.edge_dir / f"{self.ids[i]}.png"

    def sample_files(self, index: int) -> dict:
        files = {**super().sample_files(index), **self.instance_files(index)}
        if self.edge_dir is not None:
            files["instance_edge"] = self.edge_path(index)
        return files

    def load(self, index: int) -> dict:
        sample = self.load_base(index)
        if "semantic" not in sample:
            return sample
        if self.human_dir is not None:
            self.add_instances(index, sample)
        if self.edge_dir is not None:
            epath = self.edge_path(index)
            edge = read_label(epath)
            if edge.max(initial=0) > 1:
                raise DataError(epath, f"edge map values {np.unique(edge)[:10].tolist()}: expected 0/1")
            if edge.shape != sample["semantic"].shape:
                raise DataError(
                    epath,
                    f"size mismatch: edge map is {edge.shape[::-1]} (WxH), label "
                    f"{sample['semantic'].shape[::-1]}",
                )
            sample["instance_edge"] = edge
        return sample
