"""A small synthetic body surface and UV symmetry table in the structure of the official DensePose files.

It has the structure of detectron2 DensePose's ``densepose_uv_data`` files (vertex charts and UV, a
geodesic distance matrix, the UV symmetry table). The real tables derive from SMPL, whose licence forbids
redistribution, so tests, synthetic datasets
and the benchmark use this surface; the metric code path is the same for both.

The surface is a 1.75 m body in an A-pose (metres; x towards the person's left, y up, z forwards),
built from the same parametrisation the synthetic renderer (:mod:`humanparse.synthetic.render`)
draws, so GPS between rendered points is meaningful:

* limbs (fine charts 7-22): tapered cylinders, U along the limb (0 proximal joint, 1 distal end), V
  across; front chart θ = arccos(1 − 2V) from the person's right side through the front, back chart
  the same arc through the back (orthographic projection of the cylinder gives the renderer's linear
  V). Front and back charts share their V = 0 and V = 1 lines (the seams).
* torso (1 back, 2 front): elliptic cylinder, U across (0 right side, 1 left side), V down from the
  neck (0) to the crotch (1); the charts share the U = 0 and U = 1 lines.
* head (23 right, 24 left): the renderer parametrises the head as one face for both facings: U across
  (0 right, 1 left) and V from the head top to the shoulder line; chart 23 holds U ≤ 0.5 and chart 24
  U ≥ 0.5, sharing the U = 0.5 line. So these two charts cover only their half of the UV square (as
  in the renderer; a query elsewhere snaps to the seam).
* hands and feet (3-6): flat plates, U from the wrist / ankle to the tip, V across.

Upper and lower limbs share their joint rings; other joints (neck, shoulders, wrists, hips, ankles) are
stitched with edges to the nearest vertices. Geodesic distances are all-pairs Dijkstra
(``scipy.sparse.csgraph``) over the grid edges (with diagonals) weighted by 3-D length. Left-side
geometry is the exact mirror of the right side, so the distances are invariant under the mirror map
that :func:`synthetic_uv_symmetry` tabulates: limbs, hands and feet (p, U, V) → (flip(p), U, 1 − V);
torso and head (p, U, V) → (flip(p), 1 − U, V), flip = the fine-part flip table.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import shortest_path

from humanparse.data.densepose_format import (
    NUM_PARTS,
    SURFACE_NPZ,
    UV_SYMMETRY,
    BodySurface,
    UVSymmetry,
)
from humanparse.data.meta import DENSEPOSE_FINE_FLIP, DENSEPOSE_FINE_PARTS

# fine charts by parametrisation family
TORSO_HEAD_CHARTS = frozenset((1, 2, 23, 24))  # U across: mirror U -> 1 - U
LIMB_CHARTS = frozenset(range(3, 23))  # V across: mirror V -> 1 - V

# grid resolution per chart (points along U, points along V)
TORSO_GRID = (9, 9)
LIMB_GRID = (6, 7)
PLATE_GRID = (5, 5)
HEAD_GRID = (9, 7)  # U over [0, 1] split at 0.5 into the two head charts

# body geometry (metres), right side; the left side is its mirror (x -> -x)
BODY = {
    "head": {"top": 1.75, "bottom": 1.45, "half_width": 0.08, "half_depth": 0.10},
    "torso": {"top": 1.45, "bottom": 0.85, "half_width": 0.17, "half_depth": 0.11},
    "shoulder": (-0.20, 1.40, 0.0),
    "arm_angle_deg": 10.0,
    "upper_arm": {"length": 0.29, "radii": (0.052, 0.042)},
    "lower_arm": {"length": 0.25, "radii": (0.042, 0.032)},
    "hand": {"length": 0.13, "half_width": 0.035},
    "hip": (-0.095, 0.85, 0.0),
    "upper_leg": {"length": 0.43, "radii": (0.085, 0.062)},
    "lower_leg": {"length": 0.42, "radii": (0.062, 0.042)},
    "foot": {"length": 0.15, "half_width": 0.04},
}
_NM = 1e9  # vertices are merged on a 1 nm grid


def _chart(name: str) -> int:
    return DENSEPOSE_FINE_PARTS.index(name)


def mirror_uv(parts: np.ndarray, u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Exact mirror of surface points: the map the synthetic symmetry table samples."""
    parts = np.asarray(parts, dtype=np.int64)
    u = np.asarray(u, dtype=np.float64)
    v = np.asarray(v, dtype=np.float64)
    across_u = np.isin(parts, list(TORSO_HEAD_CHARTS))
    return DENSEPOSE_FINE_FLIP[parts], np.where(across_u, 1.0 - u, u), np.where(across_u, v, 1.0 - v)


