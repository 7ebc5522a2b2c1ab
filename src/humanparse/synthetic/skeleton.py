"""Articulated 2-D skeleton with the 16 LIP joints, and random but plausible poses.

Coordinates are image pixels, ``x`` = column, ``y`` = row (rows grow downwards). Joint order is
``meta.LIP_JOINTS``. Left/right always refer to the PERSON: a person ``facing='front'`` (looking at
the camera) has their left side on the image right; ``facing='back'`` has it on the image left.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from humanparse.data.meta import COCO_JOINTS, LIP_JOINTS

FACINGS = ("front", "back")

# Joint indices, LIP / MPII order (meta.LIP_JOINTS).
(
    R_ANKLE,
    R_KNEE,
    R_HIP,
    L_HIP,
    L_KNEE,
    L_ANKLE,
    PELVIS,
    SPINE,
    NECK,
    HEAD,
    R_WRIST,
    R_ELBOW,
    R_SHOULDER,
    L_SHOULDER,
    L_ELBOW,
    L_WRIST,
) = range(16)
assert LIP_JOINTS[L_WRIST] == "L_Wrist" and LIP_JOINTS[SPINE] == "B_Spine"

# Mean segment lengths, in units of body height (head top to sole).
LENGTHS: dict[str, float] = {
    "head": 0.13,  # head top -> chin (B_Head -> B_Neck)
    "neck": 0.05,  # shoulder line -> chin
    "torso": 0.30,  # shoulder line -> hip line
    "upper_leg": 0.245,
    "lower_leg": 0.245,
    "foot": 0.06,
    "upper_arm": 0.165,
    "lower_arm": 0.145,
    "hand": 0.075,
    "shoulder_half": 0.105,
    "hip_half": 0.08,
}
# Mean half-widths (radii), in units of body height. Pairs are (proximal, distal).
WIDTHS: dict[str, float | tuple[float, float]] = {
    "head_rx": 0.052,
    "neck": 0.026,
    "upper_arm": (0.030, 0.024),
    "lower_arm": (0.024, 0.018),
    "hand": 0.019,
    "upper_leg": (0.055, 0.037),
    "lower_leg": (0.036, 0.024),
    "foot": 0.022,
    "waist_half": 0.072,
    "hip_out": 0.035,
}

# Arm modes: (probability, upper-arm abduction range, elbow angle range, drawing layer).
# Abduction 0 = hanging down, positive = away from the body; the forearm direction is abduction + elbow.
# Layers (see render.py): 0 behind the torso, 1 beside the body in front of skirts / coat tails,
# 2 in front of everything (arms crossing the torso, hands on the hips).
ARM_MODES: dict[str, tuple[float, tuple[float, float], tuple[float, float], int]] = {
    "down": (0.50, (4.0, 25.0), (-5.0, 35.0), 1),
    "raised": (0.15, (70.0, 170.0), (-60.0, 40.0), 0),
    "across": (0.20, (-10.0, 20.0), (-150.0, -90.0), 2),
    "hip": (0.15, (35.0, 60.0), (-150.0, -110.0), 2),
}
# Leg modes: (probability, hip abduction range, knee angle range).
LEG_MODES: dict[str, tuple[float, tuple[float, float], tuple[float, float]]] = {
    "stand": (0.60, (-2.0, 12.0), (-6.0, 6.0)),
    "wide": (0.20, (12.0, 28.0), (-10.0, 5.0)),
    "step": (0.12, (-5.0, 18.0), (-25.0, 25.0)),
    "cross": (0.08, (-14.0, -7.0), (0.0, 10.0)),
}


def _unit(v: np.ndarray) -> np.ndarray:
    n = float(np.hypot(v[0], v[1]))
    return v / n if n > 0 else v


def _rot(v: np.ndarray, deg: float) -> np.ndarray:
    """Rotate an image-plane vector by ``deg`` degrees (clockwise on screen, since y points down)."""
    a = np.deg2rad(deg)
    c, s = np.cos(a), np.sin(a)
    return np.array([c * v[0] - s * v[1], s * v[0] + c * v[1]])


@dataclass(frozen=True, eq=False)
class Skeleton:
    """A posed 2-D person skeleton in image pixels.

    Attributes:
        joints: ``(16, 2)`` float64 joint positions (x, y), ``meta.LIP_JOINTS`` order. ``B_Neck``
            is the chin (bottom of the head ellipse), ``B_Head`` the head top.
        facing: ``'front'`` or ``'back'``.
        height: nominal body height in pixels (head top to sole); all widths scale with it.
        up: unit vector along the torso, pelvis -> neck.
        left: unit vector towards the person's left, perpendicular to ``up``.
        head_up: unit vector chin -> head top (head tilt).
        hand_tips: ``(2, 2)`` finger-tip points, row 0 right hand, row 1 left hand.
        toes: ``(2, 2)`` toe points, row 0 right foot, row 1 left foot.
        arm_layers: (right, left) drawing layer of each arm (``ARM_MODES``): 0 behind the torso,
            1 in front of the torso's hems, 2 in front of everything.
        right_leg_first: whether the right leg is drawn before (behind) the left leg.
        right_arm_first: whether, within one layer, the right arm is drawn before the left arm.
        arm_modes, leg_modes: (right, left) pose mode names, for diagnostics.
        widths: per-person half-widths in units of body height (``WIDTHS`` keys, jittered).
    """

    joints: np.ndarray
    facing: str
    height: float
    up: np.ndarray
    left: np.ndarray
    head_up: np.ndarray
    hand_tips: np.ndarray
    toes: np.ndarray
    arm_layers: tuple[int, int]
    right_leg_first: bool
    right_arm_first: bool
    arm_modes: tuple[str, str]
    leg_modes: tuple[str, str]
    widths: dict[str, float | tuple[float, float]]

    def width(self, key: str) -> float:
        """Half-width ``key`` in pixels (a scalar width)."""
        w = self.widths[key]
        assert not isinstance(w, tuple)
        return float(w) * self.height

    def radii(self, key: str) -> tuple[float, float]:
        """(proximal, distal) radius of limb ``key`` in pixels."""
        w = self.widths[key]
        assert isinstance(w, tuple)
        return float(w[0]) * self.height, float(w[1]) * self.height

    def head_center(self) -> np.ndarray:
        return (self.joints[HEAD] + self.joints[NECK]) / 2.0

    def head_axes(self) -> tuple[float, float]:
        """(half-width, half-height) of the head ellipse in pixels."""
        ry = float(np.hypot(*(self.joints[HEAD] - self.joints[NECK]))) / 2.0
        return self.width("head_rx"), ry

    def shoulder_center(self) -> np.ndarray:
        return (self.joints[L_SHOULDER] + self.joints[R_SHOULDER]) / 2.0

    def in_image(self, height: int, width: int) -> np.ndarray:
        """``(16,)`` bool: joint lies inside the image (0 <= x <= W-1, 0 <= y <= H-1)."""
        x, y = self.joints[:, 0], self.joints[:, 1]
        return (x >= 0) & (x <= width - 1) & (y >= 0) & (y <= height - 1)

    def extent(self) -> tuple[float, float, float, float]:
        """Approximate (x0, y0, x1, y1) of the body including limb thickness, in pixels."""
        pts = np.concatenate([self.joints, self.hand_tips, self.toes])
        pad = 0.07 * self.height
        return (
            float(pts[:, 0].min() - pad),
            float(pts[:, 1].min() - pad),
            float(pts[:, 0].max() + pad),
            float(pts[:, 1].max() + pad),
        )

    def translated(self, dx: float, dy: float) -> Skeleton:
        """The same skeleton shifted by (dx, dy) pixels."""
        d = np.array([dx, dy])
        return replace(self, joints=self.joints + d, hand_tips=self.hand_tips + d, toes=self.toes + d)

    def coco_keypoints(self) -> np.ndarray:
        """``(17, 2)`` keypoints in ``meta.COCO_JOINTS`` order, face points placed on the head ellipse.

        For a person facing away the face points are still returned (where they would project);
        callers decide their visibility.
        """
        c = self.head_center()
        rx, ry = self.head_axes()
        side = self.left * rx
        eye_y = c + self.head_up * 0.1 * ry
        pts = {
            "nose": c - self.head_up * 0.2 * ry,
            "left_eye": eye_y + 0.4 * side,
            "right_eye": eye_y - 0.4 * side,
            "left_ear": c + 0.95 * side,
            "right_ear": c - 0.95 * side,
        }
        limb = {
            "shoulder": (L_SHOULDER, R_SHOULDER),
            "elbow": (L_ELBOW, R_ELBOW),
            "wrist": (L_WRIST, R_WRIST),
            "hip": (L_HIP, R_HIP),
            "knee": (L_KNEE, R_KNEE),
            "ankle": (L_ANKLE, R_ANKLE),
        }
        for name, (li, ri) in limb.items():
            pts[f"left_{name}"] = self.joints[li]
            pts[f"right_{name}"] = self.joints[ri]
        return np.stack([pts[n] for n in COCO_JOINTS]).astype(np.float64)


def _pick(rng: np.random.Generator, modes: dict) -> str:
    names = list(modes)
    p = np.array([modes[n][0] for n in names], dtype=np.float64)
    return names[int(rng.choice(len(names), p=p / p.sum()))]


def _jitter(rng: np.random.Generator, table: dict, lo: float, hi: float) -> dict:
    out: dict = {}
    for k, v in table.items():
        f = float(rng.uniform(lo, hi))
        out[k] = (v[0] * f, v[1] * f) if isinstance(v, tuple) else v * f
    return out


def sample_pose(rng: np.random.Generator, facing: str | None = None) -> Skeleton:
    """A random skeleton of height 1 with its head top at the origin and pelvis at x = 0.

    Use :func:`place` (or :func:`sample_skeleton`) to scale and position it in an image.
    """
    if facing is None:
        facing = "front" if rng.random() < 0.7 else "back"
    if facing not in FACINGS:
        raise ValueError(f"facing must be one of {FACINGS}, got {facing!r}")
    L = _jitter(rng, LENGTHS, 0.93, 1.07)
    W = _jitter(rng, WIDTHS, 0.85, 1.2)

    lean = float(np.clip(rng.normal(0.0, 4.0), -10.0, 10.0))
    up = np.array([np.sin(np.deg2rad(lean)), -np.cos(np.deg2rad(lean))])
    down = -up
    img_right = np.array([-up[1], up[0]])  # perpendicular, pointing to the image right
    left = img_right if facing == "front" else -img_right

    pelvis = np.zeros(2)
    sc = pelvis + up * L["torso"]  # shoulder centre
    head_up = _rot(up, float(np.clip(rng.normal(0.0, 6.0), -15.0, 15.0)))
    chin = sc + head_up * L["neck"]
    head_top = chin + head_up * L["head"]
    thorax = sc + down * 0.02

    joints = np.zeros((16, 2))
    joints[PELVIS], joints[SPINE], joints[NECK], joints[HEAD] = pelvis, thorax, chin, head_top

    def direction(angle: float, sigma: float) -> np.ndarray:
        a = np.deg2rad(angle)
        return np.cos(a) * down + np.sin(a) * sigma * left

    arm_layers: list[int] = []
    arm_modes: list[str] = []
    tips = np.zeros((2, 2))
    for row, (sigma, sh, el, wr) in enumerate(
        ((-1.0, R_SHOULDER, R_ELBOW, R_WRIST), (1.0, L_SHOULDER, L_ELBOW, L_WRIST))
    ):
        mode = _pick(rng, ARM_MODES)
        _, abd, bend, layer = ARM_MODES[mode]
        a1 = float(rng.uniform(*abd))
        a2 = a1 + float(rng.uniform(*bend))
        joints[sh] = sc + sigma * left * L["shoulder_half"] + down * 0.012
        joints[el] = joints[sh] + direction(a1, sigma) * L["upper_arm"]
        joints[wr] = joints[el] + direction(a2, sigma) * L["lower_arm"]
        tips[row] = joints[wr] + direction(a2 + float(rng.normal(0.0, 12.0)), sigma) * L["hand"]
        arm_layers.append(layer)
        arm_modes.append(mode)

    leg_modes: list[str] = []
    toes = np.zeros((2, 2))
    for row, (sigma, hp, kn, an) in enumerate(
        ((-1.0, R_HIP, R_KNEE, R_ANKLE), (1.0, L_HIP, L_KNEE, L_ANKLE))
    ):
        mode = _pick(rng, LEG_MODES)
        _, abd, bend = LEG_MODES[mode]
        b1 = float(rng.uniform(*abd))
        b2 = b1 + float(rng.uniform(*bend))
        joints[hp] = pelvis + sigma * left * L["hip_half"]
        joints[kn] = joints[hp] + direction(b1, sigma) * L["upper_leg"]
        joints[an] = joints[kn] + direction(b2, sigma) * L["lower_leg"]
        toes[row] = joints[an] + _unit(direction(b2, sigma) + 0.8 * sigma * left) * L["foot"]
        leg_modes.append(mode)

    # Normalise: head top at y = 0, pelvis at x = 0, nominal height = head top -> lowest sole.
    sole = max(toes[:, 1].max(), joints[[R_ANKLE, L_ANKLE], 1].max() + 0.04)
    scale = 1.0 / (sole - head_top[1])
    origin = np.array([pelvis[0], head_top[1]])
    return Skeleton(
        joints=(joints - origin) * scale,
        facing=facing,
        height=1.0,
        up=up,
        left=left,
        head_up=head_up,
        hand_tips=(tips - origin) * scale,
        toes=(toes - origin) * scale,
        arm_layers=(arm_layers[0], arm_layers[1]),
        right_leg_first=bool(rng.random() < 0.5),
        right_arm_first=bool(rng.random() < 0.5),
        arm_modes=(arm_modes[0], arm_modes[1]),
        leg_modes=(leg_modes[0], leg_modes[1]),
        widths={
            k: ((v[0] * scale, v[1] * scale) if isinstance(v, tuple) else v * scale) for k, v in W.items()
        },
    )


def place(skeleton: Skeleton, height_px: float, pelvis_x: float, head_top_y: float) -> Skeleton:
    """Scale a unit skeleton from :func:`sample_pose` to ``height_px`` and move it into the image."""
    if skeleton.height != 1.0:
        raise ValueError("place() expects a unit skeleton from sample_pose()")
    t = np.array([pelvis_x, head_top_y])
    return replace(
        skeleton,
        joints=skeleton.joints * height_px + t,
        hand_tips=skeleton.hand_tips * height_px + t,
        toes=skeleton.toes * height_px + t,
        height=float(height_px),
    )


def sample_skeleton(
    rng: np.random.Generator,
    height: int,
    width: int,
    *,
    facing: str | None = None,
    height_frac: tuple[float, float] = (0.5, 0.9),
    crop_prob: float = 0.1,
    crop_frac: tuple[float, float] = (1.0, 1.6),
) -> Skeleton:
    """One person roughly centred in an ``height`` x ``width`` image.

    The body height is ``height_frac`` of the image height; with probability ``crop_prob`` it is
    ``crop_frac`` instead and the head stays near the top, so the legs leave the image (absent
    joints). Limbs may leave the image on the sides as well.
    """
    sk = sample_pose(rng, facing)
    if rng.random() < crop_prob:
        frac = float(rng.uniform(*crop_frac))
        top = float(rng.uniform(0.02, 0.08)) * height
    else:
        frac = float(rng.uniform(*height_frac))
        top = float(rng.uniform(0.02, max(0.02, 0.98 - frac))) * height
    cx = width / 2.0 + float(rng.normal(0.0, 0.06)) * width
    return place(sk, frac * height, cx, top)
