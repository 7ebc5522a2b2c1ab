"""ATR reader: 18 classes, one person per image, no official split (README "Datasets").

Layouts (``layout``):

* ``release`` (default): ``<root>/humanparsing/{JPEGImages/<id>.jpg, SegmentationClassAug/<id>.png}``
  (``lemondan/HumanParsing-Dataset``); ``<root>`` may also be the ``humanparsing`` folder itself.
* ``graphonomy``: ``<root>/ATR/{JPEGImages, SegmentationClassAug, list/{train,val}_id.txt}``.
* ``hhp``: ``<root>/{JPEGImages, Segmentations}`` (Hierarchical-Human-Parsing).

The pre-flipped label folders (``SegmentationClassAug_rev``, ``SegmentationsRev``) are never read:
flips are made on the fly (the shipped ones are not exact mirrors).

Splits (``split_rule``):

* ``graphonomy`` (default, the project split): computed in code from the ids present in the
  image folder, no list file copied. **val = the first ``val_count`` (1,000) ids starting with
  ``2500_`` in plain string order** (``2500_1``, ``2500_10``, ``2500_100``, ...), **train = every
  other id**. On the full release this reproduces the Graphonomy / Grapy-ML lists exactly (16,706 /
  1,000). Report numbers as "ATR (Graphonomy split, 1,000 val)": the papers' 16,000 / 700 / 1,000
  split was never published.
* ``custom``: id lists given by ``lists`` (split -> file), e.g. the HHP lists; the graphonomy
  layout defaults to its own ``list/<split>_id.txt``.

Keypoints: ATR has none. A pseudo-pose file ``<root>/pseudo_pose/<split>.json`` (COCO-17,
``person_id`` 1) is read when present (``pose: auto``) into ``sample['keypoints']`` (17, 3).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from humanparse.data.base import DatasetNotFoundError
from humanparse.data.common import FolderDataset, dataset_dir, first_dir
from humanparse.data.io import DataError, read_id_list
from humanparse.data.meta import get_info

VAL_PREFIX = "2500_"
VAL_COUNT = 1000

ATR_LAYOUT_HELP = """expected one of the ATR layouts:
  release (default): <root>/humanparsing/JPEGImages/<id>.jpg and <root>/humanparsing/SegmentationClassAug/<id>.png
  graphonomy:        <root>/ATR/JPEGImages, <root>/ATR/SegmentationClassAug, <root>/ATR/list/{train,val}_id.txt
  hhp:               <root>/JPEGImages, <root>/Segmentations
Download humanparsing.zip from {homepage} and unpack it into data.root, or run with data.synthetic=true."""


def graphonomy_split(
    ids: Sequence[str], val_count: int = VAL_COUNT, val_prefix: str = VAL_PREFIX
) -> dict[str, list[str]]:
    """The project ATR split by rule (reproduces Graphonomy's lists): val = the first ``val_count`` ids
    with ``val_prefix`` in plain string order; train = all other ids, in string order. Raises if fewer
    such ids exist."""
    uniq = sorted(set(ids))
    if len(uniq) != len(ids):
        raise ValueError("ATR ids must be unique")
    candidates = [i for i in uniq if i.startswith(val_prefix)]
    if len(candidates) < val_count:
        raise ValueError(
            f"the ATR split rule needs {val_count} ids starting with {val_prefix!r}, found "
            f"{len(candidates)}; is this the full ATR release? (or use split_rule=custom)"
        )
    val = candidates[:val_count]
    chosen = set(val)
    return {"train": [i for i in uniq if i not in chosen], "val": val}


class ATRDataset(FolderDataset):
    """ATR single-person parsing (18 classes).

    Args:
        root: dataset root (see ``ATR_LAYOUT_HELP``).
        split: ``train`` or ``val`` (ATR has no test split; the test stage scores val).
        layout: ``release`` (default), ``graphonomy`` or ``hhp``.
        split_rule: ``graphonomy`` (computed, default) or ``custom`` (list files).
        lists: ``custom`` only: split -> id list file (relative to the dataset folder or absolute).
        val_count / val_prefix: parameters of the ``graphonomy`` rule (1,000 and ``2500_``).
        pose: pseudo-pose keypoints: ``auto`` (when the file exists), ``true`` (required), ``false``.
        pose_file: explicit pseudo-pose file instead of ``<root>/pseudo_pose/<split>.json``.
        pose_min_score: joints with a lower estimator score are absent.
        check_files: verify at construction that every listed image/label exists.
    """

    info = get_info("atr")
    layout_help = ATR_LAYOUT_HELP

    def __init__(
        self,
        root: str | Path,
        split: str = "train",
        layout: str = "release",
        split_rule: str = "graphonomy",
        lists: Mapping[str, str] | None = None,
        val_count: int = VAL_COUNT,
        val_prefix: str = VAL_PREFIX,
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
        self.split_rule = split_rule
        if split not in ("train", "val"):
            raise ValueError(f"ATR split must be train or val (there is no test split), got {split!r}")
        if layout not in self.info.layouts:
            raise ValueError(f"unknown ATR layout {layout!r}; expected one of {self.info.layouts}")
        if not self.root.is_dir():
            raise self.not_found(f"root {self.root} does not exist")
        base, label_name = self._resolve()
        self.base = base
        self.image_dir = first_dir(base / "JPEGImages")
        self.label_dir = first_dir(base / label_name)
        if self.image_dir is None or self.label_dir is None:
            raise self.not_found(f"JPEGImages/ or {label_name}/ not found under {base}")
        if split_rule == "graphonomy":
            all_ids = sorted(p.stem for p in self.image_dir.glob(f"*{self.image_ext}"))
            if not all_ids:
                raise self.not_found(f"no *.jpg images in {self.image_dir}")
            try:
                self.ids = graphonomy_split(all_ids, int(val_count), val_prefix)[split]
            except ValueError as e:
                raise DataError(self.image_dir, str(e)) from None
        elif split_rule == "custom":
            self.ids = read_id_list(self._list_file(lists))
        else:
            raise ValueError(f"ATR split_rule must be 'graphonomy' or 'custom', got {split_rule!r}")
        self.load_pseudo_pose(self.root, pose, pose_file, pose_min_score)
        if check_files:
            self.check_files()

    def _resolve(self) -> tuple[Path, str]:
        if self.layout == "release":
            return dataset_dir(self.root, "humanparsing"), "SegmentationClassAug"
        if self.layout == "graphonomy":
            return dataset_dir(self.root, "ATR"), "SegmentationClassAug"
        return self.root, "Segmentations"

    def _list_file(self, lists: Mapping[str, str] | None) -> Path:
        if lists and self.split in lists:
            p = Path(lists[self.split])
            return p if p.is_absolute() else self.base / p
        if self.layout == "graphonomy":
            return self.base / "list" / f"{self.split}_id.txt"
        raise DatasetNotFoundError(
            f"ATR split_rule=custom needs reader_options.lists.{self.split}=<id list file> "
            f"for the {self.layout} layout"
        )

    def load(self, index: int) -> dict:
        sample = self.load_base(index)
        if self.keypoints is not None:
            sample["keypoints"] = self.person_keypoints(self.ids[index], 1)
        return sample