class _Builder:
    """Collects chart vertices (3-D position + UV) and edges, then merges coincident positions."""

    def __init__(self) -> None:
        self.pos: list[np.ndarray] = []  # per chart (n, 3)
        self.uv: list[np.ndarray] = []
        self.part: list[np.ndarray] = []
        self.grid_edges: list[np.ndarray] = []  # per chart, local (a, b) pairs
        self.offset = 0
        self.rings: dict[str, np.ndarray] = {}  # named UV-vertex index sets, for stitching

    def add_chart(self, part: int, uu: np.ndarray, vv: np.ndarray, pos: np.ndarray) -> np.ndarray:
        """Chart grid: ``uu``/``vv`` (nu, nv) UV, ``pos`` (nu, nv, 3). Returns the (nu, nv) vertex indices."""
        nu, nv = uu.shape
        idx = np.arange(nu * nv).reshape(nu, nv)
        e = [
            np.stack([idx[:-1, :].ravel(), idx[1:, :].ravel()], 1),
            np.stack([idx[:, :-1].ravel(), idx[:, 1:].ravel()], 1),
            np.stack([idx[:-1, :-1].ravel(), idx[1:, 1:].ravel()], 1),
            np.stack([idx[1:, :-1].ravel(), idx[:-1, 1:].ravel()], 1),
        ]
        self.grid_edges.append(np.concatenate(e) + self.offset)
        self.pos.append(pos.reshape(-1, 3))
        self.uv.append(np.stack([uu.ravel(), vv.ravel()], 1))
        self.part.append(np.full(nu * nv, part, dtype=np.int64))
        out = idx + self.offset
        self.offset += nu * nv
        return out


def _grid(n: int, lo: int = 0, hi: int | None = None, den: int | None = None) -> np.ndarray:
    """k/den for k = lo..hi (exact rationals, so that mirrored grid values are exactly 1 − value)."""
    den = n - 1 if den is None else den
    hi = den if hi is None else hi
    return np.arange(lo, hi + 1, dtype=np.float64) / den


def _cyl(u: np.ndarray, v: np.ndarray, p0, p1, r0: float, r1: float, e_l, back: bool) -> np.ndarray:
    """Limb cylinder point for U along p0→p1 and V across (renderer convention, orthographic)."""
    p0, p1, e_l = (np.asarray(a, np.float64) for a in (p0, p1, e_l))
    e_f = np.array([0.0, 0.0, 1.0])
    r = r0 + (r1 - r0) * u
    across = 2.0 * v - 1.0
    depth = 2.0 * np.sqrt(np.clip(v * (1.0 - v), 0.0, None)) * (-1.0 if back else 1.0)
    return p0 + u[..., None] * (p1 - p0) + r[..., None] * (across[..., None] * e_l + depth[..., None] * e_f)


def _plate(u: np.ndarray, v: np.ndarray, p0, p1, half_width: float, e_l) -> np.ndarray:
    p0, p1, e_l = (np.asarray(a, np.float64) for a in (p0, p1, e_l))
    return p0 + u[..., None] * (p1 - p0) + (half_width * (2.0 * v - 1.0))[..., None] * e_l


def _mirror(p: np.ndarray) -> np.ndarray:
    return p * np.array([-1.0, 1.0, 1.0])


