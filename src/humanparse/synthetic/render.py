"""Rasterise one synthetic person: tag map, DensePose body map (chart, U, V), shading and joints.

Every piece of the body is a filled shape drawn with OpenCV (sub-pixel, ``shift=4``) in a fixed
z-order: long hair (front view), raised arms (behind the torso), legs (in random order, so crossed
legs occlude each other), torso with its garments, skirt / dress / coat hems, arms hanging at the
sides, neck, scarf, head with hair / hat / sunglasses, long hair (back view), bag, and last the
arms that cross the torso or rest on the hips. Later pieces overwrite earlier ones, so limbs
occlude each other and the torso.

DensePose body map (``meta.DENSEPOSE_FINE_PARTS`` numbering): every pixel whose visible surface lies
on the body (skin or a garment worn on a limb / the torso) carries the fine chart of the body part
beneath it, front or back charts according to ``facing``. Pieces that are not worn on a limb or the
torso (hair, hats, sunglasses, skirt and coat hems, scarves, bags) keep the chart of the body part
they lie on (e.g. the thigh under a skirt) but clear it (0) where they hide a part that is not
directly beneath them (a hand behind a skirt's flare) or lie off the body.

* limbs, hands, feet: U = position along the limb axis, 0 at the proximal joint, 1 at the distal
  end; V = position across the limb, 0 on the edge towards the person's right, 0.5 on the axis,
  1 on the edge towards the person's left.
* torso: U across (0 person's right edge, 1 left edge), V along the body (0 neck, 1 crotch).
* head and neck: U across as for the torso, V from the head top (0) to the shoulder line (1);
  pixels with U < 0.5 use ``head_right``, the others ``head_left``.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from humanparse.data.meta import DENSEPOSE_FINE_PARTS, LIP_JOINTS
from humanparse.synthetic import skeleton as S
from humanparse.synthetic.outfit import Outfit, sample_outfit
from humanparse.synthetic.skeleton import Skeleton, sample_skeleton
from humanparse.synthetic.vocab import Tag

_SHIFT = 4
_ONE = 1 << _SHIFT
OVERLAY_SHADE = 0.95


def chart(name: str) -> int:
    """Index of a DensePose fine chart by name (``meta.DENSEPOSE_FINE_PARTS``)."""
    return DENSEPOSE_FINE_PARTS.index(name)


def _charts(*prefixes: str) -> frozenset[int]:
    return frozenset(i for i, n in enumerate(DENSEPOSE_FINE_PARTS) if i > 0 and n.startswith(prefixes))


# Charts on which each LIP joint counts as visible (the body parts meeting at the joint).
JOINT_CHARTS: tuple[frozenset[int], ...] = (
    _charts("lower_leg_right", "right_foot"),  # R_Ankle
    _charts("upper_leg_right", "lower_leg_right"),  # R_Knee
    _charts("upper_leg_right", "torso"),  # R_Hip
    _charts("upper_leg_left", "torso"),  # L_Hip
    _charts("upper_leg_left", "lower_leg_left"),  # L_Knee
    _charts("lower_leg_left", "left_foot"),  # L_Ankle
    _charts("torso", "upper_leg"),  # B_Pelvis
    _charts("torso"),  # B_Spine
    _charts("head", "torso"),  # B_Neck
    _charts("head"),  # B_Head
    _charts("lower_arm_right", "right_hand"),  # R_Wrist
    _charts("upper_arm_right", "lower_arm_right"),  # R_Elbow
    _charts("upper_arm_right", "torso"),  # R_Shoulder
    _charts("upper_arm_left", "torso"),  # L_Shoulder
    _charts("upper_arm_left", "lower_arm_left"),  # L_Elbow
    _charts("lower_arm_left", "left_hand"),  # L_Wrist
)
assert len(JOINT_CHARTS) == len(LIP_JOINTS)
_JOINT_CHART_LUT = np.zeros((len(LIP_JOINTS), 256), dtype=bool)
for _j, _set in enumerate(JOINT_CHARTS):
    _JOINT_CHART_LUT[_j, list(_set)] = True


def _lut(charts: frozenset[int]) -> np.ndarray:
    lut = np.zeros(256, dtype=bool)
    lut[list(charts)] = True
    return lut


# Charts that an overlay may lie on (see Canvas.paint).
ON_HEAD = _lut(_charts("head"))
ON_HEAD_TORSO = _lut(_charts("head", "torso"))
ON_TORSO = _lut(_charts("torso"))
ON_TORSO_LEGS = _lut(_charts("torso", "upper_leg", "lower_leg"))


# --- shapes and rasterisation -------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class Shape:
    """A union of filled polygons and discs, in float pixel coordinates."""

    polys: tuple[np.ndarray, ...] = ()
    circles: tuple[tuple[float, float, float], ...] = ()


def _perp(d: np.ndarray) -> np.ndarray:
    n = float(np.hypot(d[0], d[1]))
    return np.array([-d[1], d[0]]) / n if n > 1e-9 else np.array([1.0, 0.0])


def capsule(
    p0: np.ndarray, p1: np.ndarray, r0: float, r1: float, cap0: bool = True, cap1: bool = True
) -> Shape:
    """Tapered capsule from ``p0`` (radius ``r0``) to ``p1`` (radius ``r1``); caps are round or flat."""
    n = _perp(p1 - p0)
    poly = np.stack([p0 + n * r0, p1 + n * r1, p1 - n * r1, p0 - n * r0])
    circles = []
    if cap0:
        circles.append((float(p0[0]), float(p0[1]), float(r0)))
    if cap1:
        circles.append((float(p1[0]), float(p1[1]), float(r1)))
    return Shape((poly,), tuple(circles))


def ellipse(
    c: np.ndarray, rx: float, ry: float, up: np.ndarray, t0: float = 0.0, t1: float = 360.0, n: int = 28
) -> Shape:
    """Ellipse with half-axes ``rx`` (across) and ``ry`` (along ``up``); ``t0..t1`` (degrees) cut a chord
    segment, 270 being the top (the ``up`` end)."""
    t = np.deg2rad(np.linspace(t0, t1, n))
    ex = np.array([-up[1], up[0]])  # image-right of the ellipse
    pts = c + np.outer(rx * np.cos(t), ex) + np.outer(ry * np.sin(t), -up)
    return Shape((pts,))


def polygon(*pts: np.ndarray) -> Shape:
    return Shape((np.stack(pts),))


def rasterise(shape: Shape, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel coordinates ``(ys, xs)`` covered by ``shape`` inside a ``height`` x ``width`` canvas."""
    pts = [p for p in shape.polys]
    lo = np.array([np.inf, np.inf])
    hi = -lo
    for p in pts:
        lo = np.minimum(lo, p.min(0))
        hi = np.maximum(hi, p.max(0))
    for cx, cy, r in shape.circles:
        lo = np.minimum(lo, (cx - r, cy - r))
        hi = np.maximum(hi, (cx + r, cy + r))
    x0, y0 = max(int(np.floor(lo[0])) - 1, 0), max(int(np.floor(lo[1])) - 1, 0)
    x1, y1 = min(int(np.ceil(hi[0])) + 2, width), min(int(np.ceil(hi[1])) + 2, height)
    if x1 <= x0 or y1 <= y0:
        empty = np.zeros(0, dtype=np.intp)
        return empty, empty
    buf = np.zeros((y1 - y0, x1 - x0), dtype=np.uint8)
    off = np.array([x0, y0], dtype=np.float64)
    if pts:
        fixed = [np.round((p - off) * _ONE).astype(np.int32) for p in pts]
        cv2.fillPoly(buf, fixed, 1, cv2.LINE_8, _SHIFT)
    for cx, cy, r in shape.circles:
        centre = (int(round((cx - x0) * _ONE)), int(round((cy - y0) * _ONE)))
        cv2.circle(buf, centre, max(int(round(r * _ONE)), 1), 1, -1, cv2.LINE_8, _SHIFT)
    ys, xs = np.nonzero(buf)
    return ys + y0, xs + x0


