"""Internal tag vocabulary of the synthetic generator and its mapping onto every dataset's label set.

The renderer paints :class:`Tag` values: one per visible surface kind (a skin part, a garment, an
accessory). Each dataset writer turns a tag map into its own labels with :func:`tag_lut` (a 256-entry
look-up table) or, when the dataset labels body parts rather than garments (PASCAL-Person-Part),
with :func:`labels_for`, which also reads the DensePose body-part map painted under the clothes.

Left/right tags always mean the PERSON's left/right. Every left tag maps onto the dataset's left
class and every right tag onto its right class, so a horizontal flip with the dataset's
``flip_pairs`` (``humanparse.data.meta``) swaps them exactly like :data:`TAG_FLIP` swaps the tags.

Mapping decisions (the datasets do not have a class for everything the generator draws):

* LIP / ATR have no torso-skin class. The neck is labelled **Face** (it continues the face region
  in both datasets' annotations); exposed chest/belly skin (a neckline, a bare torso) is labelled
  **Upper-clothes**, the class occupying that body region. The generator keeps such skin small.
* CIHP / MHP map neck and chest skin to **Torso-skin**.
* Hands and bare feet: LIP, ATR and CIHP fold them into the arm / leg classes; MHP has its own
  left/right hand and foot classes; PASCAL puts hands in Lower-arms and feet in Lower-legs.
* Gloves: LIP/CIHP Glove, MHP glove (no sides); ATR has no glove class so gloves are arms.
  Socks: LIP/CIHP Socks, MHP socks; ATR legs. Shorts: Pants everywhere except MHP (shorts).
* Jumpsuit: drawn as two tags, the torso/arm part ``JUMPSUIT`` and the leg part ``JUMPSUIT_LEGS``.
  LIP Jumpsuits and MHP jumpsuit take both; CIHP and ATR (no jumpsuit class) label the top part
  Upper-clothes and the leg part Pants. Coats: ATR has no coat class, so Upper-clothes.
* Belt: only drawn with trousers/shorts, so LIP/CIHP label it Pants; ATR Belt, MHP belt.
* Bag: ATR Bag, MHP carrybag; LIP, CIHP and PASCAL do not label bags, so Background.
* PASCAL-Person-Part labels body parts, not clothes: garment pixels take the part of the body
  beneath them (the DensePose part map, :func:`labels_for`); garment pixels that stick out of the
  body (a skirt's flare, coat tails) fall back to the table (skirts, shorts, trousers and dress/coat
  hems -> Upper-legs). Hair, hat, sunglasses, face and neck -> Head; bags -> Background.
"""

from __future__ import annotations

from enum import IntEnum

import numpy as np

from humanparse.data.meta import DENSEPOSE_FINE_PARTS, IGNORE_INDEX, get_info


class Tag(IntEnum):
    """What a pixel of a synthetic person shows. 0 = not this person."""

    NONE = 0
    FACE = 1
    NECK = 2
    TORSO_SKIN = 3
    L_UPPER_ARM = 4
    R_UPPER_ARM = 5
    L_LOWER_ARM = 6
    R_LOWER_ARM = 7
    L_HAND = 8
    R_HAND = 9
    L_UPPER_LEG = 10
    R_UPPER_LEG = 11
    L_LOWER_LEG = 12
    R_LOWER_LEG = 13
    L_FOOT = 14
    R_FOOT = 15
    HAIR = 16
    HAT = 17
    SUNGLASSES = 18
    UPPER_CLOTHES = 19
    COAT = 20
    DRESS = 21
    JUMPSUIT = 22
    JUMPSUIT_LEGS = 23
    PANTS = 24
    SHORTS = 25
    SKIRT = 26
    SCARF = 27
    L_SOCK = 28
    R_SOCK = 29
    L_SHOE = 30
    R_SHOE = 31
    L_GLOVE = 32
    R_GLOVE = 33
    BELT = 34
    BAG = 35


NUM_TAGS = len(Tag)
T = Tag  # short alias for the tables below

