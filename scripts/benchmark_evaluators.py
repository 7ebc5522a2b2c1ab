"""Benchmark of the standalone evaluator (not a test).

Generates 500 CIHP-like images (256×192, 1-5 persons, rendered with
:func:`humanparse.synthetic.render_scene`; noisy per-person predictions with misses, duplicates,
false positives and sub-threshold scores) in every format the evaluator reads, plus 500 LIP-like
473×473 label maps with noisy predictions, then times ``python -m humanparse.evaluate_predictions``
per metric (in-process, several runs, medians) and prints the table next to the official
evaluators' times quoted in issue 4 (measured on a 2-core machine like this one).

    PYTHONPATH=src python scripts/benchmark_evaluators.py --runs 5

``--out`` keeps the generated set (reused when present), so the official evaluators can be run on
the very same files; ``<out>/ours.json`` holds our numbers for that comparison.
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
import warnings
from pathlib import Path

import numpy as np

from humanparse import evaluate_predictions as ep
from humanparse.data.io import write_label_png
from humanparse.evaluation import synthetic as sy
from humanparse.evaluation.fastio import read_index_png
from humanparse.evaluation.groundtruth import CIHPGroundTruth
from humanparse.evaluation.predictions import PersonPredictions
from humanparse.metrics.instance import image_app_record, score_app
from humanparse.synthetic import labels_for, render_scene

# seconds, official evaluators on the same kind of set, 2 cores (issue 4)
REFERENCE_SECONDS = {
    "apr": ("CIHP_PGN test_inst_part_ap.py", 18.4),
    "app_mhp": ("MHP v2 eval_submission.py, 9 thresholds", 22.2),
    "app": ("Parsing R-CNN eval_parsing_ap", 2.35),
    "semantic": ("LIP test_human.py", 1.2),
}


def rendered_scene(rng: np.random.Generator, h: int, w: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    sc = render_scene(rng, h, w, n)
    return labels_for(sc.tags, sc.parts, "cihp"), sc.person_ids.astype(np.uint8)


def generate(out: Path, n: int, seed: int, scene: str) -> None:
    marker = out / "generated.json"
    if marker.is_file() and json.loads(marker.read_text()) == {"n": n, "seed": seed, "scene": scene}:
        print(f"reusing the generated set in {out}")
        return
    t0 = time.perf_counter()
    samples = sy.make_instance_samples(
        n, seed=seed, size=(256, 192), persons=(1, 5), scene_fn=rendered_scene if scene == "render" else None
    )
    cihp = sy.write_cihp_gt(out / "CIHP" / "Validation", samples)
    sy.write_mhp_gt(out / "MHP", samples, images=True)
    sy.write_person_predictions(out / "pred_persons", samples)
    sy.write_mhp_submission(out / "pred_mhp", samples)
    sy.write_part_instance_predictions(out / "pred_parts", samples)
    sy.write_edge_predictions(out / "pred_edges", samples, seed=seed)
    # PGN's evaluation layout: instance GT and its txt in one folder (Instance_part_val)
    (out / "Instance_part_val").mkdir(exist_ok=True)
    for s in samples:
        for ext in ("png", "txt"):
            src = cihp / "Instance_ids" / f"{s.image_id}.{ext}"
            (out / "Instance_part_val" / src.name).write_bytes(src.read_bytes())
    # LIP-like semantic maps
    rng = np.random.default_rng(seed + 1)
    (out / "LIP" / "gt").mkdir(parents=True, exist_ok=True)
    (out / "LIP" / "pred").mkdir(parents=True, exist_ok=True)
    ids = []
    for i in range(n):
        sc = render_scene(rng, 473, 473, 1)
        gt = labels_for(sc.tags, sc.parts, "lip")
        pred = np.roll(gt, int(rng.integers(-4, 5)), axis=1)
        noise = rng.random(gt.shape) < 0.02
        pred = np.where(noise, rng.integers(0, 20, gt.shape), pred).astype(np.uint8)
        pred[pred == 255] = 0
        sid = f"{i:06d}_{i * 7 % 1000:03d}"
        write_label_png(out / "LIP" / "gt" / f"{sid}.png", gt)
        write_label_png(out / "LIP" / "pred" / f"{sid}.png", pred)
        ids.append(sid)
    (out / "LIP" / "val_id.txt").write_text("".join(f"{i}\n" for i in ids))
    marker.write_text(json.dumps({"n": n, "seed": seed, "scene": scene}))
    print(f"generated {n} CIHP-like and {n} LIP-like images in {time.perf_counter() - t0:.1f} s -> {out}")


def cases(out: Path, workers: int) -> dict[str, list[str]]:
    cihp = out / "CIHP" / "Validation"
    w = f"workers={workers}"
    return {
        "semantic": [
            "metric=semantic",
            f"gt_dir={out / 'LIP' / 'gt'}",
            f"pred_dir={out / 'LIP' / 'pred'}",
            f"list={out / 'LIP' / 'val_id.txt'}",
            "dataset=lip",
            w,
        ],
        "atr": [
            "metric=atr",
            f"gt_dir={out / 'LIP' / 'gt'}",
            f"pred_dir={out / 'LIP' / 'pred'}",
            f"list={out / 'LIP' / 'val_id.txt'}",
            "num_classes=20",
            w,
        ],
        "app": ["metric=app", f"gt_dir={cihp}", f"pred_dir={out / 'pred_persons'}", w],
        "app_mhp": [
            "metric=app",
            "gt_format=mhp",
            f"gt_dir={out / 'MHP' / 'val'}",
            f"pred_dir={out / 'pred_mhp'}",
            "pred_format=mhp",
            "app_convention=mhp_official",
            w,
        ],
        "apr": [
            "metric=apr",
            f"gt_dir={cihp}",
            f"pred_dir={out / 'pred_parts'}",
            "apr_gt=instance_ids",
            f"instance_dir={out / 'Instance_part_val'}",
            "class_reduction=mean",
            w,
        ],
        "edge": ["metric=edge", f"gt_dir={cihp}", f"pred_dir={out / 'pred_edges'}", w],
    }


def app_in_memory(out: Path, workers: int):
    """AP^p/PCP/mIoU as Parsing R-CNN's evaluator runs it: predictions already in memory, GT read from
    files. Returns a callable that scores once (predictions are loaded here, untimed)."""
    gt = CIHPGroundTruth(out / "CIHP" / "Validation", 20)
    ids = gt.default_ids()
    preds = PersonPredictions(out / "pred_persons")
    shapes = {sid: gt.semantic(sid).shape for sid in ids}
    loaded = {sid: preds.read(sid, shapes[sid]) for sid in ids}

    def one(sid):
        persons, semantic = gt.persons(sid)
        maps, scores = loaded[sid]
        return image_app_record(persons, maps, scores, semantic_gt=semantic)

    def score():
        return score_app(ep._parallel(one, ids, workers), 20)

    return score


def decode_floor(out: Path) -> dict[str, float]:
    """Seconds to only decode (one thread, OpenCV) the PNG files each evaluator reads."""
    sets = {
        "semantic": list((out / "LIP" / "gt").glob("*.png")) + list((out / "LIP" / "pred").glob("*.png")),
        "app": list((out / "CIHP" / "Validation" / "Category_ids").glob("*.png"))
        + list((out / "CIHP" / "Validation" / "Human_ids").glob("*.png"))
        + list((out / "pred_persons").glob("*.png")),
        "app_mhp": list((out / "MHP" / "val" / "parsing_annos").glob("*.png"))
        + list((out / "pred_mhp").rglob("*.png")),
        "apr": list((out / "Instance_part_val").glob("*.png")) + list((out / "pred_parts").glob("*.png")),
    }
    res = {}
    for name, files in sets.items():
        t0 = time.perf_counter()
        for f in files:
            read_index_png(f, channels="first")
        res[name] = time.perf_counter() - t0
    return res


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--out", type=Path, default=Path(tempfile.gettempdir()) / "humanparse-evaluator-benchmark"
    )
    ap.add_argument("--images", type=int, default=500)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--scene", choices=("render", "shapes"), default="render")
    ap.add_argument("--only", nargs="*", default=None, help="metrics to time (default: all)")
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    generate(args.out, args.images, args.seed, args.scene)
    results, numbers = {}, {}
    for name, argl in cases(args.out, args.workers).items():
        if args.only and name not in args.only:
            continue
        times = []
        for _ in range(args.runs):
            sink = io.StringIO()
            t0 = time.perf_counter()
            with contextlib.redirect_stdout(sink), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                res = ep.run(ep.OmegaConf.from_cli(argl + [f"output={args.out / f'{name}.json'}"]))
            times.append(time.perf_counter() - t0)
        results[name] = times
        numbers[name] = res["metrics"]
    if not args.only or "app_memory" in args.only:
        score = app_in_memory(args.out, args.workers)
        times = []
        for _ in range(args.runs):
            t0 = time.perf_counter()
            numbers["app_memory"] = score()
            times.append(time.perf_counter() - t0)
        results["app_memory"] = times
    floor = decode_floor(args.out)
    (args.out / "ours.json").write_text(json.dumps(numbers, indent=1))
    print(
        f"\n{'metric':<11} {'ours median (s)':>16} {'min':>7} {'max':>7} {'decode only':>12} "
        f"{'reference (issue 4)':>40} {'ref (s)':>8} {'speed-up':>9}"
    )
    for name, times in results.items():
        med = statistics.median(times)
        ref = REFERENCE_SECONDS.get("app" if name == "app_memory" else name)
        ref_txt = (
            f"{ref[0]:>40} {ref[1]:8.2f} {ref[1] / med:8.1f}x" if ref else f"{'-':>40} {'-':>8} {'-':>9}"
        )
        dec = f"{floor[name]:12.3f}" if name in floor else f"{'-':>12}"
        print(f"{name:<11} {med:16.3f} {min(times):7.3f} {max(times):7.3f} {dec} {ref_txt}")
    print(
        "app_memory: predictions held in memory as Parsing R-CNN's evaluator gets them (GT still read from files);"
        " 'decode only': one thread decoding the PNG files the metric reads, nothing else"
    )
    print(
        f"\n{args.images} images per set, {args.runs} runs, {args.workers} reader threads; numbers in {args.out / 'ours.json'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