# --- body-surface parametrisations --------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class AxisFrame:
    """Limb parametrisation: U along ``p0 -> p1``, V across (towards the person's ``left``)."""

    p0: np.ndarray
    p1: np.ndarray
    r0: float
    r1: float
    chart: int
    left: np.ndarray

    def __call__(
        self, xs: np.ndarray, ys: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        d = self.p1 - self.p0
        l2 = max(float(d @ d), 1e-9)
        rx, ry = xs - self.p0[0], ys - self.p0[1]
        t = np.clip((rx * d[0] + ry * d[1]) / l2, 0.0, 1.0)
        n = _perp(d)
        if n @ self.left < 0:
            n = -n
        s = rx * n[0] + ry * n[1]
        r = np.maximum(self.r0 + (self.r1 - self.r0) * t, 0.5)
        v = np.clip(0.5 + 0.5 * s / r, 0.0, 1.0)
        return t, v, np.full(t.shape, self.chart, dtype=np.uint8), v


@dataclass(frozen=True, eq=False)
class PlaneFrame:
    """Planar parametrisation: U across along ``ex`` (half-width vector to the person's left),
    V along ``ey`` (full-length vector down the body); chart by side of the midline."""

    origin: np.ndarray
    ex: np.ndarray
    ey: np.ndarray
    right_chart: int
    left_chart: int

    def __call__(
        self, xs: np.ndarray, ys: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        rx, ry = xs - self.origin[0], ys - self.origin[1]
        u = np.clip(0.5 + 0.5 * (rx * self.ex[0] + ry * self.ex[1]) / float(self.ex @ self.ex), 0.0, 1.0)
        v = np.clip((rx * self.ey[0] + ry * self.ey[1]) / float(self.ey @ self.ey), 0.0, 1.0)
        charts = np.where(u < 0.5, self.right_chart, self.left_chart).astype(np.uint8)
        return u, v, charts, u


Frame = AxisFrame | PlaneFrame


class Canvas:
    """Per-person raster layers: tags, DensePose chart/U/V, and a shading factor for the painter."""

    def __init__(self, height: int, width: int) -> None:
        self.height, self.width = height, width
        self.tags = np.zeros((height, width), dtype=np.uint8)
        self.parts = np.zeros((height, width), dtype=np.uint8)
        self.u = np.zeros((height, width), dtype=np.float32)
        self.v = np.zeros((height, width), dtype=np.float32)
        self.shade = np.ones((height, width), dtype=np.float32)

    def paint(
        self, shape: Shape, tag: Tag, frame: Frame | None = None, beneath: np.ndarray | None = None
    ) -> None:
        """Overwrite the pixels of ``shape`` with ``tag``.

        Body pieces pass only ``frame``: its chart/U/V are written to the body map. Overlays pass
        ``beneath`` (a 256-entry bool table of the charts the overlay may lie on): the body map is
        kept where its chart is in the table and cleared elsewhere; their ``frame``, if any, only
        shades. Shading is constant without a frame.
        """
        ys, xs = rasterise(shape, self.height, self.width)
        if ys.size == 0:
            return
        self.tags[ys, xs] = tag
        if frame is None:
            self.shade[ys, xs] = OVERLAY_SHADE
        else:
            u, v, charts, across = frame(xs.astype(np.float64), ys.astype(np.float64))
            self.shade[ys, xs] = 1.0 - 0.35 * (2.0 * across - 1.0) ** 2
            if beneath is None:
                self.parts[ys, xs] = charts
                self.u[ys, xs] = u
                self.v[ys, xs] = v
                return
        if beneath is None:
            raise ValueError("an overlay needs `beneath` (the charts it may lie on)")
        hidden = ~beneath[self.parts[ys, xs]]
        ys, xs = ys[hidden], xs[hidden]
        self.parts[ys, xs] = 0
        self.u[ys, xs] = 0.0
        self.v[ys, xs] = 0.0


# --- the person ---------------------------------------------------------------------------------
_TORSO_LEVELS = (0.0, 0.17, 0.6, 1.0)  # shoulder top, armpit, waist, hip


class _PersonPainter:
    """Draws one :class:`Skeleton` wearing one :class:`Outfit` onto a :class:`Canvas`."""

    def __init__(self, canvas: Canvas, sk: Skeleton, outfit: Outfit) -> None:
        self.c, self.sk, self.o = canvas, sk, outfit
        self.h = sk.height
        self.up, self.down, self.left = sk.up, -sk.up, sk.left
        self.view = "front" if sk.facing == "front" else "back"
        j = sk.joints
        self.sc = sk.shoulder_center()
        self.pelvis = j[S.PELVIS]
        self.neck_top = self.sc + self.up * 0.03 * self.h
        self.crotch = self.pelvis + self.down * 0.045 * self.h
        h, left = self.h, self.left
        waist = sk.width("waist_half")
        hip_out = sk.width("hip_out")
        self.side_vertices: dict[int, list[np.ndarray]] = {}
        for sigma, sh, hp in ((-1, S.R_SHOULDER, S.R_HIP), (1, S.L_SHOULDER, S.L_HIP)):
            self.side_vertices[sigma] = [
                j[sh] + self.up * 0.022 * h + sigma * left * 0.01 * h,
                j[sh] + sigma * left * 0.012 * h + self.down * 0.05 * h,
                self.pelvis + self.up * 0.12 * h + sigma * left * waist,
                j[hp] + sigma * left * hip_out,
            ]
        self.torso_frame = PlaneFrame(
            self.neck_top,
            left * (float(np.hypot(*(j[S.L_SHOULDER] - j[S.R_SHOULDER]))) / 2 + 0.01 * h),
            self.crotch - self.neck_top,
            chart(f"torso_{self.view}"),
            chart(f"torso_{self.view}"),
        )
        rx, _ = sk.head_axes()
        self.head_frame = PlaneFrame(
            j[S.HEAD], left * rx, self.sc - j[S.HEAD], chart("head_right"), chart("head_left")
        )

    # torso outline helpers
    def side_point(self, sigma: int, level: float) -> np.ndarray:
        return np.array(
            [np.interp(level, _TORSO_LEVELS, [p[k] for p in self.side_vertices[sigma]]) for k in range(2)]
        )

    def _side(self, sigma: int, a: float, b: float) -> list[np.ndarray]:
        inner = [p for lv, p in zip(_TORSO_LEVELS, self.side_vertices[sigma]) if a < lv < b]
        return [self.side_point(sigma, a), *inner, self.side_point(sigma, b)]

    def centre(self, level: float) -> np.ndarray:
        return self.sc + (self.pelvis - self.sc) * level

    def band(self, a: float, b: float) -> Shape:
        """Torso region between levels ``a`` and ``b`` (0 shoulders, 1 hips)."""
        pts = self._side(-1, a, b)
        if b >= 1.0:
            pts.append(self.crotch)
        pts += self._side(1, a, b)[::-1]
        if a <= 0.0:
            pts.append(self.neck_top)
        return Shape((np.stack(pts),))

    def half_band(self, sigma: int, a: float, b: float, gap: float) -> Shape:
        """One side of the torso between levels ``a`` and ``b``, stopping ``gap`` px from the midline."""
        off = sigma * self.left * gap
        pts = self._side(sigma, a, b) + [self.centre(b) + off, self.centre(a) + off]
        return Shape((np.stack(pts),))

    # drawing
    def draw(self) -> None:
        sk, o = self.sk, self.o
        if o.hair == "long" and self.view == "front":
            self.long_hair()
        self.arms(0)
        for side in (0, 1) if sk.right_leg_first else (1, 0):
            self.leg(side)
        self.torso()
        self.hems()
        self.arms(1)
        self.neck()
        if o.scarf:
            self.scarf()
        self.head()
        if o.hair == "long" and self.view == "back":
            self.long_hair()
        if o.bag:
            self.bag()
        self.arms(2)

    def arms(self, layer: int) -> None:
        """Draw the arms of drawing layer ``layer``."""
        for side in (0, 1) if self.sk.right_arm_first else (1, 0):
            if self.sk.arm_layers[side] == layer:
                self.arm(side)

    def limb(
        self,
        p0: np.ndarray,
        p1: np.ndarray,
        radii: tuple[float, float],
        chart_id: int,
        skin: Tag,
        covers: list[tuple[Tag, float, float, float]],
        offset: float,
    ) -> None:
        """One limb segment: skin capsule, then garment covers given in chain coordinates."""
        r0, r1 = max(radii[0], 0.8), max(radii[1], 0.8)
        frame = AxisFrame(p0, p1, r0, r1, chart_id, self.left)
        self.c.paint(capsule(p0, p1, r0, r1), skin, frame)
        for tag, s0, s1, k in covers:
            a, b = min(max(s0 - offset, 0.0), 1.0), min(max(s1 - offset, 0.0), 1.0)
            if b - a < 1e-3:
                continue
            q0, q1 = p0 + (p1 - p0) * a, p0 + (p1 - p0) * b
            ra, rb = (r0 + (r1 - r0) * a) * k, (r0 + (r1 - r0) * b) * k
            self.c.paint(capsule(q0, q1, ra, rb, cap0=a <= 0.0, cap1=b >= 1.0), tag, frame)

    def arm(self, side: int) -> None:
        sk, o, j = self.sk, self.o, self.sk.joints
        name = "right" if side == 0 else "left"
        sh, el, wr = (
            (S.R_SHOULDER, S.R_ELBOW, S.R_WRIST) if side == 0 else (S.L_SHOULDER, S.L_ELBOW, S.L_WRIST)
        )
        skin = (
            (Tag.R_UPPER_ARM, Tag.R_LOWER_ARM, Tag.R_HAND)
            if side == 0
            else (Tag.L_UPPER_ARM, Tag.L_LOWER_ARM, Tag.L_HAND)
        )
        covers: list[tuple[Tag, float, float, float]] = []
        if o.top is not None and o.sleeve > 0:
            covers.append((o.top, 0.0, o.sleeve, 1.18))
        if o.coat:
            covers.append((Tag.COAT, 0.0, o.coat_sleeve, 1.32))
        self.limb(
            j[sh], j[el], sk.radii("upper_arm"), chart(f"upper_arm_{name}_{self.view}"), skin[0], covers, 0.0
        )
        self.limb(
            j[el], j[wr], sk.radii("lower_arm"), chart(f"lower_arm_{name}_{self.view}"), skin[1], covers, 1.0
        )
        rh = max(sk.width("hand"), 0.8)
        tip = sk.hand_tips[side]
        frame = AxisFrame(j[wr], tip, rh, 0.85 * rh, chart(f"{name}_hand"), self.left)
        glove = Tag.R_GLOVE if side == 0 else Tag.L_GLOVE
        k = 1.12 if o.gloves else 1.0
        self.c.paint(capsule(j[wr], tip, rh * k, 0.85 * rh * k), glove if o.gloves else skin[2], frame)

    def leg(self, side: int) -> None:
        sk, o, j = self.sk, self.o, self.sk.joints
        name = "right" if side == 0 else "left"
        hp, kn, an = (S.R_HIP, S.R_KNEE, S.R_ANKLE) if side == 0 else (S.L_HIP, S.L_KNEE, S.L_ANKLE)
        skin = (
            (Tag.R_UPPER_LEG, Tag.R_LOWER_LEG, Tag.R_FOOT)
            if side == 0
            else (Tag.L_UPPER_LEG, Tag.L_LOWER_LEG, Tag.L_FOOT)
        )
        covers: list[tuple[Tag, float, float, float]] = []
        if o.socks:
            covers.append((Tag.R_SOCK if side == 0 else Tag.L_SOCK, 1.72, 2.0, 1.08))
        if o.bottom in (Tag.PANTS, Tag.SHORTS, Tag.JUMPSUIT_LEGS) and o.leg_cover > 0:
            covers.append((o.bottom, 0.0, o.leg_cover, 1.15))
        self.limb(
            j[hp], j[kn], sk.radii("upper_leg"), chart(f"upper_leg_{name}_{self.view}"), skin[0], covers, 0.0
        )
        self.limb(
            j[kn], j[an], sk.radii("lower_leg"), chart(f"lower_leg_{name}_{self.view}"), skin[1], covers, 1.0
        )
        rf = max(sk.width("foot"), 0.8)
        toe = sk.toes[side]
        frame = AxisFrame(j[an], toe, rf, rf, chart(f"{name}_foot"), self.left)
        shoe = Tag.R_SHOE if side == 0 else Tag.L_SHOE
        k = 1.25 if o.shoes else 1.0
        self.c.paint(capsule(j[an], toe, rf * k, rf * k), shoe if o.shoes else skin[2], frame)

    def torso(self) -> None:
        o, f = self.o, self.torso_frame
        if o.top is Tag.DRESS or o.bottom is None:
            self.c.paint(self.band(0.0, 1.0), o.top if o.top is not None else Tag.TORSO_SKIN, f)
        else:
            self.c.paint(self.band(0.0, 1.0), o.bottom, f)
            self.c.paint(self.band(0.0, o.top_cut), o.top if o.top is not None else Tag.TORSO_SKIN, f)
        if o.neckline > 0 and o.top is not None and self.view == "front":
            nw = 1.4 * self.sk.width("neck") * self.left
            self.c.paint(
                polygon(self.neck_top + nw, self.neck_top - nw, self.sc + self.down * o.neckline * self.h),
                Tag.TORSO_SKIN,
                f,
            )
        if o.belt:
            self.c.paint(self.band(o.top_cut, min(1.0, o.top_cut + 0.07)), Tag.BELT, f)
        if o.coat:
            gap = 0.025 * self.h if o.coat_open else 0.0
            for sigma in (-1, 1):
                self.c.paint(self.half_band(sigma, 0.0, 1.0, gap), Tag.COAT, f)

    def hems(self) -> None:
        """Skirt / dress skirt and coat tails: garments hanging below the hips, over the legs."""
        o, j, h, left, down = self.o, self.sk.joints, self.h, self.left, self.down
        hip_half = float(np.hypot(*(j[S.L_HIP] - j[S.R_HIP]))) / 2 + self.sk.width("hip_out")
        if o.skirt_len > 0 and (o.bottom is Tag.SKIRT or o.top is Tag.DRESS):
            tag = Tag.DRESS if o.top is Tag.DRESS else Tag.SKIRT
            a = 0.6 if tag is Tag.DRESS else o.top_cut
            flare = 0.02 * h + 0.3 * o.skirt_len * h
            bottom = self.pelvis + down * o.skirt_len * h
            pts = [
                self.side_point(-1, a),
                self.side_point(-1, 1.0),
                bottom - left * (hip_half + flare),
                bottom + left * (hip_half + flare),
                self.side_point(1, 1.0),
                self.side_point(1, a),
            ]
            frame = AxisFrame(self.centre(a), bottom, hip_half, hip_half + flare, 0, left)
            self.c.paint(Shape((np.stack(pts),)), tag, frame, beneath=ON_TORSO_LEGS)
        if o.coat and o.coat_len > 0:
            gap = 0.025 * h if o.coat_open else 0.0
            bottom = self.pelvis + down * o.coat_len * h
            frame = AxisFrame(self.pelvis, bottom, hip_half, hip_half + 0.03 * h, 0, left)
            for sigma in (-1, 1):
                pts = [
                    self.side_point(sigma, 0.8) + sigma * left * 0.01 * h,
                    bottom + sigma * left * (hip_half + 0.04 * h),
                    bottom + sigma * left * gap,
                    self.pelvis + sigma * left * gap,
                ]
                self.c.paint(Shape((np.stack(pts),)), Tag.COAT, frame, beneath=ON_TORSO_LEGS)

    def neck(self) -> None:
        r = max(self.sk.width("neck"), 0.8)
        self.c.paint(capsule(self.sc, self.sk.joints[S.NECK], r, r), Tag.NECK, self.head_frame)

    def scarf(self) -> None:
        h, left, up, down = self.h, self.left, self.up, self.down
        base = self.sc + up * 0.02 * h
        r = max(0.022 * h, 1.0)
        self.c.paint(
            capsule(base - left * 0.045 * h, base + left * 0.045 * h, r, r), Tag.SCARF, beneath=ON_HEAD_TORSO
        )
        if self.view == "front":
            top = base + left * 0.03 * h
            self.c.paint(
                capsule(top, top + down * 0.17 * h + left * 0.01 * h, 0.75 * r, 0.75 * r),
                Tag.SCARF,
                beneath=ON_HEAD_TORSO,
            )

    def head(self) -> None:
        o, sk = self.o, self.sk
        c = sk.head_center()
        rx, ry = sk.head_axes()
        hu = sk.head_up
        hr = np.array([-hu[1], hu[0]])  # image-right of the head
        if self.view == "front":
            if o.hair != "bald":
                self.c.paint(
                    ellipse(c + hu * 0.06 * ry, 1.12 * rx, 1.05 * ry, hu), Tag.HAIR, beneath=ON_HEAD_TORSO
                )
            self.c.paint(ellipse(c, rx, ry, hu), Tag.FACE, self.head_frame)
            if o.hair != "bald":
                phi = float(np.degrees(np.arcsin(o.hairline)))
                self.c.paint(
                    ellipse(c, 1.02 * rx, 1.02 * ry, hu, 180.0 + phi, 360.0 - phi), Tag.HAIR, beneath=ON_HEAD
                )
        else:
            self.c.paint(
                ellipse(c, 1.04 * rx, 1.02 * ry, hu),
                Tag.FACE if o.hair == "bald" else Tag.HAIR,
                self.head_frame,
            )
        if o.hat:
            phi = float(np.degrees(np.arcsin(0.3)))
            self.c.paint(
                ellipse(c, 1.15 * rx, 1.12 * ry, hu, 180.0 + phi, 360.0 - phi), Tag.HAT, beneath=ON_HEAD
            )
            if o.hat_brim:
                self.c.paint(
                    ellipse(c + hu * 0.3 * ry, 1.55 * rx, 0.17 * ry + 0.5, hu), Tag.HAT, beneath=ON_HEAD
                )
        if o.sunglasses and self.view == "front":
            eyes = c + hu * 0.08 * ry
            for s in (-1, 1):
                self.c.paint(
                    ellipse(eyes + s * hr * 0.42 * rx, 0.36 * rx + 0.3, 0.2 * ry + 0.3, hu, n=16),
                    Tag.SUNGLASSES,
                    beneath=ON_HEAD,
                )
            rb = max(0.05 * ry, 0.5)
            self.c.paint(
                capsule(eyes - hr * 0.1 * rx, eyes + hr * 0.1 * rx, rb, rb), Tag.SUNGLASSES, beneath=ON_HEAD
            )

    def long_hair(self) -> None:
        c = self.sk.head_center()
        rx, ry = self.sk.head_axes()
        hr = np.array([-self.sk.head_up[1], self.sk.head_up[0]])
        bottom = c + self.down * (ry + self.o.hair_len * self.h)
        w0 = 1.12 * rx
        self.c.paint(
            polygon(c + hr * w0, bottom + hr * w0 * 1.1, bottom - hr * w0 * 1.1, c - hr * w0),
            Tag.HAIR,
            beneath=ON_HEAD_TORSO,
        )

    def bag(self) -> None:
        j, h, left, down = self.sk.joints, self.h, self.left, self.down
        sigma = self.o.bag
        sh = j[S.L_SHOULDER] if sigma > 0 else j[S.R_SHOULDER]
        hip = j[S.R_HIP] if sigma > 0 else j[S.L_HIP]
        centre = hip - sigma * left * 0.09 * h + down * 0.03 * h
        r = max(0.007 * h, 0.6)
        self.c.paint(capsule(sh + self.up * 0.01 * h, centre, r, r), Tag.BAG, beneath=ON_TORSO)
        a, b = left * 0.055 * h, down * 0.045 * h
        self.c.paint(
            polygon(centre - a - b, centre + a - b, centre + a + b, centre - a + b), Tag.BAG, beneath=ON_TORSO
        )


# --- public API -----------------------------------------------------------------------------------
@dataclass(eq=False)
class PersonRender:
    """One rendered person on a full-size canvas.

    Attributes:
        tags: ``(H, W)`` uint8 :class:`Tag` map, 0 = not this person.
        parts: ``(H, W)`` uint8 DensePose fine chart (0..24), 0 where the visible surface is not on
            the body.
        u, v: ``(H, W)`` float32 chart coordinates in [0, 1] (0 where ``parts`` is 0).
        shade: ``(H, W)`` float32 shading factor for the painter (1 = flat).
        mask: ``(H, W)`` bool, ``tags > 0``.
        joints: ``(16, 2)`` float64 joint positions (x, y) in pixels, LIP order.
        in_image: ``(16,)`` bool, joint inside the image.
        visible: ``(16,)`` bool, joint inside the image and not hidden by another body part.
        skeleton, outfit: what was drawn.
    """

    tags: np.ndarray
    parts: np.ndarray
    u: np.ndarray
    v: np.ndarray
    shade: np.ndarray
    mask: np.ndarray
    joints: np.ndarray
    in_image: np.ndarray
    visible: np.ndarray
    skeleton: Skeleton
    outfit: Outfit


def joint_visibility(joints: np.ndarray, parts: np.ndarray, owner: np.ndarray) -> np.ndarray:
    """``(16,)`` bool: a joint is visible when, within one pixel of it, a pixel of ``owner`` (bool map
    of this person's visible pixels) lies on one of the body parts meeting at the joint."""
    h, w = parts.shape
    out = np.zeros(len(joints), dtype=bool)
    for j, (x, y) in enumerate(joints):
        if not (0 <= x <= w - 1 and 0 <= y <= h - 1):
            continue
        xi, yi = int(round(x)), int(round(y))
        y0, y1, x0, x1 = max(yi - 1, 0), min(yi + 2, h), max(xi - 1, 0), min(xi + 2, w)
        win = parts[y0:y1, x0:x1]
        out[j] = bool((_JOINT_CHART_LUT[j][win] & owner[y0:y1, x0:x1]).any())
    return out


def draw_person(height: int, width: int, skeleton: Skeleton, outfit: Outfit) -> PersonRender:
    """Rasterise a given skeleton and outfit (deterministic, no randomness)."""
    canvas = Canvas(height, width)
    _PersonPainter(canvas, skeleton, outfit).draw()
    mask = canvas.tags > 0
    return PersonRender(
        tags=canvas.tags,
        parts=canvas.parts,
        u=canvas.u,
        v=canvas.v,
        shade=canvas.shade,
        mask=mask,
        joints=skeleton.joints.copy(),
        in_image=skeleton.in_image(height, width),
        visible=joint_visibility(skeleton.joints, canvas.parts, mask),
        skeleton=skeleton,
        outfit=outfit,
    )


def render_person(
    rng: np.random.Generator,
    height: int,
    width: int,
    *,
    skeleton: Skeleton | None = None,
    outfit: Outfit | None = None,
    facing: str | None = None,
) -> PersonRender:
    """Render one random person (or the given ``skeleton`` / ``outfit``) on a ``height`` x ``width``
    canvas. A sampled skeleton is roughly centred (see :func:`skeleton.sample_skeleton`)."""
    if skeleton is None:
        skeleton = sample_skeleton(rng, height, width, facing=facing)
    if outfit is None:
        outfit = sample_outfit(rng, skeleton.facing)
    return draw_person(height, width, skeleton, outfit)
