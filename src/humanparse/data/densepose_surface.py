"""Where the DensePose body surface and UV symmetry tables come from: the official files, a project
``.npz`` export, or ``"synthetic"`` (the project's synthetic surface, :mod:`humanparse.synthetic.body_surface`).

The tables and their file formats live in :mod:`humanparse.data.densepose_format`, which both this module and
the synthetic surface import (so neither imports the other's importer); their names are re-exported here.
"""

from __future__ import annotations

import os
from pathlib import Path

from humanparse.data.densepose_format import (
    EVAL_DATA_URLS,
    KAPPA_FIXED,
    KAPPA_GROUP,
    KAPPA_GROUP_NAMES,
    KAPPA_PER_GROUP,
    LICENCE_NOTE,
    NUM_PARTS,
    PDIST_MAT,
    PDIST_PKL,
    SMPL_SUBDIV,
    SMPL_TRANSFORM,
    SURFACE_NPZ,
    UV_SYMMETRY,
    BodySurface,
    EvalDataMissingError,
    UVSymmetry,
    condensed_index,
    kappa_for,
    missing_files_message,
)

__all__ = [
    "EVAL_DATA_URLS",
    "KAPPA_FIXED",
    "KAPPA_GROUP",
    "KAPPA_GROUP_NAMES",
    "KAPPA_PER_GROUP",
    "LICENCE_NOTE",
    "NUM_PARTS",
    "PDIST_MAT",
    "PDIST_PKL",
    "SMPL_SUBDIV",
    "SMPL_TRANSFORM",
    "SURFACE_NPZ",
    "UV_SYMMETRY",
    "BodySurface",
    "EvalDataMissingError",
    "UVSymmetry",
    "condensed_index",
    "kappa_for",
    "load_body_surface",
    "load_uv_symmetry",
    "missing_files_message",
]


def load_body_surface(source: str | os.PathLike | None) -> BodySurface:
    """The geodesic tables from ``source``: ``"synthetic"`` (the project's synthetic surface), a
    ``.npz`` file, or a folder holding the reference files (or, failing that, ``body_surface.npz``).
    A missing source raises :class:`EvalDataMissingError` naming the files and where they come from."""
    if source is None or str(source) == "":
        raise EvalDataMissingError(
            missing_files_message(
                None,
                [SMPL_SUBDIV, SMPL_TRANSFORM, PDIST_PKL],
                "DensePose geodesic evaluation data (densepose.eval_data_dir)",
            )
        )
    if str(source) == "synthetic":
        from humanparse.synthetic.body_surface import synthetic_surface

        return synthetic_surface()
    path = Path(source)
    if path.suffix == ".npz":
        return BodySurface.from_npz(path)
    if not path.is_dir():
        raise EvalDataMissingError(
            missing_files_message(
                path,
                [SMPL_SUBDIV, SMPL_TRANSFORM, PDIST_PKL],
                f"DensePose geodesic evaluation data: folder {path} does not exist",
            )
        )
    has_ref = (path / SMPL_SUBDIV).is_file() or (path / SMPL_TRANSFORM).is_file()
    if not has_ref and (path / SURFACE_NPZ).is_file():
        return BodySurface.from_npz(path / SURFACE_NPZ)
    return BodySurface.from_reference_files(path)


def load_uv_symmetry(source: str | os.PathLike | None) -> UVSymmetry:
    """``UV_symmetry_transforms.mat`` from a file or a folder holding it; ``"synthetic"`` gives the
    synthetic surface's table. ``None`` raises :class:`EvalDataMissingError`."""
    if source is None or str(source) == "":
        raise EvalDataMissingError(missing_files_message(None, [UV_SYMMETRY], "DensePose UV symmetry tables"))
    if str(source) == "synthetic":
        from humanparse.synthetic.body_surface import synthetic_uv_symmetry

        return synthetic_uv_symmetry()
    path = Path(source)
    if path.is_dir():
        path = path / UV_SYMMETRY
    return UVSymmetry.from_mat(path)
