"""DensePose-COCO reader (COCO json through pycocotools), layouts ``d2`` (default) and ``detectron1``.

Facts: detectron2 DensePose (layouts, JSON fields, part and flip tables); as its evaluator does, persons
without ``dp_x`` are ignore regions.

Layouts (``root`` is the folder holding ``coco/``, or the ``coco`` folder itself)::

    d2:          coco/{train2014,val2014}/<file_name>
                 coco/annotations/densepose_{train2014,valminusminival2014,minival2014}.json
    detectron1:  coco/{coco_train2014,coco_val2014,coco_test2014}/<file_name> (or train2014/...)
                 coco/annotations/densepose_coco_2014_{train,valminusminival,minival,test}.json

Splits: ``train``, ``valminusminival``, ``minival`` (alias ``val``), ``test`` (detectron1; images only),
and ``+``-joined combinations such as ``train+valminusminival`` (the standard training set).

A sample (see :mod:`humanparse.data.base`) holds ``image``, ``persons`` and ``meta`` (``image_id`` =
the COCO id, ``id`` = its string). Each person is a dict:

==============  ===============================================================================
``id``          annotation id
``bbox``        float64 (4,) COCO [x, y, w, h] exactly as in the json (image pixels, continuous)
``box``         float32 (4,) [x1, y1, x2, y2] = [x, y, x + w, y + h]
``area``        the annotation's ``area`` (the evaluators' area ranges use it)
``iscrowd``     0/1
``mask``        bool (H, W) from ``segmentation`` (polygons or RLE; empty if none)
``keypoints``   float32 (17, 3) COCO order: x, y (pixel indices), v (0 absent, 1 occluded, 2 visible)
``has_dp``      the annotation carries ``dp_x``; persons without it are kept and flagged: they are
                ignore regions in evaluation and carry no dense supervision
``dp``          ``x``, ``y`` float64 (P,) in the 256×256 box frame (training maps x_img = x + dp_x·w/256),
                ``I`` int64 (P,) fine chart 1..24, ``U``, ``V`` float64 (P,) in [0, 1], ``coarse``
                uint8 (256, 256) coarse label map (0..14) painted from the 14 ``dp_masks`` RLEs in list
                order (later parts overwrite earlier ones; empty entries allowed), or ``None`` when the
                annotation has no ``dp_masks``
==============  ===============================================================================

Evaluation items (a :class:`~humanparse.data.pipeline.SamplePipeline` with ``keep_original=['dp_persons', ...]``)
carry ``gt['dp_persons']``: the untransformed persons at the original resolution, which the DensePose
metric scores against.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO

from humanparse.data.base import DatasetNotFoundError, Reader
from humanparse.data.densepose_surface import UV_SYMMETRY, UVSymmetry, load_uv_symmetry
from humanparse.data.densepose_transforms import DensePoseTransform, transform_flips
from humanparse.data.io import DataError, read_image
from humanparse.data.meta import get_info

log = logging.getLogger(__name__)

NUM_COARSE = 14
NUM_FINE = 24
NUM_KEYPOINTS = 17
DP_FIELDS = ("dp_x", "dp_y", "dp_I", "dp_U", "dp_V")
SPLIT_ALIASES = {"val": "minival"}
LAYOUTS: dict[str, dict[str, tuple[str, tuple[str, ...]]]] = {
    # split -> (annotation file under coco/annotations, image folder candidates under coco/)
    "d2": {
        "train": ("densepose_train2014.json", ("train2014",)),
        "valminusminival": ("densepose_valminusminival2014.json", ("val2014",)),
        "minival": ("densepose_minival2014.json", ("val2014",)),
    },
    "detectron1": {
        "train": ("densepose_coco_2014_train.json", ("coco_train2014", "train2014")),
        "valminusminival": ("densepose_coco_2014_valminusminival.json", ("coco_val2014", "val2014")),
        "minival": ("densepose_coco_2014_minival.json", ("coco_val2014", "val2014")),
        "test": ("densepose_coco_2014_test.json", ("coco_test2014", "test2014")),
    },
}
LAYOUT_HELP = """expected the DensePose-COCO layout {layout!r} under {root}:
  d2:         coco/train2014/, coco/val2014/, coco/annotations/densepose_{{train2014,valminusminival2014,minival2014}}.json
  detectron1: coco/coco_train2014/, coco/coco_val2014/, coco/annotations/densepose_coco_2014_{{train,valminusminival,minival,test}}.json
Get the annotations from {homepage} and the COCO 2014 images from https://cocodataset.org, or run with data.synthetic=true."""


