"""The DensePose body-surface and UV-symmetry file formats: the tables, their readers and writers.

Facts: detectron2 DensePose (``densepose_cocoeval.py`` and its ``densepose_uv_data`` files).

:class:`BodySurface` holds the three tables the GPS metric needs, in the structure of the official
SMPL-derived evaluation files:

* a UV-vertex table: ``uv`` (M, 2) float64 in [0, 1] and ``part_id`` (M,) int 1..24;
* ``geo_index`` (M,): the 1-based geodesic vertex of each UV-vertex (many-to-one on chart seams; 0 = invalid);
* the geodesic distances in metres between the G geodesic vertices, either a full (G, G) matrix or the
  condensed vector of the reference ``Pdist_matrix`` (k = b(b−1)/2 + a for 0-based a < b, i.e.
  ``D[np.tril_indices(G, -1)]`` order).

The same readers take the official files (``SMPL_subdiv.mat``, ``SMPL_SUBDIV_TRANSFORM.mat``,
``Pdist_matrix.pkl``) and the reference-format files the project exports for its synthetic surface
(:mod:`humanparse.synthetic.body_surface`). The official files derive from SMPL and carry no
redistribution licence: the project never ships or downloads them.

:class:`UVSymmetry` holds ``UV_symmetry_transforms.mat`` (``U_transforms`` / ``V_transforms``, 1×24
cells of 256×256 arrays), read with ``scipy.io.loadmat``, and applies it to dense points.
"""

from __future__ import annotations

import os
import pickle
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import scipy.io
from scipy.spatial import cKDTree

from humanparse.data.io import DataError
from humanparse.data.meta import DENSEPOSE_FINE_FLIP

NUM_PARTS = 24

# official file names and where the user can get them (README "Datasets")
SMPL_SUBDIV = "SMPL_subdiv.mat"
SMPL_TRANSFORM = "SMPL_SUBDIV_TRANSFORM.mat"
PDIST_PKL = "Pdist_matrix.pkl"
PDIST_MAT = "Pdist_matrix.mat"
UV_SYMMETRY = "UV_symmetry_transforms.mat"
SURFACE_NPZ = "body_surface.npz"
EVAL_DATA_URLS = {
    SMPL_SUBDIV: "https://dl.fbaipublicfiles.com/densepose/data/SMPL_subdiv.mat",
    SMPL_TRANSFORM: "https://dl.fbaipublicfiles.com/densepose/data/SMPL_SUBDIV_TRANSFORM.mat",
    PDIST_PKL: "https://dl.fbaipublicfiles.com/densepose/data/Pdist_matrix.pkl",
    PDIST_MAT: "DensePoseData/get_eval_data.sh (densepose_eval_data.tar.gz) of facebookresearch/DensePose",
    UV_SYMMETRY: "https://dl.fbaipublicfiles.com/densepose/data/UV_symmetry_transforms.mat "
    "(or DensePoseData/UV_data/ of the facebookresearch/DensePose tarball)",
}
LICENCE_NOTE = (
    "These SMPL-derived files carry no redistribution licence, so humanparse never ships or downloads them: "
    "download them yourself and point the configuration at their folder"
)

# GPS normalisation: per-part group of each fine chart dp_I (0..24) and the group's κ in metres
# (D2 `Mean_Distances` indexed by `CoarseParts`)
KAPPA_GROUP = np.array(
    [0, 1, 1, 2, 2, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 6, 6, 6, 6, 7, 7, 7, 7, 8, 8], dtype=np.int64
)
KAPPA_GROUP_NAMES = (
    "",
    "torso",
    "hands",
    "feet",
    "upper_legs",
    "lower_legs",
    "upper_arms",
    "lower_arms",
    "head",
)
KAPPA_PER_GROUP = np.array([0.0, 0.351, 0.107, 0.126, 0.237, 0.173, 0.142, 0.128, 0.150], dtype=np.float64)
KAPPA_FIXED = 0.255  # the 2018 paper: GPS = 0.5 at about 30 cm


class EvalDataMissingError(FileNotFoundError):
    """DensePose evaluation data (geodesic tables or UV symmetry file) is not where the config points."""


def missing_files_message(folder: str | os.PathLike | None, names: list[str], what: str) -> str:
    where = f"in {folder}" if folder is not None else "(no folder configured)"
    lines = [f"{what}: missing {', '.join(names)} {where}."]
    for n in names:
        lines.append(f"  {n}: {EVAL_DATA_URLS.get(n, '?')}")
    lines.append(
        LICENCE_NOTE + ". Tests and the synthetic datasets use the project's synthetic surface "
        "(eval_data=synthetic, or the folder a synthetic DensePose-COCO set writes)."
    )
    return "\n".join(lines)


