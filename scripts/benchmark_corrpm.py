"""CorrPM speed against its DeepLab-style trunk, measured side by side (issue 5, "Performance").

    PYTHONPATH=src python scripts/benchmark_corrpm.py [--size 384] [--batch 1] [--threads 2] [--reps 7]
                                                     [--profile] [--json out.json]

Both models are built from the same blocks at C = 20 (LIP), J = 16:

* **trunk**: deep-stem ResNet-101 at output stride 16 + ASPP (12/24/36, image pooling, 256 → 512,
  dropout) + conv1x1 → C, with CE on logits upsampled to the input (``align_corners=True``);
* **CorrPM**: the full model and its loss (:class:`humanparse.tasks.losses.CorrPMCriterion`, α = 2, β = 70).

A *training step* is forward + loss + backward + SGD step (lr 1e-3, momentum 0.9, weight decay 5e-4);
*inference* is the eval-mode forward under ``torch.inference_mode`` (CorrPM: seg2 only). The two models
alternate within every repetition so that load on a shared machine hits both alike; medians and ratios
are printed. With a batch of one sample, the BatchNorm of the image-pooling branch sees a single value
per channel, which training-mode BN cannot normalise: that one layer runs in eval mode in both models
(its cost is negligible either way).

``--profile`` adds where the time goes: forward + backward of each component run on its real inputs
(inputs require grad, as inside the full backward), medians of a few repetitions.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from humanparse.data.targets import pose_heatmaps, semantic_edges
from humanparse.models.blocks import ASPP, DilatedResNet, ImagePooling
from humanparse.models.corrpm import CorrPM, count_parameters
from humanparse.tasks.losses import CorrPMCriterion, SegmentationCrossEntropy

NUM_CLASSES, NUM_JOINTS = 20, 16


class Trunk(nn.Module):
    """The DeepLab-style trunk CorrPM is built on: ResNet-101 (OS 16) + ASPP + conv1x1 classifier."""

    def __init__(self, backbone: str = "resnet101s"):
        super().__init__()
        self.backbone = DilatedResNet(backbone, 16)
        self.aspp = ASPP(self.backbone.channels[-1], 256, 512, (12, 24, 36), dropout=0.1)
        self.classifier = nn.Conv2d(512, NUM_CLASSES, 1)

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"seg2": self.classifier(self.aspp(self.backbone(images)[-1]))}


def synthetic_batch(size: int, batch: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """An image, a blocky label map, its CorrPM edge map and 16 joint heatmaps at 1/4."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, NUM_CLASSES, (batch, size // 32, size // 32)).repeat(32, 1).repeat(32, 2).astype(np.uint8)
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
        return float(loss)

    return step


def make_inference(model: nn.Module, batch: dict) -> Callable[[], None]:
    def run() -> None:
        model.eval()
        with torch.inference_mode():
            model(batch["image"])

    return run