def coco_root(root: Path) -> Path:
    """``root/coco`` if it exists, else ``root`` itself (when it already is the coco folder)."""
    return root / "coco" if (root / "coco").is_dir() else root


def split_files(root: str | Path, split: str, layout: str = "d2") -> list[tuple[str, Path, Path]]:
    """``[(split, annotation json, image folder)]`` for a (possibly ``+``-joined) split."""
    if layout not in LAYOUTS:
        raise ValueError(f"unknown DensePose-COCO layout {layout!r}; expected one of {sorted(LAYOUTS)}")
    root = Path(root)
    base = coco_root(root)
    out = []
    for part in split.split("+"):
        name = SPLIT_ALIASES.get(part.strip(), part.strip())
        if name not in LAYOUTS[layout]:
            raise ValueError(
                f"DensePose-COCO split {part!r} does not exist in layout {layout!r}; "
                f"choose from {sorted(LAYOUTS[layout])} (or 'val' = minival), joined with '+'"
            )
        ann, dirs = LAYOUTS[layout][name]
        img_dir = next((base / d for d in dirs if (base / d).is_dir()), base / dirs[0])
        out.append((name, base / "annotations" / ann, img_dir))
    return out


def _quiet_coco(path: Path) -> COCO:
    """pycocotools COCO index of ``path``; malformed files raise :class:`DataError` naming the file."""
    if not path.is_file():
        raise DataError(path, "annotation file is missing")
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DataError(path, f"malformed JSON ({e})") from e
    if not isinstance(data, dict) or not isinstance(data.get("images"), list):
        raise DataError(path, "not a COCO annotation file: no 'images' list")
    data.setdefault("annotations", [])
    data.setdefault("categories", [{"id": 1, "name": "person"}])
    for key in ("annotations", "categories"):
        if not isinstance(data[key], list):
            raise DataError(path, f"'{key}' is not a list")
    for i, im in enumerate(data["images"]):
        if not isinstance(im, dict) or not {"id", "file_name", "height", "width"} <= set(im):
            raise DataError(path, f"images[{i}] lacks id / file_name / height / width")
    for i, a in enumerate(data["annotations"]):
        if not isinstance(a, dict) or not {"id", "image_id", "bbox"} <= set(a):
            raise DataError(path, f"annotations[{i}] lacks id / image_id / bbox")
    coco = COCO()
    coco.dataset = data
    with contextlib.redirect_stdout(io.StringIO()):
        try:
            coco.createIndex()
        except (KeyError, TypeError) as e:
            raise DataError(path, f"inconsistent COCO index ({e})") from e
    unknown = {a["image_id"] for a in data["annotations"]} - set(coco.imgs)
    if unknown:
        raise DataError(path, f"annotations refer to image ids absent from 'images': {sorted(unknown)[:5]}")
    return coco


def paint_coarse(dp_masks: Sequence, path: Path | str = "", ann_id: int | str = "?") -> np.ndarray:
    """256×256 coarse label map from the ``dp_masks`` RLE list: label i (1..14) painted where mask i is set,
    in list order, so later parts overwrite earlier ones (detectron2's rule); empty entries are skipped."""
    if not isinstance(dp_masks, (list, tuple)) or len(dp_masks) > NUM_COARSE:
        raise DataError(path, f"annotation {ann_id}: dp_masks must be a list of at most {NUM_COARSE} RLEs")
    labels, rles = [], []
    for i, rle in enumerate(dp_masks, start=1):
        if not rle:
            continue
        try:
            r = dict(rle)
            if isinstance(r.get("counts"), list):
                r = mask_utils.frPyObjects(r, *r["size"])
            if [int(v) for v in r["size"]] != [256, 256]:
                raise DataError(
                    path, f"annotation {ann_id}: dp_masks[{i - 1}] has size {r['size']}, expected [256, 256]"
                )
            if isinstance(r["counts"], str):
                r["counts"] = r["counts"].encode("ascii")
        except (TypeError, ValueError, KeyError, AttributeError) as e:
            raise DataError(path, f"annotation {ann_id}: dp_masks[{i - 1}] is not a COCO RLE ({e})") from e
        labels.append(i)
        rles.append(r)
    if not rles:
        return np.zeros((256, 256), dtype=np.uint8)
    try:
        m = mask_utils.decode(rles)  # (256, 256, K)
    except (TypeError, ValueError) as e:
        raise DataError(path, f"annotation {ann_id}: undecodable dp_masks ({e})") from e
    # painting in list order = the largest label whose mask is set (labels grow with the position)
    return (m * np.asarray(labels, dtype=np.uint8)[None, None, :]).max(axis=2).astype(np.uint8)


