"""Human RoI heads: torchvision's ``RoIHeads`` with its ``forward`` split into the box branch
(``_forward_box``) and a loop over pluggable per-RoI branches, the layout of detectron2's ``StandardROIHeads``
(``_forward_box`` / ``_forward_mask`` / ``_forward_keypoint``). torchvision hard-codes its mask and keypoint
branches in ``RoIHeads.forward``; here they are branches like any other (:class:`MaskBranch`,
:class:`KeypointBranch`, for DensePose-RCNN's multi-task rows, Güler et al. CVPR 2018 Table 1).

A branch (:class:`RoIBranch`) owns its RoI pooler (feature levels and output size are branch config) and
implements

* ``forward_rois(features, rois, image_shapes) -> dict``: pooler + head + predictors on given boxes;
* ``select(proposals, matched_idxs, labels, targets) -> (rois, matched)``: its training RoIs per image
  (boxes in input pixels) and the matched GT index of each, by the branch's own rule (Parsing R-CNN:
  positives re-matched at IoU ≥ 0.5, at most N per image; DensePose: IoU > 0.7 with a GT with points);
  ``proposals`` are the box sampler's RoIs (GT boxes included), ``matched_idxs`` their clamped GT index
  and ``labels`` their sampled class (0 = background, -1 = ignored);
* ``loss(features, rois, image_shapes, targets, matched) -> dict`` of loss terms (``loss_<name>``); a
  batch without RoIs must still give finite zero terms connected to the branch's parameters
  (:meth:`RoIBranch.zero_loss`);
* ``predict(features, detections, image_shapes)``: adds its outputs to each per-image detection dict.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor, nn
from torchvision.models.detection import _utils as det_utils
from torchvision.models.detection.keypoint_rcnn import KeypointRCNNHeads, KeypointRCNNPredictor
from torchvision.models.detection.mask_rcnn import MaskRCNNHeads, MaskRCNNPredictor
from torchvision.models.detection.roi_heads import (
    RoIHeads,
    fastrcnn_loss,
    keypointrcnn_inference,
    keypointrcnn_loss,
    maskrcnn_inference,
    maskrcnn_loss,
)
from torchvision.ops import MultiScaleRoIAlign, box_iou

FPN_LEVELS = ("0", "1", "2", "3")


class RoIBranch(nn.Module):
    """Base class of a per-RoI branch (see the module docstring). Subclasses set ``self.pooler`` and
    implement ``forward_rois``, ``loss`` and ``predict``; ``select`` defaults to the box sampler's
    positives with their box-matching GT index (Mask R-CNN's rule)."""

    pooler: MultiScaleRoIAlign

    def forward_rois(
        self, features: dict[str, Tensor], rois: list[Tensor], image_shapes: list[tuple[int, int]]
    ) -> dict[str, Tensor]:
        raise NotImplementedError

    def select(
        self, proposals: list[Tensor], matched_idxs: list[Tensor], labels: list[Tensor], targets: list[dict]
    ) -> tuple[list[Tensor], list[Tensor]]:
        rois, matched = [], []
        for p, m, lab in zip(proposals, matched_idxs, labels):
            pos = torch.where(lab > 0)[0]
            rois.append(p[pos])
            matched.append(m[pos])
        return rois, matched

    def loss(
        self,
        features: dict[str, Tensor],
        rois: list[Tensor],
        image_shapes: list[tuple[int, int]],
        targets: list[dict],
        matched: list[Tensor],
    ) -> dict[str, Tensor]:
        raise NotImplementedError

    def predict(
        self, features: dict[str, Tensor], detections: list[dict], image_shapes: list[tuple[int, int]]
    ) -> None:
        raise NotImplementedError

    def zero_loss(
        self, features: dict[str, Tensor], image_shapes: list[tuple[int, int]], names: Sequence[str]
    ) -> dict[str, Tensor]:
        """Zero loss terms for a batch without any RoI of this branch: the head runs on one dummy box
        (the first image's frame) so every parameter gets a (zero) gradient, which distributed training
        needs (the released Parsing R-CNN code does the same with its first proposal)."""
        h, w = image_shapes[0]
        ref = next(iter(features.values()))
        box = torch.tensor([[0.0, 0.0, float(w), float(h)]], device=ref.device, dtype=ref.dtype)
        rois = [box] + [box[:0]] * (len(image_shapes) - 1)
        out = self.forward_rois(features, rois, image_shapes)
        zero = sum(v.sum() for v in out.values() if torch.is_tensor(v) and v.is_floating_point()) * 0.0
        return {n: zero for n in names}


def sample_at_most(
    n: int | None, count: int, device: torch.device, generator: torch.Generator | None = None
) -> Tensor:
    """Indices of a uniformly random subset of at most ``n`` of ``count`` items (all of them, in order,
    when ``n`` is None or ``count <= n``)."""
    if n is None or count <= n:
        return torch.arange(count, device=device)
    return torch.randperm(count, generator=generator, device="cpu")[:n].to(device)


def rematch(rois: Tensor, gt_boxes: Tensor, matcher: det_utils.Matcher) -> Tensor:
    """GT index of each RoI by ``matcher`` on the RoI/GT IoU (negative: unmatched)."""
    if gt_boxes.numel() == 0:
        return torch.full((rois.shape[0],), -1, dtype=torch.int64, device=rois.device)
    if rois.shape[0] == 0:
        return torch.zeros(0, dtype=torch.int64, device=rois.device)
    return matcher(box_iou(gt_boxes, rois))


class HumanRoIHeads(RoIHeads):
    """``RoIHeads`` = box branch + ``branches`` (an ``nn.ModuleDict`` of :class:`RoIBranch`), run in order.

    Training returns ``([], losses)`` with the box terms and every branch's terms; evaluation returns
    (per-image detection dicts with each branch's outputs added, ``{}``).
    """

    def __init__(
        self,
        box_roi_pool,
        box_head,
        box_predictor,
        fg_iou_thresh,
        bg_iou_thresh,
        batch_size_per_image,
        positive_fraction,
        bbox_reg_weights,
        score_thresh,
        nms_thresh,
        detections_per_img,
        branches: Mapping[str, RoIBranch] | None = None,
    ):
        super().__init__(
            box_roi_pool,
            box_head,
            box_predictor,
            fg_iou_thresh,
            bg_iou_thresh,
            batch_size_per_image,
            positive_fraction,
            bbox_reg_weights,
            score_thresh,
            nms_thresh,
            detections_per_img,
        )
        self.branches = nn.ModuleDict(dict(branches or {}))
        for name, b in self.branches.items():
            if not isinstance(b, RoIBranch):
                raise TypeError(f"branch {name!r} is a {type(b).__name__}, not a RoIBranch")

    def _forward_box(self, features, proposals, image_shapes, labels=None, regression_targets=None):
        x = self.box_head(self.box_roi_pool(features, proposals, image_shapes))
        class_logits, box_regression = self.box_predictor(x)
        if self.training:
            loss_cls, loss_reg = fastrcnn_loss(class_logits, box_regression, labels, regression_targets)
            return [], {"loss_classifier": loss_cls, "loss_box_reg": loss_reg}
        boxes, scores, labs = self.postprocess_detections(
            class_logits, box_regression, proposals, image_shapes
        )
        return [{"boxes": b, "labels": lab, "scores": s} for b, s, lab in zip(boxes, scores, labs)], {}

    def forward(self, features, proposals, image_shapes, targets=None):
        matched_idxs = labels = regression_targets = None
        if self.training:
            if targets is None:
                raise ValueError("HumanRoIHeads: training needs targets")
            proposals, matched_idxs, labels, regression_targets = self.select_training_samples(
                proposals, targets
            )
        detections, losses = self._forward_box(features, proposals, image_shapes, labels, regression_targets)
        for branch in self.branches.values():
            if self.training:
                rois, matched = branch.select(proposals, matched_idxs, labels, targets)
                losses.update(branch.loss(features, rois, image_shapes, targets, matched))
            else:
                branch.predict(features, detections, image_shapes)
        return detections, losses


class MaskBranch(RoIBranch):
    """Mask R-CNN's mask branch as a branch (torchvision ``MaskRCNNHeads`` 4 × conv 256 on 14×14 RoIs,
    deconv to 28×28, per-class sigmoid); targets ``masks`` (N, H, W). Adds ``masks`` (N, 1, 28, 28)
    probabilities to each detection dict."""

    def __init__(
        self,
        in_channels: int = 256,
        num_classes: int = 2,
        layers: Sequence[int] = (256, 256, 256, 256),
        roi_levels: Sequence[str] = FPN_LEVELS,
        roi_size: int = 14,
        sampling_ratio: int = 2,
        loss_weight: float = 1.0,
    ):
        super().__init__()
        self.pooler = MultiScaleRoIAlign(list(roi_levels), roi_size, sampling_ratio)
        self.head = MaskRCNNHeads(in_channels, tuple(layers), 1)
        self.predictor = MaskRCNNPredictor(layers[-1], layers[-1], num_classes)
        self.loss_weight = loss_weight

    def forward_rois(self, features, rois, image_shapes):
        return {"mask_logits": self.predictor(self.head(self.pooler(features, rois, image_shapes)))}

    def loss(self, features, rois, image_shapes, targets, matched):
        if sum(len(r) for r in rois) == 0:
            return self.zero_loss(features, image_shapes, ["loss_mask"])
        logits = self.forward_rois(features, rois, image_shapes)["mask_logits"]
        gt_masks = [t["masks"] for t in targets]
        gt_labels = [t["labels"] for t in targets]
        return {"loss_mask": self.loss_weight * maskrcnn_loss(logits, rois, gt_masks, gt_labels, matched)}

    def predict(self, features, detections, image_shapes):
        boxes = [d["boxes"] for d in detections]
        logits = self.forward_rois(features, boxes, image_shapes)["mask_logits"]
        for d, p in zip(detections, maskrcnn_inference(logits, [d["labels"] for d in detections])):
            d["masks"] = p


class KeypointBranch(RoIBranch):
    """Mask R-CNN's keypoint branch as a branch (torchvision ``KeypointRCNNHeads`` 8 × conv 512 on 14×14
    RoIs, deconv + ×2 bilinear to 56×56 heatmaps); targets ``keypoints`` (N, K, 3). Adds ``keypoints``
    (N, K, 3) and ``keypoints_scores`` (N, K)."""

    def __init__(
        self,
        in_channels: int = 256,
        num_keypoints: int = 17,
        layers: Sequence[int] = (512,) * 8,
        roi_levels: Sequence[str] = FPN_LEVELS,
        roi_size: int = 14,
        sampling_ratio: int = 2,
        loss_weight: float = 1.0,
    ):
        super().__init__()
        self.pooler = MultiScaleRoIAlign(list(roi_levels), roi_size, sampling_ratio)
        self.head = KeypointRCNNHeads(in_channels, list(layers))
        self.predictor = KeypointRCNNPredictor(layers[-1], num_keypoints)
        self.loss_weight = loss_weight

    def forward_rois(self, features, rois, image_shapes):
        return {"keypoint_logits": self.predictor(self.head(self.pooler(features, rois, image_shapes)))}

    def loss(self, features, rois, image_shapes, targets, matched):
        if sum(len(r) for r in rois) == 0:
            return self.zero_loss(features, image_shapes, ["loss_keypoint"])
        logits = self.forward_rois(features, rois, image_shapes)["keypoint_logits"]
        gt = [t["keypoints"] for t in targets]
        return {"loss_keypoint": self.loss_weight * keypointrcnn_loss(logits, rois, gt, matched)}

    def predict(self, features, detections, image_shapes):
        boxes = [d["boxes"] for d in detections]
        logits = self.forward_rois(features, boxes, image_shapes)["keypoint_logits"]
        kps, scores = keypointrcnn_inference(logits, boxes)
        for d, k, s in zip(detections, kps, scores):
            d["keypoints"], d["keypoints_scores"] = k, s
