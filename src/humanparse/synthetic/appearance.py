"""Class-dependent colours and textures of synthetic people, and cluttered backgrounds.

Every appearance group (``vocab.TAG_GROUP``: skin, hair, each garment kind, ...) has its own hue
range and a set of texture kinds, so a classifier can tell classes apart by colour and texture as
well as by position. Left and right tags of a class share one group, so they look the same and
only their position separates them (as in real photos). Per-person jitter (hue, saturation, value,
texture period/angle, lighting) is small enough that the class stays identifiable. Backgrounds are
cluttered (gradient, random shapes and lines, smooth and pixel noise) in mostly muted colours.
"""

from __future__ import annotations

import colorsys
from dataclasses import dataclass

import cv2
import numpy as np

from humanparse.synthetic.vocab import TAG_GROUP, Tag

TEXTURES = ("flat", "stripes", "checks", "dots", "noise")


@dataclass(frozen=True)
class ClassStyle:
    """Colour range and textures of one appearance group (hue in degrees, sat/val in [0, 1])."""

    hue: float
    hue_jitter: float
    sat: tuple[float, float]
    val: tuple[float, float]
    textures: tuple[str, ...]


STYLES: dict[str, ClassStyle] = {
    "skin": ClassStyle(20.0, 8.0, (0.22, 0.55), (0.45, 0.95), ("flat",)),
    "hair": ClassStyle(25.0, 10.0, (0.25, 0.7), (0.06, 0.32), ("flat", "noise")),
    "hat": ClassStyle(0.0, 8.0, (0.6, 0.95), (0.55, 0.9), ("flat", "checks", "stripes")),
    "sunglasses": ClassStyle(220.0, 30.0, (0.0, 0.3), (0.02, 0.12), ("flat",)),
    "upper_clothes": ClassStyle(215.0, 8.0, (0.45, 0.9), (0.45, 0.92), ("flat", "stripes", "dots", "noise")),
    "coat": ClassStyle(270.0, 8.0, (0.4, 0.8), (0.35, 0.75), ("flat", "checks", "noise")),
    "dress": ClassStyle(320.0, 8.0, (0.45, 0.85), (0.55, 0.92), ("flat", "dots", "stripes")),
    "jumpsuit": ClassStyle(175.0, 8.0, (0.5, 0.9), (0.4, 0.8), ("flat", "noise")),
    "pants": ClassStyle(120.0, 8.0, (0.45, 0.85), (0.3, 0.75), ("flat", "noise", "stripes")),
    "skirt": ClassStyle(85.0, 8.0, (0.5, 0.9), (0.5, 0.9), ("flat", "checks", "dots")),
    "scarf": ClassStyle(55.0, 6.0, (0.6, 0.95), (0.7, 0.95), ("stripes", "checks", "flat")),
    "sock": ClassStyle(150.0, 10.0, (0.4, 0.85), (0.5, 0.95), ("stripes", "flat")),
    "shoe": ClassStyle(30.0, 10.0, (0.3, 0.7), (0.12, 0.4), ("flat",)),
    "glove": ClassStyle(0.0, 180.0, (0.0, 0.12), (0.75, 0.97), ("flat",)),
    "belt": ClassStyle(25.0, 8.0, (0.5, 0.8), (0.15, 0.35), ("flat",)),
    "bag": ClassStyle(295.0, 8.0, (0.45, 0.85), (0.35, 0.8), ("flat", "noise", "checks")),
}
GROUPS: tuple[str, ...] = tuple(STYLES)
assert set(TAG_GROUP.values()) == set(GROUPS)
assert all(set(st.textures) <= set(TEXTURES) for st in STYLES.values())

# tag -> group index + 1 (0 = no person)
_GROUP_LUT = np.zeros(256, dtype=np.uint8)
for _tag, _group in TAG_GROUP.items():
    _GROUP_LUT[_tag] = GROUPS.index(_group) + 1


@dataclass(frozen=True, eq=False)
class Swatch:
    """The concrete look of one group on one person: two RGB colours (0..255) and a texture."""

    base: np.ndarray
    second: np.ndarray
    texture: str
    period: float
    angle: float
    phase: float


