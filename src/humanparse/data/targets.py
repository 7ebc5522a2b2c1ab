"""Derived targets computed from the annotations (``shared/spec/datasets.md`` §7 and §8).

Each maker is a callable on a sample dict. ``stage = "pre"`` makers run on the original-resolution
sample before the geometric transform (their output is then warped like a label, nearest, pad 0);
``stage = "post"`` makers run on the augmented input-frame sample.
"""

from __future__ import annotations

import cv2
import numpy as np

from humanparse.data.meta import IGNORE_INDEX, get_info


def semantic_edges(label: np.ndarray, width: int = 3, ignore_index: int = IGNORE_INDEX) -> np.ndarray:
    """CorrPM / CE2P semantic-edge map (§7.2): {0, 1} uint8.

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
    """PGN instance-edge map (§7.1): pixels where the 3×3 Sobel gradient of the person-id map is non-zero,
    with replicate border (MATLAB ``imgradient``). About 2 px wide on person/background and
    person/person boundaries; part/part boundaries inside a person are not edges. {0, 1} uint8."""
    f = np.asarray(person_ids, dtype=np.float32)
    sx = cv2.Sobel(f, cv2.CV_32F, 1, 0, ksize=3, borderType=cv2.BORDER_REPLICATE)
    sy = cv2.Sobel(f, cv2.CV_32F, 0, 1, ksize=3, borderType=cv2.BORDER_REPLICATE)
    return ((sx != 0) | (sy != 0)).astype(np.uint8)


def pose_heatmaps(keypoints: np.ndarray, input_size: tuple[int, int], stride: int = 4, sigma: float = 7.0) -> np.ndarray:
    """CorrPM Gaussian joint heatmaps (§7.3): float32 (J, H/stride, W/stride).

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
    """Grapy-ML level-1 (bg/person) or level-2 (bg/head/torso/arms/legs) map of a fine label map (§8)."""
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


class InstanceEdges:
    """``sample['instance_edge']`` from the original person-id map (PGN edge target); warped afterwards."""

    stage = "pre"

    def __call__(self, sample: dict) -> dict:
        if sample.get("person_ids") is None:
            raise KeyError(f"{sample.get('meta', {}).get('id')}: instance edges need a person-id map "
                           "(datasets without persons, LIP and ATR, have no instance edges)")
        sample["instance_edge"] = instance_edges(sample["person_ids"])
        return sample


class PoseHeatmaps:
    """``sample['heatmaps']`` (J, H/stride, W/stride) from the transformed keypoints (CorrPM pose target)."""

    stage = "post"

    def __init__(self, stride: int = 4, sigma: float = 7.0):
        self.stride = stride
        self.sigma = sigma

    def __call__(self, sample: dict) -> dict:
        h, w = sample["semantic"].shape[-2:] if "semantic" in sample else sample["meta"]["input_size"]
        kp = sample.get("keypoints")
        if kp is None:
            raise KeyError(f"{sample.get('meta', {}).get('id')}: pose heatmaps need keypoints")
        sample["heatmaps"] = pose_heatmaps(kp, (h, w), self.stride, self.sigma)
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
