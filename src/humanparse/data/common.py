"""Pieces shared by the folder-based readers (ATR, PASCAL-Person-Part, CIHP, MHP v2.0).

Each reader resolves its layout to an image folder, an optional label folder and an id list, then
reads samples with the :mod:`humanparse.data.io` functions, so every bad file raises a
:class:`~humanparse.data.io.DataError` naming it.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from humanparse.data.base import DatasetNotFoundError, Reader
from humanparse.data.io import DataError, check_same_size, read_image, read_label
from humanparse.data.pseudo_pose import (
    NUM_COCO,
    PoseTable,
    absent_keypoints,
    pseudo_pose_path,
    read_pseudo_pose,
)

log = logging.getLogger(__name__)


def first_dir(*candidates: Path) -> Path | None:
    """The first existing directory of ``candidates``."""
    for c in candidates:
        if c is not None and c.is_dir():
            return c
    return None


def dataset_dir(root: Path, *names: str) -> Path:
    """``root/<name>`` for the first ``name`` that exists, else ``root`` (the user pointed at the folder
    itself): e.g. ATR accepts both ``<root>/humanparsing/JPEGImages`` and ``<root>/JPEGImages``."""
    for n in names:
        if (root / n).is_dir():
            return root / n
    return root


class FolderDataset(Reader):
    """An id list, ``<image_dir>/<id><image_ext>`` and (optionally) ``<label_dir>/<id>.png``.

    Subclasses set ``self.ids``, ``self.image_dir``, ``self.label_dir`` (``None`` for image-only
    splits) and call :meth:`finish_init`; :meth:`load_base` reads image + semantic map + meta.
    """

    image_ext = ".jpg"
    layout_help = ""

    def __init__(self, joint_flip_pairs=None):
        super().__init__(joint_flip_pairs)
        self.image_dir: Path | None = None
        self.label_dir: Path | None = None
        self.keypoints: PoseTable | None = None
        self.missing_pose = 0

    # -- errors -----------------------------------------------------------------------------------
    def not_found(self, what: str) -> DatasetNotFoundError:
        return DatasetNotFoundError(
            f"{self.info.name} ({self.layout} layout, {self.split}): {what}; "
            + self.layout_help.replace("{homepage}", self.info.homepage)
        )

    # -- files ------------------------------------------------------------------------------------
    @property
    def has_labels(self) -> bool:
        return self.label_dir is not None

    def image_path(self, i: int) -> Path:
        return self.image_dir / f"{self.ids[i]}{self.image_ext}"

    def label_path(self, i: int) -> Path | None:
        return None if self.label_dir is None else self.label_dir / f"{self.ids[i]}.png"

    def check_files(self) -> None:
        """Raise :class:`DataError` naming the first missing listed file (and how many more are missing)."""
        files = [self.sample_files(i) for i in range(len(self.ids))]
        keys = list(dict.fromkeys(k for f in files for k in f))
        for key in keys:
            missing = []
            for f in files:
                p = f.get(key)
                for path in p if isinstance(p, list) else [p]:
                    if path is not None and not path.is_file():
                        missing.append(path)
            if missing:
                more = (
                    f" ({len(missing) - 1} more {key} files listed in the {self.split} split are missing too)"
                    if len(missing) > 1
                    else ""
                )
                raise DataError(missing[0], f"{'label' if key != 'image' else key} file is missing{more}")

    # -- pseudo pose ----------------------------------------------------------------------------
    def load_pseudo_pose(
        self, root: Path, pose: bool | str, pose_file: str | Path | None, min_score: float
    ) -> None:
        """``pose``: ``auto`` (read ``<root>/pseudo_pose/<split>.json`` when it exists), ``true``
        (required) or ``false``. Sets ``self.keypoints`` (``None`` when not read)."""
        if pose in (False, "false", "off", None):
            return
        path = Path(pose_file) if pose_file else pseudo_pose_path(root, self.split)
        if not path.is_file():
            if pose == "auto":
                return
            raise DataError(
                path,
                "pseudo-pose file is missing (format: README 'Datasets'); "
                "set reader_options.pose=auto to train without keypoints",
            )
        self.keypoints = read_pseudo_pose(path, min_score)
        self.pose_path = path
        self.missing_pose = sum(1 for i in self.ids if i not in self.keypoints)
        if self.missing_pose:
            log.warning(
                "%s %s: %d of %d images have no entry in %s; their keypoints are treated as absent",
                self.info.name,
                self.split,
                self.missing_pose,
                len(self.ids),
                path,
            )

    @property
    def pose_source(self) -> str | None:
        """Where this split's keypoints come from (``None``: no keypoints); read by models that need pose."""
        return None if self.keypoints is None else f"pseudo-pose file {self.pose_path}"

    @property
    def num_joints(self) -> int | None:
        return None if self.keypoints is None else NUM_COCO

    def person_keypoints(self, image_id: str, person_id: int) -> np.ndarray:
        if self.keypoints is None:
            raise RuntimeError("no pseudo-pose file loaded")
        kp = self.keypoints.get(image_id, {}).get(int(person_id))
        return kp.copy() if kp is not None else absent_keypoints()

    # -- samples ----------------------------------------------------------------------------------
    def load_base(self, index: int) -> dict:
        """Image, semantic map (when the split has labels) and ``meta``."""
        ipath = self.image_path(index)
        image = read_image(ipath)
        sample: dict = {"image": image}
        lpath = self.label_path(index)
        if lpath is not None:
            label = read_label(lpath, num_classes=self.info.num_classes)
            check_same_size(image, label, lpath, ipath)
            sample["semantic"] = label
        sample["meta"] = {
            "id": self.ids[index],
            "dataset": self.info.name,
            "split": self.split,
            "index": index,
            "image_path": str(ipath),
            "orig_size": image.shape[:2],
        }
        return sample

    def read_aux_label(
        self, path: Path, image: np.ndarray, image_path, num_classes: int | None = None
    ) -> np.ndarray:
        """An extra single-channel map (person ids, instance ids) checked against the image size."""
        arr = read_label(path, num_classes=num_classes)
        check_same_size(image, arr, path, image_path)
        return arr
