"""PASCAL-Person-Part reader: 7 classes, multi-person (HHP / Graphonomy release).

Layout ``graphonomy`` (the only one)::

    <root>/pascal/JPEGImages/<id>.jpg            (PASCAL VOC 2010 images)
    <root>/pascal/SegmentationPart/<id>.png      (0 Background, 1 Head, 2 Torso, 3 Upper-arms,
                                                  4 Lower-arms, 5 Upper-legs, 6 Lower-legs)
    <root>/pascal/list/train_id.txt              (1,716 ids)
    <root>/pascal/list/val_id.txt                (val = test: HHP's 1,817 ids, the default)
    <root>/pascal/list/val_id_grapy.txt          (Grapy-ML's 1,831-id val list, ``val_list: grapy``)

``<root>`` may also be the ``pascal`` folder itself. No list file is shipped with the project: put
HHP's ``val_id.txt`` and Grapy-ML's (renamed ``val_id_grapy.txt``) into ``list/``; file names are
configurable with ``val_lists``. Runs on the Grapy-ML list must say so (its numbers are not comparable).

Optional instance level: the project's conversion of the Pascal-Part annotations into a
CIHP-style layout, read when ``<root>/pascal/Human_ids/`` exists (``instances: auto``)::

    <root>/pascal/Human_ids/<id>.png             person index, 0 = background
    <root>/pascal/Instance_ids/<id>.png + .txt   part instances, lines "inst_id class_id human_id"
    <root>/pascal/Category_ids/<id>.png          optional: the converted semantic map

Samples then also carry ``person_ids``, ``persons``, ``instance_ids`` and ``instances`` like CIHP.
When a converted ``Category_ids`` map does not reproduce ``SegmentationPart`` exactly, the image is
reported (warning) and ``meta['instance_valid']`` is false: it is excluded from instance metrics.

There are no left/right classes: a flip is a plain mirror.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from humanparse.data.cihp import InstanceMixin
from humanparse.data.common import FolderDataset, dataset_dir, first_dir
from humanparse.data.io import read_id_list, read_label
from humanparse.data.meta import get_info

log = logging.getLogger(__name__)

PASCAL_LAYOUT_HELP = """expected the PASCAL-Person-Part layout:
  <root>/pascal/JPEGImages/<id>.jpg, <root>/pascal/SegmentationPart/<id>.png,
  <root>/pascal/list/train_id.txt, val_id.txt (HHP, 1,817 ids) [and val_id_grapy.txt (Grapy-ML, 1,831 ids)]
  optional instance level: <root>/pascal/{Human_ids,Instance_ids}/<id>.png (+ Instance_ids/<id>.txt)
Images: PASCAL VOC 2010; labels and lists: {homepage}. Or run with data.synthetic=true."""

DEFAULT_VAL_LISTS = {"hhp": "list/val_id.txt", "grapy": "list/val_id_grapy.txt"}


class PascalPersonPartDataset(InstanceMixin, FolderDataset):
    """PASCAL-Person-Part (7 classes), optionally with converted instance-level files.

    Args:
        root: dataset root (see ``PASCAL_LAYOUT_HELP``).
        split: ``train`` or ``val`` (val is the papers' test set; ``test`` is accepted as an alias).
        layout: ``graphonomy``.
        val_list: which val list: ``hhp`` (1,817 ids, default) or ``grapy`` (1,831 ids).
        val_lists: val-list name -> file (relative to the ``pascal`` folder).
        instances: ``auto`` (read the converted files when ``Human_ids/`` exists), ``true``, ``false``.
        persons: build the per-person dicts (instance level only).
        instance_check: compare the shipped ``Instance_ids`` (and its txt) with the (class, person)
            rule and a converted ``Category_ids`` with ``SegmentationPart``.
        check_files: verify at construction that every listed file exists.
    """

    info = get_info("pascal_person_part")
    layout_help = PASCAL_LAYOUT_HELP

    def __init__(
        self,
        root: str | Path,
        split: str = "train",
        layout: str = "graphonomy",
        val_list: str = "hhp",
        val_lists: Mapping[str, str] | None = None,
        instances: bool | str = "auto",
        persons: bool = True,
        instance_check: bool = True,
        check_files: bool = True,
        joint_flip_pairs=None,
    ):
        super().__init__(joint_flip_pairs)
        self.root = Path(root)
        self.split = "val" if split == "test" else split
        self.layout = layout
        if self.split not in ("train", "val"):
            raise ValueError(f"PASCAL-Person-Part split must be train or val (= test), got {split!r}")
        if layout != "graphonomy":
            raise ValueError(
                f"unknown PASCAL-Person-Part layout {layout!r}; expected one of {self.info.layouts}"
            )
        if not self.root.is_dir():
            raise self.not_found(f"root {self.root} does not exist")
        base = dataset_dir(self.root, "pascal")
        self.base = base
        self.image_dir = first_dir(base / "JPEGImages")
        self.label_dir = first_dir(base / "SegmentationPart")
        if self.image_dir is None or self.label_dir is None:
            raise self.not_found(f"JPEGImages/ or SegmentationPart/ not found under {base}")
        lists = {**DEFAULT_VAL_LISTS, **dict(val_lists or {})}
        if self.split == "train":
            list_file = base / "list" / "train_id.txt"
            self.val_list = None
        else:
            if val_list not in lists:
                raise ValueError(f"PASCAL val_list must be one of {sorted(lists)}, got {val_list!r}")
            list_file = base / lists[val_list]
            self.val_list = val_list
            if val_list == "grapy":
                log.warning(
                    "PASCAL-Person-Part: evaluating on Grapy-ML's val list (%s), not the default HHP list "
                    "(1,817 ids); say so when reporting",
                    list_file,
                )
        if not list_file.is_file():
            raise self.not_found(f"id list {list_file} not found")
        self.ids = read_id_list(list_file)
        hdir = first_dir(base / "Human_ids")
        if instances in (True, "true") and hdir is None:
            raise self.not_found(f"instances=true but {base / 'Human_ids'} does not exist")
        use = hdir is not None and instances not in (False, "false", "off")
        self.setup_instances(
            human_dir=hdir if use else None,
            instance_dir=first_dir(base / "Instance_ids") if use else None,
            category_dir=first_dir(base / "Category_ids") if use else None,
            persons=persons,
            instance_check=instance_check,
        )
        if check_files:
            self.check_files()

    def sample_files(self, index: int) -> dict:
        return {**super().sample_files(index), **self.instance_files(index)}

    def load(self, index: int) -> dict:
        sample = self.load_base(index)
        if self.human_dir is not None and "semantic" in sample:
            self.add_instances(index, sample)
            cpath = self.category_path(index)
            if self.instance_check and cpath is not None and cpath.is_file():
                cat = read_label(cpath, num_classes=self.info.num_classes)
                if cat.shape != sample["semantic"].shape or not np.array_equal(cat, sample["semantic"]):
                    sample["meta"]["instance_valid"] = False
                    self.report(
                        cpath,
                        "converted Category_ids does not reproduce SegmentationPart; "
                        "the image is excluded from instance metrics",
                    )
        return sample
