"""One training sample per person of a multi-person dataset (CorrPM on CIHP).

CorrPM parses CIHP person by person: each person is cut out of the image, giving 93,213 single-person
training images from CIHP's 28,280 (``shared/spec/models.md`` §3.4, ``datasets.md`` §7.4). The project
cuts persons out with the ground-truth ``Human_ids`` at training time; at test time the crops must come
from a detector (GT masks at test time are forbidden), so the data module applies this wrapper to the
training split only by default (``data.person_crops.splits``).

A crop is the person's tight box enlarged by ``margin`` × its width/height on every side, clipped to
the image. How the paper treats the other persons' pixels inside the crop is not stated; ``others``
chooses: ``ignore`` (255, default: no supervision either way), ``background`` (0) or ``keep``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from humanparse.data.base import ParsingDataset
from humanparse.data.instances import tight_box
from humanparse.data.io import read_label
from humanparse.data.meta import IGNORE_INDEX

log = logging.getLogger(__name__)

OTHERS = ("ignore", "background", "keep")


def person_boxes(reader, index: int) -> list[tuple[int, list[int], int]]:
    """(person id, inclusive box, pixel count) of every person of image ``index``: from ``Human_ids``
    alone when the reader has it (CIHP, converted PASCAL), else from the loaded sample's persons (MHP)."""
    path = reader.human_path(index) if getattr(reader, "human_dir", None) is not None else None
    if path is not None:
        pid = read_label(path)
        counts = np.bincount(pid.ravel().astype(np.int64))
        return [(int(k), tight_box(pid == k).astype(int).tolist(), int(counts[k]))
                for k in np.flatnonzero(counts) if k > 0]
    persons = reader.load(index).get("persons") or []
    return [(int(p["id"]), np.asarray(p["box"]).astype(int).tolist(), int(p["mask"].sum())) for p in persons]


class PersonCropDataset(ParsingDataset):
    """Person crops of ``base`` (a multi-person reader built without transform/targets).

    Args:
        base: the reader (CIHP, PASCAL-Person-Part with instance files, MHP v2.0).
        margin: context around the tight person box, as a fraction of its width / height per side.
        others: ``ignore`` | ``background`` | ``keep``: labels of other persons' pixels in the crop.
        min_pixels: persons with fewer pixels are not used.
        index_cache: JSON file caching the person index (reading every ``Human_ids`` of CIHP's train
            split takes about a minute); rebuilt when the split's id list or annotations change.
    """

    def __init__(self, base: ParsingDataset, margin: float = 0.1, others: str = "ignore", min_pixels: int = 1,
                 index_cache: str | os.PathLike | None = None, transform: Callable | None = None,
                 targets: Sequence[Callable] = (), seed: int = 0, keep_original: bool = False,
                 joint_flip_pairs=None):
        self.info = base.info
        super().__init__(transform, targets, seed, keep_original, joint_flip_pairs)
        if others not in OTHERS:
            raise ValueError(f"person_crops.others must be one of {OTHERS}, got {others!r}")
        if base.transform is not None or base.targets:
            raise ValueError("the base reader of PersonCropDataset must have no transform and no targets")
        self.base = base
        self.margin = float(margin)
        self.others = others
        self.min_pixels = int(min_pixels)
        self.split = getattr(base, "split", None)
        self.units = self._index(Path(index_cache) if index_cache else None)
        self.ids = [f"{base.ids[i]}_{k}" for i, k, _ in self.units]

    def _key(self) -> str:
        h = hashlib.sha1(f"{type(self.base).__name__}|{getattr(self.base, 'root', '')}|{self.split}|"
                         f"{self.min_pixels}".encode())
        h.update("\n".join(self.base.ids).encode())
        hdir = getattr(self.base, "human_dir", None)
        if hdir is not None:
            h.update(str(os.stat(hdir).st_mtime_ns).encode())
        return h.hexdigest()

    def _index(self, cache: Path | None) -> list[tuple[int, int, list[int]]]:
        key = self._key()
        if cache is not None and cache.is_file():
            data = json.loads(cache.read_text())
            if data.get("key") == key:
                return [tuple(u) for u in data["units"]]
        units = []
        for i in range(len(self.base.ids)):
            for k, box, n in person_boxes(self.base, i):
                if n >= max(1, self.min_pixels):
                    units.append((i, k, box))
        if cache is not None:
            cache.parent.mkdir(parents=True, exist_ok=True)
            tmp = cache.with_name(cache.name + f".tmp-{os.getpid()}")
            tmp.write_text(json.dumps({"key": key, "units": units}))
            os.replace(tmp, cache)
        log.info("%s %s: %d person crops from %d images", self.info.name, self.split, len(units), len(self.base.ids))
        return units

    def crop_box(self, box: Sequence[int], height: int, width: int) -> tuple[int, int, int, int]:
        """(x0, y0, x1, y1), exclusive end, of the enlarged box clipped to the image."""
        x1, y1, x2, y2 = box
        mw, mh = self.margin * (x2 - x1 + 1), self.margin * (y2 - y1 + 1)
        return (max(0, math.floor(x1 - mw)), max(0, math.floor(y1 - mh)),
                min(width, math.ceil(x2 + mw) + 1), min(height, math.ceil(y2 + mh) + 1))

    def load(self, index: int) -> dict:
        i, k, box = self.units[index]
        s = self.base.load(i)
        h, w = s["image"].shape[:2]
        x0, y0, x1, y1 = self.crop_box(box, h, w)
        out: dict = {"image": np.ascontiguousarray(s["image"][y0:y1, x0:x1])}
        pid = s["person_ids"][y0:y1, x0:x1] if s.get("person_ids") is not None else None
        if s.get("semantic") is not None:
            sem = s["semantic"][y0:y1, x0:x1].copy()
            if pid is not None and self.others != "keep":
                sem[(pid > 0) & (pid != k)] = IGNORE_INDEX if self.others == "ignore" else 0
            out["semantic"] = sem
        for key in ("person_ids", "instance_ids", "instance_edge"):
            if s.get(key) is not None:
                out[key] = np.ascontiguousarray(s[key][y0:y1, x0:x1])
        if s.get("keypoints") is not None and pid is not None:
            order = [int(v) for v in np.unique(s["person_ids"]) if v > 0]
            kp = np.asarray(s["keypoints"])
            one = kp[order.index(k)].copy() if kp.ndim == 3 and k in order else np.zeros(kp.shape[-2:], np.float32)
            present = one[:, 2] > 0
            one[present, 0] -= x0
            one[present, 1] -= y0
            out["keypoints"] = one
        if s.get("persons") is not None:
            for p in s["persons"]:
                if p["id"] == k:
                    q = {key: v for key, v in p.items() if key not in ("mask", "parts", "box", "keypoints")}
                    q["mask"] = p["mask"][y0:y1, x0:x1]
                    q["parts"] = p["parts"][y0:y1, x0:x1]
                    q["box"] = tight_box(q["mask"])
                    if "keypoints" in out:
                        q["keypoints"] = out["keypoints"].copy()
                    out["persons"] = [q]
        meta = dict(s["meta"])
        meta.update(id=self.ids[index], image_id=self.base.ids[i], person_id=k, index=index,
                    crop_box=[x0, y0, x1, y1], orig_size=out["image"].shape[:2])
        out["meta"] = meta
        return out

    def sample_files(self, index: int) -> dict:
        return self.base.sample_files(self.units[index][0])