def hsv_rgb(h_deg: float, s: float, v: float) -> np.ndarray:
    """HSV (hue in degrees) -> float RGB in 0..255."""
    r, g, b = colorsys.hsv_to_rgb((h_deg % 360.0) / 360.0, float(np.clip(s, 0, 1)), float(np.clip(v, 0, 1)))
    return np.array([r, g, b], dtype=np.float32) * 255.0


def sample_swatch(rng: np.random.Generator, style: ClassStyle, body_height: float) -> Swatch:
    """One person's colour/texture for a group of the given style."""
    hue = style.hue + float(rng.uniform(-style.hue_jitter, style.hue_jitter))
    s = float(rng.uniform(*style.sat))
    v = float(rng.uniform(*style.val))
    dv = float(rng.uniform(0.2, 0.35)) * (1.0 if v < 0.55 else -1.0)
    texture = style.textures[int(rng.integers(len(style.textures)))]
    return Swatch(
        base=hsv_rgb(hue, s, v),
        second=hsv_rgb(hue, s * float(rng.uniform(0.6, 1.0)), v + dv),
        texture=texture,
        period=max(float(rng.uniform(0.025, 0.06)) * body_height, 2.5),
        angle=float(rng.uniform(0.0, np.pi)),
        phase=float(rng.uniform(0.0, 1.0)),
    )


def sample_appearance(rng: np.random.Generator, body_height: float) -> dict[str, Swatch]:
    """Swatches for every group (always all of them, so the RNG use does not depend on the outfit)."""
    return {g: sample_swatch(rng, STYLES[g], body_height) for g in GROUPS}


def _pattern(sw: Swatch, xs: np.ndarray, ys: np.ndarray, noise: np.ndarray | None) -> np.ndarray:
    """Mixing weight of the second colour, in [0, 1], at pixel coordinates ``xs, ys``."""
    if sw.texture == "flat":
        return np.zeros(xs.shape, dtype=np.float32)
    c, s = np.cos(sw.angle), np.sin(sw.angle)
    a = (xs * c + ys * s) / sw.period + sw.phase
    if sw.texture == "stripes":
        return ((a % 1.0) < 0.5).astype(np.float32)
    b = (-xs * s + ys * c) / sw.period + sw.phase
    if sw.texture == "checks":
        return (((a % 1.0) < 0.5) ^ ((b % 1.0) < 0.5)).astype(np.float32)
    if sw.texture == "dots":
        da, db = (a % 1.0) - 0.5, (b % 1.0) - 0.5
        return ((da * da + db * db) < 0.09).astype(np.float32)
    assert noise is not None
    return noise


def paint_person(
    rng: np.random.Generator,
    image: np.ndarray,
    tags: np.ndarray,
    shade: np.ndarray,
    appearance: dict[str, Swatch],
) -> None:
    """Paint a person's pixels (``tags > 0``) into the float RGB ``image`` (H, W, 3), in place."""
    ys, xs = np.nonzero(tags)
    if ys.size == 0:
        return
    y0, y1, x0, x1 = int(ys.min()), int(ys.max()) + 1, int(xs.min()), int(xs.max()) + 1
    groups = _GROUP_LUT[tags[ys, xs]]
    light = float(rng.uniform(0.85, 1.1))
    ga = float(rng.uniform(0.0, 2.0 * np.pi))
    span = max(y1 - y0, x1 - x0, 1)
    grid = rng.random((5, 5)).astype(np.float32)
    noise_img = cv2.resize(grid, (x1 - x0, y1 - y0), interpolation=cv2.INTER_LINEAR)
    gradient = 1.0 + 0.12 * ((xs - (x0 + x1) / 2) * np.cos(ga) + (ys - (y0 + y1) / 2) * np.sin(ga)) / span
    weight = (shade[ys, xs] * gradient * light).astype(np.float32)
    out = np.empty((ys.size, 3), dtype=np.float32)
    for g in np.unique(groups):
        sel = groups == g
        sw = appearance[GROUPS[int(g) - 1]]
        gx, gy = xs[sel].astype(np.float32), ys[sel].astype(np.float32)
        noise = noise_img[ys[sel] - y0, xs[sel] - x0] if sw.texture == "noise" else None
        p = _pattern(sw, gx, gy, noise)[:, None]
        out[sel] = sw.base * (1.0 - p) + sw.second * p
    image[ys, xs] = out * weight[:, None]


