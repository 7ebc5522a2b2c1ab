"""The synthetic body surface, the UV symmetry table and the loaders of the official file formats
(detectron2 DensePose's ``densepose_uv_data`` files)."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import scipy.io

from humanparse.data.densepose_format import _nearest_first
from humanparse.data.densepose_surface import (
    EVAL_DATA_URLS,
    BodySurface,
    EvalDataMissingError,
    UVSymmetry,
    condensed_index,
    kappa_for,
    load_body_surface,
    load_uv_symmetry,
)
from humanparse.data.io import DataError
from humanparse.data.meta import DENSEPOSE_FINE_FLIP
from humanparse.synthetic.body_surface import (
    _build,
    mirror_uv,
    synthetic_surface,
    synthetic_uv_symmetry,
    write_synthetic_eval_data,
)

FRONT_BACK_PAIRS = (
    (1, 2),
    (7, 9),
    (8, 10),
    (11, 13),
    (12, 14),
    (15, 17),
    (16, 18),
    (19, 21),
    (20, 22),
    (23, 24),
)


@pytest.fixture(scope="module")
def surface() -> BodySurface:
    return synthetic_surface()


def _mirror_map(s: BodySurface) -> np.ndarray:
    """0-based geodesic vertex -> its mirror, from the mirrored UV of every UV-vertex."""
    parts, u, v = mirror_uv(s.part_id, s.uv[:, 0], s.uv[:, 1])
    target = s.nearest(parts, u, v)
    m = np.full(s.num_geodesic, -1)
    m[s.geo_index - 1] = target - 1
    return m


def test_structure_parts_and_seams(surface):
    assert surface.num_geodesic <= 1000 and surface.full_matrix().nbytes < 4 * 2**20
    for p in range(1, 25):
        uv = surface.uv[surface.part_id == p]
        assert len(uv) >= 2, p
        # spread over the chart (the head charts cover their half of U, as the renderer draws them)
        assert np.ptp(uv[:, 1]) == 1.0 and np.ptp(uv[:, 0]) >= 0.5, p
    for a, b in FRONT_BACK_PAIRS:  # seams: the two charts of a segment share geodesic vertices
        shared = np.intersect1d(
            surface.geo_index[surface.part_id == a], surface.geo_index[surface.part_id == b]
        )
        assert len(shared) >= 5, (a, b)
    assert surface.num_geodesic < surface.num_uv  # many-to-one index
    assert surface.geo_index.min() == 1 and surface.geo_index.max() == surface.num_geodesic


def test_geodesic_distances_are_a_metric_at_body_scale(surface):
    d = surface.full_matrix().astype(np.float64)
    assert d.dtype == np.float64 and np.all(np.isfinite(d))
    assert np.array_equal(d, d.T) and np.all(np.diag(d) == 0) and np.all(d[~np.eye(len(d), dtype=bool)] > 0)
    assert 2.0 <= d.max() <= 3.0
    for k in np.random.default_rng(0).choice(len(d), 40, replace=False):  # triangle inequality through k
        assert np.all(d <= d[:, k, None] + d[None, k, :] + 1e-5)
    # geodesic >= straight-line distance of the 3-D vertex positions
    pos = surface.positions
    eucl = np.linalg.norm(pos[:, None] - pos[None], axis=-1)
    assert np.all(d + 1e-6 >= eucl)


def test_deterministic(surface):
    again = _build()
    assert np.array_equal(again.uv, surface.uv) and np.array_equal(again.geo_index, surface.geo_index)
    assert np.array_equal(again.full_matrix(), surface.full_matrix())


def test_mirror_symmetry_of_surface_and_table(surface):
    m = _mirror_map(surface)
    assert np.all(m >= 0) and np.array_equal(m[m], np.arange(len(m)))  # an involution
    d = surface.full_matrix()
    assert np.allclose(d[np.ix_(m, m)], d, atol=1e-6)
    # the synthetic UV_symmetry table sends every UV-vertex to (the vertex nearest) its mirror
    table = synthetic_uv_symmetry()
    parts, u, v = table.flip_points(surface.part_id, surface.uv[:, 0], surface.uv[:, 1])
    assert np.array_equal(parts, DENSEPOSE_FINE_FLIP[surface.part_id])
    assert np.array_equal(surface.nearest(parts, u, v) - 1, m[surface.geo_index - 1])


def test_uv_symmetry_flip_twice_is_identity_within_quantisation():
    table = synthetic_uv_symmetry()
    rng = np.random.default_rng(1)
    parts = rng.integers(1, 25, 2000)
    u, v = rng.random(2000), rng.random(2000)
    p1, u1, v1 = table.flip_points(parts, u, v)
    p2, u2, v2 = table.flip_points(p1, u1, v1)
    assert np.array_equal(p2, parts)
    assert np.abs(u2 - u).max() <= 0.5 / 255 + 1e-6 and np.abs(v2 - v).max() <= 0.5 / 255 + 1e-6
    # limbs keep U and mirror V; torso/head mirror U
    limb = (parts >= 3) & (parts <= 22)
    assert np.allclose(u1[limb], u[limb], atol=1 / 255) and np.allclose(v1[limb], 1 - v[limb], atol=1 / 255)
    assert np.allclose(u1[~limb], 1 - u[~limb], atol=1 / 255) and np.allclose(
        v1[~limb], v[~limb], atol=1 / 255
    )
    with pytest.raises(ValueError, match="1..24"):
        table.flip_points(np.array([0]), np.array([0.5]), np.array([0.5]))


def test_reference_format_round_trip_through_the_official_loader(surface, tmp_path):
    paths = write_synthetic_eval_data(tmp_path)
    sub = scipy.io.loadmat(paths["SMPL_subdiv.mat"])
    assert np.issubdtype(sub["Part_ID_subdiv"].dtype, np.integer)  # the references index with it
    assert sub["U_subdiv"].shape == (1, surface.num_uv)
    assert scipy.io.loadmat(paths["SMPL_SUBDIV_TRANSFORM.mat"])["index"].shape == (surface.num_uv, 1)
    with open(paths["Pdist_matrix.pkl"], "rb") as f:
        pd = pickle.load(f, encoding="latin1")["Pdist_matrix"]
    g = surface.num_geodesic
    assert pd.shape == (g * (g - 1) // 2, 1) and pd.dtype == np.float32
    assert np.array_equal(pd[:, 0], surface.full_matrix()[np.tril_indices(g, -1)])
    loaded = load_body_surface(tmp_path)  # reference files win over the .npz
    assert loaded.num_geodesic == g and np.array_equal(loaded.uv, surface.uv)
    assert np.array_equal(loaded.part_id, surface.part_id) and np.array_equal(
        loaded.geo_index, surface.geo_index
    )
    rng = np.random.default_rng(2)
    a, b = rng.integers(0, g + 1, 5000), rng.integers(0, g + 1, 5000)
    assert np.array_equal(loaded.distance(a, b), surface.distance(a, b))
    assert np.array_equal(
        load_body_surface(tmp_path / "body_surface.npz").full_matrix(), surface.full_matrix()
    )
    sym = load_uv_symmetry(tmp_path)
    assert np.array_equal(sym.u_transforms, synthetic_uv_symmetry().u_transforms)
    cell = scipy.io.loadmat(paths["UV_symmetry_transforms.mat"])["U_transforms"]
    assert cell.shape == (1, 24) and cell[0, 3].shape == (256, 256)


def test_distance_conventions(surface):
    assert (
        surface.distance(0, 5) == np.inf
        and surface.distance(5, 0) == np.inf
        and surface.distance(7, 7) == 0.0
    )
    a, b = np.array([3, 10]), np.array([10, 3])
    assert np.array_equal(surface.distance(a, b), surface.full_matrix()[[2, 9], [9, 2]])
    g = 7
    full = np.arange(g * g, dtype=np.float32).reshape(g, g)
    full = full + full.T
    np.fill_diagonal(full, 0)
    cond = full[np.tril_indices(g, -1)]
    i, j = np.nonzero(~np.eye(g, dtype=bool))
    assert np.array_equal(cond[condensed_index(i, j)], full[i, j])


def test_nearest_first_index_on_ties_and_kdtree_path_agree():
    rng = np.random.default_rng(3)
    pts = np.round(rng.random((3000, 2)) * 20) / 20  # a coarse lattice: many exact ties and duplicates
    q = np.round(rng.random((1500, 2)) * 40) / 40
    brute = np.argmin(
        np.sqrt((pts[None, :, 0] - q[:, None, 0]) ** 2 + (pts[None, :, 1] - q[:, None, 1]) ** 2), axis=1
    )
    assert len(pts) * len(q) > 4_000_000  # takes the KD-tree path
    assert np.array_equal(_nearest_first(pts, q), brute)


def test_quantized_lut_matches_nearest(surface):
    lut = surface.quantized_lut()
    assert lut.shape == (25, 256, 256) and not lut[0].any()
    rng = np.random.default_rng(4)
    p, u8, v8 = rng.integers(1, 25, 500), rng.integers(0, 256, 500), rng.integers(0, 256, 500)
    assert np.array_equal(lut[p, u8, v8], surface.nearest(p, u8 / 255.0, v8 / 255.0))


def test_missing_and_malformed_files_name_the_files_and_urls(tmp_path):
    with pytest.raises(EvalDataMissingError) as e:
        load_body_surface(tmp_path)
    msg = str(e.value)
    for name in ("SMPL_subdiv.mat", "SMPL_SUBDIV_TRANSFORM.mat", "Pdist_matrix.pkl"):
        assert name in msg and EVAL_DATA_URLS[name] in msg
    assert "never ships or downloads" in msg
    with pytest.raises(EvalDataMissingError, match="Pdist_matrix.pkl"):
        write_synthetic_eval_data(tmp_path / "x")
        (tmp_path / "x" / "Pdist_matrix.pkl").unlink()
        load_body_surface(tmp_path / "x")
    with pytest.raises(EvalDataMissingError, match="no folder configured"):
        load_body_surface(None)
    with pytest.raises(EvalDataMissingError, match="UV_symmetry_transforms.mat.*\n.*dl.fbaipublicfiles"):
        load_uv_symmetry(tmp_path / "nowhere")
    bad = tmp_path / "bad.mat"
    scipy.io.savemat(bad, {"U_transforms": np.zeros((3, 3))})
    with pytest.raises(DataError, match="V_transforms"):
        load_uv_symmetry(bad)
    write_synthetic_eval_data(tmp_path / "f")
    sub = scipy.io.loadmat(tmp_path / "f" / "SMPL_subdiv.mat")
    scipy.io.savemat(
        tmp_path / "f" / "SMPL_subdiv.mat",
        {
            **{k: v for k, v in sub.items() if not k.startswith("__")},
            "Part_ID_subdiv": sub["Part_ID_subdiv"].astype(np.float64),
        },
    )
    assert load_body_surface(tmp_path / "f").num_uv == synthetic_surface().num_uv  # integral floats accepted
    scipy.io.savemat(
        tmp_path / "f" / "SMPL_subdiv.mat",
        {
            **{k: v for k, v in sub.items() if not k.startswith("__")},
            "Part_ID_subdiv": sub["Part_ID_subdiv"] + 0.5,
        },
    )
    with pytest.raises(DataError, match="non-integer"):
        load_body_surface(tmp_path / "f")


def test_kappa_tables():
    assert np.allclose(
        kappa_for(np.array([1, 3, 5, 7, 11, 15, 19, 23]), "per_part"),
        [0.351, 0.107, 0.126, 0.237, 0.173, 0.142, 0.128, 0.150],
    )
    assert np.all(kappa_for(np.arange(1, 25), "fixed") == 0.255)
    with pytest.raises(ValueError):
        kappa_for(np.array([1]), "sometimes")


def test_uv_symmetry_shape_checked():
    with pytest.raises(ValueError, match="24 arrays"):
        UVSymmetry(np.zeros((23, 256, 256)), np.zeros((24, 256, 256)))
