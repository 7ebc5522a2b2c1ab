"""What a synthetic person wears: garment choice and garment geometry, independent of colours.

Garment extents along a limb are given in *chain* coordinates: an arm chain runs from 0 (shoulder)
through 1 (elbow) to 2 (wrist); a leg chain from 0 (hip) through 1 (knee) to 2 (ankle). Torso
levels run from 0 (shoulder line) to 1 (hip line); the waist is at about 0.6.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from humanparse.synthetic.vocab import Tag


@dataclass(frozen=True)
class Outfit:
    """Garments of one person.

    Attributes:
        top: torso garment: ``UPPER_CLOTHES``, ``DRESS``, ``JUMPSUIT`` or ``None`` (bare torso).
        bottom: ``PANTS``, ``SHORTS``, ``SKIRT``, ``JUMPSUIT_LEGS`` or ``None`` (dress).
        top_cut: torso level where the top ends and the bottom garment begins (0..1).
        sleeve: arm-chain length covered by the top's sleeves (0 = sleeveless).
        leg_cover: leg-chain length covered by trousers / shorts / jumpsuit legs.
        skirt_len: length of a skirt or of a dress below the hip line, in body heights (0: none).
        neckline: depth of the exposed chest skin below the neck, in body heights (0: none).
        coat: whether a coat is worn over the top; ``coat_open`` shows the top through its front.
        coat_len: coat length below the hip line, in body heights.
        coat_sleeve: arm-chain length covered by the coat's sleeves.
        hair: ``'short'``, ``'long'`` or ``'bald'``.
        hairline: height of the fringe's lower edge above the head centre, in head half-heights.
        hair_len: how far long hair hangs below the chin, in body heights.
        hat, hat_brim, sunglasses, scarf, gloves, socks, shoes, belt: accessories worn.
        bag: 0 no bag; +1 strap over the left shoulder and bag at the right hip; -1 the opposite.
    """

    top: Tag | None
    bottom: Tag | None
    top_cut: float
    sleeve: float
    leg_cover: float
    skirt_len: float
    neckline: float
    coat: bool
    coat_open: bool
    coat_len: float
    coat_sleeve: float
    hair: str
    hairline: float
    hair_len: float
    hat: bool
    hat_brim: bool
    sunglasses: bool
    scarf: bool
    gloves: bool
    socks: bool
    shoes: bool
    belt: bool
    bag: int


def _sleeve(rng: np.random.Generator, p_none: float, p_short: float) -> float:
    r = rng.random()
    if r < p_none:
        return 0.0
    if r < p_none + p_short:
        return float(rng.uniform(0.3, 0.85))
    return float(rng.uniform(1.5, 1.95))


def sample_outfit(rng: np.random.Generator, facing: str = "front") -> Outfit:
    """A random outfit. Probabilities are chosen so every LIP class shows up in a few hundred images."""
    r = rng.random()
    skirt_len = 0.0
    leg_cover = 0.0
    top_cut = 1.0
    if r < 0.14:  # dress
        top: Tag | None = Tag.DRESS
        bottom: Tag | None = None
        skirt_len = float(rng.uniform(0.10, 0.42))
        sleeve = _sleeve(rng, 0.4, 0.45)
    elif r < 0.21:  # jumpsuit
        top, bottom = Tag.JUMPSUIT, Tag.JUMPSUIT_LEGS
        top_cut = 0.62
        leg_cover = float(rng.uniform(1.6, 2.0))
        sleeve = _sleeve(rng, 0.3, 0.4)
    else:  # separates
        top = Tag.UPPER_CLOTHES if rng.random() < 0.97 else None
        sleeve = _sleeve(rng, 0.15, 0.45) if top is not None else 0.0
        top_cut = float(rng.uniform(0.65, 1.0))
        rb = rng.random()
        if rb < 0.6:
            bottom, leg_cover = Tag.PANTS, float(rng.uniform(1.55, 2.0))
        elif rb < 0.75:
            bottom, leg_cover = Tag.SHORTS, float(rng.uniform(0.35, 0.8))
        else:
            bottom, skirt_len = Tag.SKIRT, float(rng.uniform(0.10, 0.25))
    front = facing == "front"
    neckline = (
        float(rng.uniform(0.03, 0.08))
        if (front and top in (Tag.UPPER_CLOTHES, Tag.DRESS) and rng.random() < 0.35)
        else 0.0
    )
    coat = bool(rng.random() < 0.22)
    r_hair = rng.random()
    hair = "bald" if r_hair < 0.05 else ("long" if r_hair < 0.4 else "short")
    belt = bool(bottom in (Tag.PANTS, Tag.SHORTS) and top_cut < 0.95 and not coat and rng.random() < 0.3)
    bag_r = rng.random()
    return Outfit(
        top=top,
        bottom=bottom,
        top_cut=top_cut,
        sleeve=sleeve,
        leg_cover=leg_cover,
        skirt_len=skirt_len,
        neckline=neckline,
        coat=coat,
        coat_open=bool(front and rng.random() < 0.7),
        coat_len=float(rng.uniform(0.05, 0.35)),
        coat_sleeve=float(rng.uniform(1.7, 1.98)),
        hair=hair,
        hairline=float(rng.uniform(0.1, 0.5)),
        hair_len=float(rng.uniform(0.03, 0.2)),
        hat=bool(rng.random() < 0.18),
        hat_brim=bool(rng.random() < 0.5),
        sunglasses=bool(front and rng.random() < 0.18),
        scarf=bool(rng.random() < 0.12),
        gloves=bool(rng.random() < 0.08),
        socks=bool(rng.random() < 0.5),
        shoes=bool(rng.random() < 0.92),
        belt=belt,
        bag=0 if bag_r >= 0.15 else (1 if bag_r < 0.075 else -1),
    )