def _build() -> BodySurface:
    b = _Builder()
    # torso: U across, V down
    t = BODY["torso"]
    tu, tv = np.meshgrid(_grid(TORSO_GRID[0]), _grid(TORSO_GRID[1]), indexing="ij")
    torso = {}
    for name, back in (("torso_back", True), ("torso_front", False)):
        x = t["half_width"] * (2.0 * tu - 1.0)
        z = 2.0 * t["half_depth"] * np.sqrt(tu * (1.0 - tu)) * (-1.0 if back else 1.0)
        y = t["top"] - tv * (t["top"] - t["bottom"])
        torso[name] = b.add_chart(_chart(name), tu, tv, np.stack([x, y, z], -1))
    b.rings["torso_top"] = np.concatenate([torso[n][:, 0] for n in torso])
    b.rings["torso_bottom"] = np.concatenate([torso[n][:, -1] for n in torso])
    b.rings["torso_all"] = np.concatenate([torso[n].ravel() for n in torso])
    # head: one face, U over [0, 1] split at 0.5
    h = BODY["head"]
    half = (HEAD_GRID[0] - 1) // 2
    head = []
    for name, lo, hi in (("head_right", 0, half), ("head_left", half, 2 * half)):
        hu, hv = np.meshgrid(_grid(0, lo, hi, 2 * half), _grid(HEAD_GRID[1]), indexing="ij")
        x = h["half_width"] * (2.0 * hu - 1.0)
        z = 2.0 * h["half_depth"] * np.sqrt(hu * (1.0 - hu))
        y = h["top"] - hv * (h["top"] - h["bottom"])
        head.append(b.add_chart(_chart(name), hu, hv, np.stack([x, y, z], -1)))
    b.rings["head_bottom"] = np.concatenate([c[:, -1] for c in head])
    # limbs, right side then mirrored left side
    a = np.deg2rad(BODY["arm_angle_deg"])
    for side in ("right", "left"):
        mir = _mirror if side == "left" else (lambda p: p)
        sh = np.array(BODY["shoulder"])
        arm_dir = np.array([-np.sin(a), -np.cos(a), 0.0])
        # person's-left direction across the (right) arm, perpendicular to its axis in the x-y plane
        arm_left = np.array([np.cos(a), -np.sin(a), 0.0])
        el = sh + arm_dir * BODY["upper_arm"]["length"]
        wr = el + arm_dir * BODY["lower_arm"]["length"]
        tip = wr + arm_dir * BODY["hand"]["length"]
        hp = np.array(BODY["hip"])
        leg_dir = np.array([0.0, -1.0, 0.0])
        leg_left = np.array([1.0, 0.0, 0.0])
        kn = hp + leg_dir * BODY["upper_leg"]["length"]
        an = kn + leg_dir * BODY["lower_leg"]["length"]
        toe = an + np.array([0.0, 0.0, BODY["foot"]["length"]])
        segments = (
            ("upper_arm", sh, el, BODY["upper_arm"]["radii"], arm_left),
            ("lower_arm", el, wr, BODY["lower_arm"]["radii"], arm_left),
            ("upper_leg", hp, kn, BODY["upper_leg"]["radii"], leg_left),
            ("lower_leg", kn, an, BODY["lower_leg"]["radii"], leg_left),
        )
        lu, lv = np.meshgrid(_grid(LIMB_GRID[0]), _grid(LIMB_GRID[1]), indexing="ij")
        for seg, p0, p1, (r0, r1), e_l in segments:
            charts = []
            for view, back in (("front", False), ("back", True)):
                # the right limb is built, the left one is its exact mirror (V -> 1 - V on the same grid)
                pos = _cyl(lu, lv, p0, p1, r0, r1, e_l, back)
                if side == "left":
                    pos = mir(pos)[:, ::-1]  # mirrored point of V sits at 1 - V
                charts.append(b.add_chart(_chart(f"{seg}_{side}_{view}"), lu, lv, pos))
            b.rings[f"{seg}_{side}_start"] = np.concatenate([c[0, :] for c in charts])
            b.rings[f"{seg}_{side}_end"] = np.concatenate([c[-1, :] for c in charts])
        pu, pv = np.meshgrid(_grid(PLATE_GRID[0]), _grid(PLATE_GRID[1]), indexing="ij")
        for part, p0, p1, half_w, e_l in (
            ("hand", wr, tip, BODY["hand"]["half_width"], arm_left),
            ("foot", an, toe, BODY["foot"]["half_width"], leg_left),
        ):
            pos = _plate(pu, pv, p0, p1, half_w, e_l)
            if side == "left":
                pos = mir(pos)[:, ::-1]
            chart = b.add_chart(_chart(f"{side}_{part}"), pu, pv, pos)
            b.rings[f"{part}_{side}_start"] = chart[0, :]

    pos = np.concatenate(b.pos)
    uv = np.concatenate(b.uv)
    part = np.concatenate(b.part)
    # merge coincident positions (seams, shared joint rings) into geodesic vertices
    key = np.round(pos * _NM).astype(np.int64)
    uniq, geo = np.unique(key, axis=0, return_inverse=True)
    geo = geo.reshape(-1)
    gpos = uniq.astype(np.float64) / _NM
    edges = [geo[np.concatenate(b.grid_edges)]]

    def stitch(ring_a: str, ring_b: str, both: bool = True) -> None:
        """Edges from every vertex of ``ring_a`` to its nearest vertices of ``ring_b`` (all ties, so the
        result is mirror-symmetric) and, with ``both``, the other way round."""
        va, vb = np.unique(geo[b.rings[ring_a]]), np.unique(geo[b.rings[ring_b]])
        d = np.linalg.norm(gpos[va][:, None, :] - gpos[vb][None, :, :], axis=-1)
        near = d <= d.min(axis=1, keepdims=True) * (1 + 1e-9) + 1e-12
        if both:
            near |= d <= d.min(axis=0, keepdims=True) * (1 + 1e-9) + 1e-12
        ia, ib = np.nonzero(near)
        edges.append(np.stack([va[ia], vb[ib]], 1))

    stitch("head_bottom", "torso_top")
    for side in ("right", "left"):
        stitch(f"upper_arm_{side}_start", "torso_all", both=False)
        stitch(f"lower_arm_{side}_end", f"hand_{side}_start")
        stitch(f"upper_leg_{side}_start", "torso_bottom")
        stitch(f"lower_leg_{side}_end", f"foot_{side}_start")
    e = np.concatenate(edges)
    e = e[e[:, 0] != e[:, 1]]
    e = np.unique(np.sort(e, axis=1), axis=0)
    w = np.linalg.norm(gpos[e[:, 0]] - gpos[e[:, 1]], axis=1)
    if (w <= 0).any():
        raise RuntimeError("synthetic surface has zero-length edges")  # csgraph would drop them
    g = len(gpos)
    graph = coo_matrix((w, (e[:, 0], e[:, 1])), shape=(g, g)).tocsr()
    dist = shortest_path(graph, method="D", directed=False)
    if not np.all(np.isfinite(dist)):
        raise RuntimeError("synthetic surface graph is not connected")
    surface = BodySurface(uv, part, geo + 1, dist.astype(np.float32), source="synthetic")
    surface.positions = gpos  # 3-D positions of the geodesic vertices (diagnostics, tests)
    return surface


