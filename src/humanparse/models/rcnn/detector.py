"""The human R-CNN detector: torchvision's ``GeneralizedRCNN`` (ResNet-FPN, RPN, box head) whose RoI heads
carry pluggable per-RoI branches (Parsing R-CNN, Yang et al. CVPR 2019 §3; DensePose-RCNN, Güler et al.
CVPR 2018 §3.2). One module, three configurations: ``branches={"parsing": ...}`` is Parsing R-CNN,
``{"densepose": ...}`` DensePose-RCNN, both together Parsing R-CNN Table 9.

Interface
---------
``HumanRCNN(branches, backbone=..., ...)``; ``net(images, targets=None)``:

* ``images``: a (B, 3, H, W) tensor (or a list of (3, H, W) tensors) already resized, flipped and
  normalised by the data pipeline. The internal :class:`BatchOnlyTransform` only pads them to a multiple
  of 32 and records their sizes: it never resizes or normalises again, and boxes stay in input pixels.
* training: ``targets`` = one torchvision-style dict per image (``boxes`` continuous xyxy float,
  ``labels`` int64 (1 = person), plus whatever the branches read: ``parts``, ``masks``, ``keypoints``,
  DensePose points ...). Returns the dict of every loss term: ``loss_objectness``, ``loss_rpn_box_reg``,
  ``loss_classifier``, ``loss_box_reg`` and each branch's terms (e.g. ``loss_parsing``).
* evaluation: returns ``{"detections": [per-image dict]}``; each dict has ``boxes`` (input pixels),
  ``scores``, ``labels`` and the entries each branch's ``predict`` adds (e.g. ``parsing_probs``).

Branches implement :class:`humanparse.models.rcnn.roi_heads.RoIBranch` (``select`` / ``loss`` /
``predict``, their own RoI pooler); see that module.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import nn
from torchvision.models import resnet
from torchvision.models.detection.backbone_utils import BackboneWithFPN
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
from torchvision.models.detection.generalized_rcnn import GeneralizedRCNN
from torchvision.models.detection.image_list import ImageList
from torchvision.models.detection.rpn import AnchorGenerator, RegionProposalNetwork, RPNHead
from torchvision.models.detection.transform import GeneralizedRCNNTransform
from torchvision.ops import FrozenBatchNorm2d, MultiScaleRoIAlign
from torchvision.ops.feature_pyramid_network import LastLevelMaxPool

from humanparse.models.rcnn.roi_heads import HumanRoIHeads, RoIBranch

FPN_LEVELS = ("0", "1", "2", "3")  # P2..P5 in torchvision's FPN ('pool' = P6, RPN only)


class BatchOnlyTransform(GeneralizedRCNNTransform):
    """``GeneralizedRCNNTransform`` that only batches: zero-pads the images to a multiple of
    ``size_divisible`` and records their sizes. No resize, no normalisation (the data pipeline did both),
    and ``postprocess`` leaves detections in input pixels (the task's postprocess maps them back)."""

    def __init__(self, size_divisible: int = 32):
        super().__init__(
            min_size=1,
            max_size=1,
            image_mean=[0.0, 0.0, 0.0],
            image_std=[1.0, 1.0, 1.0],
            size_divisible=size_divisible,
        )

    def forward(self, images, targets=None):
        images = list(images)
        sizes = [(int(im.shape[-2]), int(im.shape[-1])) for im in images]
        return ImageList(self.batch_images(images, self.size_divisible), sizes), targets

    def postprocess(self, result, image_shapes, original_image_sizes):
        return result


class FrozenAffine(nn.Module):
    """y = x · weight + bias per channel, both frozen buffers: the BatchNorm of Detectron-style released
    checkpoints after their statistics were merged into the affine terms (Detectron's AffineChannel).
    Written here because torchvision's FrozenBatchNorm2d also carries running statistics that such files
    do not have."""

    def __init__(self, num_features: int):
        super().__init__()
        self.register_buffer("weight", torch.ones(num_features))
        self.register_buffer("bias", torch.zeros(num_features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.weight.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1)


def _norm_layer(norm: str):
    if norm == "frozen_bn":
        return FrozenBatchNorm2d
    if norm == "affine":
        return FrozenAffine
    if norm == "bn":
        return nn.BatchNorm2d
    if norm == "gn":
        return lambda c: nn.GroupNorm(32 if c % 32 == 0 else 8, c)
    raise ValueError(f"backbone norm must be frozen_bn | affine | bn | gn, got {norm!r}")


def resnet_fpn(
    name: str = "resnet50",
    trainable_layers: int = 3,
    norm: str = "frozen_bn",
    fpn_channels: int = 256,
    returned_layers: Sequence[int] = (1, 2, 3, 4),
    resnet_kwargs: Mapping | None = None,
    stride_in_1x1: bool = False,
) -> BackboneWithFPN:
    """torchvision ResNet(-Xt) + FPN (P2..P5 and P6 by max-pool, ``fpn_channels`` wide), as
    ``resnet_fpn_backbone`` builds it, with the FPN width and the norm exposed; ``resnet_kwargs`` go to the
    torchvision builder, or with ``layers`` (and ``block``: basic | bottleneck) build a custom-depth ResNet.
    ``stride_in_1x1``: the Caffe/Detectron trunk (MSRA ResNet v1, the released Parsing R-CNN and Detectron
    weights): each stage's stride sits in the first block's 1×1 conv instead of its 3×3 (torchvision v1.5).
    Stages outside the last ``trainable_layers`` are frozen (Detectron's FREEZE_AT)."""
    if not 0 <= trainable_layers <= 5:
        raise ValueError(f"trainable_layers must be in [0, 5], got {trainable_layers}")
    kw = dict(resnet_kwargs or {})
    if "layers" in kw:  # a custom depth (tiny test networks): ResNet(block, layers, ...)
        blocks = {"basic": resnet.BasicBlock, "bottleneck": resnet.Bottleneck}
        body = resnet.ResNet(
            blocks[kw.pop("block", "bottleneck")], list(kw.pop("layers")), norm_layer=_norm_layer(norm), **kw
        )
    else:
        body = resnet.__dict__[name](weights=None, norm_layer=_norm_layer(norm), **kw)
    if stride_in_1x1:
        for stage in (body.layer2, body.layer3, body.layer4):
            first = stage[0]
            if not isinstance(first, resnet.Bottleneck):
                raise ValueError("stride_in_1x1 applies to bottleneck ResNets only")
            first.conv1.stride, first.conv2.stride = first.conv2.stride, (1, 1)
    train = ["layer4", "layer3", "layer2", "layer1", "conv1"][:trainable_layers]
    if trainable_layers == 5:
        train.append("bn1")
    for pname, p in body.named_parameters():
        if not any(pname.startswith(layer) for layer in train):
            p.requires_grad_(False)
    stage2 = body.inplanes // 8
    return_layers = {f"layer{k}": str(v) for v, k in enumerate(returned_layers)}
    in_channels = [stage2 * 2 ** (k - 1) for k in returned_layers]
    return BackboneWithFPN(body, return_layers, in_channels, fpn_channels, extra_blocks=LastLevelMaxPool())


class HumanRCNN(GeneralizedRCNN):
    """Person detector with pluggable RoI branches (see the module docstring for the interface).

    Defaults are torchvision's Faster R-CNN R50-FPN ones, which equal the Parsing R-CNN / Detectron
    settings: RPN pre-NMS 2000/1000, post-NMS 2000/1000, NMS 0.7, 256 anchors per image; 512 box RoIs
    per image with 25 % positives at IoU 0.5, GT boxes added to the proposals; 7×7 RoIAlign (sampling 2)
    over P2..P5, 2-FC head of 1024, 2 classes; test score 0.05, NMS 0.5, 100 detections.
    """

    def __init__(
        self,
        branches: Mapping[str, RoIBranch] | None = None,
        backbone: str = "resnet50",
        trainable_layers: int = 3,
        norm: str = "frozen_bn",
        fpn_channels: int = 256,
        resnet_kwargs: Mapping | None = None,
        stride_in_1x1: bool = False,
        num_classes: int = 2,
        # RPN
        anchor_sizes: Sequence[int] = (32, 64, 128, 256, 512),
        aspect_ratios: Sequence[float] = (0.5, 1.0, 2.0),
        rpn_pre_nms_top_n_train: int = 2000,
        rpn_pre_nms_top_n_test: int = 1000,
        rpn_post_nms_top_n_train: int = 2000,
        rpn_post_nms_top_n_test: int = 1000,
        rpn_nms_thresh: float = 0.7,
        rpn_fg_iou_thresh: float = 0.7,
        rpn_bg_iou_thresh: float = 0.3,
        rpn_batch_size_per_image: int = 256,
        rpn_positive_fraction: float = 0.5,
        # box branch
        box_roi_levels: Sequence[str] = FPN_LEVELS,
        box_roi_size: int = 7,
        box_sampling_ratio: int = 2,
        representation_size: int = 1024,
        box_fg_iou_thresh: float = 0.5,
        box_bg_iou_thresh: float = 0.5,
        box_batch_size_per_image: int = 512,
        box_positive_fraction: float = 0.25,
        bbox_reg_weights: Sequence[float] | None = None,
        box_score_thresh: float = 0.05,
        box_nms_thresh: float = 0.5,
        box_detections_per_img: int = 100,
        size_divisible: int = 32,
    ):
        body = resnet_fpn(
            backbone,
            trainable_layers,
            norm,
            fpn_channels,
            resnet_kwargs=resnet_kwargs,
            stride_in_1x1=stride_in_1x1,
        )
        anchors = AnchorGenerator(
            tuple((s,) for s in anchor_sizes), (tuple(aspect_ratios),) * len(anchor_sizes)
        )
        rpn = RegionProposalNetwork(
            anchors,
            RPNHead(fpn_channels, anchors.num_anchors_per_location()[0]),
            rpn_fg_iou_thresh,
            rpn_bg_iou_thresh,
            rpn_batch_size_per_image,
            rpn_positive_fraction,
            dict(training=rpn_pre_nms_top_n_train, testing=rpn_pre_nms_top_n_test),
            dict(training=rpn_post_nms_top_n_train, testing=rpn_post_nms_top_n_test),
            rpn_nms_thresh,
        )
        box_pool = MultiScaleRoIAlign(list(box_roi_levels), box_roi_size, box_sampling_ratio)
        roi_heads = HumanRoIHeads(
            box_pool,
            TwoMLPHead(fpn_channels * box_roi_size**2, representation_size),
            FastRCNNPredictor(representation_size, num_classes),
            box_fg_iou_thresh,
            box_bg_iou_thresh,
            box_batch_size_per_image,
            box_positive_fraction,
            tuple(bbox_reg_weights) if bbox_reg_weights is not None else None,
            box_score_thresh,
            box_nms_thresh,
            box_detections_per_img,
            branches=branches,
        )
        super().__init__(body, rpn, roi_heads, BatchOnlyTransform(size_divisible))

    @property
    def branches(self) -> nn.ModuleDict:
        return self.roi_heads.branches

    def features(self, images) -> tuple[ImageList, dict[str, torch.Tensor]]:
        """Batched images and the FPN features (P2..P6), for callers that run branches themselves (TTA)."""
        image_list, _ = self.transform(images)
        return image_list, self.backbone(image_list.tensors)

    def forward(self, images, targets: list[dict] | None = None):
        if self.training and targets is None:
            raise ValueError("HumanRCNN: training needs targets (one dict per image with boxes and labels)")
        image_list, _ = self.transform(images)
        if targets is not None:
            for i, t in enumerate(targets):
                b = t["boxes"]
                if b.ndim != 2 or b.shape[-1] != 4 or bool((b[:, 2:] <= b[:, :2]).any()):
                    raise ValueError(
                        f"HumanRCNN: image {i} has a degenerate or malformed target box {b.tolist()}"
                    )
        feats = self.backbone(image_list.tensors)
        proposals, rpn_losses = self.rpn(image_list, feats, targets if self.training else None)
        detections, head_losses = self.roi_heads(
            feats, proposals, image_list.image_sizes, targets if self.training else None
        )
        if self.training:
            return {**rpn_losses, **head_losses}
        return {"detections": detections}
