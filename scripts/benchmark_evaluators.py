"""Benchmark of the standalone evaluator (not a test).

Generates 500 CIHP-like images (256×192, 1-5 persons, rendered with
:func:`humanparse.data.synthetic.render_scene`; noisy per-person predictions with misses, duplicates,
false positives and sub-threshold scores) in every format the evaluator reads, plus 500 LIP-like
473×473 label maps with noisy predictions, then times ``python -m humanparse.evaluate_predictions``
per metric (in-process, several runs, medians) and prints the table next to the official
evaluators' times quoted in issue 4 (measured on a 2-core machine like this one).

    PYTHONPATH=src python scripts/benchmark_evaluators.py --out /tmp/hp-bench --runs 5

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
import time
import warnings
from pathlib import Path

import numpy as np

from humanparse import evaluate_predictions as ep
from humanparse.data.io import write_label_png
from humanparse.data.synthetic import labels_for, render_scene
from humanparse.evaluation import synthetic as sy

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
    samples = sy.make_instance_samples(n, seed=seed, size=(256, 192), persons=(1, 5),
                                       scene_fn=rendered_scene if scene == "render" else None)
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
        "semantic": ["metric=semantic", f"gt_dir={out / 'LIP' / 'gt'}", f"pred_dir={out / 'LIP' / 'pred'}",
                     f"list={out / 'LIP' / 'val_id.txt'}", "dataset=lip", w],
        "atr": ["metric=atr", f"gt_dir={out / 'LIP' / 'gt'}", f"pred_dir={out / 'LIP' / 'pred'}",
                f"list={out / 'LIP' / 'val_id.txt'}", "num_classes=20", w],
        "app": ["metric=app", f"gt_dir={cihp}", f"pred_dir={out / 'pred_persons'}", w],
        "app_mhp": ["metric=app", "gt_format=mhp", f"gt_dir={out / 'MHP' / 'val'}", f"pred_dir={out / 'pred_mhp'}",
                    "pred_format=mhp", "app_convention=mhp_official", w],
        "apr": ["metric=apr", f"gt_dir={cihp}", f"pred_dir={out / 'pred_parts'}", "apr_gt=instance_ids",
                f"instance_dir={out / 'Instance_part_val'}", "class_reduction=mean", w],
        "edge": ["metric=edge", f"gt_dir={cihp}", f"pred_dir={out / 'pred_edges'}", w],
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("/tmp/humanparse-benchmark"))
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
    (args.out / "ours.json").write_text(json.dumps(numbers, indent=1))
    print(f"\n{'metric':<10} {'ours median (s)':>16} {'min':>7} {'max':>7} {'reference':>40} {'ref (s)':>8} {'speed-up':>9}")
    for name, times in results.items():
        med = statistics.median(times)
        ref = REFERENCE_SECONDS.get(name)
        ref_txt = f"{ref[0]:>40} {ref[1]:8.2f} {ref[1] / med:8.1f}x" if ref else f"{'-':>40} {'-':>8} {'-':>9}"
        print(f"{name:<10} {med:16.3f} {min(times):7.3f} {max(times):7.3f} {ref_txt}")
    print(f"\n{args.images} images per set, {args.runs} runs, {args.workers} reader threads; numbers in {args.out / 'ours.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
