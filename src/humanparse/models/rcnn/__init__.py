"""The human R-CNN family: one torchvision detector with pluggable RoI branches (Parsing R-CNN,
DensePose-RCNN and their combination are configurations of :class:`HumanRCNN`)."""

from humanparse.models.rcnn.detector import BatchOnlyTransform, HumanRCNN, resnet_fpn
from humanparse.models.rcnn.roi_heads import (
    HumanRoIHeads,
    KeypointBranch,
    MaskBranch,
    RoIBranch,
    rematch,
    sample_at_most,
)

__all__ = [
    "BatchOnlyTransform",
    "HumanRCNN",
    "HumanRoIHeads",
    "KeypointBranch",
    "MaskBranch",
    "RoIBranch",
    "rematch",
    "resnet_fpn",
    "sample_at_most",
]
