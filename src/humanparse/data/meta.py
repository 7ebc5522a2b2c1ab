"""Facts about the six datasets: class orders, left/right swap tables, joints, palettes, hierarchies.

Everything here is data from the releases and the papers (sources in the comments). Readers,
transforms, metrics and the synthetic generator all take their tables from this one place.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

IGNORE_INDEX = 255

# --- joints -------------------------------------------------------------------------------------
# LIP / MPII order, as the LIP pose CSV lists the joints.
LIP_JOINTS = (
    "R_Ankle",
    "R_Knee",
    "R_Hip",
    "L_Hip",
    "L_Knee",
    "L_Ankle",
    "B_Pelvis",
    "B_Spine",
    "B_Neck",
    "B_Head",
    "R_Wrist",
    "R_Elbow",
    "R_Shoulder",
    "L_Shoulder",
    "L_Elbow",
    "L_Wrist",
)
# The correct pairs (CorrPM's released ``flip_joints`` swaps 4 of the 6 pairs wrongly).
LIP_JOINT_FLIP_PAIRS = ((0, 5), (1, 4), (2, 3), (10, 15), (11, 14), (12, 13))
# The pairs CorrPM's ``dataset/target_generation.py::flip_joints`` uses, for parity experiments only.
CORRPM_BUGGY_JOINT_FLIP_PAIRS = ((0, 3), (1, 4), (2, 5), (10, 13), (11, 14), (12, 15))

# COCO-17 order, used by the pseudo-pose files of datasets without pose annotations.
COCO_JOINTS = (
    "nose",
    "left_eye",
    "right_eye",
    "left_ear",
    "right_ear",
    "left_shoulder",
    "right_shoulder",
    "left_elbow",
    "right_elbow",
    "left_wrist",
    "right_wrist",
    "left_hip",
    "right_hip",
    "left_knee",
    "right_knee",
    "left_ankle",
    "right_ankle",
)
COCO_JOINT_FLIP_PAIRS = ((1, 2), (3, 4), (5, 6), (7, 8), (9, 10), (11, 12), (13, 14), (15, 16))

# --- DensePose tables (detectron2 DensePose) ------------------------------------------------------
DENSEPOSE_FINE_PARTS = (
    "background",
    "torso_back",
    "torso_front",
    "right_hand",
    "left_hand",
    "left_foot",
    "right_foot",
    "upper_leg_right_back",
    "upper_leg_left_back",
    "upper_leg_right_front",
    "upper_leg_left_front",
    "lower_leg_right_back",
    "lower_leg_left_back",
    "lower_leg_right_front",
    "lower_leg_left_front",
    "upper_arm_left_front",
    "upper_arm_right_front",
    "upper_arm_left_back",
    "upper_arm_right_back",
    "lower_arm_left_front",
    "lower_arm_right_front",
    "lower_arm_left_back",
    "lower_arm_right_back",
    "head_right",
    "head_left",
)
DENSEPOSE_COARSE_PARTS = (
    "background",
    "torso",
    "right_hand",
    "left_hand",
    "left_foot",
    "right_foot",
    "upper_leg_right",
    "upper_leg_left",
    "lower_leg_right",
    "lower_leg_left",
    "upper_arm_left",
    "upper_arm_right",
    "lower_arm_left",
    "lower_arm_right",
    "head",
)
DENSEPOSE_FINE_TO_COARSE = np.array(
    [0, 1, 1, 2, 3, 4, 5, 6, 7, 6, 7, 8, 9, 8, 9, 10, 11, 10, 11, 12, 13, 12, 13, 14, 14], dtype=np.int64
)
DENSEPOSE_FINE_FLIP = np.array(
    [0, 1, 2, 4, 3, 6, 5, 8, 7, 10, 9, 12, 11, 14, 13, 16, 15, 18, 17, 20, 19, 22, 21, 24, 23], dtype=np.int64
)
DENSEPOSE_COARSE_FLIP = np.array([0, 1, 3, 2, 5, 4, 7, 6, 9, 8, 11, 10, 13, 12, 14], dtype=np.int64)


def snake(name: str) -> str:
    """``'Upper-clothes'`` -> ``'upper_clothes'``: the class keys used in metric names."""
    return re.sub(r"[^0-9a-z]+", "_", name.lower()).strip("_")


def voc_palette(n: int = 256) -> np.ndarray:
    """The PASCAL VOC bit-interleaved colour map, used by LIP/CIHP colour renders. Shape (n, 3) uint8."""
    pal = np.zeros((n, 3), dtype=np.uint8)
    for i in range(n):
        c, r, g, b = i, 0, 0, 0
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        pal[i] = (r, g, b)
    return pal


@dataclass(frozen=True)
class DatasetInfo:
    """Label space and conventions of one dataset."""

    name: str
    classes: tuple[str, ...]
    flip_pairs: tuple[tuple[int, int], ...]
    joints: tuple[str, ...] = ()
    joint_flip_pairs: tuple[tuple[int, int], ...] = ()
    # fine label -> Grapy-ML level-2 node (0 bg, 1 head, 2 torso, 3 arms, 4 legs), Grapy-ML's released tables
    hierarchy_level2: tuple[int, ...] | None = None
    multi_person: bool = False
    homepage: str = ""
    layouts: tuple[str, ...] = ()
    extra: dict = field(default_factory=dict)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def class_keys(self) -> tuple[str, ...]:
        return tuple(snake(c) for c in self.classes)

    @property
    def num_joints(self) -> int:
        return len(self.joints)

    def flip_permutation(self) -> np.ndarray:
        """Lookup table of length 256 mapping a label to its mirrored label (255 stays 255)."""
        lut = np.arange(256, dtype=np.uint8)
        for a, b in self.flip_pairs:
            lut[a], lut[b] = b, a
        return lut

    def joint_flip_permutation(self, pairs: tuple[tuple[int, int], ...] | None = None) -> np.ndarray:
        perm = np.arange(self.num_joints)
        for a, b in pairs if pairs is not None else self.joint_flip_pairs:
            perm[a], perm[b] = b, a
        return perm

    def palette(self) -> np.ndarray:
        return voc_palette(256)

    def hierarchy_lut(self, level: int) -> np.ndarray:
        """fine label -> level-``level`` label (1: bg/person, 2: bg/head/torso/arms/legs), 255 kept."""
        if self.hierarchy_level2 is None:
            raise ValueError(f"dataset {self.name!r} has no hierarchy table")
        lut = np.full(256, IGNORE_INDEX, dtype=np.uint8)
        fine = np.asarray(self.hierarchy_level2, dtype=np.uint8)
        if level == 1:
            lut[: len(fine)] = (np.arange(len(fine)) > 0).astype(np.uint8)
        elif level == 2:
            lut[: len(fine)] = fine
        else:
            raise ValueError(f"hierarchy level must be 1 or 2, got {level}")
        return lut


_LIP_CLASSES = (
    "Background",
    "Hat",
    "Hair",
    "Glove",
    "Sunglasses",
    "Upper-clothes",
    "Dress",
    "Coat",
    "Socks",
    "Pants",
    "Jumpsuits",
    "Scarf",
    "Skirt",
    "Face",
    "Left-arm",
    "Right-arm",
    "Left-leg",
    "Right-leg",
    "Left-shoe",
    "Right-shoe",
)
_CIHP_CLASSES = _LIP_CLASSES[:10] + ("Torso-skin",) + _LIP_CLASSES[11:]
_ATR_CLASSES = (
    "Background",
    "Hat",
    "Hair",
    "Sunglasses",
    "Upper-clothes",
    "Skirt",
    "Pants",
    "Dress",
    "Belt",
    "Left-shoe",
    "Right-shoe",
    "Face",
    "Left-leg",
    "Right-leg",
    "Left-arm",
    "Right-arm",
    "Bag",
    "Scarf",
)
_MHP_CLASSES = (
    "background",
    "cap/hat",
    "helmet",
    "face",
    "hair",
    "left-arm",
    "right-arm",
    "left-hand",
    "right-hand",
    "protector",
    "bikini/bra",
    "jacket/windbreaker/hoodie",
    "t-shirt",
    "polo-shirt",
    "sweater",
    "singlet",
    "torso-skin",
    "pants",
    "shorts/swim-shorts",
    "skirt",
    "stockings",
    "socks",
    "left-boot",
    "right-boot",
    "left-shoe",
    "right-shoe",
    "left-highheel",
    "right-highheel",
    "left-sandal",
    "right-sandal",
    "left-leg",
    "right-leg",
    "left-foot",
    "right-foot",
    "coat",
    "dress",
    "robe",
    "jumpsuit",
    "other-full-body-clothes",
    "headwear",
    "backpack",
    "ball",
    "bats",
    "belt",
    "bottle",
    "carrybag",
    "cases",
    "sunglasses",
    "eyewear",
    "glove",
    "scarf",
    "umbrella",
    "wallet/purse",
    "watch",
    "wristband",
    "tie",
    "other-accessary",
    "other-upper-body-clothes",
    "other-lower-body-clothes",
)
_PASCAL_CLASSES = ("Background", "Head", "Torso", "Upper-arms", "Lower-arms", "Upper-legs", "Lower-legs")
_CIHP_LEVEL2 = (0, 1, 1, 3, 1, 2, 2, 2, 4, 4, 2, 2, 2, 1, 3, 3, 4, 4, 4, 4)

DATASETS: dict[str, DatasetInfo] = {
    "lip": DatasetInfo(
        name="lip",
        classes=_LIP_CLASSES,
        flip_pairs=((14, 15), (16, 17), (18, 19)),
        joints=LIP_JOINTS,
        joint_flip_pairs=LIP_JOINT_FLIP_PAIRS,
        # by analogy with CIHP: Grapy-ML ships no LIP table
        hierarchy_level2=_CIHP_LEVEL2,
        homepage="http://sysu-hcp.net/lip/overview.php (LIP: TrainVal_images.zip, "
        "TrainVal_parsing_annotations.zip, TrainVal_pose_annotations.zip, Testing_images.zip)",
        layouts=("official", "ce2p"),
    ),
    "atr": DatasetInfo(
        name="atr",
        classes=_ATR_CLASSES,
        flip_pairs=((9, 10), (12, 13), (14, 15)),
        hierarchy_level2=(0, 1, 1, 1, 2, 2, 4, 2, 2, 4, 4, 1, 4, 4, 3, 3, 2, 2),
        homepage="https://github.com/lemondan/HumanParsing-Dataset (humanparsing.zip)",
        layouts=("release", "graphonomy", "hhp"),
    ),
    "cihp": DatasetInfo(
        name="cihp",
        classes=_CIHP_CLASSES,
        flip_pairs=((14, 15), (16, 17), (18, 19)),
        hierarchy_level2=_CIHP_LEVEL2,
        multi_person=True,
        homepage="http://sysu-hcp.net/lip/overview.php (CIHP: instance-level_human_parsing.tar.gz)",
        layouts=("official", "graphonomy", "pgn"),
    ),
    "mhp_v2": DatasetInfo(
        name="mhp_v2",
        classes=_MHP_CLASSES,
        flip_pairs=((5, 6), (7, 8), (22, 23), (24, 25), (26, 27), (28, 29), (30, 31), (32, 33)),
        multi_person=True,
        homepage="https://github.com/ZhaoJ9014/Multi-Human-Parsing (LV-MHP-v2.zip)",
        layouts=("official",),
    ),
    "pascal_person_part": DatasetInfo(
        name="pascal_person_part",
        classes=_PASCAL_CLASSES,
        flip_pairs=(),
        hierarchy_level2=(0, 1, 2, 3, 3, 4, 4),
        multi_person=True,
        homepage="http://roozbehm.info/pascal-parts/pascal-parts.html (images: PASCAL VOC 2010); "
        "SegmentationPart labels and lists as distributed with Graphonomy",
        layouts=("graphonomy",),
    ),
    "densepose_coco": DatasetInfo(
        name="densepose_coco",
        classes=DENSEPOSE_FINE_PARTS,
        flip_pairs=tuple((i, int(DENSEPOSE_FINE_FLIP[i])) for i in range(25) if DENSEPOSE_FINE_FLIP[i] > i),
        joints=COCO_JOINTS,
        joint_flip_pairs=COCO_JOINT_FLIP_PAIRS,
        multi_person=True,
        homepage="https://github.com/facebookresearch/detectron2/blob/main/projects/DensePose/doc/"
        "DENSEPOSE_DATASETS.md (densepose_{train2014,valminusminival2014,minival2014}.json + COCO 2014 images)",
        layouts=("d2", "detectron1"),
        # annotated with sparse points and box-frame coarse masks per person: no image-level part-label map
        extra={"semantic": False, "densepose": True},
    ),
}


def get_info(name: str) -> DatasetInfo:
    try:
        return DATASETS[name]
    except KeyError:
        raise KeyError(f"unknown dataset {name!r}; known: {sorted(DATASETS)}") from None
