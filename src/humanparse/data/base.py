"""The one sample structure every reader produces and every model consumes.

A raw sample (``Dataset.load``) is a dict of numpy arrays at the original resolution:

=================  ===========================================================================
``image``          RGB uint8 (H, W, 3)
``semantic``       uint8 (H, W) class ids, 255 = ignore (absent for image-only splits)
``semantic_edge``  uint8 (H, W) CorrPM part-boundary map (derived, :mod:`humanparse.data.targets`)
``instance_edge``  uint8 (H, W) PGN person-boundary map (derived)
``heatmaps``       float32 (J, H/4, W/4) joint heatmaps (derived)
``keypoints``      float32 (J, 3): x (column), y (row), present (1/0); absent joints are (0, 0, 0)
``person_ids``     uint8/uint16 (H, W) person index map, 0 = background (multi-person datasets)
``instance_ids``   uint8/uint16 (H, W) part-instance ids (CIHP)
``persons``        list of per-person dicts for region-based models (see below)
``instances``      int64 (K, 3) part-instance table ``[instance_id, class_id, person_id]`` of
                   ``instance_ids`` (CIHP, converted PASCAL)
``meta``           ``id``, ``dataset``, ``split``, ``image_path``, ``orig_size`` (H, W), ...
=================  ===========================================================================

A person dict holds ``id`` (the ``Human_ids`` value, or the 1-based file index
for MHP), ``mask`` (bool (H, W)), ``parts`` (uint8 (H, W) full-image part map, 0 outside the person),
``box`` (float32 [x1, y1, x2, y2], the **inclusive** pixel extent, i.e. the first and last pixel
column/row of the mask; a COCO ``[x, y, w, h]`` box is ``[x, y, x + w − 1, y + h − 1]``) and, when a pose source exists,
``keypoints`` (float32 (J, 3)). The transforms keep every entry consistent with the image
(:func:`humanparse.data.transforms.warp_person`) and add ``empty`` (no pixel left in the crop).

After the transforms, images become normalised float CHW tensors at the input size and label maps
int64 tensors; ``meta['affine']`` maps original pixels to input pixels. Evaluation samples also keep
``gt_semantic``, the untouched original-size label, because metrics are computed at the GT's own
size (README "Metrics").
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from humanparse.data.meta import DatasetInfo
from humanparse.data.transforms import FlipTables


class DatasetNotFoundError(FileNotFoundError):
    """The dataset root does not hold the expected layout."""


# keys turned into int64 tensors (label-like maps)
_LONG_KEYS = ("semantic", "semantic_edge", "instance_edge", "person_ids", "instance_ids", "level1", "level2")

# the original-size ground truth an evaluation sample can keep in ``sample["gt"]`` (evaluation/evaluators.py)
GT_KEYS = ("semantic", "person_ids", "person_parts", "instance_map", "dp_persons")


def gt_key_list(keep) -> tuple[str, ...]:
    """``keep_original`` of a reader: ``False`` (training: nothing), ``True`` (the semantic map) or the
    list of ground-truth keys the active evaluators read (:data:`GT_KEYS`)."""
    if keep is None or keep is False:
        return ()
    if keep is True:
        return ("semantic",)
    keys = tuple(str(k) for k in keep)
    bad = [k for k in keys if k not in GT_KEYS]
    if bad:
        raise ValueError(f"unknown ground-truth keys {bad}; known: {list(GT_KEYS)}")
    return keys


def original_gt(sample: dict, keys: Sequence[str], index: int) -> dict:
    """The untouched original-size ground truth of one raw sample, for the evaluators.

    Always ``image_id`` (``meta['image_id']`` or ``meta['id']``), ``order`` (position in the split),
    ``height``, ``width``; then, for each requested key the reader can provide: ``semantic`` (int64
    tensor), ``person_ids`` (int64 array), ``person_parts`` (one part map per annotated person, in
    file order), ``instance_map`` + ``instance_classes`` (the shipped part-instance ids 1..K and the
    class of each id), ``dp_persons`` (COCO-style person dicts with ``bbox``: DensePose-COCO).
    A key the sample cannot provide is left out (its evaluators are then skipped)."""
    meta = sample.get("meta", {})
    h, w = (int(v) for v in meta.get("orig_size", sample["image"].shape[:2]))
    gt: dict = {
        "image_id": meta.get("image_id", meta.get("id", index)),
        "order": int(index),
        "height": h,
        "width": w,
    }
    persons = sample.get("persons")
    for key in keys:
        if key == "semantic" and sample.get("semantic") is not None:
            gt["semantic"] = torch.from_numpy(np.asarray(sample["semantic"]).astype(np.int64))
        elif key == "person_ids" and sample.get("person_ids") is not None:
            gt["person_ids"] = np.asarray(sample["person_ids"]).astype(np.int64)
        elif key == "person_parts" and persons is not None and all("parts" in p for p in persons):
            gt["person_parts"] = [np.asarray(p["parts"]).copy() for p in persons]
        elif (
            key == "instance_map"
            and sample.get("instance_ids") is not None
            and sample.get("instances") is not None
        ):
            table = np.asarray(sample["instances"], dtype=np.int64).reshape(-1, 3)
            ids = np.asarray(sample["instance_ids"]).astype(np.int64)
            classes = np.zeros(int(max(ids.max(initial=0), table[:, 0].max(initial=0))), np.int64)
            classes[table[:, 0] - 1] = table[:, 1]
            gt["instance_map"], gt["instance_classes"] = ids, classes
        elif key == "dp_persons" and persons is not None and all("bbox" in p for p in persons):
            gt["dp_persons"] = copy.deepcopy(persons)
    return gt


def _person_tensors(person: dict) -> dict:
    """Per-person arrays as tensors; masks bool and part maps uint8 (kept small for worker IPC:
    consumers cast part maps to int64 on the device)."""
    out: dict = {}
    for k, v in person.items():
        out[k] = torch.from_numpy(np.ascontiguousarray(v)) if isinstance(v, np.ndarray) else v
    return out


def to_tensors(sample: dict) -> dict:
    out: dict = {}
    for k, v in sample.items():
        if k == "image":
            out[k] = torch.from_numpy(np.ascontiguousarray(v))
        elif k == "persons" and v is not None:
            out[k] = [_person_tensors(p) for p in v]
        elif k in _LONG_KEYS:
            out[k] = torch.from_numpy(np.ascontiguousarray(v).astype(np.int64))
        elif isinstance(v, np.ndarray) and k != "meta":
            out[k] = torch.from_numpy(np.ascontiguousarray(v))
        else:
            out[k] = v
    return out


class Reader(Dataset):
    """Base reader: subclasses resolve their on-disk layout in ``__init__`` (setting ``ids``) and read one
    raw sample in :meth:`load` (numpy arrays at the original resolution, see the module docstring).

    Everything that turns a raw sample into a training or evaluation item (the per-sample RNG,
    transforms, derived targets, the kept original-size ground truth, tensors) is the job of
    :class:`humanparse.data.pipeline.SamplePipeline`, which wraps any reader. Indexing a bare reader
    (``reader[i]`` or ``reader[(i, epoch)]``) returns the raw sample of :meth:`load`.

    Args:
        joint_flip_pairs: left/right joint pairs of the keypoints this reader loads, when they differ from
            the dataset's table (``info.joint_flip_pairs``); e.g. CorrPM's released LIP loader swaps other
            pairs (the ``parity.corrpm_joint_flip`` switch of the CorrPM presets). Read by the pipeline's flips
            through :attr:`flip_tables`.
    """

    info: DatasetInfo

    def __init__(self, joint_flip_pairs: Sequence[Sequence[int]] | None = None):
        pairs = tuple(tuple(p) for p in joint_flip_pairs) if joint_flip_pairs is not None else None
        self.joint_flip_pairs = pairs
        self.flip_tables = FlipTables.from_info(self.info, pairs)
        self.ids: list[str] = []

    def __len__(self) -> int:
        return len(self.ids)

    def load(self, index: int) -> dict:  # pragma: no cover - abstract
        raise NotImplementedError

    def __getitem__(self, key) -> dict:
        return self.load(int(key[0]) if isinstance(key, (tuple, list)) else int(key))

    # -- hooks of the pipeline (defaults: nothing reader-specific) ------------------------------------
    def adapt_transform(self, transform: Callable | None) -> Callable | None:
        """The transform the pipeline applies to this reader's samples (``transform`` already bound to
        :attr:`flip_tables`). Readers whose samples carry more than maps, boxes and keypoints wrap it here
        (DensePose points, per-person crops) or refuse it (a flip without the tables it needs)."""
        return transform

    def to_tensors(self, sample: dict) -> dict:
        """A transformed sample as tensors (:func:`to_tensors`); readers with nested entries extend it."""
        return to_tensors(sample)

    def sample_files(self, index: int) -> dict[str, Path | list[Path] | None]:
        """The files sample ``index`` is read from (``image``, ``label``, ...), for the dataset checker.
        Readers with more files than an image and a label override this."""
        files: dict[str, Path | list[Path] | None] = {}
        if hasattr(self, "image_path"):
            files["image"] = Path(self.image_path(index))
        if hasattr(self, "label_path"):
            lab = self.label_path(index)
            files["label"] = Path(lab) if lab is not None else None
        return files


# the name the readers were first written against
ParsingDataset = Reader


# keys never stacked: variable-size or structured per-sample entries
_NO_STACK = {"meta", "gt", "persons", "instances", "keypoints_list"}


def collate_dense(batch: list[dict]) -> dict:
    """Collate for FCN models: stacks equally-shaped tensors, keeps the rest as per-sample lists."""
    out: dict = {}
    keys = batch[0].keys()
    for k in keys:
        vals = [b[k] for b in batch]
        if (
            k not in _NO_STACK
            and all(isinstance(v, torch.Tensor) for v in vals)
            and len({tuple(v.shape) for v in vals}) == 1
        ):
            out[k] = torch.stack(vals)
        else:
            out[k] = vals
    return out


def person_targets(persons: list[dict], drop_empty: bool = True) -> dict:
    """torchvision-detection style target dict of one image from its (transformed) person dicts.

    ``boxes`` float32 (N, 4) are continuous ``[x1, y1, x2 + 1, y2 + 1]`` of the persons' inclusive
    ``box`` (the convention of torchvision and COCO), ``labels`` int64 ones (person), ``masks`` uint8
    (N, H, W), ``parts`` uint8 (N, H, W), ``person_ids`` int64 (N,), ``keypoints`` float32 (N, J, 3) when
    every person has keypoints; any other per-person entry as a list (one item per kept person). With
    ``drop_empty`` persons without a pixel (cropped away, or annotated empty) are left out, since
    detection losses need positive-area boxes.
    """
    keep = [p for p in persons if not (drop_empty and _person_empty(p))]
    out: dict = {}
    if keep:
        boxes = torch.stack([torch.as_tensor(p["box"], dtype=torch.float32) for p in keep])
        out["boxes"] = boxes + torch.tensor([0.0, 0.0, 1.0, 1.0])
    else:
        out["boxes"] = torch.zeros((0, 4), dtype=torch.float32)
    out["labels"] = torch.ones(len(keep), dtype=torch.int64)
    out["person_ids"] = torch.as_tensor(
        [int(p.get("id", i + 1)) for i, p in enumerate(keep)], dtype=torch.int64
    )
    for key, name, dtype in (("mask", "masks", torch.uint8), ("parts", "parts", torch.uint8)):
        if keep and all(key in p for p in keep):
            out[name] = torch.stack([torch.as_tensor(p[key]).to(dtype) for p in keep])
    if keep and all(p.get("keypoints") is not None for p in keep):
        out["keypoints"] = torch.stack([torch.as_tensor(p["keypoints"], dtype=torch.float32) for p in keep])
    # any other per-person entry (e.g. DensePose points) travels as a list, one item per kept person
    for key in sorted({k for p in keep for k in p} - _PERSON_TARGET_KEYS):
        out[key] = [p.get(key) for p in keep]
    return out


_PERSON_TARGET_KEYS = {"id", "mask", "parts", "box", "keypoints", "empty"}


def _person_empty(p: dict) -> bool:
    if "empty" in p:
        return bool(p["empty"])
    if "mask" in p:
        return not bool(torch.as_tensor(p["mask"]).any())
    b = torch.as_tensor(p["box"], dtype=torch.float32)
    return bool(b[2] < b[0] or b[3] < b[1])


def collate_instances(batch: list[dict], drop_empty: bool = True) -> dict:
    """Collate for region-based models (Parsing R-CNN, DensePose-RCNN): like :func:`collate_dense`
    (stacked images and dense maps, per-sample ``meta``), plus ``targets``, one torchvision-detection
    style dict per image (:func:`person_targets`), with ``image_id`` taken from ``meta['id']``."""
    out = collate_dense([{k: v for k, v in b.items() if k != "persons"} for b in batch])
    targets = []
    for b in batch:
        t = person_targets(b.get("persons") or [], drop_empty=drop_empty)
        t["image_id"] = b.get("meta", {}).get("id")
        targets.append(t)
    out["targets"] = targets
    return out
