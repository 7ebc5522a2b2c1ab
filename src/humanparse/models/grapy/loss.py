"""Grapy-ML training objective (He et al., AAAI 2020, Eq. 10): L = CE(y) + λ·CE(ŷ).

y is the raw DeepLab v3+ classifier (``raw``; the released code's ``x_aux``), ŷ the GPM's output (``seg``;
the code's "main"). Both are upsampled bilinearly (``align_corners=True``, released ``GrapyNet.forward``) to
the label size; 255 is ignored, mean over valid pixels, no class weights. The released scripts pass weight 1.0
to both terms (``--beta_aux 1.0 --beta_main 1.0``). With mutual learning every batch holds one dataset, so
the paper's L_ml = Σ_d (L_main^d + L_GPM^d) is realised one dataset per step.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def cross_entropy(
    logits: torch.Tensor, target: torch.Tensor, ignore_index: int = 255, align_corners: bool = True
) -> torch.Tensor:
    """Pixel-wise CE of stride-s logits against full-size labels; 0 (with a graph) when every pixel is ignored."""
    if tuple(logits.shape[-2:]) != tuple(target.shape[-2:]):
        logits = F.interpolate(logits, size=target.shape[-2:], mode="bilinear", align_corners=align_corners)
    ce = F.cross_entropy(logits.float(), target, ignore_index=ignore_index)
    return ce if torch.isfinite(ce) else logits.sum() * 0.0


class GrapyCriterion(nn.Module):
    """``criterion(outputs, batch) -> {"loss", "raw", "seg"}``: raw_weight·CE(raw) + gpm_weight·CE(seg).

    Args:
        gpm_weight: λ of paper Eq. 10 (1.0; Table 4 ablations vary it).
        raw_weight: weight of the raw DeepLab branch (1.0).
    A model without a GPM (the DeepLab v3+ stage) has no ``raw`` output: its ``seg`` gets weight 1.
    """

    def __init__(
        self,
        gpm_weight: float = 1.0,
        raw_weight: float = 1.0,
        ignore_index: int = 255,
        align_corners: bool = True,
    ):
        super().__init__()
        self.gpm_weight = float(gpm_weight)
        self.raw_weight = float(raw_weight)
        self.ignore_index = ignore_index
        self.align_corners = align_corners

    def data_requirements(self) -> dict:
        """Trains on image-level part-label maps (``batch['semantic']``)."""
        return {"semantic": True}

    def forward(self, outputs: dict[str, torch.Tensor], batch: dict) -> dict[str, torch.Tensor]:
        target = batch["semantic"]
        seg = cross_entropy(outputs["seg"], target, self.ignore_index, self.align_corners)
        if "raw" not in outputs:
            return {"loss": seg, "seg": seg.detach()}
        raw = cross_entropy(outputs["raw"], target, self.ignore_index, self.align_corners)
        return {
            "loss": self.raw_weight * raw + self.gpm_weight * seg,
            "raw": raw.detach(),
            "seg": seg.detach(),
        }
