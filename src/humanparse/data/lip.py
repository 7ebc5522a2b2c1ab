"""LIP (Look Into Person) reader: official archive layout and the CE2P flattened layout.

The LIP release: layouts, 20 classes, pose CSV with 16 MPII-order joints; handled
traps: doubled folder names, ``nan`` joints, images without a pose row.
"""

from __future__ import annotations

import csv
import json
import logging
import math
from pathlib import Path

import numpy as np

from humanparse.data.base import DatasetNotFoundError, Reader
from humanparse.data.io import DataError, check_same_size, read_id_list, read_image, read_label
from humanparse.data.meta import get_info

log = logging.getLogger(__name__)

NUM_JOINTS = 16
LIP_LAYOUT_HELP = """expected the official LIP layout:
  <root>/TrainVal_images/train_id.txt, val_id.txt
  <root>/TrainVal_images/TrainVal_images/{train_images,val_images}/<id>.jpg
  <root>/TrainVal_parsing_annotations/TrainVal_parsing_annotations/{train,val}_segmentations/<id>.png
  <root>/TrainVal_pose_annotations/lip_train_set.csv, lip_val_set.csv
  <root>/Testing_images/test_id.txt and Testing_images/testing_images/<id>.jpg
(single-level folders are accepted too), or data.layout=ce2p:
  <root>/{train,val,test}_images/<id>.jpg, <root>/{train,val}_segmentations/<id>.png, <root>/{train,val,test}_id.txt
Download the archives from {homepage} and unpack them into data.root, or run with data.synthetic=true."""


def _first_dir(*candidates: Path) -> Path | None:
    for c in candidates:
        if c.is_dir():
            return c
    return None


