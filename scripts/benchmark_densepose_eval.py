"""Benchmark of the DensePose evaluator (``metric=densepose``) on a generated set; not a test.

    PYTHONPATH=src python scripts/benchmark_densepose_eval.py [--images 500] [--runs 5] [--reference]

Generates a synthetic DensePose-COCO ground truth (1-4 persons per image, crowd regions, persons without
points) with noisy DensePose R-CNN-like detections (duplicates, false positives), writes the GT json and
the results json (``uv`` as nested lists and as base64 PNGs), and times, as medians over ``--runs``:

* ``eval``: the evaluation proper, data already in memory (GT snapping, per-image GPS / GPSm, matching,
  accumulation): the part comparable with detectron2's ``DensePoseCocoEval.evaluate/accumulate/summarize``;
* ``end-to-end``: ``evaluate_predictions metric=densepose`` including reading the json files.

``--reference`` also times detectron2's ``DensePoseCocoEval`` (GPS and GPSm) on the same files when
``densepose.evaluation.densepose_coco_evaluation`` is importable (a detectron2 + DensePose install with its
evaluation data reachable) and reports whether its numbers equal ours. Nothing of detectron2 is shipped
with humanparse.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from omegaconf import OmegaConf

from humanparse.data.densepose_coco import images_from_coco, read_coco
from humanparse.data.densepose_surface import load_body_surface
from humanparse.metrics.densepose import image_records, prepare_gt_images, score_records
from humanparse.metrics.densepose_results import evaluate_densepose, read_results, write_results
from humanparse.synthetic.densepose import synthetic_eval_set

STAT_KEYS = ("ap", "ap50", "ap75", "apm", "apl", "ar", "ar50", "ar75", "arm", "arl")


def time_eval(images, dets, surface, modes, runs) -> tuple[float, dict]:
    empty = {"bbox": np.zeros((0, 4)), "scores": np.zeros(0), "iuv": []}
    times, metrics = [], {}
    for _ in range(runs):
        t = time.perf_counter()
        gts = prepare_gt_images(images, surface)
        recs = image_records(gts, [dets.get(g.image_id, empty) for g in gts], surface, modes=modes)
        metrics = score_records(recs, modes=modes, rcp=False)
        times.append(time.perf_counter() - t)
    return statistics.median(times), metrics


def time_reference(gt_path: Path, res_path: Path, runs: int) -> dict | None:
    try:
        import torch
        from densepose.evaluation.densepose_coco_evaluation import DensePoseCocoEval, DensePoseEvalMode
        from pycocotools.coco import COCO
    except ImportError as e:
        print(f"reference evaluator not importable ({e}); skipped")
        return None

    class Quantized:
        def __init__(self, arr):
            self.labels_uv_uint8 = torch.from_numpy(np.asarray(arr, dtype=np.uint8))

    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO(str(gt_path))
    results = json.loads(res_path.read_text())
    for r in results:
        r["densepose"] = Quantized(r.pop("uv"))
    with contextlib.redirect_stdout(io.StringIO()):
        coco_dt = coco_gt.loadRes(results)
    out = {}
    for mode in ("GPS", "GPSM"):
        times, stats = [], None
        for _ in range(runs):
            ev = DensePoseCocoEval(coco_gt, coco_dt, "densepose", dpEvalMode=getattr(DensePoseEvalMode, mode))
            t = time.perf_counter()
            with contextlib.redirect_stdout(io.StringIO()):
                ev.evaluate()
                ev.accumulate()
                ev.summarize()
            times.append(time.perf_counter() - t)
            stats = [float(x) for x in ev.stats]
        out[mode] = {"seconds": statistics.median(times), "stats": stats}
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=500)
    ap.add_argument("--min-side", type=int, default=192)
    ap.add_argument("--max-side", type=int, default=320)
    ap.add_argument("--persons", type=int, nargs=2, default=(1, 4))
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--reference", action="store_true", help="also time detectron2's DensePoseCocoEval if importable"
    )
    ap.add_argument("--out", type=Path, default=None, help="write the figures as JSON")
    args = ap.parse_args(argv)

    t = time.perf_counter()
    gt, dets = synthetic_eval_set(
        args.images,
        (args.min_side, args.max_side),
        args.seed,
        persons=tuple(args.persons),
        false_positives=1.0,
        duplicate_prob=0.3,
        uv_noise=0.06,
        part_swap=0.05,
    )
    n = args.images
    print(
        f"generated {n} images, {len(gt['annotations'])} GT persons "
        f"({sum('dp_x' in a for a in gt['annotations'])} with points), {len(dets)} detections "
        f"in {time.perf_counter() - t:.1f} s"
    )
    figures: dict = {
        "images": n,
        "gt_persons": len(gt["annotations"]),
        "detections": len(dets),
        "runs": args.runs,
    }
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        gt_path = tmp / "gt.json"
        gt_path.write_text(json.dumps(gt))
        res_list = write_results(tmp / "results_list.json", dets, "list")
        res_png = write_results(tmp / "results_png.json", dets, "png")
        figures["results_mb"] = {
            "list": res_list.stat().st_size / 2**20,
            "png": res_png.stat().st_size / 2**20,
        }

        surface = load_body_surface("synthetic")
        surface.quantized_lut()
        coco = read_coco(gt_path)
        images = images_from_coco(coco, gt_path)
        loaded, _ = read_results(res_png, {im["image_id"] for im in images})
        for modes in (("gps",), ("gps", "gpsm")):
            sec, metrics = time_eval(images, loaded, surface, modes, args.runs)
            figures[f"eval_ms_per_image/{'+'.join(modes)}"] = 1000 * sec / n
            figures.setdefault("metrics", {}).update(metrics)
        for fmt, path in (("list", res_list), ("png", res_png)):
            times = []
            for _ in range(args.runs):
                cfg = OmegaConf.create(
                    {
                        "results": str(path),
                        "gt": str(gt_path),
                        "eval_data": "synthetic",
                        "modes": ["gps", "gpsm"],
                        "rcp": False,
                        "bbox": False,
                        "output": str(tmp / "m.json"),
                    }
                )
                t = time.perf_counter()
                evaluate_densepose(cfg)
                times.append(time.perf_counter() - t)
            figures[f"end_to_end_ms_per_image/{fmt}"] = 1000 * statistics.median(times) / n
        if args.reference:
            ref = time_reference(gt_path, res_list, args.runs)
            if ref is not None:
                for mode, prefix in (("GPS", "dp_"), ("GPSM", "dp_gpsm_")):
                    figures[f"reference_ms_per_image/{mode.lower()}"] = 1000 * ref[mode]["seconds"] / n
                    ours = np.array([figures["metrics"][prefix + k] for k in STAT_KEYS])
                    theirs = np.array(ref[mode]["stats"], dtype=np.float64)
                    theirs[theirs == -1] = np.nan
                    figures[f"reference_max_abs_diff/{mode.lower()}"] = float(
                        np.nanmax(np.abs(ours - theirs))
                    )
    for k, v in figures.items():
        if k != "metrics":
            print(f"{k:40s} {v:.3f}" if isinstance(v, float) else f"{k:40s} {v}")
    print(f"GPS AP {figures['metrics']['dp_ap']:.4f}  GPSm AP {figures['metrics']['dp_gpsm_ap']:.4f}")
    if args.out:
        args.out.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    sys.exit(main())