def dense_points(ann: dict, path: Path | str = "") -> dict:
    """The ``dp`` dict of one annotation (empty arrays without ``dp_x``); inconsistent arrays raise."""
    aid = ann.get("id", "?")
    has = "dp_x" in ann
    if has:
        missing = [k for k in DP_FIELDS if k not in ann]
        if missing:
            raise DataError(path, f"annotation {aid}: has dp_x but lacks {missing}")
        try:
            arrs = {k: np.asarray(ann[k], dtype=np.float64).reshape(-1) for k in DP_FIELDS}
        except (TypeError, ValueError) as e:
            raise DataError(path, f"annotation {aid}: non-numeric dense point values ({e})") from e
        lens = {k: len(v) for k, v in arrs.items()}
        if len(set(lens.values())) != 1:
            raise DataError(path, f"annotation {aid}: dense point arrays differ in length {lens}")
        if not all(np.all(np.isfinite(v)) for v in arrs.values()):
            raise DataError(path, f"annotation {aid}: non-finite dense point values")
        parts = arrs["dp_I"]
        if parts.size and (np.any(parts != np.round(parts)) or parts.min() < 1 or parts.max() > NUM_FINE):
            raise DataError(
                path,
                f"annotation {aid}: dp_I values must be integers 1..{NUM_FINE}, "
                f"got {np.unique(parts)[:10].tolist()}",
            )
        for k in ("dp_U", "dp_V"):
            if arrs[k].size and (arrs[k].min() < 0 or arrs[k].max() > 1):
                raise DataError(path, f"annotation {aid}: {k} outside [0, 1]")
        for k in ("dp_x", "dp_y"):
            if arrs[k].size and (arrs[k].min() < 0 or arrs[k].max() > 256):
                raise DataError(path, f"annotation {aid}: {k} outside the 256x256 box frame [0, 256]")
        dp = {
            "x": arrs["dp_x"],
            "y": arrs["dp_y"],
            "I": parts.astype(np.int64),
            "U": arrs["dp_U"],
            "V": arrs["dp_V"],
        }
    else:
        z = np.zeros(0, dtype=np.float64)
        dp = {"x": z, "y": z.copy(), "I": np.zeros(0, np.int64), "U": z.copy(), "V": z.copy()}
    dp["coarse"] = paint_coarse(ann["dp_masks"], path, aid) if "dp_masks" in ann else None
    return dp


def segmentation_mask(ann: dict, height: int, width: int, path: Path | str = "") -> np.ndarray:
    """bool (H, W) mask of a COCO ``segmentation`` (polygons, uncompressed or compressed RLE)."""
    segm = ann.get("segmentation")
    if segm is None or (isinstance(segm, list) and len(segm) == 0):
        return np.zeros((height, width), dtype=bool)
    try:
        if isinstance(segm, list):
            rle = mask_utils.merge(mask_utils.frPyObjects(segm, height, width))
        elif isinstance(segm, dict) and isinstance(segm.get("counts"), list):
            rle = mask_utils.frPyObjects(segm, height, width)
        elif isinstance(segm, dict):
            rle = segm
        else:
            raise TypeError(f"unsupported type {type(segm).__name__}")
        m = mask_utils.decode(rle)
    except (TypeError, ValueError, KeyError, IndexError) as e:
        raise DataError(path, f"annotation {ann.get('id', '?')}: malformed segmentation ({e})") from e
    if m.shape != (height, width):
        raise DataError(
            path,
            f"annotation {ann.get('id', '?')}: segmentation is {m.shape[1]}x{m.shape[0]} but the "
            f"image is {width}x{height}",
        )
    return m.astype(bool)


