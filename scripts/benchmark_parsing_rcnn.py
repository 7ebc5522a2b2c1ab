"""Parsing R-CNN speed and memory against torchvision's Mask R-CNN, side by side in one run (issue 11).

    PYTHONPATH=src python scripts/benchmark_parsing_rcnn.py [--size 800 1333] [--detections 10 100]
        [--reps 3] [--threads 2] [--variant code|paper] [--devices cpu cuda] [--json out.json]

* **Parsing R-CNN**: the final model (R50-FPN, PSS + ERR 32×32 + GCE + PBD, 128×128 output; ``--variant code``
  is the released head, 54,564,717 parameters at C = 20; ``paper`` the GCE width 256 / BN default).
* **Mask R-CNN**: torchvision's ``MaskRCNN`` with the body of ``maskrcnn_resnet50_fpn`` (random weights,
  ``num_classes=2``), built from the same trunk builder (FrozenBN, stem + res2 frozen) so both bodies
  are identical; its internal transform is replaced by the same batch-only transform (no resize, no
  normalisation), so both do exactly the same work before the RoI heads.

Inference: eval-mode forward on one 800×1333 image under ``torch.inference_mode``; the detectors keep
exactly ``N`` detections (score threshold 0, ``detections_per_img = N``; random weights give more boxes
than that), so both heads run on the same number of RoIs, for each N of ``--detections``. Parsing R-CNN
inference includes the softmax, not the paste-back (postprocess, CPU). Training step: forward + loss +
backward + SGD step on a batch of images with 4 persons each (boxes, masks, part maps).
Every measurement runs in its own process: the CPU memory figure is that process's peak RSS, the GPU one
``torch.cuda.max_memory_allocated``. Medians and minima of ``--reps`` timed repetitions after one warm-up.
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import torch
from detector_timing import run_isolated, summary, sync, time_training_steps

NUM_CLASSES = 20


def build(model: str, variant: str, detections: int):
    from torchvision.models.detection import MaskRCNN

    from humanparse.models.parsing_rcnn import ParsingRCNN
    from humanparse.models.rcnn import BatchOnlyTransform, resnet_fpn

    if model == "parsing_rcnn":
        head = {"gce_dim": 512, "nl_norm": "gn", "rois_per_image": 16} if variant == "code" else {}
        return ParsingRCNN(NUM_CLASSES, parsing=head, box_score_thresh=0.0, box_detections_per_img=detections)
    net = MaskRCNN(
        resnet_fpn("resnet50", 3, "frozen_bn"),
        num_classes=2,
        box_score_thresh=0.0,
        box_detections_per_img=detections,
    )
    net.transform = BatchOnlyTransform()
    return net


def targets(batch: int, h: int, w: int, device, persons: int = 4, seed: int = 0) -> list[dict]:
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(batch):
        x0 = torch.rand(persons, generator=g) * (w * 0.7)
        y0 = torch.rand(persons, generator=g) * (h * 0.4)
        bw = 0.1 * w + torch.rand(persons, generator=g) * 0.2 * w
        bh = 0.3 * h + torch.rand(persons, generator=g) * 0.3 * h
        boxes = torch.stack([x0, y0, (x0 + bw).clamp(max=w), (y0 + bh).clamp(max=h)], 1)
        masks = torch.zeros(persons, h, w, dtype=torch.uint8)
        parts = torch.zeros(persons, h, w, dtype=torch.uint8)
        for k, b in enumerate(boxes.round().long()):
            masks[k, b[1] : b[3], b[0] : b[2]] = 1
            parts[k, b[1] : b[3], b[0] : b[2]] = torch.randint(1, NUM_CLASSES, (1,), generator=g).to(
                torch.uint8
            )
        out.append(
            {
                k: v.to(device)
                for k, v in {
                    "boxes": boxes,
                    "labels": torch.ones(persons, dtype=torch.int64),
                    "masks": masks,
                    "parts": parts,
                }.items()
            }
        )
    return out


def measure(job: dict) -> dict:
    torch.set_num_threads(job["threads"])
    device, (h, w) = job["device"], job["size"]
    torch.manual_seed(0)
    net = build(job["model"], job["variant"], job["detections"]).to(device)
    params = sum(p.numel() for p in net.parameters())
    images = torch.randn(job["batch"], 3, h, w, device=device)
    times = []
    if job["mode"] == "infer":
        net.eval()
        with torch.inference_mode():
            for i in range(job["reps"] + 1):
                sync(device)
                t = time.perf_counter()
                out = net(images)
                sync(device)
                if i:
                    times.append(time.perf_counter() - t)
        dets = out["detections"] if isinstance(out, dict) else out
        rois = sum(len(d["boxes"]) for d in dets)
    else:
        times = time_training_steps(net, images, targets(job["batch"], h, w, device), job["reps"], device)
        rois = None
    return summary(job, params, times, rois)


def run(job: dict) -> dict:
    return run_isolated(measure, job)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, nargs=2, default=[800, 1333])
    ap.add_argument(
        "--detections",
        type=int,
        nargs="+",
        default=None,
        help="RoIs per image at inference (default: 10 on CPU; 10 20 100 on GPU)",
    )
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--variant", choices=["code", "paper"], default="code")
    ap.add_argument("--train-batch", type=int, default=None, help="default: 1 on CPU, 2 on GPU")
    ap.add_argument("--devices", nargs="+", default=None)
    ap.add_argument("--skip-train", action="store_true")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    devices = args.devices or (["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"])
    rows = []
    for device in devices:
        dets = args.detections or ([10] if device == "cpu" else [10, 20, 100])
        base = {
            "device": device,
            "size": args.size,
            "threads": args.threads,
            "variant": args.variant,
            "reps": args.reps,
        }
        for n in dets:
            for model in ("maskrcnn", "parsing_rcnn"):  # alternate, so machine load hits both alike
                rows.append(run({**base, "model": model, "mode": "infer", "batch": 1, "detections": n}))
        if not args.skip_train:
            tb = args.train_batch or (1 if device == "cpu" else 2)
            for model in ("maskrcnn", "parsing_rcnn"):
                rows.append(run({**base, "model": model, "mode": "train", "batch": tb, "detections": 100}))
    print(
        f"# {platform.processor() or platform.machine()}, torch {torch.__version__}, "
        f"{args.threads} threads, input {args.size[0]}x{args.size[1]}, Parsing R-CNN head: {args.variant}"
    )
    print(
        "| device | mode | batch | RoIs/img | Mask R-CNN s (min) | Parsing R-CNN s (min) | ratio (median) | "
        "Mask R-CNN MiB | Parsing R-CNN MiB |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for a, b in zip(rows[::2], rows[1::2]):
        n = a["detections"] if a["mode"] == "infer" else "train"
        print(
            f"| {a['device']} | {a['mode']} | {a['batch']} | {n} | {a['median_s']:.3f} ({a['min_s']:.3f}) | "
            f"{b['median_s']:.3f} ({b['min_s']:.3f}) | {b['median_s'] / a['median_s']:.2f}x | "
            f"{a['peak_mem_mib']:.0f} | {b['peak_mem_mib']:.0f} |"
        )
    print(f"parameters: Mask R-CNN {rows[0]['params']:,}, Parsing R-CNN {rows[1]['params']:,}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