def kappa_for(parts: np.ndarray, kappa: str | float = "per_part") -> np.ndarray:
    """κ (metres) of each point from its fine chart: per-part group means (default) or fixed 0.255."""
    parts = np.asarray(parts, dtype=np.int64)
    if kappa == "per_part":
        return KAPPA_PER_GROUP[KAPPA_GROUP[np.clip(parts, 0, NUM_PARTS)]]
    if kappa == "fixed":
        return np.full(parts.shape, KAPPA_FIXED, dtype=np.float64)
    if isinstance(kappa, (int, float)) and not isinstance(kappa, bool) and kappa > 0:
        return np.full(parts.shape, float(kappa), dtype=np.float64)
    raise ValueError(f"kappa must be 'per_part', 'fixed' or a positive number of metres, got {kappa!r}")


def condensed_index(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Position of the pair (a, b) (0-based, a != b) in ``D[np.tril_indices(G, -1)]`` order."""
    lo = np.minimum(a, b).astype(np.int64)
    hi = np.maximum(a, b).astype(np.int64)
    return hi * (hi - 1) // 2 + lo


def _nearest_first(points: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """Index of the nearest ``points`` row (Euclidean) for each query; ties go to the lowest index, as
    ``argmin`` over ``scipy.spatial.distance.cdist`` does in the reference evaluators.

    A KD-tree proposes the 8 nearest candidates; their distances are recomputed with the same
    arithmetic as ``cdist`` (sqrt of the sum of squared differences), so equal distances compare equal
    and the lowest index wins. Rows whose 8th candidate is as near as the best (more ties than
    candidates) fall back to the exact brute-force argmin.
    """
    n = len(points)
    if n == 0:
        raise ValueError("no vertices to search")
    if n * len(queries) <= 4_000_000:
        d = np.sqrt(
            ((points[None, :, 0] - queries[:, None, 0]) ** 2)
            + ((points[None, :, 1] - queries[:, None, 1]) ** 2)
        )
        return np.argmin(d, axis=1)
    k = min(8, n)
    _, cand = cKDTree(points).query(queries, k=k)
    cand = cand.reshape(len(queries), k)
    d = np.sqrt(
        ((points[cand, 0] - queries[:, None, 0]) ** 2) + ((points[cand, 1] - queries[:, None, 1]) ** 2)
    )
    best = d.min(axis=1, keepdims=True)
    out = np.where(d == best, cand, n).min(axis=1)
    ambiguous = np.flatnonzero(d[:, -1] == best[:, 0]) if k < n else np.zeros(0, np.int64)
    for i in ambiguous:
        dd = np.sqrt((points[:, 0] - queries[i, 0]) ** 2 + (points[:, 1] - queries[i, 1]) ** 2)
        out[i] = int(np.argmin(dd))
    return out


@dataclass(eq=False)
class BodySurface:
    """UV-vertex table, UV → geodesic map and geodesic distances (see the module docstring).

    Attributes:
        uv: (M, 2) float64 (U, V) of each UV-vertex.
        part_id: (M,) int64 fine chart 1..24 of each UV-vertex.
        geo_index: (M,) int64 1-based geodesic vertex of each UV-vertex (0 = invalid).
        geodesic: (G, G) float32 matrix or (L,) / (L, 1) condensed float32 vector, metres.
        source: where the tables come from (for messages and reports).
    """

    uv: np.ndarray
    part_id: np.ndarray
    geo_index: np.ndarray
    geodesic: np.ndarray
    source: str = ""
    _lut: np.ndarray | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.uv = np.asarray(self.uv, dtype=np.float64).reshape(-1, 2)
        self.part_id = np.asarray(self.part_id).reshape(-1).astype(np.int64)
        self.geo_index = np.asarray(self.geo_index).reshape(-1).astype(np.int64)
        g = np.asarray(self.geodesic)
        if g.ndim == 2 and g.shape[0] == g.shape[1] and g.shape[0] > 1:
            self.geodesic = g
            self._full = True
            self.num_geodesic = int(g.shape[0])
        else:
            flat = g.reshape(-1)
            num = int(round((1 + np.sqrt(1 + 8 * len(flat))) / 2))
            if num * (num - 1) // 2 != len(flat):
                raise ValueError(
                    f"{self.source}: geodesic vector of length {len(flat)} is not G(G-1)/2 for any G"
                )
            self.geodesic = flat
            self._full = False
            self.num_geodesic = num
        m = len(self.uv)
        if not (len(self.part_id) == len(self.geo_index) == m):
            raise ValueError(
                f"{self.source}: UV table ({m}), part ids ({len(self.part_id)}) and geodesic index "
                f"({len(self.geo_index)}) differ in length"
            )
        if self.geo_index.max(initial=0) > self.num_geodesic or self.geo_index.min(initial=0) < 0:
            raise ValueError(f"{self.source}: geodesic index outside 0..{self.num_geodesic}")
        if self.part_id.min(initial=1) < 1 or self.part_id.max(initial=1) > NUM_PARTS:
            raise ValueError(f"{self.source}: part ids outside 1..{NUM_PARTS}")
        self._part_rows = [np.flatnonzero(self.part_id == p) for p in range(NUM_PARTS + 1)]

    # -- lookups --------------------------------------------------------------------------------
    @property
    def num_uv(self) -> int:
        return len(self.uv)

    def nearest(self, parts: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        """1-based geodesic vertex of the UV-vertex nearest to each point among the vertices of its part
        (D2 ``findAllClosestVertsUV``); 0 where the part is not 1..24 (background) or has no vertex."""
        parts = np.asarray(parts).reshape(-1).astype(np.int64)
        q = np.stack([np.asarray(u, np.float64).reshape(-1), np.asarray(v, np.float64).reshape(-1)], 1)
        out = np.zeros(len(parts), dtype=np.int64)
        for p in np.unique(parts):
            if p < 1 or p > NUM_PARTS or len(self._part_rows[p]) == 0:
                continue
            sel = parts == p
            rows = self._part_rows[p]
            out[sel] = self.geo_index[rows[_nearest_first(self.uv[rows], q[sel])]]
        return out

    def quantized_lut(self) -> np.ndarray:
        """(25, 256, 256) int32: geodesic vertex of a quantised prediction (I, ⌊U·255⌋, ⌊V·255⌋), read as
        U = u8/255, V = v8/255 exactly as the evaluators do; row 0 (background) is 0. Built once."""
        if self._lut is None:
            lut = np.zeros((NUM_PARTS + 1, 256, 256), dtype=np.int32)
            grid = np.arange(256, dtype=np.float64) / 255.0
            uu, vv = np.meshgrid(grid, grid, indexing="ij")  # [u8, v8]
            for p in range(1, NUM_PARTS + 1):
                if len(self._part_rows[p]):
                    lut[p] = self.nearest(np.full(uu.size, p), uu.ravel(), vv.ravel()).reshape(256, 256)
            self._lut = lut
        return self._lut

    def distance(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Geodesic distance (float64 metres) between 1-based geodesic vertices ``a`` and ``b``
        (broadcast); 0 where equal, ``inf`` where either is 0 (no vertex)."""
        a, b = np.broadcast_arrays(np.asarray(a, np.int64), np.asarray(b, np.int64))
        out = np.full(a.shape, np.inf, dtype=np.float64)
        ok = (a > 0) & (b > 0)
        same = ok & (a == b)
        out[same] = 0.0
        diff = ok & (a != b)
        ia, ib = a[diff] - 1, b[diff] - 1
        if self._full:
            out[diff] = self.geodesic[ia, ib]
        else:
            out[diff] = self.geodesic[condensed_index(ia, ib)]
        return out

    def full_matrix(self) -> np.ndarray:
        """(G, G) float32 distance matrix (expands a condensed vector; only for small surfaces)."""
        if self._full:
            return self.geodesic
        g = self.num_geodesic
        m = np.zeros((g, g), dtype=np.float32)
        m[np.tril_indices(g, -1)] = self.geodesic
        return m + m.T

    def condensed(self) -> np.ndarray:
        """(L,) float32 condensed distances in ``D[np.tril_indices(G, -1)]`` order."""
        if not self._full:
            return self.geodesic.astype(np.float32, copy=False)
        return self.geodesic[np.tril_indices(self.num_geodesic, -1)].astype(np.float32)

    # -- files ----------------------------------------------------------------------------------
    def save_npz(self, path: str | os.PathLike) -> Path:
        """The project's one-file form: ``uv``, ``part_id``, ``geo_index`` (1-based), ``geodesic`` (G, G)."""
        path = Path(path)
        np.savez_compressed(
            path,
            uv=self.uv,
            part_id=self.part_id,
            geo_index=self.geo_index,
            geodesic=self.full_matrix().astype(np.float32),
        )
        return path

    @classmethod
    def from_npz(cls, path: str | os.PathLike) -> BodySurface:
        path = Path(path)
        if not path.is_file():
            raise EvalDataMissingError(f"{path}: body surface file is missing")
        try:
            with np.load(path) as z:
                return cls(z["uv"], z["part_id"], z["geo_index"], z["geodesic"], source=str(path))
        except (KeyError, ValueError, OSError) as e:
            raise DataError(path, f"not a body surface .npz with uv/part_id/geo_index/geodesic ({e})") from e

    def export_reference_files(self, folder: str | os.PathLike) -> dict[str, Path]:
        """Write the reference formats so the official evaluators can read them unchanged:
        ``SMPL_subdiv.mat`` (v5; ``U_subdiv``, ``V_subdiv`` (1, M) float64, integer ``Part_ID_subdiv``),
        ``SMPL_SUBDIV_TRANSFORM.mat`` (``index`` (M, 1)) and ``Pdist_matrix.pkl`` (``{"Pdist_matrix":
        (L, 1) float32}``, protocol 2)."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        paths = {
            SMPL_SUBDIV: folder / SMPL_SUBDIV,
            SMPL_TRANSFORM: folder / SMPL_TRANSFORM,
            PDIST_PKL: folder / PDIST_PKL,
        }
        scipy.io.savemat(
            paths[SMPL_SUBDIV],
            {
                "U_subdiv": self.uv[:, 0][None, :],
                "V_subdiv": self.uv[:, 1][None, :],
                "Part_ID_subdiv": self.part_id.astype(np.int32)[None, :],
            },
            format="5",
            do_compression=True,
        )
        scipy.io.savemat(
            paths[SMPL_TRANSFORM],
            {"index": self.geo_index.astype(np.int32)[:, None]},
            format="5",
            do_compression=True,
        )
        with open(paths[PDIST_PKL], "wb") as f:
            pickle.dump({"Pdist_matrix": self.condensed().reshape(-1, 1)}, f, protocol=2)
        return paths

    @classmethod
    def from_reference_files(cls, folder: str | os.PathLike) -> BodySurface:
        """Read ``SMPL_subdiv.mat``, ``SMPL_SUBDIV_TRANSFORM.mat`` and ``Pdist_matrix.pkl`` (or the
        MATLAB v7.3 ``Pdist_matrix.mat`` of the Caffe2 release, which needs ``h5py``) from ``folder``."""
        folder = Path(folder)
        missing = [n for n in (SMPL_SUBDIV, SMPL_TRANSFORM) if not (folder / n).is_file()]
        if not (folder / PDIST_PKL).is_file() and not (folder / PDIST_MAT).is_file():
            missing.append(PDIST_PKL)
        if missing:
            raise EvalDataMissingError(
                missing_files_message(folder, missing, "DensePose geodesic evaluation data")
            )
        sub = _loadmat(folder / SMPL_SUBDIV, ("U_subdiv", "V_subdiv", "Part_ID_subdiv"))
        tr = _loadmat(folder / SMPL_TRANSFORM, ("index",))
        u = np.asarray(sub["U_subdiv"], np.float64).reshape(-1)
        v = np.asarray(sub["V_subdiv"], np.float64).reshape(-1)
        part = np.asarray(sub["Part_ID_subdiv"]).reshape(-1)
        if not np.issubdtype(part.dtype, np.integer):
            # the reference evaluators index with this array and fail on floats; integral floats are accepted here
            if not np.all(np.isfinite(part)) or not np.all(part == np.round(part)):
                raise DataError(folder / SMPL_SUBDIV, "Part_ID_subdiv holds non-integer values")
        index = np.asarray(tr["index"]).reshape(-1)
        if len(index) != len(u):
            raise DataError(
                folder / SMPL_TRANSFORM,
                f"index has {len(index)} entries but {SMPL_SUBDIV} has {len(u)} UV-vertices",
            )
        if (folder / PDIST_PKL).is_file():
            pdist_path = folder / PDIST_PKL
            try:
                with open(pdist_path, "rb") as f:
                    data = pickle.load(f, encoding="latin1")
                pdist = np.asarray(data["Pdist_matrix"])
            except (pickle.UnpicklingError, EOFError, KeyError, TypeError, ValueError) as e:
                raise DataError(pdist_path, f"not a pickled dict with key 'Pdist_matrix' ({e})") from e
        else:
            pdist_path = folder / PDIST_MAT
            try:
                import h5py
            except ImportError as e:  # pragma: no cover - depends on the environment
                raise DataError(
                    pdist_path,
                    f"reading the MATLAB v7.3 file needs h5py; use {PDIST_PKL} "
                    f"({EVAL_DATA_URLS[PDIST_PKL]}) instead",
                ) from e
            with h5py.File(pdist_path, "r") as f:
                pdist = np.asarray(f["Pdist_matrix"]).reshape(-1)
        try:
            return cls(np.stack([u, v], 1), part, index, pdist.reshape(-1), source=str(folder))
        except ValueError as e:
            raise DataError(folder, f"inconsistent DensePose evaluation files ({e})") from e


def _loadmat(path: Path, keys: tuple[str, ...]) -> dict:
    try:
        data = scipy.io.loadmat(str(path))
    except (ValueError, OSError, NotImplementedError, TypeError) as e:
        raise DataError(
            path, f"unreadable MATLAB file ({e}); expected MATLAB v5/v7 (scipy.io.loadmat)"
        ) from e
    missing = [k for k in keys if k not in data]
    if missing:
        raise DataError(
            path, f"missing variable(s) {missing}; found {sorted(k for k in data if not k.startswith('__'))}"
        )
    return data


# --- UV symmetry -----------------------------------------------------------------------------------
@dataclass(eq=False)
class UVSymmetry:
    """``U_transforms`` / ``V_transforms``: (24, 256, 256) float32, indexed ``[part − 1, ⌊V·255⌋, ⌊U·255⌋]``."""

    u_transforms: np.ndarray
    v_transforms: np.ndarray
    source: str = ""

    def __post_init__(self) -> None:
        for name, arr in (("U_transforms", self.u_transforms), ("V_transforms", self.v_transforms)):
            if np.asarray(arr).shape != (NUM_PARTS, 256, 256):
                raise ValueError(
                    f"{self.source}: {name} must hold 24 arrays of 256x256, got {np.asarray(arr).shape}"
                )
        self.u_transforms = np.asarray(self.u_transforms, dtype=np.float32)
        self.v_transforms = np.asarray(self.v_transforms, dtype=np.float32)

    def flip_points(
        self, parts: np.ndarray, u: np.ndarray, v: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Mirrored (I, U, V) of dense points (detectron2 DensePose flip): new part from the fine flip table,
        U' = U_transforms[I−1][⌊V·255⌋, ⌊U·255⌋] and V' likewise (looked up with the old part)."""
        parts = np.asarray(parts).astype(np.int64)
        u = np.asarray(u, dtype=np.float64)
        v = np.asarray(v, dtype=np.float64)
        if parts.size and (parts.min() < 1 or parts.max() > NUM_PARTS):
            raise ValueError(f"dense point parts must be 1..{NUM_PARTS}, got {np.unique(parts).tolist()}")
        cu = np.clip((u * 255).astype(np.int64), 0, 255)
        cv = np.clip((v * 255).astype(np.int64), 0, 255)
        nu = self.u_transforms[parts - 1, cv, cu].astype(np.float32)
        nv = self.v_transforms[parts - 1, cv, cu].astype(np.float32)
        return DENSEPOSE_FINE_FLIP[parts], nu, nv

    def save_mat(self, path: str | os.PathLike) -> Path:
        """MATLAB v5 file with 1×24 cells ``U_transforms`` / ``V_transforms`` (the official structure)."""
        path = Path(path)
        cells = {}
        for name, arr in (("U_transforms", self.u_transforms), ("V_transforms", self.v_transforms)):
            cell = np.empty((1, NUM_PARTS), dtype=object)
            for i in range(NUM_PARTS):
                cell[0, i] = arr[i].astype(np.float64)
            cells[name] = cell
        scipy.io.savemat(path, cells, format="5", do_compression=True)
        return path

    @classmethod
    def from_mat(cls, path: str | os.PathLike) -> UVSymmetry:
        path = Path(path)
        if not path.is_file():
            raise EvalDataMissingError(
                missing_files_message(
                    path.parent, [UV_SYMMETRY], f"DensePose UV symmetry tables ({path} does not exist)"
                )
            )
        data = _loadmat(path, ("U_transforms", "V_transforms"))
        arrays = []
        for key in ("U_transforms", "V_transforms"):
            cell = data[key]
            try:
                items = (
                    [np.asarray(cell[0, i], dtype=np.float32) for i in range(cell.shape[1])]
                    if cell.dtype == object
                    else [np.asarray(cell[i], np.float32) for i in range(cell.shape[0])]
                )
                stacked = np.stack(items)
            except (IndexError, ValueError, TypeError) as e:
                raise DataError(path, f"{key} is not a cell of 2-D arrays ({e})") from e
            if stacked.shape != (NUM_PARTS, 256, 256):
                raise DataError(path, f"{key} holds arrays of shape {stacked.shape}, expected 24 x 256 x 256")
            arrays.append(stacked)
        return cls(arrays[0], arrays[1], source=str(path))