def person_from_annotation(
    ann: dict, height: int, width: int, path: Path | str = "", decode_mask: bool = True
) -> dict:
    """One person dict (module docstring) from a DensePose-COCO annotation. With ``decode_mask=False``
    the mask is left undecoded (``mask`` None, ``segmentation`` kept) for the evaluator, which needs it
    only for GPSm of persons without ``dp_masks``."""
    aid = ann.get("id", "?")
    try:
        bbox = np.asarray(ann["bbox"], dtype=np.float64).reshape(4)
    except (TypeError, ValueError) as e:
        raise DataError(path, f"annotation {aid}: bbox must be [x, y, w, h] ({e})") from e
    if not np.all(np.isfinite(bbox)) or bbox[2] < 0 or bbox[3] < 0:
        raise DataError(path, f"annotation {aid}: invalid bbox {bbox.tolist()}")
    kp = np.zeros((NUM_KEYPOINTS, 3), dtype=np.float32)
    if ann.get("keypoints"):
        k = np.asarray(ann["keypoints"], dtype=np.float32).reshape(-1)
        if k.size != 3 * NUM_KEYPOINTS:
            raise DataError(path, f"annotation {aid}: {k.size} keypoint values, expected {3 * NUM_KEYPOINTS}")
        kp = k.reshape(NUM_KEYPOINTS, 3)
    area = ann.get("area")
    mask = segmentation_mask(ann, height, width, path) if decode_mask else None
    if area is None:
        area = (mask if mask is not None else segmentation_mask(ann, height, width, path)).sum()
    return {
        "id": int(aid) if isinstance(aid, (int, np.integer)) else aid,
        "category_id": int(ann.get("category_id", 1)),
        "bbox": bbox,
        "box": np.array([bbox[0], bbox[1], bbox[0] + bbox[2], bbox[1] + bbox[3]], dtype=np.float32),
        "area": float(area),
        "iscrowd": int(bool(ann.get("iscrowd", 0))),
        "mask": mask,
        "segmentation": ann.get("segmentation"),
        "keypoints": kp,
        "has_dp": "dp_x" in ann,
        "dp": dense_points(ann, path),
    }


def read_coco(json_path: str | Path) -> COCO:
    """pycocotools index of a DensePose-COCO json (checked; errors name the file)."""
    return _quiet_coco(Path(json_path))


def load_gt_images(
    json_path: str | Path, category_id: int | None = 1, decode_masks: bool = True
) -> list[dict]:
    """Every image of a DensePose-COCO json, sorted by id, as ``{image_id, file_name, height, width,
    persons}`` (the persons of ``category_id``, in file order; all categories with ``None``). The
    standalone evaluator and the metric tests read the ground truth through this function."""
    return images_from_coco(read_coco(json_path), json_path, category_id, decode_masks)


def images_from_coco(
    coco: COCO, path: str | Path, category_id: int | None = 1, decode_masks: bool = True
) -> list[dict]:
    """:func:`load_gt_images` for an already loaded index."""
    path = Path(path)
    out = []
    for iid in sorted(coco.imgs):
        im = coco.imgs[iid]
        h, w = int(im["height"]), int(im["width"])
        anns = [
            a
            for a in coco.imgToAnns.get(iid, [])
            if category_id is None or a.get("category_id", 1) == category_id
        ]
        out.append(
            {
                "image_id": iid,
                "file_name": im["file_name"],
                "height": h,
                "width": w,
                "persons": [person_from_annotation(a, h, w, path, decode_masks) for a in anns],
            }
        )
    return out


def person_to_tensors(p: dict) -> dict:
    """Person dict with torch tensors (for the collate); ``dp.coarse`` None stays None."""
    out = dict(p)
    out["box"] = torch.as_tensor(np.asarray(p["box"], np.float32))
    out["bbox"] = torch.as_tensor(np.asarray(p["bbox"], np.float64))
    out["mask"] = torch.from_numpy(np.ascontiguousarray(p["mask"]))
    out["keypoints"] = torch.as_tensor(np.asarray(p["keypoints"], np.float32))
    dp = p["dp"]
    out["dp"] = {
        "x": torch.as_tensor(np.asarray(dp["x"], np.float32)),
        "y": torch.as_tensor(np.asarray(dp["y"], np.float32)),
        "I": torch.as_tensor(np.asarray(dp["I"], np.int64)),
        "U": torch.as_tensor(np.asarray(dp["U"], np.float32)),
        "V": torch.as_tensor(np.asarray(dp["V"], np.float32)),
        "coarse": None
        if dp["coarse"] is None
        else torch.from_numpy(np.ascontiguousarray(dp["coarse"]).astype(np.int64)),
    }
    return out