def _random_colour(rng: np.random.Generator, max_sat: float) -> tuple[float, float, float]:
    c = hsv_rgb(float(rng.uniform(0, 360)), float(rng.uniform(0, max_sat)), float(rng.uniform(0.1, 0.95)))
    return float(c[0]), float(c[1]), float(c[2])


def render_background(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A cluttered background: float32 (H, W, 3) RGB in 0..255.

    A two-colour gradient, 6-17 random filled rectangles / ellipses / triangles / line bundles in
    random (mostly muted) colours, and smooth low-frequency noise.
    """
    c1 = np.array(_random_colour(rng, 0.5), dtype=np.float32)
    c2 = np.array(_random_colour(rng, 0.5), dtype=np.float32)
    ang = float(rng.uniform(0, 2 * np.pi))
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    t = xx * np.cos(ang) + yy * np.sin(ang)
    t = (t - t.min()) / max(float(t.max() - t.min()), 1.0)
    img = (c1 + (c2 - c1) * t[..., None]).astype(np.uint8)
    scale = max(height, width)
    for _ in range(int(rng.integers(6, 18))):
        colour = _random_colour(rng, 0.65)
        kind = int(rng.integers(4))
        cx, cy = float(rng.uniform(-0.1, 1.1)) * width, float(rng.uniform(-0.1, 1.1)) * height
        sx, sy = float(rng.uniform(0.05, 0.45)) * scale, float(rng.uniform(0.05, 0.45)) * scale
        if kind == 0:
            cv2.rectangle(
                img, (int(cx - sx / 2), int(cy - sy / 2)), (int(cx + sx / 2), int(cy + sy / 2)), colour, -1
            )
        elif kind == 1:
            cv2.ellipse(
                img,
                (int(cx), int(cy)),
                (int(sx / 2), int(sy / 2)),
                float(rng.uniform(0, 180)),
                0,
                360,
                colour,
                -1,
            )
        elif kind == 2:
            pts = np.stack([rng.uniform(-0.1, 1.1, 3) * width, rng.uniform(-0.1, 1.1, 3) * height], 1)
            cv2.fillPoly(img, [pts.astype(np.int32)], colour)
        else:
            a = float(rng.uniform(0, np.pi))
            d = np.array([np.cos(a), np.sin(a)]) * scale
            n = np.array([-np.sin(a), np.cos(a)])
            step = float(rng.uniform(2.0, 8.0))
            thick = int(rng.integers(1, 3))
            for k in range(int(rng.integers(1, 6))):
                p = np.array([cx, cy]) + n * k * step
                cv2.line(img, tuple(int(q) for q in p - d), tuple(int(q) for q in p + d), colour, thick)
    out = img.astype(np.float32)
    grid = rng.normal(0.0, 18.0, (4, 4, 3)).astype(np.float32)
    out += cv2.resize(grid, (width, height), interpolation=cv2.INTER_CUBIC)
    return out


def finish_image(rng: np.random.Generator, image: np.ndarray) -> np.ndarray:
    """Camera-ish finishing of a float RGB image: pixel noise and sometimes a slight blur -> uint8."""
    sigma = float(rng.uniform(2.0, 5.0))
    image = image + rng.standard_normal(image.shape, dtype=np.float32) * sigma
    if rng.random() < 0.4:
        image = cv2.GaussianBlur(image, (3, 3), 0.7)
    return np.clip(image + 0.5, 0, 255).astype(np.uint8)


def group_of(tag: Tag) -> str:
    """Appearance group of a tag."""
    return TAG_GROUP[tag]