@functools.lru_cache(maxsize=1)
def synthetic_surface() -> BodySurface:
    """The deterministic synthetic surface (built once per process, ~10 ms)."""
    return _build()


@functools.lru_cache(maxsize=1)
def synthetic_uv_symmetry() -> UVSymmetry:
    """UV symmetry tables of the synthetic surface: cell (row ⌊V·255⌋, column ⌊U·255⌋) holds the mirror
    (:func:`mirror_uv`) of the cell centre, clipped to [0, 1], so that flipping twice returns the cell
    centre (within 0.5/255 of the original value)."""
    centre = np.clip((np.arange(256, dtype=np.float64) + 0.5) / 255.0, 0.0, 1.0)
    vv, uu = np.meshgrid(centre, centre, indexing="ij")  # [row = V, col = U]
    ut = np.zeros((NUM_PARTS, 256, 256), np.float32)
    vt = np.zeros((NUM_PARTS, 256, 256), np.float32)
    for p in range(1, NUM_PARTS + 1):
        _, mu, mv = mirror_uv(np.full(uu.shape, p), uu, vv)
        ut[p - 1] = np.clip(mu, 0.0, 1.0)
        vt[p - 1] = np.clip(mv, 0.0, 1.0)
    return UVSymmetry(ut, vt, source="synthetic")


def write_synthetic_eval_data(folder: str | os.PathLike) -> dict[str, Path]:
    """Write the synthetic surface as ``body_surface.npz``, its reference-format exports
    (``SMPL_subdiv.mat``, ``SMPL_SUBDIV_TRANSFORM.mat``, ``Pdist_matrix.pkl``) and
    ``UV_symmetry_transforms.mat`` into ``folder``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    surface = synthetic_surface()
    paths = surface.export_reference_files(folder)
    paths[SURFACE_NPZ] = surface.save_npz(folder / SURFACE_NPZ)
    paths[UV_SYMMETRY] = synthetic_uv_symmetry().save_mat(folder / UV_SYMMETRY)
    return paths
