"""Parsing R-CNN (Yang et al., "Parsing R-CNN for Instance-Level Human Analysis", CVPR 2019).

A person detector (:class:`~humanparse.models.rcnn.HumanRCNN`, torchvision R50-FPN) with a parsing branch:

* PSS (§3.1): parsing RoIs pooled from P2 only (``roi_levels="p2"``; ``"fpn_assign"`` = the baseline's
  scale-based level assignment over P2..P5);
* ERR (§3.2): 32×32 RoIAlign (``roi_size`` 14 / 32 / 64, Table 2);
* GCE (§3.3): ASPP (1×1 + 3×3 at rates 6/12/18 + image pooling) → 1×1 projection → embedded-Gaussian
  non-local block with a norm after its last conv (``gce`` none / aspp / nonlocal / aspp+nonlocal, Table 3);
* PBD (§3.4): 4 × conv3x3 512 after the GCE (``convs_before_gce`` / ``convs_after_gce``, Table 4);
* output: ConvTranspose2d(k4, s2) + ×2 bilinear, 32 → 64 → 128 (released ``outputs.py::Parsing_output``);
* training RoIs: the box sampler's positives re-matched to GT at IoU ≥ 0.5, at most N per image (paper
  "e.g. 32", released ``PRCNN.ROI_SIZE_PER_IMG 16``); targets: the matched person's part map cropped to
  the rounded box and resized with nearest sampling (released ``parsing_rcnn/loss.py``); per-pixel CE ×
  ``loss_weight`` (released ``PRCNN.LOSS_WEIGHT 2.0``);
* inference: softmax at 128×128 per detection (``parsing_probs``); pasting back is the postprocess's job
  (:mod:`humanparse.models.parsing_rcnn.postprocess`); optional multi-scale + flip TTA (Table 8 †).

Paper-vs-code choices (each a config option): GCE width 256 (paper) / 512 (code); non-local norm BN
(paper) / GroupNorm(32) (code); parsing RoIs per image 32 / 16; CE ignores label 255 (the code has no
ignore index).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.models.detection import _utils as det_utils
from torchvision.ops import MultiScaleRoIAlign, batched_nms

from humanparse.models.rcnn import HumanRCNN, RoIBranch, rematch, sample_at_most

log = logging.getLogger(__name__)

GCE_MODES = ("none", "aspp", "nonlocal", "aspp+nonlocal")
ROI_LEVELS = {"p2": ("0",), "fpn_assign": ("0", "1", "2", "3"), "p2-p5": ("0", "1", "2", "3")}


def _levels(levels) -> list[str]:
    if isinstance(levels, str):
        if levels not in ROI_LEVELS:
            raise ValueError(
                f"RoI levels must be one of {sorted(ROI_LEVELS)} or a list of FPN keys, got {levels!r}"
            )
        return list(ROI_LEVELS[levels])
    return [str(x) for x in levels]


def conv_relu(cin: int, cout: int, kernel: int = 3, dilation: int = 1) -> nn.Sequential:
    """Conv (bias, padding = dilation) + ReLU, kaiming-normal fan_out init (released ``make_conv``)."""
    conv = nn.Conv2d(cin, cout, kernel, padding=dilation * (kernel // 2), dilation=dilation)
    nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")
    nn.init.zeros_(conv.bias)
    return nn.Sequential(conv, nn.ReLU(inplace=True))


class NonLocal2d(nn.Module):
    """Embedded-Gaussian non-local block (Wang et al. CVPR 2018) as Parsing R-CNN §3.3 uses it:
    θ on x, φ and g on a 2×2 max-pooled x, A = softmax(θᵀφ / sqrt(d)), y = norm(W_out(A·g)), out = x + y.
    Convs init N(0, 0.01) (released ``models/ops/nonlocal2d.py``); ``norm``: ``bn`` (paper) | ``gn``
    (released, GroupNorm(32)) | ``none``."""

    def __init__(
        self, channels: int, inter_channels: int | None = None, norm: str = "bn", subsample: bool = True
    ):
        super().__init__()
        ci = inter_channels or channels
        self.theta = nn.Conv2d(channels, ci, 1)
        self.phi = nn.Conv2d(channels, ci, 1)
        self.g = nn.Conv2d(channels, ci, 1)
        self.out = nn.Conv2d(ci, channels, 1)
        for m in (self.theta, self.phi, self.g, self.out):
            nn.init.normal_(m.weight, std=0.01)
            nn.init.zeros_(m.bias)
        if norm == "bn":
            self.norm = nn.BatchNorm2d(channels)
        elif norm == "gn":
            self.norm = nn.GroupNorm(32, channels)
        elif norm == "none":
            self.norm = nn.Identity()
        else:
            raise ValueError(f"non-local norm must be bn | gn | none, got {norm!r}")
        self.pool = nn.MaxPool2d(2) if subsample else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        b, _, h, w = x.shape
        q = self.theta(x).flatten(2).transpose(1, 2)  # (B, HW, d)
        kv = self.pool(x)
        k = self.phi(kv).flatten(2).transpose(1, 2)
        v = self.g(kv).flatten(2).transpose(1, 2)
        # softmax(q kᵀ / sqrt(d)) v; the fused kernel never materialises the affinity on GPU
        y = F.scaled_dot_product_attention(q[:, None], k[:, None], v[:, None])[:, 0]
        y = y.transpose(1, 2).reshape(b, -1, h, w)
        return x + self.norm(self.out(y))


class GCE(nn.Module):
    """Geometric and Context Encoding (§3.3): ASPP (image pooling, 1×1, 3×3 at ``aspp_rates``; concat in
    the released order) → conv1x1 + ReLU to ``dim`` → non-local. ``mode``: ``aspp`` drops the non-local,
    ``nonlocal`` drops the ASPP (then a conv1x1 ``in_channels`` → ``dim`` projects; the paper does not say
    how, project choice)."""

    def __init__(
        self,
        in_channels: int,
        mode: str = "aspp+nonlocal",
        dim: int = 256,
        aspp_dim: int = 256,
        aspp_rates: Sequence[int] = (6, 12, 18),
        nl_norm: str = "bn",
    ):
        super().__init__()
        if mode not in GCE_MODES[1:]:
            raise ValueError(f"GCE mode must be one of {GCE_MODES[1:]}, got {mode!r}")
        self.use_aspp = "aspp" in mode
        if self.use_aspp:
            self.image_pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), conv_relu(in_channels, aspp_dim, 1))
            self.aspp = nn.ModuleList(
                [conv_relu(in_channels, aspp_dim, 1)]
                + [conv_relu(in_channels, aspp_dim, 3, r) for r in aspp_rates]
            )
            proj_in = (len(aspp_rates) + 2) * aspp_dim
        else:
            proj_in = in_channels
        self.project = conv_relu(proj_in, dim, 1)
        self.nonlocal_block = NonLocal2d(dim, dim, nl_norm) if "nonlocal" in mode else None
        self.out_channels = dim

    def forward(self, x: Tensor) -> Tensor:
        if self.use_aspp:
            pooled = self.image_pool(x).expand(
                -1, -1, x.shape[-2], x.shape[-1]
            )  # bilinear from 1×1 = broadcast
            x = torch.cat([pooled] + [branch(x) for branch in self.aspp], 1)
        x = self.project(x)
        return self.nonlocal_block(x) if self.nonlocal_block is not None else x


class ParsingHead(nn.Module):
    """Parsing head: ``convs_before_gce`` × conv3x3 ``conv_dim`` → GCE → ``convs_after_gce`` × conv3x3
    ``conv_dim`` (PBD, §3.4). ``gce="none"`` with 8 convs after is the Mask R-CNN-style "8conv" baseline."""

    def __init__(
        self,
        in_channels: int = 256,
        gce: str = "aspp+nonlocal",
        convs_before_gce: int = 0,
        convs_after_gce: int = 4,
        conv_dim: int = 512,
        gce_dim: int = 256,
        aspp_dim: int = 256,
        aspp_rates: Sequence[int] = (6, 12, 18),
        nl_norm: str = "bn",
    ):
        super().__init__()
        if gce not in GCE_MODES:
            raise ValueError(f"gce must be one of {GCE_MODES}, got {gce!r}")
        c = in_channels
        before = []
        for _ in range(convs_before_gce):
            before.append(conv_relu(c, conv_dim))
            c = conv_dim
        self.before = nn.Sequential(*before)
        self.gce = None if gce == "none" else GCE(c, gce, gce_dim, aspp_dim, aspp_rates, nl_norm)
        c = self.gce.out_channels if self.gce is not None else c
        after = []
        for _ in range(convs_after_gce):
            after.append(conv_relu(c, conv_dim))
            c = conv_dim
        self.after = nn.Sequential(*after)
        self.out_channels = c

    def forward(self, x: Tensor) -> Tensor:
        x = self.before(x)
        if self.gce is not None:
            x = self.gce(x)
        return self.after(x)

    def convs(self) -> list[nn.Conv2d]:
        """The 3×3 convs before and after the GCE, in order (COCO-keypoints init)."""
        return [m[0] for m in list(self.before) + list(self.after)]


class ParsingOutput(nn.Module):
    """ConvTranspose2d(k4, s2, p1) to C class logits, then bilinear up to ``output_size`` (released
    ``Parsing_output``: 32 → 64 → 128)."""

    def __init__(self, in_channels: int, num_classes: int, roi_size: int = 32, output_size: int = 128):
        super().__init__()
        if output_size % (2 * roi_size):
            raise ValueError(
                f"parsing output size {output_size} must be a multiple of 2 × RoI size {roi_size}"
            )
        self.deconv = nn.ConvTranspose2d(in_channels, num_classes, 4, stride=2, padding=1)
        nn.init.kaiming_normal_(self.deconv.weight, mode="fan_out", nonlinearity="relu")
        nn.init.zeros_(self.deconv.bias)
        self.up_scale = output_size // (2 * roi_size)

    def forward(self, x: Tensor) -> Tensor:
        x = self.deconv(x)
        if self.up_scale > 1:
            x = F.interpolate(x, scale_factor=self.up_scale, mode="bilinear", align_corners=False)
        return x


def parsing_targets(parts: Tensor, rois: Tensor, size: int) -> Tensor:
    """Training targets (released ``parsing_on_boxes``): round each RoI, crop the matched person's
    full-image part map ``parts[i]`` to ``[max(0, y0):y1, max(0, x0):x1]`` and resize it to size×size with
    nearest sampling (OpenCV INTER_NEAREST = source index floor(dst · in/out), which ``F.interpolate``'s
    ``nearest`` also uses). Label ids are never interpolated. ``parts``: (R, H, W), ``rois``: (R, 4)."""
    r, h, w = parts.shape
    if r == 0:
        return torch.zeros((0, size, size), dtype=torch.int64, device=parts.device)
    b = torch.round(rois).to(torch.int64)
    x0, y0 = b[:, 0].clamp(min=0, max=w - 1), b[:, 1].clamp(min=0, max=h - 1)
    x1, y1 = b[:, 2].clamp(max=w), b[:, 3].clamp(max=h)
    cw = (x1 - x0).clamp(min=1).to(torch.float32)  # an empty crop (never with IoU ≥ 0.5) reads one pixel
    ch = (y1 - y0).clamp(min=1).to(torch.float32)
    j = torch.arange(size, device=parts.device, dtype=torch.float32)
    xs = (x0[:, None] + torch.floor(j[None] * (cw[:, None] / size)).to(torch.int64)).clamp(0, w - 1)
    ys = (y0[:, None] + torch.floor(j[None] * (ch[:, None] / size)).to(torch.int64)).clamp(0, h - 1)
    idx = torch.arange(r, device=parts.device)[:, None, None]
    return parts[idx, ys[:, :, None], xs[:, None, :]].to(torch.int64)


class ParsingBranch(RoIBranch):
    """The parsing branch of Parsing R-CNN as a :class:`RoIBranch`: own pooler (PSS/ERR), head (GCE/PBD),
    output, RoI selection, targets and loss. Inference adds ``parsing_probs`` (N, C, S, S) softmax
    probabilities to each detection dict."""

    def __init__(
        self,
        num_classes: int,
        in_channels: int = 256,
        roi_levels: str | Sequence[str] = "p2",
        roi_size: int = 32,
        sampling_ratio: int = 2,
        output_size: int = 128,
        rois_per_image: int | None = 32,
        fg_iou_thresh: float = 0.5,
        loss_weight: float = 2.0,
        ignore_index: int | None = 255,
        gce: str = "aspp+nonlocal",
        convs_before_gce: int = 0,
        convs_after_gce: int = 4,
        conv_dim: int = 512,
        gce_dim: int = 256,
        aspp_dim: int = 256,
        aspp_rates: Sequence[int] = (6, 12, 18),
        nl_norm: str = "bn",
    ):
        super().__init__()
        self.num_classes = num_classes
        self.pooler = MultiScaleRoIAlign(_levels(roi_levels), roi_size, sampling_ratio)
        self.head = ParsingHead(
            in_channels,
            gce,
            convs_before_gce,
            convs_after_gce,
            conv_dim,
            gce_dim,
            aspp_dim,
            aspp_rates,
            nl_norm,
        )
        self.output = ParsingOutput(self.head.out_channels, num_classes, roi_size, output_size)
        self.output_size = output_size
        self.rois_per_image = rois_per_image
        self.matcher = det_utils.Matcher(fg_iou_thresh, fg_iou_thresh, allow_low_quality_matches=False)
        self.loss_weight = loss_weight
        self.ignore_index = -100 if ignore_index is None else int(ignore_index)

    def forward_rois(self, features, rois, image_shapes):
        return {"parsing_logits": self.output(self.head(self.pooler(features, rois, image_shapes)))}

    def select(self, proposals, matched_idxs, labels, targets):
        """Positives of the box sampler, re-matched to the GT at IoU ≥ ``fg_iou_thresh`` (no low-quality
        matches), a random subset of at most ``rois_per_image`` (released ``ParsingRCNNLossComputation``)."""
        rois, matched = [], []
        for p, lab, t in zip(proposals, labels, targets):
            pos = p[lab > 0]
            m = rematch(pos, t["boxes"], self.matcher)
            keep = torch.where(m >= 0)[0]
            keep = keep[sample_at_most(self.rois_per_image, len(keep), keep.device)]
            rois.append(pos[keep])
            matched.append(m[keep])
        return rois, matched

    def loss(self, features, rois, image_shapes, targets, matched):
        if sum(len(r) for r in rois) == 0:
            return self.zero_loss(features, image_shapes, ["loss_parsing"])
        for i, t in enumerate(targets):
            if len(rois[i]) and "parts" not in t:
                raise KeyError(
                    "Parsing R-CNN needs per-person part maps: targets['parts'] (N, H, W); "
                    "use data.collate=instance on a multi-person parsing dataset"
                )
        gt = torch.cat(
            [
                parsing_targets(t["parts"][m], r, self.output_size)
                for t, r, m in zip(targets, rois, matched)
                if len(r)
            ]
        )
        logits = self.forward_rois(features, rois, image_shapes)["parsing_logits"]
        if (gt[gt != self.ignore_index] >= self.num_classes).any():
            raise ValueError(
                f"part label {int(gt[gt != self.ignore_index].max())} ≥ num_classes {self.num_classes}"
            )
        loss = F.cross_entropy(logits, gt, ignore_index=self.ignore_index)
        if not torch.isfinite(loss):  # every target pixel ignored
            loss = logits.sum() * 0.0
        return {"loss_parsing": self.loss_weight * loss}

    def predict(self, features, detections, image_shapes):
        boxes = [d["boxes"] for d in detections]
        if sum(len(b) for b in boxes) == 0:
            for d in detections:
                ref = d["boxes"]
                d["parsing_probs"] = ref.new_zeros((0, self.num_classes, self.output_size, self.output_size))
            return
        probs = self.forward_rois(features, boxes, image_shapes)["parsing_logits"].softmax(1)
        for d, p in zip(detections, probs.split([len(b) for b in boxes])):
            d["parsing_probs"] = p


class ParsingRCNN(HumanRCNN):
    """Parsing R-CNN: :class:`HumanRCNN` with a :class:`ParsingBranch` named ``parsing`` (plus any
    ``extra_branches``, e.g. DensePose for Table 9), the paper's initialisations and its TTA.

    ``init``: ``null`` (random), ``imagenet`` (the ResNet trunk from torchvision's ImageNet weights) or
    ``coco_keypoints`` (torchvision ``keypointrcnn_resnet50_fpn`` COCO weights: trunk, FPN, RPN, box head
    and the pose head's 8 × conv512 into the parsing head's 3×3 convs where shapes match, Tables 5–7, 9);
    ``weights``: a local file for that init (else downloaded; offline this is an immediate error).
    The authors' checkpoints load through :mod:`humanparse.models.released` (format in
    :mod:`humanparse.models.parsing_rcnn.released`; build with ``stride_in_1x1=True, norm="affine"``).
    ``tta``: ``{scales: [...], flip: bool}``; evaluation then detects on every view (boxes mapped back,
    union, NMS) and averages the parsing probabilities of the final boxes over the views. Flipped views
    are returned separately (``parsing_probs_flipped``, flipped back spatially, channels not yet swapped):
    the L/R channel swap is the dataset's, applied by the postprocess.
    """

    def __init__(
        self,
        num_classes: int,
        parsing: Mapping | None = None,
        extra_branches: Mapping | None = None,
        init: str | None = None,
        weights: str | None = None,
        tta: Mapping | None = None,
        bias_lr_factor: float = 2.0,
        base_lr: float | None = None,
        **detector,
    ):
        parsing = dict(parsing or {})
        in_channels = detector.get("fpn_channels", 256)
        branches = {"parsing": ParsingBranch(num_classes, in_channels=in_channels, **parsing)}
        branches.update(dict(extra_branches or {}))
        if "box_roi_levels" in detector:
            detector["box_roi_levels"] = _levels(detector["box_roi_levels"])
        super().__init__(branches, **detector)
        self.num_classes = num_classes
        self.tta = dict(tta) if tta else None
        self.bias_lr_factor = bias_lr_factor
        self.base_lr = base_lr
        if init is not None:
            from humanparse.models.parsing_rcnn.weights import load_init

            load_init(self, init, weights)

    def data_requirements(self) -> dict:
        """What the data must give (checked by the data module before training): the part labels of
        every person, i.e. the image's part-label map split by person (not DensePose-COCO's points)."""
        return {"semantic": True, "collate": "instance"}

    def param_groups(self) -> list[dict]:
        """Weights at the base LR; biases at ``bias_lr_factor`` × LR (Detectron's BIAS_LR_FACTOR 2)."""
        w = [p for n, p in self.named_parameters() if p.requires_grad and not n.endswith(".bias")]
        b = [p for n, p in self.named_parameters() if p.requires_grad and n.endswith(".bias")]
        if self.base_lr is None or self.bias_lr_factor == 1.0:
            return [{"params": w + b}]
        return [{"params": w}, {"params": b, "lr": self.base_lr * self.bias_lr_factor}]

    def forward(self, images, targets: list[dict] | None = None):
        if (
            self.training
            or not self.tta
            or (list(self.tta.get("scales", [1.0])) == [1.0] and not self.tta.get("flip"))
        ):
            return super().forward(images, targets)
        return {"detections": self._forward_tta(images)}

    # ---------------------------------------------------------------------------------------------
    # test-time augmentation (Table 8 †: multi-scale + horizontal flip)

    def _views(self):
        for s in self.tta.get("scales", [1.0]):
            yield float(s), False
            if self.tta.get("flip"):
                yield float(s), True

    @staticmethod
    def _view_images(images, scale: float, flip: bool) -> list[Tensor]:
        out = []
        for im in images:
            h, w = im.shape[-2:]
            if scale != 1.0:
                im = F.interpolate(
                    im[None], size=(round(h * scale), round(w * scale)), mode="bilinear", align_corners=False
                )[0]
            out.append(im.flip(-1) if flip else im)
        return out

    @staticmethod
    def _to_view(boxes: Tensor, sx: float, sy: float, width: int, flip: bool) -> Tensor:
        b = boxes * boxes.new_tensor([sx, sy, sx, sy])
        if flip:
            b = torch.stack([width - b[:, 2], b[:, 1], width - b[:, 0], b[:, 3]], 1)
        return b

    @torch.no_grad()
    def _forward_tta(self, images) -> list[dict]:
        images = list(images)
        sizes = [tuple(im.shape[-2:]) for im in images]
        heads = self.roi_heads
        views, found = [], [[] for _ in images]
        for scale, flip in self._views():
            vimgs = self._view_images(images, scale, flip)
            image_list, feats = self.features(vimgs)
            proposals, _ = self.rpn(image_list, feats)
            dets, _ = heads._forward_box(feats, proposals, image_list.image_sizes)
            for i, d in enumerate(dets):
                (vh, vw), (h, w) = image_list.image_sizes[i], sizes[i]
                b = d["boxes"]
                if flip:
                    b = torch.stack([vw - b[:, 2], b[:, 1], vw - b[:, 0], b[:, 3]], 1)
                found[i].append(
                    (b * b.new_tensor([w / vw, h / vh, w / vw, h / vh]), d["scores"], d["labels"])
                )
            views.append((flip, image_list, feats))
        detections = []
        for parts in found:
            boxes, scores, labels = (torch.cat(x) for x in zip(*parts))
            keep = batched_nms(boxes, scores, labels, heads.nms_thresh)[: heads.detections_per_img]
            detections.append({"boxes": boxes[keep], "scores": scores[keep], "labels": labels[keep]})
        branch: ParsingBranch = self.branches["parsing"]
        acc = {False: None, True: None}
        count = {False: 0, True: 0}
        for flip, image_list, feats in views:
            rois = []
            for i, d in enumerate(detections):
                (vh, vw), (h, w) = image_list.image_sizes[i], sizes[i]
                rois.append(self._to_view(d["boxes"], vw / w, vh / h, vw, flip))
            if sum(len(r) for r in rois) == 0:
                continue
            p = branch.forward_rois(feats, rois, image_list.image_sizes)["parsing_logits"].softmax(1)
            if flip:
                p = p.flip(-1)
            acc[flip] = p if acc[flip] is None else acc[flip] + p
            count[flip] += 1
        counts = [len(d["boxes"]) for d in detections]
        s = branch.output_size
        for flip, key in ((False, "parsing_probs"), (True, "parsing_probs_flipped")):
            if count[flip] == 0:
                if flip:
                    continue
                total = images[0].new_zeros((sum(counts), self.num_classes, s, s))
            else:
                total = acc[flip] / count[flip]
            for d, p in zip(detections, total.split(counts)):
                d[key] = p
                d["parsing_views"] = torch.tensor([count[False], count[True]])
        # any other branch predicts on the base-scale features with the final boxes
        others = [b for n, b in self.branches.items() if n != "parsing"]
        if others:
            image_list, feats = self.features(images)
            for b in others:
                b.predict(feats, detections, image_list.image_sizes)
        return detections