SKIN_TAGS: frozenset[Tag] = frozenset(
    {
        T.FACE,
        T.NECK,
        T.TORSO_SKIN,
        T.L_UPPER_ARM,
        T.R_UPPER_ARM,
        T.L_LOWER_ARM,
        T.R_LOWER_ARM,
        T.L_HAND,
        T.R_HAND,
        T.L_UPPER_LEG,
        T.R_UPPER_LEG,
        T.L_LOWER_LEG,
        T.R_LOWER_LEG,
        T.L_FOOT,
        T.R_FOOT,
    }
)

# Person's-left <-> person's-right tag pairs.
TAG_FLIP_PAIRS: tuple[tuple[Tag, Tag], ...] = (
    (T.L_UPPER_ARM, T.R_UPPER_ARM),
    (T.L_LOWER_ARM, T.R_LOWER_ARM),
    (T.L_HAND, T.R_HAND),
    (T.L_UPPER_LEG, T.R_UPPER_LEG),
    (T.L_LOWER_LEG, T.R_LOWER_LEG),
    (T.L_FOOT, T.R_FOOT),
    (T.L_SOCK, T.R_SOCK),
    (T.L_SHOE, T.R_SHOE),
    (T.L_GLOVE, T.R_GLOVE),
)


def _flip_lut() -> np.ndarray:
    lut = np.arange(256, dtype=np.uint8)
    for a, b in TAG_FLIP_PAIRS:
        lut[a], lut[b] = b, a
    return lut


TAG_FLIP: np.ndarray = _flip_lut()
"""Tag -> mirrored tag (left/right swapped), length 256 uint8."""

# Appearance group: tags of one group share one colour/texture on a person (left and right alike).
TAG_GROUP: dict[Tag, str] = {
    **{t: "skin" for t in SKIN_TAGS},
    T.HAIR: "hair",
    T.HAT: "hat",
    T.SUNGLASSES: "sunglasses",
    T.UPPER_CLOTHES: "upper_clothes",
    T.COAT: "coat",
    T.DRESS: "dress",
    T.JUMPSUIT: "jumpsuit",
    T.JUMPSUIT_LEGS: "jumpsuit",
    T.PANTS: "pants",
    T.SHORTS: "pants",
    T.SKIRT: "skirt",
    T.SCARF: "scarf",
    T.L_SOCK: "sock",
    T.R_SOCK: "sock",
    T.L_SHOE: "shoe",
    T.R_SHOE: "shoe",
    T.L_GLOVE: "glove",
    T.R_GLOVE: "glove",
    T.BELT: "belt",
    T.BAG: "bag",
}

