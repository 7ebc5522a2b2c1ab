"""PGN training-step time against its own ResNet-101 trunk, measured side by side in one run.

    PYTHONPATH=src python scripts/benchmark_pgn.py [--size 512] [--batch 1] [--threads 2] [--reps 5] [--device cpu]

* **trunk**: the PGN trunk (torchvision ResNet-101, layer3/4 dilated, output stride 8, BN statistics frozen)
  with a 1×1 classifier on layer4 and cross-entropy on the logits at stride 8 — the plain FCN PGN builds on;
* **PGN**: the full network at C = 20 (3×3 classifiers and TF-SAME pyramid windows, the released layers) and its
  loss (:class:`humanparse.models.pgn.loss.PGNLoss`: 50 × parsing + 0.005 × five edge losses).

A training step is forward + loss + backward + SGD step (momentum 0.9). The two models alternate within every
repetition so that load on a shared machine hits both alike; medians, minima and their ratio are printed.
Random weights, random images and labels (no download); the edge targets are the Sobel edges of a random
person-id map.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F
from torch import nn

from humanparse.models.pgn import PGN
from humanparse.models.pgn.loss import PGNLoss


class Trunk(nn.Module):
    def __init__(self, net: PGN, num_classes: int = 20):
        super().__init__()
        self.trunk = net.trunk
        self.classifier = nn.Conv2d(net.trunk.channels[-1], num_classes, 1)

    def forward(self, x):
        return {"seg": self.classifier(self.trunk(x)[-1])}


def trunk_loss(out, batch):
    lab = F.interpolate(batch["semantic"][:, None].float(), size=out["seg"].shape[-2:], mode="nearest")[
        :, 0
    ].long()
    return F.cross_entropy(out["seg"], lab, ignore_index=255)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    dev = torch.device(args.device)
    torch.manual_seed(0)
    pgn = PGN(20, classifier_kernel=3, ppm_mode="windows").to(dev).train()
    trunk = Trunk(PGN(20, classifier_kernel=3, ppm_mode="windows")).to(dev).train()
    crit = PGNLoss(20)
    s = args.size
    images = torch.randn(args.batch, 3, s, s, device=dev)
    labels = torch.randint(0, 20, (args.batch, s, s), device=dev)
    persons = torch.zeros(args.batch, s, s, dtype=torch.long, device=dev)
    persons[:, s // 8 : -s // 8, s // 8 : s // 2] = 1
    persons[:, s // 8 : -s // 8, s // 2 : -s // 8] = 2
    p = persons.float()[:, None]
    kx = torch.tensor([[1.0, 0, -1], [2, 0, -2], [1, 0, -1]], device=dev)[None, None]
    gx = F.conv2d(F.pad(p, (1, 1, 1, 1), mode="replicate"), kx)
    gy = F.conv2d(F.pad(p, (1, 1, 1, 1), mode="replicate"), kx.transpose(-1, -2))
    batch = {"semantic": labels, "instance_edge": ((gx != 0) | (gy != 0))[:, 0].long()}
    runs = {"trunk": (trunk, lambda o: trunk_loss(o, batch)), "pgn": (pgn, lambda o: crit(o, batch)["loss"])}
    opts = {k: torch.optim.SGD(m.parameters(), lr=1e-5, momentum=0.9) for k, (m, _) in runs.items()}

    def step(name: str) -> float:
        model, loss_fn = runs[name]
        if dev.type == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        loss = loss_fn(model(images))
        opts[name].zero_grad(set_to_none=True)
        loss.backward()
        opts[name].step()
        if dev.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - t

    for name in runs:  # warm-up
        step(name)
    times = {k: [] for k in runs}
    for _ in range(args.reps):
        for name in runs:
            times[name].append(step(name))
    med = {k: statistics.median(v) for k, v in times.items()}
    low = {k: min(v) for k, v in times.items()}
    print(
        f"device {dev}, {args.threads} threads, batch {args.batch}, {s}x{s}, {args.reps} steps after 1 warm-up"
    )
    for k in runs:
        n = sum(p.numel() for p in runs[k][0].parameters())
        print(f"  {k:6s} {n / 1e6:7.2f} M params  train step median {med[k]:.3f} s  (min {low[k]:.3f} s)")
    print(f"  PGN / trunk: median {med['pgn'] / med['trunk']:.2f}x, min {low['pgn'] / low['trunk']:.2f}x")


if __name__ == "__main__":
    main()
