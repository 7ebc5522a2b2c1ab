"""Both notebooks run top to bottom (nbclient, the python3 kernel of this environment) on synthetic data
and fabricated runs; the committed notebooks carry no outputs."""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
import pytest

from conftest import REPO, SRC
from helpers.runs import fabricate_runs

NOTEBOOKS = REPO / "notebooks"

pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")


def _execute(name: str, tmp_path: Path, env: dict[str, str]) -> nbformat.NotebookNode:
    from nbclient import NotebookClient

    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    old = dict(os.environ)
    os.environ.update(env)
    os.environ["PYTHONPATH"] = os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")])
    os.environ["MPLBACKEND"] = "module://matplotlib_inline.backend_inline"
    try:
        NotebookClient(
            nb, timeout=180, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
        ).execute()
    finally:
        os.environ.clear()
        os.environ.update(old)
    return nb


def _images(nb) -> int:
    return sum(
        1
        for c in nb.cells
        if c.cell_type == "code"
        for o in c.get("outputs", [])
        if "image/png" in o.get("data", {})
    )


@pytest.mark.parametrize("name", ["dataset_viewer.ipynb", "results.ipynb"])
def test_committed_without_outputs(name):
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    nbformat.validate(nb)
    assert all(
        not c.get("outputs") and c.get("execution_count") is None for c in nb.cells if c.cell_type == "code"
    )


def test_dataset_viewer_runs(tmp_path, cache_dir):
    nb = _execute(
        "dataset_viewer.ipynb",
        tmp_path,
        {"HUMANPARSE_CACHE": str(cache_dir), "HUMANPARSE_VIEWER_SAMPLES": "1"},
    )
    text = "".join(o.get("text", "") for c in nb.cells for o in c.get("outputs", []))
    assert "datasets: [" in text and "'lip'" in text
    assert "densepose_coco" in text and "DensePose points" in text.split("densepose_coco", 1)[1]
    assert _images(nb) >= 2  # the scene, then one figure per registered dataset


def test_results_notebook_runs(tmp_path):
    fabricate_runs(tmp_path / "logs")
    nb = _execute("results.ipynb", tmp_path, {"HUMANPARSE_COMPARE_ROOTS": str(tmp_path / "logs")})
    text = "".join(o.get("text", "") for c in nb.cells for o in c.get("outputs", []))
    assert "7 runs, 4 table rows, 2 not in the table" in text
    md = "".join(o.get("data", {}).get("text/markdown", "") for c in nb.cells for o in c.get("outputs", []))
    assert "grapy_ml T2 'DeepLab v3+'" in md
    assert _images(nb) >= 4  # summary bars (2 datasets), per-class bars, curves
