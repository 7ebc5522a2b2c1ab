"""Derived targets computed from the annotations (as the released CorrPM, PGN and Grapy-ML code do).

Each maker is a callable on a sample dict. ``stage = "pre"`` makers run on the original-resolution
sample before the geometric transform (their output is then warped like a label, nearest, pad 0);
``stage = "post"`` makers run on the augmented input-frame sample.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from humanparse.data.meta import IGNORE_INDEX, get_info


def semantic_edges(label: np.ndarray, width: int = 3, ignore_index: int = IGNORE_INDEX) -> np.ndarray:
    """CorrPM / CE2P semantic-edge map (CorrPM ``target_generation.py``): {0, 1} uint8.

    Pixel (i, j) is marked when its label differs from its neighbour above (i−1, j), right (i, j+1),
    lower-right (i+1, j+1) or lower-left (i+1, j−1), the neighbour lying inside the map and neither
    label being ``ignore_index``; the marks are then dilated with a ``width``×``width`` square.
    """
    lab = np.asarray(label)
    h, w = lab.shape
    mark = np.zeros((h, w), dtype=bool)
    valid = lab != ignore_index

    def differ(a_sl, b_sl):
        a, b = lab[a_sl], lab[b_sl]
        return (a != b) & valid[a_sl] & valid[b_sl]

    mark[1:, :] |= differ((slice(1, h), slice(None)), (slice(0, h - 1), slice(None)))  # above
    mark[:, :-1] |= differ((slice(None), slice(0, w - 1)), (slice(None), slice(1, w)))  # right
    mark[:-1, :-1] |= differ((slice(0, h - 1), slice(0, w - 1)), (slice(1, h), slice(1, w)))  # lower-right
    mark[:-1, 1:] |= differ((slice(0, h - 1), slice(1, w)), (slice(1, h), slice(0, w - 1)))  # lower-left
    out = mark.astype(np.uint8)
    if width > 1:
        out = cv2.dilate(out, np.ones((width, width), np.uint8))
    return out


def instance_edges(person_ids: np.ndarray) -> np.ndarray:
    """PGN instance-edge map (CIHP_PGN ``write_edge.m``): pixels where the 3×3 Sobel gradient of the
    person-id map is non-zero, with replicate border (MATLAB ``imgradient``). About 2 px wide on
    person/background and person/person boundaries; part/part boundaries inside a person are not
    edges. {0, 1} uint8."""
    f = np.asarray(person_ids, dtype=np.float32)
    sx = cv2.Sobel(f, cv2.CV_32F, 1, 0, ksize=3, borderType=cv2.BORDER_REPLICATE)
    sy = cv2.Sobel(f, cv2.CV_32F, 0, 1, ksize=3, borderType=cv2.BORDER_REPLICATE)
    return ((sx != 0) | (sy != 0)).astype(np.uint8)


def pose_heatmaps(
    keypoints: np.ndarray, input_size: tuple[int, int], stride: int = 4, sigma: float = 7.0
) -> np.ndarray:
    """CorrPM Gaussian joint heatmaps (CorrPM ``generate_pose``): float32 (J, H/stride, W/stride).

    ``keypoints`` is (J, 3) in input pixels (x, y, present). The centre is
    ``(int(x/stride + 0.5), int(y/stride + 0.5))`` (truncation toward zero), the patch a peak-1
    unnormalised Gaussian of ``sigma`` grid pixels truncated at radius ``int(3·sigma)``, written into its
    channel and clipped to the grid. Absent joints and patches entirely off the grid give zero maps.
    """
    kp = np.asarray(keypoints, dtype=np.float64)
    gh, gw = input_size[0] // stride, input_size[1] // stride
    out = np.zeros((len(kp), gh, gw), dtype=np.float32)
    r = int(3 * sigma)
    ax = np.arange(-r, r + 1, dtype=np.float64)
    patch = np.exp(-(ax[None, :] ** 2 + ax[:, None] ** 2) / (2 * sigma**2)).astype(np.float32)
    for j, (x, y, present) in enumerate(kp):
        if present <= 0:
            continue
        mx, my = int(x / stride + 0.5), int(y / stride + 0.5)
        x0, y0, x1, y1 = mx - r, my - r, mx + r + 1, my + r + 1
        if x0 >= gw or y0 >= gh or x1 <= 0 or y1 <= 0:
            continue
        gx0, gy0, gx1, gy1 = max(0, x0), max(0, y0), min(gw, x1), min(gh, y1)
        out[j, gy0:gy1, gx0:gx1] = patch[gy0 - y0 : gy1 - y0, gx0 - x0 : gx1 - x0]
    return out


def hierarchy_labels(label: np.ndarray, dataset: str, level: int) -> np.ndarray:
    """Grapy-ML level-1 (bg/person) or level-2 (bg/head/torso/arms/legs) map of a fine label map."""
    return get_info(dataset).hierarchy_lut(level)[np.asarray(label, dtype=np.uint8)]


# --- makers usable in ``data.targets`` -------------------------------------------------------------
class SemanticEdges:
    """``sample['semantic_edge']`` from the augmented label (CorrPM edge branch target)."""

    stage = "post"

    def __init__(self, width: int = 3):
        self.width = width

    def __call__(self, sample: dict) -> dict:
        sample["semantic_edge"] = semantic_edges(sample["semantic"], self.width)
        return sample


class DerivedCache:
    """Disk cache of derived uint8 maps under ``<cache_dir>/derived/<name>/``.

    The key hashes the source files' absolute paths, sizes and modification times (plus ``params``),
    so an edited annotation is recomputed. Entries are PNGs written atomically (temporary file +
    ``os.replace``), safe with several loader workers and processes writing the same entry.
    """

    def __init__(self, cache_dir: str | os.PathLike, name: str, params: Mapping | None = None):
        self.dir = Path(cache_dir) / "derived" / name
        self.params = json.dumps(dict(params or {}), sort_keys=True)

    def key(self, sources: Sequence[str | os.PathLike]) -> str:
        h = hashlib.sha1(self.params.encode())
        for src in sources:
            st = os.stat(src)
            h.update(f"{os.path.abspath(src)}|{st.st_size}|{st.st_mtime_ns};".encode())
        return h.hexdigest()

    def path(self, key: str) -> Path:
        return self.dir / key[:2] / f"{key}.png"

    def get(self, key: str) -> np.ndarray | None:
        p = self.path(key)
        if not p.is_file():
            return None
        try:
            with Image.open(p) as im:
                return np.asarray(im)
        except OSError:  # a truncated entry from a killed writer: recompute and overwrite
            return None

    def put(self, key: str, value: np.ndarray) -> None:
        p = self.path(key)
        p.parent.mkdir(parents=True, exist_ok=True)
        tmp = p.with_name(f"{p.stem}.tmp-{os.getpid()}.png")
        Image.fromarray(np.asarray(value, dtype=np.uint8)).save(tmp)
        os.replace(tmp, p)


class InstanceEdges:
    """``sample['instance_edge']`` from the original person-id map (PGN edge target); warped afterwards.

    Samples that already carry an ``instance_edge`` (the PGN layout ships ``edges/``) keep it.

    Args:
        cache: ``none`` (compute at every sample, default) or ``disk`` (:class:`DerivedCache` under
            ``cache_dir``, keyed by the person-id source files in ``meta['sources']``). Measured on a
            CIHP-sized 480×500 map, the two Sobel passes take ≈0.2 ms and reading the cached PNG back
            ≈0.5 ms, so the cache only pays where the person-id map is expensive to obtain without it.
        cache_dir: root of the disk cache (``data.cache_dir``).
    """

    stage = "pre"

    def __init__(self, cache: str = "none", cache_dir: str | os.PathLike | None = None):
        if cache not in ("none", "disk"):
            raise ValueError(f"InstanceEdges cache must be 'none' or 'disk', got {cache!r}")
        if cache == "disk" and not cache_dir:
            raise ValueError("InstanceEdges(cache='disk') needs cache_dir")
        self.cache = (
            DerivedCache(cache_dir, "instance_edge", {"rule": "sobel3-replicate"})
            if cache == "disk"
            else None
        )

    def __call__(self, sample: dict) -> dict:
        if sample.get("instance_edge") is not None:
            return sample
        if sample.get("person_ids") is None:
            raise KeyError(
                f"{sample.get('meta', {}).get('id')}: instance edges need a person-id map "
                "(datasets without persons, LIP and ATR, have no instance edges)"
            )
        sources = sample.get("meta", {}).get("sources", {}).get("person_ids")
        if self.cache is None or not sources:
            sample["instance_edge"] = instance_edges(sample["person_ids"])
            return sample
        key = self.cache.key(sources)
        edge = self.cache.get(key)
        if edge is None or edge.shape != sample["person_ids"].shape:
            edge = instance_edges(sample["person_ids"])
            self.cache.put(key, edge)
        sample["instance_edge"] = edge
        return sample


class PoseHeatmaps:
    """``sample['heatmaps']`` (J, H/stride, W/stride) from the transformed keypoints (CorrPM pose target).

    Multi-person keypoints ``(P, J, 3)`` (CIHP pseudo pose on whole images) give the per-pixel maximum
    over the persons' maps, so each person's joint keeps its own peak.
    """

    stage = "post"

    def __init__(self, stride: int = 4, sigma: float = 7.0):
        self.stride = stride
        self.sigma = sigma

    def __call__(self, sample: dict) -> dict:
        h, w = sample["semantic"].shape[-2:] if "semantic" in sample else sample["meta"]["input_size"]
        kp = sample.get("keypoints")
        if kp is None:
            raise KeyError(
                f"{sample.get('meta', {}).get('id')}: pose heatmaps need keypoints (LIP pose, or a "
                "pseudo-pose file for ATR/CIHP, see README 'Datasets')"
            )
        kp = np.asarray(kp)
        if kp.ndim == 3:
            maps = [pose_heatmaps(k, (h, w), self.stride, self.sigma) for k in kp]
            heat = (
                np.max(maps, axis=0)
                if maps
                else np.zeros((kp.shape[1], h // self.stride, w // self.stride), np.float32)
            )
        else:
            heat = pose_heatmaps(kp, (h, w), self.stride, self.sigma)
        sample["heatmaps"] = heat
        return sample


class HierarchyLabels:
    """``sample['level1']`` and ``sample['level2']`` (Grapy-ML GPM levels) from the augmented label."""

    stage = "post"

    def __init__(self, dataset: str):
        self.dataset = dataset
        info = get_info(dataset)
        self.lut1, self.lut2 = info.hierarchy_lut(1), info.hierarchy_lut(2)

    def __call__(self, sample: dict) -> dict:
        lab = sample["semantic"].astype(np.uint8)
        sample["level1"] = self.lut1[lab]
        sample["level2"] = self.lut2[lab]
        return sample


# --- makers by name (``data.targets: [semantic_edge, pose_heatmaps]``) ---------------------------
TARGET_MAKERS = {
    "semantic_edge": SemanticEdges,
    "instance_edge": InstanceEdges,
    "pose_heatmaps": PoseHeatmaps,
    "hierarchy": HierarchyLabels,
}


def build_target(name: str, dataset: str, options: Mapping | None = None, cache_dir: str | None = None):
    """A maker from its ``TARGET_MAKERS`` name with ``options``; ``hierarchy`` gets the dataset and
    ``instance_edge`` the cache folder (when its ``cache`` option asks for one)."""
    if name not in TARGET_MAKERS:
        raise KeyError(f"unknown derived target {name!r}; known: {sorted(TARGET_MAKERS)}")
    kwargs = dict(options or {})
    if name == "hierarchy":
        kwargs.setdefault("dataset", dataset)
    if name == "instance_edge" and kwargs.get("cache", "none") != "none":
        kwargs.setdefault("cache_dir", cache_dir)
    return TARGET_MAKERS[name](**kwargs)
