"""DensePose-RCNN (Güler et al., CVPR 2018) on the human RoI-head family."""

from __future__ import annotations

from humanparse.models.densepose.densepose_rcnn import (
    PRESETS,
    DensePoseBranch,
    DensePoseDecoder,
    DensePoseHead,
    DensePosePredictor,
    DensePoseRCNN,
    DensePoseTargets,
    densepose_iuv,
    densepose_losses,
    pack_targets,
)

__all__ = [
    "PRESETS",
    "DensePoseBranch",
    "DensePoseDecoder",
    "DensePoseHead",
    "DensePosePredictor",
    "DensePoseRCNN",
    "DensePoseTargets",
    "densepose_iuv",
    "densepose_losses",
    "pack_targets",
]