class DensePoseCOCODataset(Reader):
    """DensePose-COCO persons with boxes, masks, keypoints and dense annotations.

    Args:
        root: folder holding ``coco/`` (or the ``coco`` folder itself).
        split: ``train``, ``valminusminival``, ``minival`` / ``val``, ``test`` (detectron1), ``+``-joined.
        layout: ``d2`` (default) or ``detectron1``.
        uv_symmetry: ``UV_symmetry_transforms.mat`` (file or folder), or ``synthetic``. Needed when the
            transform flips: without it, wrapping the reader in a flipping pipeline raises (a flip of I and x alone
            would corrupt U/V). ``None`` uses the table a synthetic dataset ships in
            its ``synthetic.json`` manifest, if any.
        filter_empty: drop images without any person carrying dense points (training only).
        check_files: verify at construction that every listed image exists.
    """

    info = get_info("densepose_coco")

    def __init__(
        self,
        root: str | Path,
        split: str = "train",
        layout: str = "d2",
        uv_symmetry: str | Path | None = None,
        check_files: bool = True,
        filter_empty: bool = False,
        joint_flip_pairs=None,
    ):
        super().__init__(joint_flip_pairs)
        self.root = Path(root)
        self.split = split
        self.layout = layout
        if not self.root.is_dir():
            raise DatasetNotFoundError(f"DensePose-COCO root {self.root} does not exist; " + self._help())
        self.sources = split_files(self.root, split, layout)
        self.images: list[dict] = []  # {image_id, file_name, height, width, path, anns, ann_file}
        seen: set[int] = set()
        for name, ann_file, img_dir in self.sources:
            if not ann_file.is_file():
                raise DatasetNotFoundError(
                    f"DensePose-COCO {name} annotations {ann_file} not found; " + self._help()
                )
            coco = _quiet_coco(ann_file)
            for iid in sorted(coco.imgs):
                if iid in seen:
                    raise DataError(ann_file, f"image id {iid} also appears in another split of {split!r}")
                seen.add(iid)
                im = coco.imgs[iid]
                anns = coco.imgToAnns.get(iid, [])
                if filter_empty and not any("dp_x" in a for a in anns):
                    continue
                self.images.append(
                    {
                        "image_id": iid,
                        "file_name": im["file_name"],
                        "height": int(im["height"]),
                        "width": int(im["width"]),
                        "path": img_dir / im["file_name"],
                        "anns": anns,
                        "ann_file": ann_file,
                    }
                )
        self.ids = [str(im["image_id"]) for im in self.images]
        if check_files:
            self.check_files()
        self.uv_symmetry = self._symmetry(uv_symmetry)

    def _help(self) -> str:
        return LAYOUT_HELP.format(layout=self.layout, root=self.root, homepage=self.info.homepage)

    def _symmetry(self, uv_symmetry) -> UVSymmetry | None:
        if uv_symmetry is None:
            manifest = self.root / "synthetic.json"
            if manifest.is_file():
                shipped = json.loads(manifest.read_text()).get("uv_symmetry")
                if shipped:
                    uv_symmetry = self.root / shipped
        return None if uv_symmetry is None else load_uv_symmetry(uv_symmetry)

    def adapt_transform(self, transform: Callable | None) -> Callable | None:
        """The transform extended to the dense points (:class:`DensePoseTransform`); a flipping transform
        without the UV symmetry tables is refused."""
        if transform is None:
            return None
        if self.uv_symmetry is None and transform_flips(transform):
            raise ValueError(
                "DensePose-COCO: the transform flips images (augment.flip_prob > 0) but no UV symmetry file is "
                f"configured. Flipping I and x alone corrupts U/V: set "
                f"data.reader_options.uv_symmetry=<path to {UV_SYMMETRY}> (download: "
                "https://dl.fbaipublicfiles.com/densepose/data/UV_symmetry_transforms.mat; not redistributable, "
                "so humanparse never downloads it) or data.augment.flip_prob=0"
            )
        return DensePoseTransform(transform, self.uv_symmetry)

    def check_files(self) -> None:
        missing = [im["path"] for im in self.images if not im["path"].is_file()]
        if missing:
            more = (
                f" ({len(missing) - 1} more images of split {self.split!r} are missing too)"
                if len(missing) > 1
                else ""
            )
            raise DataError(missing[0], f"image file is missing{more}")

    def image_path(self, i: int) -> Path:
        return self.images[i]["path"]

    def load(self, index: int) -> dict:
        rec = self.images[index]
        image = read_image(rec["path"])
        h, w = image.shape[:2]
        if (h, w) != (rec["height"], rec["width"]):
            raise DataError(
                rec["path"], f"image is {w}x{h} but {rec['ann_file']} says {rec['width']}x{rec['height']}"
            )
        persons = [person_from_annotation(a, h, w, rec["ann_file"]) for a in rec["anns"]]
        sample = {
            "image": image,
            "persons": persons,
            "meta": {
                "id": str(rec["image_id"]),
                "image_id": rec["image_id"],
                "file_name": rec["file_name"],
                "dataset": "densepose_coco",
                "split": self.split,
                "image_path": str(rec["path"]),
                "orig_size": (h, w),
            },
        }
        return sample

    def to_tensors(self, sample: dict) -> dict:
        out = super().to_tensors(sample)
        out["persons"] = [person_to_tensors(p) for p in out["persons"]]
        return out
