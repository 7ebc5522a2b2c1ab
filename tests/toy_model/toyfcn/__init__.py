"""A toy model added the way docs/adding_a_model.md describes: this one folder (network, loss,
postprocess) plus ``conf/model/toyfcn.yaml`` in a user config folder; nothing in humanparse is edited."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from humanparse.tasks.postprocess import DenseSemantic


class ToyFCN(nn.Module):
    """Two 3x3 convolutions at stride 2 and a classifier: logits at 1/2 resolution under ``seg``."""

    def __init__(self, num_classes: int, width: int = 8):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(3, width, 3, stride=2, padding=1),
            nn.BatchNorm2d(width),
            nn.ReLU(),
            nn.Conv2d(width, width, 3, padding=1),
            nn.BatchNorm2d(width),
            nn.ReLU(),
        )
        self.classifier = nn.Conv2d(width, num_classes, 1)

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"seg": self.classifier(self.body(images))}


class ToyLoss(nn.Module):
    """Pixel-wise cross-entropy at the label size; also declares that it trains on part-label maps."""

    def data_requirements(self) -> dict:
        return {"semantic": True}

    def forward(self, outputs: dict, batch: dict) -> dict:
        target = batch["semantic"]
        logits = F.interpolate(outputs["seg"], size=target.shape[-2:], mode="bilinear", align_corners=False)
        ce = F.cross_entropy(logits, target, ignore_index=255)
        return {"loss": ce, "ce": ce.detach()}


class ToyPostprocess(DenseSemantic):
    """The dense semantic postprocess on ``seg``, plus the whole image as one "person" instance, so the
    instance evaluators of multi-person datasets run on it too."""

    produces = DenseSemantic.produces

    def __call__(self, outputs, batch, ctx):
        preds = super().__call__(outputs, batch, ctx)
        for p in preds:
            sem = p["semantic"]
            h, w = sem.shape
            p["instances"] = [
                {
                    "parts": sem,
                    "mask": sem > 0,
                    "score": 1.0,
                    "box": [0.0, 0.0, float(w), float(h)],
                    "label": 1,
                }
            ]
        return preds
