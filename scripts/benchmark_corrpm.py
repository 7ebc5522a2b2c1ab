"""CorrPM speed against its DeepLab-style trunk, measured side by side (issue 5, "Performance").

    PYTHONPATH=src python scripts/benchmark_corrpm.py [--size 384] [--batch 1] [--threads 2] [--reps 7]
                                                     [--profile] [--nchw] [--cpu-time] [--json out.json]

Both models are built from the same blocks at C = 20 (LIP), J = 16:

* **trunk**: deep-stem ResNet-101 at output stride 16 + ASPP (12/24/36, image pooling, 256 → 512,
  dropout) + conv1x1 → C, with CE on logits upsampled to the input (``align_corners=True``);
* **CorrPM**: the full model and its loss (:class:`humanparse.tasks.losses.CorrPMCriterion`, α = 2, β = 70).

A *training step* is forward + loss + backward + SGD step (lr 1e-3, momentum 0.9, weight decay 5e-4);
*inference* is the eval-mode forward under ``torch.inference_mode`` (CorrPM: seg2 only). The two models
alternate within every repetition so that load on a shared machine hits both alike; medians, minima
(the least disturbed run of each) and their ratios are printed. Both run channels-last (CorrPM's
default) unless ``--nchw``. ``--cpu-time`` counts CPU seconds instead of wall time, which other
processes disturb less (use it with ``OMP_WAIT_POLICY=PASSIVE`` so waiting threads do not spin).
With a batch of one sample, the BatchNorm of the image-pooling branch sees a single value per channel,
which training-mode BN cannot normalise: that one layer runs in eval mode in both models (its cost is
negligible either way).

Large activations make glibc's allocator map and unmap memory every step (page faults dominate the
variance of a CPU training step); unless ``--no-malloc-tuning``, the script first raises glibc's mmap and
trim thresholds with ``mallopt`` (the effect of ``MALLOC_MMAP_THRESHOLD_=33554432
MALLOC_TRIM_THRESHOLD_=17179869184``), for both models alike.

``--profile`` adds where the time goes: forward + backward of each component run on its real inputs
(inputs require grad, as inside the full backward), medians of a few repetitions.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import platform
import statistics
import time
from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from humanparse.data.targets import pose_heatmaps, semantic_edges
from humanparse.models.blocks import ASPP, DilatedResNet, ImagePooling, concat_conv1x1, dot_product_attention
from humanparse.models.corrpm import CorrPM, count_parameters
from humanparse.tasks.losses import CorrPMCriterion, SegmentationCrossEntropy

NUM_CLASSES, NUM_JOINTS = 20, 16


class Trunk(nn.Module):
    """The DeepLab-style trunk CorrPM is built on: ResNet-101 (OS 16) + ASPP + conv1x1 classifier."""

    def __init__(self, backbone: str = "resnet101s", channels_last: bool = True):
        super().__init__()
        self.backbone = DilatedResNet(backbone, 16)
        self.aspp = ASPP(self.backbone.channels[-1], 256, 512, (12, 24, 36), dropout=0.1)
        self.classifier = nn.Conv2d(512, NUM_CLASSES, 1)
        self.channels_last = channels_last
        if channels_last:
            self.to(memory_format=torch.channels_last)

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        if self.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        return {"seg2": self.classifier(self.aspp(self.backbone(images)[-1]))}


def synthetic_batch(size: int, batch: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """An image, a blocky label map, its CorrPM edge map and 16 joint heatmaps at 1/4."""
    rng = np.random.default_rng(seed)
    labels = (
        rng.integers(0, NUM_CLASSES, (batch, size // 32, size // 32))
        .repeat(32, 1)
        .repeat(32, 2)
        .astype(np.uint8)
    )
    edges = np.stack([semantic_edges(lab) for lab in labels])
    kp = np.concatenate([rng.uniform(0, size, (batch, NUM_JOINTS, 2)), np.ones((batch, NUM_JOINTS, 1))], 2)
    heat = np.stack([pose_heatmaps(k, (size, size)) for k in kp])
    return {
        "image": torch.randn(batch, 3, size, size),
        "semantic": torch.from_numpy(labels).long(),
        "semantic_edge": torch.from_numpy(edges).long(),
        "heatmaps": torch.from_numpy(heat),
    }


def single_value_bn_in_eval(model: nn.Module) -> None:
    for m in model.modules():
        if isinstance(m, ImagePooling):
            m.eval()


def make_train_step(model: nn.Module, criterion: nn.Module, batch: dict) -> Callable[[], float]:
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9, weight_decay=5e-4)

    def step() -> float:
        model.train()
        single_value_bn_in_eval(model)
        opt.zero_grad(set_to_none=True)
        loss = criterion(model(batch["image"]), batch)["loss"]
        loss.backward()
        opt.step()
        return float(loss.detach())

    return step


def make_inference(model: nn.Module, batch: dict) -> Callable[[], None]:
    def run() -> None:
        model.eval()
        with torch.inference_mode():
            model(batch["image"])

    return run


CLOCK = time.perf_counter  # --cpu-time: time.process_time (CPU seconds of this process, robust to other load)


def timed(fn: Callable) -> float:
    t = CLOCK()
    fn()
    return CLOCK() - t


def _fwd_bwd(fn: Callable[[], torch.Tensor | dict | tuple]) -> Callable[[], None]:
    """Forward ``fn`` and back-propagate: a loss dict from its ``loss``, tensors from dense random gradients
    laid out like the outputs, as the gradients arriving from the rest of the network would be (drawn once,
    outside the timed calls)."""
    grads: list[torch.Tensor] = []

    def run() -> None:
        out = fn()
        if isinstance(out, dict):
            out["loss"].backward()
            return
        outs = list(out) if isinstance(out, (list, tuple)) else [out]
        if not grads:
            grads.extend(torch.empty_like(o).normal_() for o in outs)
        torch.autograd.backward(outs, grads)

    return run


def profile_components(
    model: CorrPM | Trunk, criterion: nn.Module, batch: dict, reps: int
) -> dict[str, float]:
    """Median forward + backward seconds of each component on the inputs it sees inside the model
    (inputs require grad, so the backward includes the input gradients, as in the full step)."""
    model.train()
    single_value_bn_in_eval(model)
    images = batch["image"]

    def leaf(t: torch.Tensor) -> torch.Tensor:
        return t.detach().requires_grad_(True)

    parts: dict[str, Callable[[], None]] = {"backbone": _fwd_bwd(lambda: model.backbone(images))}
    with torch.no_grad():
        x2, x3, x4, x5 = (leaf(f) for f in model.backbone(images))
        outs = {
            k: leaf(v)
            for k, v in model(images, **({"all_heads": True} if isinstance(model, CorrPM) else {})).items()
        }
    if isinstance(model, Trunk):
        with torch.no_grad():
            a = leaf(model.aspp(x5))
        parts["ASPP"] = _fwd_bwd(lambda: model.aspp(x5))
        parts["classifier"] = _fwd_bwd(lambda: model.classifier(a))
    else:
        pe, hnl = model.parsing_encoder, model.fusion
        with torch.no_grad():
            a = leaf(pe.aspp(x5))
            fp = leaf(pe(x2, x5))
            fb = model.edge_encoder((x2, x3, x4))
            fb.parts = [leaf(t) for t in fb.parts]
            fk = leaf(model.pose_encoder(x5, fp.shape[-2:]))
            fh = leaf(hnl.hybrid(fp, [fb, fk]))
            q, k, v = (leaf(t) for t in hnl.non_local._qkv(fp, fh))
            z = leaf(hnl(fp, [fb, fk]))
        parts["ASPP"] = _fwd_bwd(lambda: pe.aspp(x5))
        parts["decoder → fp"] = _fwd_bwd(
            lambda: pe.fuse_act(concat_conv1x1(pe.fuse.weight, None, [a, x2], x2.shape[-2:], False))
        )
        parts["edge encoder → edge (fb composed into its consumers)"] = _fwd_bwd(
            lambda: model.edge_encoder.logits(model.edge_encoder((x2, x3, x4)))
        )
        parts["pose encoder → fk, pose"] = _fwd_bwd(
            lambda: (lambda f: (f, model.pose_encoder.classifier(f)))(model.pose_encoder(x5, fp.shape[-2:]))
        )
        parts["HNL Wa → fh"] = _fwd_bwd(lambda: hnl.hybrid(fp, [fb, fk]))
        parts["HNL non-local (θ, φ, g, attention, Wb)"] = _fwd_bwd(lambda: hnl.non_local(fp, query=fh))
        parts["  of which softmax(θᵀφ)·g"] = _fwd_bwd(lambda: dot_product_attention(q, k, v, scale=1.0))
        parts["classifiers seg1, seg2"] = _fwd_bwd(lambda: (pe.classifier(fp), model.classifier(z)))
    parts["loss"] = _fwd_bwd(lambda: criterion(outs, batch))
    return {k: _median_time(v, reps) for k, v in parts.items()}


def _median_time(fn: Callable[[], None], reps: int) -> float:
    fn()  # warm-up
    return statistics.median(timed(fn) for _ in range(reps))


def tune_malloc() -> bool:
    """Keep freed activations in glibc's heap instead of returning them to the OS after every step."""
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    m_trim_threshold, m_top_pad, m_mmap_threshold = -1, -2, -3
    return all(
        libc.mallopt(opt, val) == 1
        for opt, val in (
            (m_mmap_threshold, 32 * 1024 * 1024),
            (m_trim_threshold, 2**31 - 1),
            (m_top_pad, 1024 * 1024 * 1024),
        )
    )


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", type=int, default=384)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--backbone", default="resnet101s")
    ap.add_argument(
        "--nchw", action="store_true", help="both models in NCHW memory format (default: channels-last)"
    )
    ap.add_argument("--profile", action="store_true", help="per-component forward+backward breakdown")
    ap.add_argument("--profile-reps", type=int, default=3)
    ap.add_argument(
        "--cpu-time",
        action="store_true",
        help="measure CPU seconds of this process instead of wall time (for --threads 1 on a busy machine)",
    )
    ap.add_argument(
        "--no-malloc-tuning", action="store_true", help="leave glibc's allocator thresholds alone"
    )
    ap.add_argument("--json", default=None, help="write the results here")
    args = ap.parse_args(argv)
    malloc_tuned = False if args.no_malloc_tuning else tune_malloc()
    global CLOCK
    CLOCK = time.process_time if args.cpu_time else time.perf_counter
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    batch = synthetic_batch(args.size, args.batch)
    trunk = Trunk(args.backbone, channels_last=not args.nchw)
    corrpm = CorrPM(NUM_CLASSES, NUM_JOINTS, backbone=args.backbone, channels_last=not args.nchw)
    trunk_loss = SegmentationCrossEntropy("seg2", align_corners=True)
    corrpm_loss = CorrPMCriterion()
    runs = {
        "trunk/train": make_train_step(trunk, trunk_loss, batch),
        "corrpm/train": make_train_step(corrpm, corrpm_loss, batch),
        "trunk/infer": make_inference(trunk, batch),
        "corrpm/infer": make_inference(corrpm, batch),
    }
    for fn in runs.values():  # warm-up (allocator, oneDNN primitive caches)
        fn()
    times: dict[str, list[float]] = {k: [] for k in runs}
    for _ in range(args.reps):
        for k, fn in runs.items():
            times[k].append(timed(fn))
    med = {k: statistics.median(v) for k, v in times.items()}
    best = {k: min(v) for k, v in times.items()}
    result = {
        "config": {
            **vars(args),
            "torch": torch.__version__,
            "machine": platform.processor() or platform.machine(),
            "threads_used": torch.get_num_threads(),
            "malloc_tuned": malloc_tuned,
        },
        "params_m": {"trunk": count_parameters(trunk) / 1e6, "corrpm": count_parameters(corrpm) / 1e6},
        "median_s": med,
        "min_s": best,
        "all_s": times,
        "ratio_median": {k: med[f"corrpm/{k}"] / med[f"trunk/{k}"] for k in ("train", "infer")},
        "ratio_min": {k: best[f"corrpm/{k}"] / best[f"trunk/{k}"] for k in ("train", "infer")},
    }
    print(
        f"input {args.size}x{args.size}, batch {args.batch}, {torch.get_num_threads()} threads, {args.reps} repetitions, "
        f"{'channels-last' if not args.nchw else 'NCHW'}, malloc tuning {'on' if malloc_tuned else 'off'}, "
        f"{'CPU' if args.cpu_time else 'wall'} time (torch {torch.__version__})"
    )
    print(
        f"parameters: trunk {result['params_m']['trunk']:.2f} M, CorrPM {result['params_m']['corrpm']:.2f} M"
    )
    print(f"{'':15s}{'trunk':>9s}{'CorrPM':>9s}{'ratio':>7s} |{'trunk':>8s}{'CorrPM':>9s}{'ratio':>7s}")
    print(f"{'':15s}{'median s':>25s} |{'minimum s':>24s}")
    for kind, label in (("train", "training step"), ("infer", "inference")):
        a, b, c, d = (
            med[f"trunk/{kind}"],
            med[f"corrpm/{kind}"],
            best[f"trunk/{kind}"],
            best[f"corrpm/{kind}"],
        )
        print(f"{label:15s}{a:9.3f}{b:9.3f}{b / a:7.2f} |{c:8.3f}{d:9.3f}{d / c:7.2f}")
    for k in runs:
        print(f"  all {k:13s} " + " ".join(f"{t:.2f}" for t in times[k]))
    if args.profile:
        result["profile_s"] = {
            "trunk": profile_components(trunk, trunk_loss, batch, args.profile_reps),
            "corrpm": profile_components(corrpm, corrpm_loss, batch, args.profile_reps),
        }
        for name, prof in result["profile_s"].items():
            total = sum(v for k, v in prof.items() if not k.startswith("  "))
            print(f"\n{name}: forward + backward per component (median s, sum {total:.3f} s)")
            for k, v in prof.items():
                print(f"  {k:42s}{v:8.3f}{100 * v / total:7.1f} %")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
    return result


if __name__ == "__main__":
    main()