# --- tag -> dataset class name tables (names must match meta.DATASETS[...].classes) --------------
_LIP: dict[Tag, str] = {
    T.FACE: "Face",
    T.NECK: "Face",
    T.TORSO_SKIN: "Upper-clothes",
    T.L_UPPER_ARM: "Left-arm",
    T.L_LOWER_ARM: "Left-arm",
    T.L_HAND: "Left-arm",
    T.R_UPPER_ARM: "Right-arm",
    T.R_LOWER_ARM: "Right-arm",
    T.R_HAND: "Right-arm",
    T.L_UPPER_LEG: "Left-leg",
    T.L_LOWER_LEG: "Left-leg",
    T.L_FOOT: "Left-leg",
    T.R_UPPER_LEG: "Right-leg",
    T.R_LOWER_LEG: "Right-leg",
    T.R_FOOT: "Right-leg",
    T.HAIR: "Hair",
    T.HAT: "Hat",
    T.SUNGLASSES: "Sunglasses",
    T.UPPER_CLOTHES: "Upper-clothes",
    T.COAT: "Coat",
    T.DRESS: "Dress",
    T.JUMPSUIT: "Jumpsuits",
    T.JUMPSUIT_LEGS: "Jumpsuits",
    T.PANTS: "Pants",
    T.SHORTS: "Pants",
    T.SKIRT: "Skirt",
    T.SCARF: "Scarf",
    T.L_SOCK: "Socks",
    T.R_SOCK: "Socks",
    T.L_SHOE: "Left-shoe",
    T.R_SHOE: "Right-shoe",
    T.L_GLOVE: "Glove",
    T.R_GLOVE: "Glove",
    T.BELT: "Pants",
    T.BAG: "Background",
}
_CIHP: dict[Tag, str] = {
    **_LIP,
    T.NECK: "Torso-skin",
    T.TORSO_SKIN: "Torso-skin",
    T.JUMPSUIT: "Upper-clothes",
    T.JUMPSUIT_LEGS: "Pants",
}
_ATR: dict[Tag, str] = {
    **{t: n for t, n in _LIP.items() if n not in ("Glove", "Coat", "Socks", "Jumpsuits")},
    T.COAT: "Upper-clothes",
    T.JUMPSUIT: "Upper-clothes",
    T.JUMPSUIT_LEGS: "Pants",
    T.L_GLOVE: "Left-arm",
    T.R_GLOVE: "Right-arm",
    T.L_SOCK: "Left-leg",
    T.R_SOCK: "Right-leg",
    T.BELT: "Belt",
    T.BAG: "Bag",
}
_MHP: dict[Tag, str] = {
    T.FACE: "face",
    T.NECK: "torso-skin",
    T.TORSO_SKIN: "torso-skin",
    T.L_UPPER_ARM: "left-arm",
    T.L_LOWER_ARM: "left-arm",
    T.L_HAND: "left-hand",
    T.R_UPPER_ARM: "right-arm",
    T.R_LOWER_ARM: "right-arm",
    T.R_HAND: "right-hand",
    T.L_UPPER_LEG: "left-leg",
    T.L_LOWER_LEG: "left-leg",
    T.L_FOOT: "left-foot",
    T.R_UPPER_LEG: "right-leg",
    T.R_LOWER_LEG: "right-leg",
    T.R_FOOT: "right-foot",
    T.HAIR: "hair",
    T.HAT: "cap/hat",
    T.SUNGLASSES: "sunglasses",
    T.UPPER_CLOTHES: "t-shirt",
    T.COAT: "coat",
    T.DRESS: "dress",
    T.JUMPSUIT: "jumpsuit",
    T.JUMPSUIT_LEGS: "jumpsuit",
    T.PANTS: "pants",
    T.SHORTS: "shorts/swim-shorts",
    T.SKIRT: "skirt",
    T.SCARF: "scarf",
    T.L_SOCK: "socks",
    T.R_SOCK: "socks",
    T.L_SHOE: "left-shoe",
    T.R_SHOE: "right-shoe",
    T.L_GLOVE: "glove",
    T.R_GLOVE: "glove",
    T.BELT: "belt",
    T.BAG: "carrybag",
}
_PASCAL: dict[Tag, str] = {
    T.FACE: "Head",
    T.NECK: "Head",
    T.HAIR: "Head",
    T.HAT: "Head",
    T.SUNGLASSES: "Head",
    T.TORSO_SKIN: "Torso",
    T.UPPER_CLOTHES: "Torso",
    T.COAT: "Upper-legs",
    T.DRESS: "Upper-legs",
    T.JUMPSUIT: "Torso",
    T.SCARF: "Torso",
    T.BELT: "Torso",
    T.L_UPPER_ARM: "Upper-arms",
    T.R_UPPER_ARM: "Upper-arms",
    T.L_LOWER_ARM: "Lower-arms",
    T.R_LOWER_ARM: "Lower-arms",
    T.L_HAND: "Lower-arms",
    T.R_HAND: "Lower-arms",
    T.L_GLOVE: "Lower-arms",
    T.R_GLOVE: "Lower-arms",
    T.L_UPPER_LEG: "Upper-legs",
    T.R_UPPER_LEG: "Upper-legs",
    T.JUMPSUIT_LEGS: "Upper-legs",
    T.PANTS: "Upper-legs",
    T.SHORTS: "Upper-legs",
    T.SKIRT: "Upper-legs",
    T.L_LOWER_LEG: "Lower-legs",
    T.R_LOWER_LEG: "Lower-legs",
    T.L_FOOT: "Lower-legs",
    T.R_FOOT: "Lower-legs",
    T.L_SOCK: "Lower-legs",
    T.R_SOCK: "Lower-legs",
    T.L_SHOE: "Lower-legs",
    T.R_SHOE: "Lower-legs",
    T.BAG: "Background",
}
TAG_TO_CLASS: dict[str, dict[Tag, str]] = {
    "lip": _LIP,
    "cihp": _CIHP,
    "atr": _ATR,
    "mhp_v2": _MHP,
    "pascal_person_part": _PASCAL,
}