def parse_pose_csv(path: str | Path, num_joints: int = NUM_JOINTS) -> dict[str, np.ndarray]:
    """Parse ``lip_{train,val}_set.csv``: ``<id>.jpg`` then ``num_joints`` × (x, y, v), no header.

    A joint is present iff x and y are numbers; ``nan`` means absent (stored as (0, 0, 0)). ``v`` is
    not used (its polarity is undocumented). Returns id (without extension) →
    float32 (J, 3) array (x, y, present).
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "pose CSV is missing")
    out: dict[str, np.ndarray] = {}
    expected = 1 + 3 * num_joints
    with open(path, newline="", encoding="utf-8") as f:
        for lineno, row in enumerate(csv.reader(f), 1):
            if not row or all(not c.strip() for c in row):
                continue
            if len(row) != expected:
                raise DataError(
                    path,
                    f"line {lineno}: malformed pose row with {len(row)} fields, expected {expected} "
                    f"(image name + {num_joints} x (x, y, v))",
                )
            name = row[0].strip()
            key = name.rsplit(".", 1)[0] if "." in name else name
            kp = np.zeros((num_joints, 3), dtype=np.float32)
            for j in range(num_joints):
                xs, ys = row[1 + 3 * j].strip(), row[2 + 3 * j].strip()
                try:
                    x, y = float(xs), float(ys)
                except ValueError:
                    raise DataError(
                        path, f"line {lineno}: joint {j} has non-numeric coordinates ({xs!r}, {ys!r})"
                    ) from None
                if math.isnan(x) or math.isnan(y):
                    continue
                kp[j] = (x, y, 1.0)
            if key in out:
                raise DataError(path, f"line {lineno}: duplicate pose row for {name!r}")
            out[key] = kp
    return out


def parse_pose_json(path: str | Path, num_joints: int = NUM_JOINTS) -> dict[str, np.ndarray]:
    """CorrPM's ``LIP_SP_{TRAIN,VAL}_annotations.json``: ``{"root": [{"im_name", "joint_self"}]}``;
    a joint is present iff x + y != 0 (CorrPM's convention)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
        entries = data["root"]
    except FileNotFoundError:
        raise DataError(path, "pose JSON is missing") from None
    except (json.JSONDecodeError, KeyError, TypeError) as e:
        raise DataError(path, f"malformed pose JSON ({e})") from e
    out: dict[str, np.ndarray] = {}
    for i, e in enumerate(entries):
        try:
            name = e["im_name"]
            joints = np.asarray(e["joint_self"], dtype=np.float32).reshape(num_joints, -1)
        except (KeyError, ValueError, TypeError) as err:
            raise DataError(path, f"entry {i}: malformed ({err})") from err
        kp = np.zeros((num_joints, 3), dtype=np.float32)
        present = (joints[:, 0] + joints[:, 1]) != 0
        kp[present, :2] = joints[present, :2]
        kp[present, 2] = 1.0
        out[name.rsplit(".", 1)[0]] = kp
    return out


class LIPDataset(Reader):
    """LIP single-person parsing with 16 pose joints.

    Args:
        root: dataset root (see ``LIP_LAYOUT_HELP``).
        split: ``train``, ``val`` or ``test`` (test has images only).
        layout: ``official`` (default; also the single-level variant) or ``ce2p``.
        pose: read the pose annotations (``csv`` for the official layout; CorrPM's ``json`` via ``pose_file``).
        pose_file: explicit pose file (CSV or CorrPM JSON); default: the layout's own file.
        check_files: verify at construction that every listed image/label exists.
    """

    info = get_info("lip")

    def __init__(
        self,
        root: str | Path,
        split: str = "train",
        layout: str = "official",
        pose: bool = True,
        pose_file: str | Path | None = None,
        check_files: bool = True,
        joint_flip_pairs=None,
    ):
        super().__init__(joint_flip_pairs)
        self.root = Path(root)
        self.split = split
        self.layout = layout
        if split not in ("train", "val", "test"):
            raise ValueError(f"LIP split must be train/val/test, got {split!r}")
        if not self.root.is_dir():
            raise DatasetNotFoundError(f"LIP root {self.root} does not exist; " + self._help())
        self.image_dir, self.label_dir, id_file, default_pose = self._resolve()
        self.ids = read_id_list(id_file)
        self.has_labels = self.label_dir is not None
        self.keypoints: dict[str, np.ndarray] | None = None
        if pose and split != "test":
            pf = Path(pose_file) if pose_file else default_pose
            if pf is None or not pf.is_file():
                log.warning("LIP %s: no pose file found (%s); all joints treated as absent", split, pf)
                self.keypoints = {}
            elif pf.suffix.lower() == ".json":
                self.keypoints = parse_pose_json(pf)
            else:
                self.keypoints = parse_pose_csv(pf)
            missing = sum(1 for i in self.ids if i not in self.keypoints)
            if missing:
                log.warning(
                    "LIP %s: %d of %d images have no pose row; their 16 joints are treated as absent",
                    split,
                    missing,
                    len(self.ids),
                )
            self.missing_pose = missing
        if check_files:
            self.check_files()

    def _help(self) -> str:
        return LIP_LAYOUT_HELP.replace("{homepage}", self.info.homepage)

    def _resolve(self) -> tuple[Path, Path | None, Path, Path | None]:
        r, s = self.root, self.split
        if self.layout == "official":
            if s == "test":
                img = _first_dir(
                    r / "Testing_images" / "testing_images",
                    r / "Testing_images" / "Testing_images" / "testing_images",
                )
                ids = r / "Testing_images" / "test_id.txt"
                lab, pose = None, None
            else:
                img = _first_dir(
                    r / "TrainVal_images" / "TrainVal_images" / f"{s}_images",
                    r / "TrainVal_images" / f"{s}_images",
                )
                lab = _first_dir(
                    r
                    / "TrainVal_parsing_annotations"
                    / "TrainVal_parsing_annotations"
                    / f"{s}_segmentations",
                    r / "TrainVal_parsing_annotations" / f"{s}_segmentations",
                )
                ids = r / "TrainVal_images" / f"{s}_id.txt"
                pose = r / "TrainVal_pose_annotations" / f"lip_{s}_set.csv"
                if lab is None:
                    raise DatasetNotFoundError(f"LIP {s} segmentations not found under {r}; " + self._help())
        elif self.layout == "ce2p":
            img = _first_dir(r / f"{s}_images")
            lab = None if s == "test" else _first_dir(r / f"{s}_segmentations")
            ids = r / f"{s}_id.txt"
            pose = r / f"LIP_SP_{s.upper()}_annotations.json"
            if s != "test" and lab is None:
                raise DatasetNotFoundError(f"LIP {s}_segmentations not found under {r}; " + self._help())
        else:
            raise ValueError(f"unknown LIP layout {self.layout!r}; expected one of {self.info.layouts}")
        if img is None or not ids.is_file():
            raise DatasetNotFoundError(f"LIP {s} images or id list not found under {r}; " + self._help())
        return img, lab, ids, pose

    def image_path(self, i: int) -> Path:
        return self.image_dir / f"{self.ids[i]}.jpg"

    def label_path(self, i: int) -> Path | None:
        return None if self.label_dir is None else self.label_dir / f"{self.ids[i]}.png"

    def check_files(self) -> None:
        """Raise :class:`DataError` naming the first missing image/label file (and how many are missing)."""
        missing = [self.image_path(i) for i in range(len(self.ids)) if not self.image_path(i).is_file()]
        kind = "image"
        if not missing and self.has_labels:
            missing = [self.label_path(i) for i in range(len(self.ids)) if not self.label_path(i).is_file()]
            kind = "label"
        if missing:
            more = (
                f" ({len(missing) - 1} more {kind} files listed in the {self.split} id list are missing too)"
                if len(missing) > 1
                else ""
            )
            raise DataError(missing[0], f"{kind} file is missing{more}")

    def load(self, index: int) -> dict:
        sid = self.ids[index]
        ipath = self.image_path(index)
        image = read_image(ipath)
        sample: dict = {"image": image}
        if self.has_labels:
            lpath = self.label_path(index)
            label = read_label(lpath, num_classes=self.info.num_classes)
            check_same_size(image, label, lpath, ipath)
            sample["semantic"] = label
        if self.keypoints is not None:
            kp = self.keypoints.get(sid)
            sample["keypoints"] = kp.copy() if kp is not None else np.zeros((NUM_JOINTS, 3), np.float32)
        sample["meta"] = {
            "id": sid,
            "dataset": "lip",
            "split": self.split,
            "index": index,
            "image_path": str(ipath),
            "orig_size": image.shape[:2],
        }
        return sample
