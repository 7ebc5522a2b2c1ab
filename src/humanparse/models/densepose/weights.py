"""Initialisations of DensePose-RCNN: ImageNet trunk (Güler et al. CVPR 2018 §4: ImageNet-pretrained ResNet) or
COCO keypoints (Parsing R-CNN Table 9 "+COCO": torchvision ``keypointrcnn_resnet50_fpn`` trunk, FPN, RPN and box
head, and its pose head's 8 × conv3x3 512 into the DensePose head's 3×3 convs where the shapes match; the
keypoint branch of a multi-task net takes the pose head and predictor as they are)."""

from __future__ import annotations

import logging

import torch
from torch import nn

from humanparse.models.parsing_rcnn.weights import POSE_CONVS, _download, _trunk, load_matching
from humanparse.models.parsing_rcnn.weights import load_init as load_trunk_init
from humanparse.models.pretrained import PretrainedWeightsError, read_state_dict

log = logging.getLogger(__name__)

INITS = ("imagenet", "coco_keypoints")


def head_convs(head: nn.Module) -> list[nn.Conv2d]:
    """The 3×3 convs of a DensePose head in order (8-conv head, or Parsing R-CNN's before/after-GCE convs)."""
    if hasattr(head, "convs"):
        return list(head.convs())
    return [m for m in head.modules() if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3)]


def coco_keypoints_key_map(sd: dict[str, torch.Tensor], net: nn.Module) -> dict[str, torch.Tensor]:
    """``keypointrcnn_resnet50_fpn`` names → this net's: body unchanged; ``roi_heads.keypoint_head.{2k}`` →
    the DensePose head's k-th 3×3 conv (the last ones for a shorter head) and, with the keypoint branch,
    ``roi_heads.keypoint_{head,predictor}`` → ``roi_heads.branches.keypoints.{head,predictor}``."""
    names = {id(m): n for n, m in net.named_modules()}
    out = {k: v for k, v in sd.items() if not k.startswith("roi_heads.keypoint")}
    if "keypoints" in net.branches:
        for k, v in sd.items():
            for part in ("head", "predictor"):
                if k.startswith(f"roi_heads.keypoint_{part}."):
                    out[k.replace(f"roi_heads.keypoint_{part}.", f"roi_heads.branches.keypoints.{part}.")] = v
    convs = head_convs(net.branches["densepose"].head)
    first = max(0, POSE_CONVS - len(convs))
    for ci, conv in enumerate(convs):
        pk = ci if len(convs) >= POSE_CONVS else first + ci
        for p in ("weight", "bias"):
            src = f"roi_heads.keypoint_head.{2 * pk}.{p}"
            if src in sd and getattr(conv, p).shape == sd[src].shape:
                out[f"{names[id(conv)]}.{p}"] = sd[src]
    return out


def load_init(net: nn.Module, init: str, weights: str | None = None) -> int:
    """Load ``init`` into ``net`` from ``weights`` (a local file) or torchvision's hub (offline: an immediate
    clear error). Returns the number of tensors loaded."""
    if init not in INITS:
        raise ValueError(f"DensePose-RCNN init must be null or one of {INITS}, got {init!r}")
    if init == "imagenet":
        return load_trunk_init(net, "imagenet", weights)
    from torchvision.models.detection import KeypointRCNN_ResNet50_FPN_Weights

    if weights is None and _trunk(net) != (16, 64):
        raise PretrainedWeightsError(
            "init=coco_keypoints needs the ResNet-50-FPN trunk (torchvision's "
            "keypointrcnn_resnet50_fpn) or a weights file"
        )
    sd = (
        read_state_dict(weights)
        if weights
        else _download("DensePose-RCNN (COCO keypoints init)", KeypointRCNN_ResNet50_FPN_Weights.COCO_V1)
    )
    sd = coco_keypoints_key_map(sd, net)
    return load_matching(net, sd, weights or init, "DensePose-RCNN", init)