# Tags whose PASCAL class is the body part underneath them (garments), see labels_for.
_BODY_RESOLVED: dict[str, frozenset[Tag]] = {
    "pascal_person_part": frozenset(
        {
            T.TORSO_SKIN,
            T.UPPER_CLOTHES,
            T.COAT,
            T.DRESS,
            T.JUMPSUIT,
            T.JUMPSUIT_LEGS,
            T.PANTS,
            T.SHORTS,
            T.SKIRT,
            T.SCARF,
            T.BELT,
        }
    ),
}

# DensePose fine chart -> PASCAL class name (the chart names of meta.DENSEPOSE_FINE_PARTS).
_PASCAL_FROM_CHART_PREFIX = (
    ("torso", "Torso"),
    ("upper_arm", "Upper-arms"),
    ("lower_arm", "Lower-arms"),
    ("right_hand", "Lower-arms"),
    ("left_hand", "Lower-arms"),
    ("upper_leg", "Upper-legs"),
    ("lower_leg", "Lower-legs"),
    ("left_foot", "Lower-legs"),
    ("right_foot", "Lower-legs"),
    ("head", "Head"),
)


def tag_lut(dataset: str) -> np.ndarray:
    """Look-up table ``tag -> label`` of ``dataset`` (one of the five semantic label sets).

    Returns a ``(256,)`` uint8 array: ``lut[tag_map]`` is the dataset label map. Entry 0 (no person)
    is 0 (background); entries beyond the vocabulary are 255 (ignore).
    """
    try:
        table = TAG_TO_CLASS[dataset]
    except KeyError:
        raise KeyError(f"no tag mapping for dataset {dataset!r}; known: {sorted(TAG_TO_CLASS)}") from None
    classes = get_info(dataset).classes
    lut = np.full(256, IGNORE_INDEX, dtype=np.uint8)
    lut[Tag.NONE] = 0
    for tag in Tag:
        if tag is Tag.NONE:
            continue
        lut[tag] = classes.index(table[tag])
    return lut


def chart_to_label_lut(dataset: str) -> np.ndarray | None:
    """DensePose fine chart (0..24) -> label of ``dataset`` for body-part datasets, else ``None``."""
    if dataset != "pascal_person_part":
        return None
    classes = get_info(dataset).classes
    lut = np.zeros(256, dtype=np.uint8)
    for i, name in enumerate(DENSEPOSE_FINE_PARTS):
        if i == 0:
            continue
        cls = next(c for prefix, c in _PASCAL_FROM_CHART_PREFIX if name.startswith(prefix))
        lut[i] = classes.index(cls)
    return lut


def labels_for(tags: np.ndarray, parts: np.ndarray | None, dataset: str) -> np.ndarray:
    """Dataset label map from a tag map and (optionally) the DensePose fine-chart map beneath it.

    For garment datasets this is ``tag_lut(dataset)[tags]``. For PASCAL-Person-Part, garment pixels
    lying on the body take the part of the body beneath them (``parts``, required there); the rest
    use the table. Returns a uint8 array with the shape of ``tags``.
    """
    out = tag_lut(dataset)[tags]
    chart_lut = chart_to_label_lut(dataset)
    if chart_lut is None:
        return out
    if parts is None:
        raise ValueError(f"{dataset!r} labels body parts: pass the DensePose part map")
    resolved = np.zeros(256, dtype=bool)
    resolved[list(_BODY_RESOLVED[dataset])] = True
    body = chart_lut[parts]
    sel = resolved[tags] & (body > 0)
    out[sel] = body[sel]
    return out


def flip_tags(tags: np.ndarray) -> np.ndarray:
    """Mirror a tag map horizontally and swap left/right tags."""
    return TAG_FLIP[tags[:, ::-1]]
