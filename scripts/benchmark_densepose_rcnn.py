"""DensePose-RCNN speed and memory against torchvision's Mask R-CNN at the same input size, in one run (issue 12).

    PYTHONPATH=src python scripts/benchmark_densepose_rcnn.py [--size 240 320] [--presets original detectron2]
        [--detections 20] [--reps 3] [--threads 2] [--devices cpu cuda] [--json out.json]

The paper (Güler et al. CVPR 2018 §4) reports 20-26 frames/s at 240×320 on a GPU for the ResNet-50-FPN model.

* **DensePose-RCNN**: :class:`humanparse.models.densepose.DensePoseRCNN`, each ``--presets`` head
  (``original`` = Detectron1 14→56, 59,788,467 parameters; ``detectron2`` = s1x with the decoder, 28→112,
  63,878,310), R50-FPN with FrozenBN, random weights.
* **Mask R-CNN**: torchvision ``MaskRCNN`` on the same trunk builder (``num_classes=2``), its internal transform
  replaced by the same batch-only one (no resize, no normalisation), so both do the same work before the heads.

Inference: one image, eval-mode forward under ``torch.inference_mode``, score threshold 0 and exactly ``N``
detections per image (random weights give more boxes), so every head runs on the same number of RoIs; the
DensePose time includes the per-box IUV post-processing (resize to the box, argmax, uint8). Training step:
forward + losses + backward + SGD on a batch of images with 4 persons of 100 points and a coarse map each.
Every measurement runs in its own process (CPU memory = peak RSS of that process; GPU =
``torch.cuda.max_memory_allocated``); medians and minima of ``--reps`` repetitions after one warm-up.
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import torch
from detector_timing import run_isolated, summary, sync, time_training_steps


def build(model: str, detections: int):
    from torchvision.models.detection import MaskRCNN

    from humanparse.models.densepose import DensePoseRCNN
    from humanparse.models.rcnn import BatchOnlyTransform, resnet_fpn

    if model.startswith("densepose_"):
        return DensePoseRCNN(
            {"preset": model.split("_", 1)[1]}, box_score_thresh=0.0, box_detections_per_img=detections
        )
    net = MaskRCNN(
        resnet_fpn("resnet50", 3, "frozen_bn"),
        num_classes=2,
        box_score_thresh=0.0,
        box_detections_per_img=detections,
    )
    net.transform = BatchOnlyTransform()
    return net


def targets(
    batch: int, h: int, w: int, device, persons: int = 4, points: int = 100, seed: int = 0
) -> list[dict]:
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(batch):
        x0 = torch.rand(persons, generator=g) * (w * 0.6)
        y0 = torch.rand(persons, generator=g) * (h * 0.4)
        bw = 0.15 * w + torch.rand(persons, generator=g) * 0.2 * w
        bh = 0.3 * h + torch.rand(persons, generator=g) * 0.3 * h
        boxes = torch.stack([x0, y0, (x0 + bw).clamp(max=w), (y0 + bh).clamp(max=h)], 1)
        masks = torch.zeros(persons, h, w, dtype=torch.uint8)
        dps = []
        for k, b in enumerate(boxes.round().long()):
            masks[k, b[1] : b[3], b[0] : b[2]] = 1
            dps.append(
                {
                    "x": torch.rand(points, generator=g) * 256,
                    "y": torch.rand(points, generator=g) * 256,
                    "I": torch.randint(1, 25, (points,), generator=g),
                    "U": torch.rand(points, generator=g),
                    "V": torch.rand(points, generator=g),
                    "coarse": torch.randint(0, 15, (256, 256), generator=g).to(device),
                }
            )
            dps[-1] = {k2: v.to(device) for k2, v in dps[-1].items()}
        out.append(
            {
                "boxes": boxes.to(device),
                "labels": torch.ones(persons, dtype=torch.int64, device=device),
                "masks": masks.to(device),
                "dp": dps,
            }
        )
    return out


def measure(job: dict) -> dict:
    import numpy as np

    from humanparse.models.densepose.postprocess import detection_instances

    torch.set_num_threads(job["threads"])
    device, (h, w) = job["device"], job["size"]
    torch.manual_seed(0)
    net = build(job["model"], job["detections"]).to(device)
    params = sum(p.numel() for p in net.parameters())
    images = torch.randn(job["batch"], 3, h, w, device=device)
    times = []
    rois = None
    if job["mode"] == "infer":
        net.eval()
        with torch.inference_mode():
            for i in range(job["reps"] + 1):
                sync(device)
                t = time.perf_counter()
                out = net(images)
                dets = out["detections"] if isinstance(out, dict) else out
                if job["model"].startswith("densepose_"):
                    for d in dets:
                        detection_instances(d, np.eye(3), (h, w))
                sync(device)
                if i:
                    times.append(time.perf_counter() - t)
        rois = sum(len(d["boxes"]) for d in dets)
    else:
        times = time_training_steps(net, images, targets(job["batch"], h, w, device), job["reps"], device)
    return summary(job, params, times, rois)


def run(job: dict) -> dict:
    return run_isolated(measure, job)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, nargs=2, default=[240, 320])
    ap.add_argument("--presets", nargs="+", default=["original", "detectron2"])
    ap.add_argument("--detections", type=int, default=20)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--train-batch", type=int, default=None, help="default: 1 on CPU, 2 on GPU")
    ap.add_argument("--devices", nargs="+", default=None)
    ap.add_argument("--skip-train", action="store_true")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    devices = args.devices or (["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"])
    models = ["maskrcnn"] + [f"densepose_{p}" for p in args.presets]
    rows = []
    for device in devices:
        base = {
            "device": device,
            "size": args.size,
            "threads": args.threads,
            "reps": args.reps,
            "detections": args.detections,
        }
        for model in models:
            rows.append(run({**base, "model": model, "mode": "infer", "batch": 1}))
        if not args.skip_train:
            tb = args.train_batch or (1 if device == "cpu" else 2)
            for model in models:
                rows.append(run({**base, "model": model, "mode": "train", "batch": tb}))
    print(
        f"# {platform.processor() or platform.machine()}, torch {torch.__version__}, {args.threads} threads, "
        f"input {args.size[0]}x{args.size[1]}, {args.detections} detections per image"
    )
    print("| device | mode | batch | model | params | median s (min) | images/s | vs Mask R-CNN | peak MiB |")
    print("|---|---|---:|---|---:|---:|---:|---:|---:|")
    ref = {}
    for r in rows:
        key = (r["device"], r["mode"])
        if r["model"] == "maskrcnn":
            ref[key] = r["median_s"]
        ips = r["batch"] / r["median_s"]
        print(
            f"| {r['device']} | {r['mode']} | {r['batch']} | {r['model']} | {r['params']:,} | {r['median_s']:.3f} "
            f"({r['min_s']:.3f}) | {ips:.2f} | {r['median_s'] / ref[key]:.2f}x | {r['peak_mem_mib']:.0f} |"
        )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
