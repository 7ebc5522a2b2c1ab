"""MHP v2.0 (LV-MHP-v2) reader: 59 classes, one annotation PNG per person
(``ZhaoJ9014/Multi-Human-Parsing`` release).

Layout ``official`` (``<root>`` may also be the folder holding ``LV-MHP-v2/``)::

    <root>/list/train.txt  val.txt  test_all.txt  test_inter_top20.txt  test_inter_top10.txt
    <root>/train/images/<id>.jpg        <root>/train/parsing_annos/<id>_<NN>_<MM>.png
    <root>/val/images/<id>.jpg          <root>/val/parsing_annos/<id>_<NN>_<MM>.png
    <root>/test/images/<id>.jpg

The official evaluator (``v2/mhp_data.py::get_data``) reads the same files from ``<split>/annotations/``;
that folder name is accepted too. ``<NN>`` is the number of persons and ``<MM>`` the 1-based person index, both 2 digits, so the image
key is the file name minus its last 10 characters. Each PNG is one person's full-image part map,
values 0..58, stored with **3 channels: channel 0 is read**, channels 1-2 are ignored.

Derived (no semantic or person-id map is shipped): persons are taken in sorted file-name order; the
semantic and person-id maps are painted in that order, later non-zero pixels overwriting (project
convention). Persons whose map has no foreground are kept (Parsing R-CNN convention,
``empty_persons: keep``) or dropped (``drop``, the official MHP evaluator's convention); the painted
maps are the same either way. Person ``id`` is the 1-based file index in both conventions.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

from humanparse.data.common import FolderDataset, dataset_dir, first_dir
from humanparse.data.instances import paint_persons, persons_from_maps
from humanparse.data.io import DataError, check_same_size, read_id_list, read_label
from humanparse.data.meta import get_info

log = logging.getLogger(__name__)

MHP_LISTS = {
    "train": ("train", "train.txt"),
    "val": ("val", "val.txt"),
    "test": ("test", "test_all.txt"),
    "test_all": ("test", "test_all.txt"),
    "test_inter_top20": ("test", "test_inter_top20.txt"),
    "test_inter_top10": ("test", "test_inter_top10.txt"),
}
ANNO_RE = re.compile(r"^(?P<key>.+)_(?P<nn>\d{2})_(?P<mm>\d{2})\.png$")
MHP_LAYOUT_HELP = """expected the MHP v2.0 layout:
  <root>/list/{train,val,test_all,test_inter_top20,test_inter_top10}.txt
  <root>/{train,val}/images/<id>.jpg, <root>/{train,val}/parsing_annos/<id>_<NN>_<MM>.png, <root>/test/images/<id>.jpg