def timed(fn: Callable) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def profile_components(model: CorrPM | Trunk, criterion: nn.Module, batch: dict, reps: int) -> dict[str, float]:
    """Median forward + backward seconds of each component, on the inputs it sees inside the model."""
    model.train()
    single_value_bn_in_eval(model)
    with torch.no_grad():
        x2, x3, x4, x5 = model.backbone(batch["image"])

    def leaf(*ts):
        return [t.detach().requires_grad_(True) for t in ts]

    def fb(fn: Callable[[], torch.Tensor | dict]) -> Callable[[], None]:
        def run():
            out = fn()
            if isinstance(out, dict):
                out = out["loss"]
            out.backward(torch.ones_like(out) if out.ndim else None)
        return run

    parts: dict[str, Callable[[], None]] = {"backbone": fb(lambda: model.backbone(batch["image"])[-1].sum()
                                                           + sum(f.sum() for f in model.backbone(batch["image"])[:-1]) * 0)}
    # one backbone pass that back-propagates into all four levels
    def backbone_fb():
        feats = model.backbone(batch["image"])
        sum(f.mean() for f in feats).backward()
    parts["backbone"] = backbone_fb
    if isinstance(model, Trunk):
        (a5,) = leaf(x5)
        parts["aspp"] = fb(lambda: model.aspp(a5))
        with torch.no_grad():
            head_in = model.aspp(x5)
        (h,) = leaf(head_in)
        parts["classifier"] = fb(lambda: model.classifier(h))
        (logits,) = leaf(model(batch["image"])["seg2"].detach())
        parts["loss"] = fb(lambda: criterion({"seg2": logits}, batch))
        return {k: _median_time(v, reps) for k, v in parts.items()}

    pe = model.parsing_encoder
    a2, a3, a4, a5 = leaf(x2, x3, x4, x5)
    parts["aspp"] = fb(lambda: pe.aspp(a5))
    with torch.no_grad():
        ctx = pe.aspp(x5)
        fp = pe(x2, x5)
        fb_ = model.edge_encoder((x2, x3, x4))
        fk = model.pose_encoder(x5, fp.shape[-2:])
        fh = model.fusion.hybrid(fp, [fb_, fk])
    (c_,) = leaf(ctx)
    from humanparse.models.blocks.fusion import concat_conv1x1

    parts["decoder (fp)"] = fb(lambda: pe.fuse_act(concat_conv1x1(pe.fuse.weight, None, [c_, a2], a2.shape[-2:], False)))
    parts["edge encoder + head"] = fb(lambda: model.edge_encoder.classifier(model.edge_encoder((a2, a3, a4))).sum()
                                      + 0 * model.edge_encoder((a2, a3, a4)).sum())
    def edge_fb():
        f = model.edge_encoder((a2, a3, a4))
        (f.sum() + model.edge_encoder.classifier(f).sum()).backward()
    parts["edge encoder + head"] = edge_fb
    def pose_fb():
        f = model.pose_encoder(a5, fp.shape[-2:])
        (f.sum() + model.pose_encoder.classifier(f).sum()).backward()
    parts["pose encoder + head"] = pose_fb
    p_, b_, k_ = leaf(fp, fb_, fk)
    parts["HNL: Wa (fh)"] = fb(lambda: model.fusion.hybrid(p_, [b_, k_]))
    (h_,) = leaf(fh)
    nl = model.fusion.non_local
    parts["HNL: non-local (θφg, attention, Wb)"] = fb(lambda: nl(p_, query=h_))
    with torch.no_grad():
        q, k, v = nl._qkv(fp, fh)
    q_, k_2, v_ = leaf(q, k, v)
    from humanparse.models.blocks.attention import dot_product_attention

    parts["  of which attention softmax(θᵀφ)g"] = fb(lambda: dot_product_attention(q_, k_2, v_, scale=1.0))
    with torch.no_grad():
        z = nl(fp, query=fh)
    (z_,) = leaf(z)
    parts["classifiers (seg1, seg2)"] = fb(lambda: model.classifier(z_).sum() + pe.classifier(p_).sum())
    with torch.no_grad():
        outs = model(batch["image"], all_heads=True)
    louts = {k: v.detach().requires_grad_(True) for k, v in outs.items()}
    parts["loss"] = fb(lambda: criterion(louts, batch))
    return {k: _median_time(v, reps) for k, v in parts.items()}


def _median_time(fn: Callable[[], None], reps: int) -> float:
    fn()  # warm-up
    return statistics.median(timed(fn) for _ in range(reps))


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", type=int, default=384)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--backbone", default="resnet101s")
    ap.add_argument("--profile", action="store_true", help="per-component forward+backward breakdown")
    ap.add_argument("--profile-reps", type=int, default=3)
    ap.add_argument("--json", default=None, help="write the results here")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    batch = synthetic_batch(args.size, args.batch)
    trunk = Trunk(args.backbone)
    corrpm = CorrPM(NUM_CLASSES, NUM_JOINTS, backbone=args.backbone)
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
    result = {
        "config": {**vars(args), "torch": torch.__version__, "machine": platform.processor() or platform.machine(),
                   "threads_used": torch.get_num_threads()},
        "params_m": {"trunk": count_parameters(trunk) / 1e6, "corrpm": count_parameters(corrpm) / 1e6},
        "median_s": med,
        "all_s": times,
        "ratio": {"train": med["corrpm/train"] / med["trunk/train"], "infer": med["corrpm/infer"] / med["trunk/infer"]},
    }
    print(f"input {args.size}x{args.size}, batch {args.batch}, {torch.get_num_threads()} threads, {args.reps} repetitions "
          f"(torch {torch.__version__})")
    print(f"parameters: trunk {result['params_m']['trunk']:.2f} M, CorrPM {result['params_m']['corrpm']:.2f} M")
    print(f"{'':14s}{'trunk':>10s}{'CorrPM':>10s}{'ratio':>8s}    (median s; all runs trunk | CorrPM)")
    for kind in ("train", "infer"):
        a, b = med[f"trunk/{kind}"], med[f"corrpm/{kind}"]
        spread = " ".join(f"{t:.2f}" for t in times[f"trunk/{kind}"]) + " | " + " ".join(f"{t:.2f}" for t in times[f"corrpm/{kind}"])
        label = "training step" if kind == "train" else "inference"
        print(f"{label:14s}{a:10.3f}{b:10.3f}{b / a:8.2f}    {spread}")
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
