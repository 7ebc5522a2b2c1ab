"""``python -m humanparse.evaluate_predictions metric=densepose``: results formats, agreement with the
metric class, errors naming the file."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from omegaconf import OmegaConf

from conftest import run_cli
from humanparse.data.densepose_coco import load_gt_images
from humanparse.data.densepose_surface import EvalDataMissingError
from humanparse.data.io import DataError
from humanparse.evaluate_predictions import main, run
from humanparse.metrics.densepose import DensePoseMetric
from humanparse.metrics.densepose_results import decode_uv, encode_uv, write_results
from humanparse.synthetic.body_surface import write_synthetic_eval_data
from humanparse.synthetic.densepose import synthetic_eval_set


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("dpeval")
    gt, dets = synthetic_eval_set(8, (64, 96), seed=9, uv_noise=0.05, false_positives=1.0)
    (d / "gt.json").write_text(json.dumps(gt))
    write_results(d / "res_list.json", dets, "list")
    write_results(d / "res_png.json", dets, "png")
    # predictions on the GT boxes (single-person RCP): the exact GT box with the rendered-like uv of a detection
    gt_box = []
    for a in gt["annotations"]:
        if "dp_x" in a:
            x, y, w, h = a["bbox"]
            gt_box.append(
                {
                    "image_id": a["image_id"],
                    "bbox": a["bbox"],
                    "score": 1.0,
                    "uv": np.zeros((3, max(int(h), 1), max(int(w), 1)), np.uint8),
                }
            )
    write_results(d / "res_gtbox.json", gt_box, "png")
    write_synthetic_eval_data(d / "eval_data")
    return d, dets


def _cfg(d, **kw):
    base = {
        "metric": "densepose",
        "results": str(d / "res_list.json"),
        "gt": str(d / "gt.json"),
        "eval_data": "synthetic",
        "output": str(d / "out.json"),
        "rcp_setting": "multi_person",
    }
    base.update(kw)
    return OmegaConf.create(base)


def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all((math.isnan(a[k]) and math.isnan(b[k])) or a[k] == b[k] for k in a)


def test_formats_and_eval_data_sources_agree_with_the_metric(files, capsys):
    d, dets = files
    lst = run(_cfg(d))
    assert "dp_ap" in capsys.readouterr().out
    written = json.loads((d / "out.json").read_text())
    assert (
        written["metric"] == "densepose" and written["num_images"] == 8 and "dp_gpsm_ap" in written["metrics"]
    )
    png = run(_cfg(d, results=str(d / "res_png.json")))
    ref_files = run(_cfg(d, eval_data=str(d / "eval_data")))  # the exported reference-format files
    assert _same(lst["metrics"], png["metrics"]) and _same(lst["metrics"], ref_files["metrics"])
    assert (
        0 < lst["metrics"]["dp_ap"] < 1
        and 0 < lst["metrics"]["dp_auc30"] < 1
        and "bbox_map" in lst["metrics"]
    )
    # the torchmetrics metric on the same data gives the same numbers
    images = load_gt_images(d / "gt.json")
    m = DensePoseMetric("synthetic", rcp_setting="multi_person")
    for im in images:
        mine = [x for x in dets if x["image_id"] == im["image_id"]]
        m.update(
            [
                {
                    "bbox": np.array([x["bbox"] for x in mine]).reshape(-1, 4),
                    "scores": [x["score"] for x in mine],
                    "iuv": [x["uv"] for x in mine],
                }
            ],
            [im],
        )
    got = {k: v.item() for k, v in m.compute().items()}
    assert _same(got, {k: v for k, v in lst["metrics"].items() if not k.startswith("bbox_")})
    # single-person RCP from predictions on the GT boxes (all background here: AUC 0, nothing missing)
    single = run(_cfg(d, rcp_setting="single_person", rcp_results=str(d / "res_gtbox.json"), modes=["gps"]))
    assert single["metrics"]["dp_auc10"] == 0.0 and single["rcp_gt_without_gt_box_prediction"] == 0
    fixed = run(_cfg(d, kappa="fixed", modes=["gps"]))
    assert fixed["metrics"]["dp_ap"] != lst["metrics"]["dp_ap"]


def test_uv_png_round_trip():
    a = np.random.default_rng(0).integers(0, 256, (3, 7, 5)).astype(np.uint8)
    assert np.array_equal(decode_uv(encode_uv(a), "x"), a) and np.array_equal(decode_uv(a.tolist(), "x"), a)
    with pytest.raises(ValueError, match="3 x h x w"):
        decode_uv([[1, 2], [3, 4]], "x")


def test_errors_name_the_file(files, tmp_path):
    d, dets = files
    bad = tmp_path / "bad.json"
    write_results(bad, [{**dets[0], "image_id": 424242}])
    with pytest.raises(DataError, match=r"bad.json: result 0 refers to image 424242"):
        run(_cfg(d, results=str(bad)))
    write_results(bad, [{**dets[0], "uv": np.zeros((3, 2, 2), np.uint8)}])
    with pytest.raises(ValueError, match=r"bad.json: image \d+ detection 0: uv has shape \[3, 2, 2\]"):
        run(_cfg(d, results=str(bad)))
    bad.write_text("[{]")
    with pytest.raises(DataError, match="bad.json: malformed JSON"):
        run(_cfg(d, results=str(bad)))
    with pytest.raises(EvalDataMissingError, match="SMPL_subdiv.mat.*dl.fbaipublicfiles.com"):
        run(_cfg(d, eval_data=str(tmp_path / "no_eval_data")))
    with pytest.raises(ValueError, match="modes"):
        run(_cfg(d, modes=["gps", "oks"]))
    gt = json.loads((d / "gt.json").read_text())
    gt["images"][0]["ignore_regions_x"] = [[1, 5, 5]]
    gt["images"][0]["ignore_regions_y"] = [[1, 1, 5]]
    (tmp_path / "gt_ir.json").write_text(json.dumps(gt))
    with pytest.raises(DataError, match="gt_ir.json: image .* ignore_regions"):
        run(_cfg(d, gt=str(tmp_path / "gt_ir.json")))


@pytest.mark.slow
def test_cli(files, tmp_path, cache_dir):
    d, _ = files
    proc = run_cli(
        "humanparse.evaluate_predictions",
        "metric=densepose",
        f"results={d / 'res_png.json'}",
        f"gt={d / 'gt.json'}",
        f"eval_data={d / 'eval_data'}",
        f"output={tmp_path / 'm.json'}",
        cwd=tmp_path,
        cache_dir=cache_dir,
    )
    assert "dp_gpsm_ap" in proc.stdout and (tmp_path / "m.json").is_file()


def test_main_exit_code_and_message(files, tmp_path, capsys):
    d, _ = files
    rc = main(
        [
            "metric=densepose",
            f"results={d / 'res_png.json'}",
            f"gt={d / 'gt.json'}",
            f"eval_data={tmp_path / 'missing'}",
        ]
    )
    assert rc == 2 and "Pdist_matrix.pkl" in capsys.readouterr().err
