"""Loss modules: ``criterion(outputs, batch) -> {'loss': total, '<term>': value, ...}``.

Each paper's criterion lives in its model package (``humanparse.models.<paper>``); the plain
segmentation loss is shared here.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from humanparse.data.meta import IGNORE_INDEX
from humanparse.tasks.postprocess import upsample_to


class SegmentationCrossEntropy(nn.Module):
    """Pixel-wise CE on ``outputs[output]`` against ``batch['semantic']`` (255 ignored).

    Logits are upsampled bilinearly to the label size first (``align_corners`` as the paper's code).
    """

    def __init__(
        self,
        output: str = "seg",
        weight: float = 1.0,
        ignore_index: int = IGNORE_INDEX,
        align_corners: bool = False,
        name: str = "seg",
    ):
        super().__init__()
        self.output = output
        self.weight = weight
        self.ignore_index = ignore_index
        self.align_corners = align_corners
        self.name = name

    def data_requirements(self) -> dict:
        """Trains on image-level part-label maps (``batch['semantic']``)."""
        return {"semantic": True}

    def forward(self, outputs: dict[str, torch.Tensor], batch: dict) -> dict[str, torch.Tensor]:
        target = batch["semantic"]
        logits = upsample_to(outputs[self.output], tuple(target.shape[-2:]), self.align_corners)
        ce = F.cross_entropy(logits.float(), target, ignore_index=self.ignore_index)
        if not torch.isfinite(ce):  # every pixel ignored: contribute nothing instead of NaN
            ce = logits.sum() * 0.0
        return {"loss": self.weight * ce, self.name: ce.detach()}


_MOVED = {"ClassBalancedEdgeLoss", "HeatmapMSE", "CorrPMCriterion"}


def __getattr__(name: str):
    """Checkpoints written before CorrPM's loss moved into its package name it here."""
    if name in _MOVED:
        from humanparse.models.corrpm import loss

        return getattr(loss, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
