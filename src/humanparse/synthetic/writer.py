"""File-writing helpers shared by the dataset writers (ATR, PASCAL-Person-Part, CIHP, MHP v2.0).

The generator core (skeletons, rendering, scenes, tag vocabulary) knows nothing about files; these
helpers do the rest the same way for every writer: per-image random generators, atomic output
folders, JPEG / index-PNG / 3-channel-PNG writers, the ``synthetic.json`` manifest and pseudo-pose
entries (``humanparse.data.pseudo_pose``) from the rendered skeletons.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from humanparse.data.meta import COCO_JOINTS, LIP_JOINTS, voc_palette
from humanparse.data.pseudo_pose import pose_entry
from humanparse.synthetic.scene import Scene

GENERATOR_VERSION = "1"
SPLIT_CODES = {"train": 0, "val": 1, "test": 2, "extra": 3}
PSEUDO_POSE_SOURCE = "synthetic (humanparse.synthetic skeletons, COCO-17)"
_PALETTE = voc_palette(256).reshape(-1).tolist()

# the LIP joint whose visibility stands for each COCO keypoint (face points: the head)
_LIP = {n: i for i, n in enumerate(LIP_JOINTS)}
COCO_VISIBILITY_JOINT = tuple(
    _LIP["B_Head"]
    if n in ("nose", "left_eye", "right_eye", "left_ear", "right_ear")
    else _LIP[("L_" if n.startswith("left") else "R_") + n.split("_", 1)[1].capitalize()]
    for n in COCO_JOINTS
)
_FRONT_FACE = {COCO_JOINTS.index(n) for n in ("nose", "left_eye", "right_eye")}


def image_rng(seed: int, split: str, index: int) -> np.random.Generator:
    """Generator of image ``index`` of ``split``: its content does not depend on the other images."""
    return np.random.default_rng([seed, SPLIT_CODES[split], index])


def draw_size(rng: np.random.Generator, image_size) -> tuple[int, int]:
    """(H, W), each side drawn from ``image_size = (min_side, max_side)``."""
    lo, hi = int(image_size[0]), int(image_size[1])
    return int(rng.integers(lo, hi + 1)), int(rng.integers(lo, hi + 1))


def check_image_size(image_size, minimum: int = 16) -> tuple[int, int]:
    lo, hi = int(image_size[0]), int(image_size[1])
    if not minimum <= lo <= hi:
        raise ValueError(
            f"image_size must be (min_side, max_side) with {minimum} <= min_side <= max_side, "
            f"got {image_size}"
        )
    return lo, hi


@contextlib.contextmanager
def atomic_dataset_dir(root: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary folder ``<root>.tmp-<pid>``; on success it is moved to ``root`` with
    :func:`os.replace`, on failure removed, so a half-written dataset never appears under ``root``.
    Refuses (``FileExistsError``) when ``root`` exists and is not an empty directory."""
    root = Path(root)
    if root.exists() and (not root.is_dir() or any(root.iterdir())):
        raise FileExistsError(f"{root} exists and is not an empty directory; refusing to overwrite it")
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = root.parent / f"{root.name}.tmp-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    try:
        yield tmp
        if root.exists():
            root.rmdir()  # empty (checked above)
        os.replace(tmp, root)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def write_jpeg(path: Path, image: np.ndarray, quality: int = 95) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(
        str(path), np.ascontiguousarray(image[..., ::-1]), [cv2.IMWRITE_JPEG_QUALITY, quality]
    ):
        raise OSError(f"could not write {path}")


def write_index_png(path: Path, label: np.ndarray, palette: bool = False) -> None:
    """Single-channel index PNG: mode ``P`` (VOC palette) or ``L``; 16-bit when values exceed 255."""
    path.parent.mkdir(parents=True, exist_ok=True)
    label = np.asarray(label)
    if label.max(initial=0) > 255:
        Image.fromarray(label.astype(np.uint16)).save(path)
    elif palette:
        im = Image.fromarray(label.astype(np.uint8), mode="L").convert("P")
        im.putpalette(_PALETTE)
        im.save(path)
    else:
        Image.fromarray(label.astype(np.uint8), mode="L").save(path)


def write_three_channel_png(path: Path, label: np.ndarray) -> None:
    """MHP v2.0 annotation file: RGB PNG, channel 0 = label, channels 1-2 = 0 (as released)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rgb = np.zeros((*label.shape, 3), dtype=np.uint8)
    rgb[..., 0] = label
    Image.fromarray(rgb, mode="RGB").save(path)


def write_ids(path: Path, ids: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{i}\n" for i in ids))


def write_manifest(tmp: Path, manifest: dict) -> None:
    (tmp / "synthetic.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")


def pseudo_pose_entries(
    rng: np.random.Generator, image_id: str, scene: Scene, person_ids: dict[int, int], miss_prob: float = 0.03
) -> list[dict]:
    """Pseudo-pose entries (:mod:`humanparse.data.pseudo_pose`) of the scene persons that have a
    ``person_ids`` entry (scene person id -> written person id), from each skeleton's COCO keypoints.

    Emulates an estimator: joints outside the image are absent (score 0), face points of persons seen
    from the back are absent, visible joints score 0.9, occluded ones 0.4, and each joint is missed
    (score 0) with probability ``miss_prob``.
    """
    h, w = scene.height, scene.width
    out = []
    for p in scene.persons:
        if p.person_id not in person_ids:
            continue
        pts = p.skeleton.coco_keypoints()
        inside = (pts[:, 0] >= 0) & (pts[:, 0] <= w - 1) & (pts[:, 1] >= 0) & (pts[:, 1] <= h - 1)
        vis = p.visible[list(COCO_VISIBILITY_JOINT)]
        scores = np.where(vis, 0.9, 0.4)
        scores[~inside] = 0.0
        if p.facing == "back":
            scores[list(_FRONT_FACE)] = 0.0
        scores[rng.random(len(scores)) < miss_prob] = 0.0
        out.append(pose_entry(image_id, person_ids[p.person_id], pts, scores, PSEUDO_POSE_SOURCE))
    return out


def dir_size(path: Path) -> int:
    """Bytes of every file under ``path``."""
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file())