Download LV-MHP-v2.zip from {homepage} and unpack it into data.root, or run with data.synthetic=true."""


def index_parsing_annos(folder: Path) -> tuple[dict[str, list[str]], list[tuple[str, str]]]:
    """image key -> its annotation file names in sorted order, and (file, problem) for every file
    whose name or person numbering is inconsistent (unparseable name, ``NN`` differing between the
    files of one image, missing or repeated ``MM``)."""
    groups: dict[str, list[str]] = {}
    problems: list[tuple[str, str]] = []
    with os.scandir(folder) as it:
        names = sorted(e.name for e in it if e.name.endswith(".png"))
    for name in names:
        m = ANNO_RE.match(name)
        if m is None:
            problems.append((str(folder / name), "annotation file name is not <id>_<NN>_<MM>.png; ignored"))
            continue
        groups.setdefault(name[:-10], []).append(name)
    for key, files in groups.items():
        nns = {int(f[-9:-7]) for f in files}
        mms = [int(f[-6:-4]) for f in files]
        if len(nns) != 1 or sorted(mms) != list(range(1, len(files) + 1)) or nns != {len(files)}:
            problems.append(
                (
                    str(folder / files[0]),
                    f"image {key!r}: person files {files} do not number 1..NN "
                    f"with NN = {len(files)}; persons are taken in sorted file order",
                )
            )
    return groups, problems


class MHPv2Dataset(FolderDataset):
    """MHP v2.0 multi-person parsing (59 classes).

    Args:
        root: dataset root (see ``MHP_LAYOUT_HELP``).
        split: ``train``, ``val``, ``test`` (= ``test_all``), ``test_inter_top20``, ``test_inter_top10``
            (test splits have images only).
        layout: ``official``.
        persons: build the per-person dicts.
        empty_persons: ``keep`` (Parsing R-CNN) or ``drop`` (official MHP evaluator) persons whose map
            has no foreground.
        check_files: verify at construction that every listed image has its files.
    """

    info = get_info("mhp_v2")
    layout_help = MHP_LAYOUT_HELP

    def __init__(
        self,
        root: str | Path,
        split: str = "train",
        layout: str = "official",
        persons: bool = True,
        empty_persons: str = "keep",
        check_files: bool = True,
        joint_flip_pairs=None,
    ):
        super().__init__(joint_flip_pairs)
        self.root = Path(root)
        self.split = split
        self.layout = layout
        if split not in MHP_LISTS:
            raise ValueError(f"MHP v2.0 split must be one of {sorted(MHP_LISTS)}, got {split!r}")
        if layout != "official":
            raise ValueError(f"unknown MHP v2.0 layout {layout!r}; expected one of {self.info.layouts}")
        if empty_persons not in ("keep", "drop"):
            raise ValueError(f"empty_persons must be 'keep' or 'drop', got {empty_persons!r}")
        if not self.root.is_dir():
            raise self.not_found(f"root {self.root} does not exist")
        base = dataset_dir(self.root, "LV-MHP-v2")
        self.base = base
        folder, list_name = MHP_LISTS[split]
        list_file = base / "list" / list_name
        if not list_file.is_file():
            raise self.not_found(f"id list {list_file} not found")
        self.ids = read_id_list(list_file)
        self.image_dir = first_dir(base / folder / "images")
        if self.image_dir is None:
            raise self.not_found(f"{base / folder / 'images'} not found")
        # the release names the folder parsing_annos/; the official evaluator's get_data reads annotations/
        self.anno_dir = (
            None
            if folder == "test"
            else first_dir(base / folder / "parsing_annos", base / folder / "annotations")
        )
        self.with_persons = bool(persons)
        self.drop_empty = empty_persons == "drop"
        self.issues: list[tuple[str, str]] = []
        self.annos: dict[str, list[str]] = {}
        if folder != "test":
            if self.anno_dir is None:
                raise self.not_found(f"{base / folder / 'parsing_annos'} not found")
            self.annos, self.issues = index_parsing_annos(self.anno_dir)
            for path, problem in self.issues:
                log.warning("%s: %s", path, problem)
        if check_files:
            self.check_files()

    @property
    def has_labels(self) -> bool:
        return self.anno_dir is not None

    def label_path(self, i: int) -> Path | None:
        return None

    def person_paths(self, i: int) -> list[Path]:
        return [self.anno_dir / f for f in self.annos.get(self.ids[i], [])]

    def sample_files(self, index: int) -> dict:
        files: dict = {"image": self.image_path(index)}
        if self.has_labels:
            files["label"] = self.person_paths(index)
        return files

    def check_files(self) -> None:
        super().check_files()
        if self.has_labels:
            missing = [i for i in self.ids if not self.annos.get(i)]
            if missing:
                more = (
                    f" ({len(missing) - 1} more listed images have none either)" if len(missing) > 1 else ""
                )
                raise DataError(
                    self.anno_dir / f"{missing[0]}_NN_MM.png",
                    f"no parsing_annos file for image {missing[0]!r}{more}",
                )

    def load(self, index: int) -> dict:
        sample = self.load_base(index)
        if not self.has_labels:
            return sample
        paths = self.person_paths(index)
        if not paths:
            raise DataError(
                self.anno_dir / f"{self.ids[index]}_NN_MM.png",
                f"no parsing_annos file for image {self.ids[index]!r}",
            )
        image, ipath = sample["image"], sample["meta"]["image_path"]
        maps = []
        for p in paths:
            m = read_label(p, num_classes=self.info.num_classes, channels="first")
            check_same_size(image, m, p, ipath)
            maps.append(m)
        semantic, pid = paint_persons(maps)
        sample["semantic"] = semantic
        sample["person_ids"] = pid
        sample["meta"]["sources"] = {"person_ids": [str(p) for p in paths]}
        sample["meta"]["num_person_files"] = len(paths)
        if self.with_persons:
            sample["persons"] = persons_from_maps(maps, drop_empty=self.drop_empty)
        return sample
