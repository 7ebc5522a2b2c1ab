"""Single-person crops of multi-person datasets, for single-person parsers (CorrPM on CIHP).

CorrPM paper §4.1: persons are cut out of the multi-person images with their masks into single-person
images for training (93,213 CIHP crops); at test time persons are cut out "in the same way", parsed one
by one and merged back into the image. The project fixes the
unstated parts as conventions (unverified against the authors' code, which is not public):

* **training crops** come from the ground-truth person ids (``Human_ids``): one sample per person, the
  image masked to the person (other pixels 0) and cropped to the person's tight box (optionally
  enlarged by ``margin``), its label the person's part map (0 outside the person inside the box); the
  usual box-mode warp then pads the crop to 1:1 (image 0, label 255), exactly as for a LIP image;
* **test-time persons** are either the ground-truth persons — an **upper bound**, since a real system
  does not know them — or the masks of a person detector read from a COCO-style results file
  (``[{"image_id", "segmentation" (RLE), "score", "category_id"}]``, e.g. Mask R-CNN's output);
* **merging**: each person's argmax, warped back to the image, is pasted inside that person's mask in
  ascending score order (higher scores win where masks overlap); pixels outside every mask are
  background. :meth:`humanparse.tasks.parsing.SemanticParsingTask.predict_persons` does this.

:class:`PersonCropDataset` wraps any reader whose samples expose ``persons`` (dicts with ``id``, ``mask``,
optionally ``keypoints``) or a ``person_ids`` map; :class:`PersonCropDataModule` is the datamodule that
builds it (``data._target_`` in ``experiment=corrpm_cihp``).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

from humanparse.data.base import Reader
from humanparse.data.datamodule import ParsingDataModule, file_lock, plain
from humanparse.data.instances import persons_from_ids
from humanparse.data.io import DataError
from humanparse.data.meta import COCO_JOINT_FLIP_PAIRS
from humanparse.data.transforms import FlipTables, translate

log = logging.getLogger(__name__)

PERSON_SOURCES = ("gt", "detections")


def sample_persons(sample: dict) -> list[dict]:
    """The GT persons of a raw multi-person sample: its ``persons`` list, or derived from ``person_ids``."""
    if sample.get("persons") is not None:
        return list(sample["persons"])
    if sample.get("person_ids") is not None and sample.get("semantic") is not None:
        return persons_from_ids(sample["semantic"], sample["person_ids"])
    raise KeyError(
        f"{sample.get('meta', {}).get('id')}: person crops need 'persons' or 'person_ids' in the sample"
    )


def crop_box(mask: np.ndarray, margin: float = 0.0) -> tuple[int, int, int, int] | None:
    """(x0, y0, x1, y1), exclusive ends, of a mask's tight box enlarged by ``margin`` × its size per side."""
    rows = np.flatnonzero(mask.any(1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(mask.any(0))
    x0, y0, x1, y1 = int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1
    if margin > 0:
        dx, dy = int(round(margin * (x1 - x0))), int(round(margin * (y1 - y0)))
        h, w = mask.shape
        x0, y0, x1, y1 = max(0, x0 - dx), max(0, y0 - dy), min(w, x1 + dx), min(h, y1 + dy)
    return x0, y0, x1, y1


def cut_person(
    sample: dict, mask: np.ndarray, keypoints: np.ndarray | None, margin: float = 0.0, mask_image: bool = True
) -> dict | None:
    """One person's crop as a raw single-person sample (``None`` for an empty mask).

    ``meta['crop_box']`` holds (x0, y0, x1, y1) in the image; the label (when the sample has one) is the
    semantic map inside the person's mask and background elsewhere in the box.
    """
    box = crop_box(mask, margin)
    if box is None:
        return None
    x0, y0, x1, y1 = box
    m = mask[y0:y1, x0:x1]
    image = sample["image"][y0:y1, x0:x1]
    out: dict = {"image": image * m[..., None].astype(image.dtype) if mask_image else image.copy()}
    if sample.get("semantic") is not None:
        out["semantic"] = np.where(m, sample["semantic"][y0:y1, x0:x1], 0).astype(np.uint8)
    if keypoints is not None:
        kp = np.array(keypoints, dtype=np.float32, copy=True).reshape(-1, 3)
        present = kp[:, 2] > 0
        kp[present, 0] -= x0
        kp[present, 1] -= y0
        kp[~present] = 0.0
        out["keypoints"] = kp
    meta = dict(sample.get("meta", {}))
    meta.update(
        image_id=meta.get("id"), crop_box=box, orig_size=(y1 - y0, x1 - x0), image_size=tuple(mask.shape)
    )
    out["meta"] = meta
    return out


def read_detections(path: str | Path, category_id: int | None = 1) -> dict[str, list[dict]]:
    """COCO-style instance results → image id (as a string) → [{'segmentation', 'score'}].

    Entries of other categories than ``category_id`` (1 = person in COCO; ``None`` keeps all) are skipped.
    """
    path = Path(path)
    try:
        entries = json.loads(path.read_text())
    except FileNotFoundError:
        raise DataError(
            path,
            "person detections file is missing (run a person detector, e.g. Mask R-CNN, on the split "
            "and save COCO-style results; or evaluate on ground-truth persons, an upper bound, with "
            "data.person_crops.test_persons=gt)",
        ) from None
    except json.JSONDecodeError as e:
        raise DataError(path, f"malformed JSON ({e})") from e
    if not isinstance(entries, list):
        raise DataError(
            path, "expected a list of COCO-style results [{image_id, segmentation, score, category_id}]"
        )
    out: dict[str, list[dict]] = {}
    for i, e in enumerate(entries):
        try:
            if category_id is not None and int(e.get("category_id", category_id)) != category_id:
                continue
            out.setdefault(str(e["image_id"]), []).append(
                {"segmentation": e["segmentation"], "score": float(e["score"])}
            )
        except (KeyError, TypeError, ValueError) as err:
            raise DataError(path, f"entry {i}: malformed ({err})") from err
    return out


def decode_mask(segmentation: dict, size: tuple[int, int]) -> np.ndarray:
    """A COCO RLE (compressed or not) → bool (H, W); its size must be the image's."""
    from pycocotools import mask as mask_utils

    rle = dict(segmentation)
    if isinstance(rle.get("counts"), list):
        rle = mask_utils.frPyObjects(rle, *rle["size"])
    m = mask_utils.decode(rle).astype(bool)
    if m.shape != tuple(size):
        raise ValueError(f"detection mask is {m.shape}, image is {tuple(size)}")
    return m


class PersonCropDataset(Reader):
    """Single-person crops of a multi-person reader (``base``), a reader itself: wrap it in a
    :class:`~humanparse.data.pipeline.SamplePipeline` like any other.

    Training (``train=True``): item k is the k-th (image, GT person) pair, cut by :func:`cut_person`; the
    pipeline then transforms it like any single-person sample (augmentation, derived targets).

    Evaluation: :meth:`load` gives image i with its evaluation persons (``eval_persons``); the pipeline's
    transform, adapted by :meth:`adapt_transform`, turns it into ``person_crops``, a list of ``{'image'
    (3, H, W) input tensor, 'affine' (original image → input, 3×3), 'mask' (bool, original size), 'score',
    'id'}`` in ascending score order, beside ``gt`` (the evaluators' ground truth, kept by the pipeline from
    the whole image) and ``meta`` of the whole image.

    Args:
        base: the multi-person reader (samples with ``persons`` or ``person_ids``).
        train: training crops (GT persons) or evaluation items.
        test_persons: ``gt`` (upper bound) or ``detections`` (``detections`` file) for evaluation items.
        detections: COCO-style results file of a person detector on this split.
        score_threshold: detections below it are dropped.
        margin: enlarge each crop box by this fraction of its size per side.
        mask_image: zero the image outside the person's mask (the paper applies the masks).
        min_pixels: persons with fewer mask pixels are skipped (training) / ignored (evaluation).
        num_joints / joint_flip_pairs: per-person keypoints and their flip pairs when the base label
            space has no joints (COCO-17 pseudo-pose: COCO pairs by default).
        index_cache: folder for the (image, person) index of a split, so it is scanned once.
    """

    def __init__(
        self,
        base: Reader,
        train: bool = True,
        test_persons: str = "gt",
        detections: str | Path | None = None,
        score_threshold: float = 0.5,
        margin: float = 0.0,
        mask_image: bool = True,
        min_pixels: int = 1,
        num_joints: int | None = None,
        joint_flip_pairs: Sequence[Sequence[int]] | None = None,
        index_cache: str | Path | None = None,
    ):
        if test_persons not in PERSON_SOURCES:
            raise ValueError(f"test_persons must be one of {PERSON_SOURCES}, got {test_persons!r}")
        self.info = base.info
        self.base = base
        super().__init__()
        self.train = train
        self.test_persons = test_persons
        self.score_threshold = float(score_threshold)
        self.margin = float(margin)
        self.mask_image = mask_image
        self.min_pixels = int(min_pixels)
        self.detections = None
        if not train and test_persons == "detections":
            if detections is None:
                raise ValueError(
                    "test_persons=detections needs a detections file (data.person_crops.detections.<split>); "
                    "test_persons=gt evaluates on ground-truth persons, an upper bound"
                )
            self.detections = read_detections(detections)
        self.detections_file = str(detections) if detections is not None else None
        if train:
            self.index, joints = self._person_index(index_cache)
            self.ids = [f"{base.ids[i]}_p{pid}" for i, pid in self.index]
        else:
            self.index, joints = [], None
            self.ids = list(base.ids)
        self.num_joints = num_joints or joints or (self.info.num_joints or None)
        self.pose_source = (
            (f"per-person keypoints of {type(base).__name__}" if joints else None) if train else None
        )
        if self.num_joints and not self.info.num_joints:
            pairs = (
                joint_flip_pairs
                if joint_flip_pairs is not None
                else (COCO_JOINT_FLIP_PAIRS if self.num_joints == 17 else ())
            )
            perm = np.arange(self.num_joints)
            for a, b in pairs:
                perm[a], perm[b] = b, a
            self.flip_tables = FlipTables(self.info.flip_permutation(), perm)

    # -- the (image, person) index of a training split --------------------------------------------------
    def _scan(self) -> tuple[list[tuple[int, int]], int | None]:
        index: list[tuple[int, int]] = []
        joints = None
        for i in range(len(self.base)):
            for p in sample_persons(self.base.load(i)):
                if int(np.count_nonzero(p["mask"])) >= self.min_pixels:
                    index.append((i, int(p["id"])))
                    if p.get("keypoints") is not None:
                        joints = len(p["keypoints"])
        return index, joints

    def _person_index(self, cache: str | Path | None) -> tuple[list[tuple[int, int]], int | None]:
        if cache is None:
            return self._scan()
        key = json.dumps(
            {
                "reader": type(self.base).__name__,
                "root": str(getattr(self.base, "root", "")),
                "split": getattr(self.base, "split", ""),
                "ids": hashlib.sha1("\n".join(self.base.ids).encode()).hexdigest(),
                "min_pixels": self.min_pixels,
            },
            sort_keys=True,
        )
        path = Path(cache) / f"persons-{hashlib.sha1(key.encode()).hexdigest()[:12]}.json"
        with file_lock(path.with_suffix(".lock")):
            if path.is_file():
                data = json.loads(path.read_text())
                return [tuple(x) for x in data["index"]], data["joints"]
            log.info(
                "indexing the persons of %s %s (%d images) into %s",
                type(self.base).__name__,
                getattr(self.base, "split", ""),
                len(self.base),
                path,
            )
            index, joints = self._scan()
            path.write_text(json.dumps({"key": json.loads(key), "index": index, "joints": joints}))
        return index, joints

    def __len__(self) -> int:
        return len(self.index) if self.train else len(self.base)

    # -- samples ------------------------------------------------------------------------------------
    def load(self, index: int) -> dict:
        """Training: crop ``index`` as a raw single-person sample. Evaluation: image ``index`` of the base
        reader with ``eval_persons`` (:meth:`eval_persons`), cut into crops by the adapted transform."""
        if not self.train:
            sample = self.base.load(index)
            sample["eval_persons"] = self.eval_persons(sample)
            return sample
        i, pid = self.index[index]
        sample = self.base.load(i)
        person = next((p for p in sample_persons(sample) if int(p["id"]) == pid), None)
        if person is None:
            raise DataError(
                getattr(self.base, "root", "?"),
                f"image {self.base.ids[i]}: person {pid} vanished since indexing",
            )
        crop = cut_person(sample, person["mask"], person.get("keypoints"), self.margin, self.mask_image)
        crop["meta"].update(id=self.ids[index], person_id=pid)
        return crop

    def eval_persons(self, sample: dict) -> list[dict]:
        """Evaluation persons of one image, ascending by score: GT (score 1, by id) or detections."""
        size = sample["image"].shape[:2]
        if self.test_persons == "gt":
            persons = [{"id": int(p["id"]), "mask": p["mask"], "score": 1.0} for p in sample_persons(sample)]
        else:
            sid = str(sample["meta"]["id"])
            dets = self.detections.get(sid)
            if dets is None and sid.isdigit():
                dets = self.detections.get(str(int(sid)))
            persons = [
                {"id": k + 1, "mask": decode_mask(d["segmentation"], size), "score": d["score"]}
                for k, d in enumerate(dets or [])
                if d["score"] >= self.score_threshold
            ]
        persons = [p for p in persons if int(np.count_nonzero(p["mask"])) >= self.min_pixels]
        return sorted(persons, key=lambda p: p["score"])  # stable: ties keep id / file order

    def adapt_transform(self, transform: Callable | None) -> Callable | None:
        """Training crops take the transform as they are; evaluation items are cut into per-person crops,
        each transformed on its own (:class:`CropEach`)."""
        return (
            transform if self.train else CropEach(transform, self.margin, self.mask_image, self.test_persons)
        )


class CropEach:
    """The evaluation transform of :class:`PersonCropDataset`: whole-image sample with ``eval_persons`` →
    ``{'person_crops', 'meta', 'gt'}``, each person cut by :func:`cut_person` and transformed (deterministic
    evaluation transform: no RNG), its affine composed with the crop offset (original image pixels → input)."""

    def __init__(self, transform: Callable | None, margin: float, mask_image: bool, test_persons: str):
        self.transform, self.margin, self.mask_image, self.test_persons = (
            transform,
            margin,
            mask_image,
            test_persons,
        )

    def __call__(self, sample: dict, rng=None) -> dict:
        crops = []
        for p in sample["eval_persons"]:
            crop = cut_person(sample, p["mask"], None, self.margin, self.mask_image)
            crop.pop("semantic", None)
            if self.transform is not None:
                crop = self.transform(crop, None)
            x0, y0 = crop["meta"]["crop_box"][:2]
            crops.append(
                {
                    "image": torch.from_numpy(np.ascontiguousarray(crop["image"])),
                    "affine": crop["meta"]["affine"] @ translate(-x0, -y0),
                    "mask": torch.from_numpy(p["mask"]),
                    "score": p["score"],
                    "id": p["id"],
                }
            )
        out = {"person_crops": crops, "meta": dict(sample["meta"], test_persons=self.test_persons)}
        if "gt" in sample:
            out["gt"] = sample["gt"]
        return out


class PersonCropDataModule(ParsingDataModule):
    """:class:`~humanparse.data.datamodule.ParsingDataModule` over single-person crops of a multi-person
    dataset: the reader of ``name`` is wrapped in :class:`PersonCropDataset` for every split.

    Args:
        person_crops: :class:`PersonCropDataset` options — ``test_persons`` (``gt`` = upper bound, or
            ``detections``), ``detections`` (split name → results file), ``score_threshold``, ``margin``,
            ``mask_image``, ``min_pixels``, ``num_joints``, ``joint_flip_pairs``.
        **kwargs: :class:`ParsingDataModule` arguments.
    """

    def __init__(self, *args, person_crops: dict | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.person_crops = dict(plain(person_crops) or {})

    def build_dataset(self, stage_split: str, train: bool):
        opts = dict(self.person_crops)
        detections = (opts.pop("detections", None) or {}).get(self.splits[stage_split])
        base = self.build_reader(stage_split, train)
        reader = PersonCropDataset(
            base,
            train=train,
            detections=detections,
            index_cache=Path(self.cache_dir) / "person_index",
            **opts,
        )
        return self.pipeline(reader, train, targets=self.targets if train else ())

    def describe(self) -> dict:
        out = super().describe()
        out["person_crops"] = {
            "train": "ground-truth persons",
            "test": "ground-truth persons (upper bound)"
            if self.person_crops.get("test_persons", "gt") == "gt"
            else f"detections {self.person_crops.get('detections')}",
        }
        return out
