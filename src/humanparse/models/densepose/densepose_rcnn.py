"""DensePose-RCNN (Güler et al., "DensePose: Dense Human Pose Estimation In The Wild", CVPR 2018): the
DensePose branch of the human RoI-head family.

Paper §3.1 (Fig. 5, "Fully-convolutional dense pose regression" + "Region-based Dense Pose Regression"):
RoIAlign on the FPN → a fully-convolutional head (8 × conv3x3 512 + ReLU, as in Mask R-CNN's keypoint
branch) → per-pixel classification into background or one of 24 surface charts (I) and, per chart, a
regressor for its (U, V) coordinates; a coarse segmentation (the 14 body parts + background) is
predicted next to it. Two presets name the two released implementations:

* ``original`` (Detectron1 ``facebookresearch/DensePose`` ``configs/DensePose_ResNet50_FPN_s1x-e2e.yaml``,
  ``detectron/modeling/body_uv_rcnn_heads.py``): 14×14 RoIs on P2..P5 → 56×56 outputs, coarse
  segmentation with 15 channels, loss weights coarse 2.0 / I 0.3 / UV 0.1.
* ``detectron2`` (detectron2 ``projects/DensePose`` ``densepose_rcnn_R_50_FPN_s1x``): a Panoptic-FPN
  style decoder merges P2..P5 into one stride-4 map (``roi_heads/roi_head.py`` ``Decoder``), 28×28 RoIs
  on it (RoIAlign with the half-pixel offset) → 112×112 outputs, fg/bg coarse segmentation, loss
  weights 5.0 / 1.0 / 0.01.

Training (paper §3.1, Detectron1 ``roi_data/body_uv_rcnn.py``, detectron2 ``modeling/losses/chart.py``):
the head runs on the foreground proposals whose IoU with a ground-truth person that carries dense points
exceeds 0.7. Points live in a 256×256 frame of the GT box (image x = x0 + dp_x·w/256); they are mapped
into the proposal's output grid (g = (x − x0_roi)·S/w_roi), the predictions are sampled there bilinearly
and trained with cross-entropy on I and smooth-L1 on U and V of the GT chart's channel only. The coarse
head is trained with cross-entropy against the ``dp_masks`` label map resampled (nearest) into the
proposal grid. Persons without points give no DensePose loss; points are packed, never padded, so no
unused slot is trained as background (Detectron1 trains its unused slots as background at (0, 0): fixed).

Inference per box (detectron2 ``densepose/converters/chart_output_to_chart_result.py``): the maps are
resized bilinearly to the integer box size before the argmax; I = argmax(fine) gated by argmax(coarse) > 0;
U, V are read from channel I; the result is stored as uint8 (I, U·255, V·255).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.ops import MultiScaleRoIAlign, box_iou, roi_align

from humanparse.models.rcnn.detector import HumanRCNN
from humanparse.models.rcnn.roi_heads import KeypointBranch, MaskBranch, RoIBranch

NUM_PATCHES = 24  # surface charts; the fine outputs have 25 channels (background + 24)

# head presets: (pooler resolution, coarse channels, decoder, loss weights (coarse, I, UV), init)
PRESETS: dict[str, dict] = {
    # Detectron1: POOLER 14, HEATMAP 56, AnnIndex 15 (hard-coded in body_uv_rcnn_heads.py), weights from
    # configs/DensePose_ResNet50_FPN_s1x-e2e.yaml (INDEX_WEIGHTS 2.0, PART_WEIGHTS 0.3, POINT_REGRESSION_WEIGHTS 0.1)
    "original": {
        "pooler_resolution": 14,
        "num_coarse": 15,
        "decoder": False,
        "aligned": False,
        "weights": (2.0, 0.3, 0.1),
        "init": "detectron1",
    },
    # detectron2 densepose/config.py defaults + Base-DensePose-RCNN-FPN.yaml: POOLER 28 (ROIAlignV2), HEATMAP 112,
    # NUM_COARSE_SEGM_CHANNELS 2, DECODER_ON, INDEX_WEIGHTS 5.0, PART_WEIGHTS 1.0, POINT_REGRESSION_WEIGHTS 0.01
    "detectron2": {
        "pooler_resolution": 28,
        "num_coarse": 2,
        "decoder": True,
        "aligned": True,
        "weights": (5.0, 1.0, 0.01),
        "init": "detectron2",
    },
}


# --- layers -----------------------------------------------------------------------------------------
class DensePoseDecoder(nn.Module):
    """Panoptic-FPN style decoder (detectron2 ``roi_heads/roi_head.py`` ``Decoder``): per level
    max(1, log2(stride / 4)) × (conv3x3 + ReLU [+ ×2 bilinear upsampling while above stride 4]), the
    levels summed, then a 1×1 projection. No normalisation (``DECODER_NORM ""``), so the convs have biases."""

    def __init__(
        self,
        in_channels: int = 256,
        conv_dims: int = 256,
        out_channels: int = 256,
        strides: Sequence[int] = (4, 8, 16, 32),
        common_stride: int = 4,
    ):
        super().__init__()
        self.scale_heads = nn.ModuleList()
        for stride in strides:
            ops: list[nn.Module] = []
            length = max(1, int(math.log2(stride) - math.log2(common_stride)))
            for k in range(length):
                ops += [
                    nn.Conv2d(in_channels if k == 0 else conv_dims, conv_dims, 3, padding=1),
                    nn.ReLU(inplace=True),
                ]
                if stride != common_stride:
                    ops.append(nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False))
            self.scale_heads.append(nn.Sequential(*ops))
        self.predictor = nn.Conv2d(conv_dims, out_channels, 1)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):  # detectron2 c2_msra_fill: kaiming normal fan_out, bias 0
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(m.bias)

    def forward(self, features: Sequence[Tensor]) -> Tensor:
        x = self.scale_heads[0](features[0])
        for head, f in zip(self.scale_heads[1:], features[1:]):
            x = x + head(f)
        return self.predictor(x)


class DensePoseHead(nn.Module):
    """``num_convs`` × (conv3x3 ``dim`` + ReLU): detectron2 ``DensePoseV1ConvXHead`` = Detectron1
    ``add_roi_body_uv_head_v1convX`` (paper §3.1: "the same architecture as the keypoint branch")."""

    def __init__(self, in_channels: int = 256, dim: int = 512, num_convs: int = 8, init: str = "detectron2"):
        super().__init__()
        layers: list[nn.Module] = []
        for k in range(num_convs):
            conv = nn.Conv2d(in_channels if k == 0 else dim, dim, 3, padding=1)
            # Detectron1: MSRAFill (= kaiming normal, fan_out); detectron2: kaiming_normal_ fan_out relu
            nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")
            nn.init.zeros_(conv.bias)
            layers += [conv, nn.ReLU(inplace=True)]
        self.layers = nn.Sequential(*layers)
        self.out_channels = dim

    def forward(self, x: Tensor) -> Tensor:
        return self.layers(x)


class DensePosePredictor(nn.Module):
    """Four ``ConvTranspose2d(dim → K, 4, stride 2, padding 1)`` (coarse segmentation K = ``num_coarse``,
    fine I, U, V with 25 channels) each followed by ×2 bilinear upsampling (detectron2 ``predictors/chart.py``;
    Detectron1 uses a fixed bilinear ConvTranspose blob for the same ×2)."""

    def __init__(
        self,
        in_channels: int = 512,
        num_coarse: int = 2,
        num_patches: int = NUM_PATCHES,
        init: str = "detectron2",
    ):
        super().__init__()
        k = num_patches + 1
        self.ann_index_lowres = nn.ConvTranspose2d(in_channels, num_coarse, 4, stride=2, padding=1)
        self.index_uv_lowres = nn.ConvTranspose2d(in_channels, k, 4, stride=2, padding=1)
        self.u_lowres = nn.ConvTranspose2d(in_channels, k, 4, stride=2, padding=1)
        self.v_lowres = nn.ConvTranspose2d(in_channels, k, 4, stride=2, padding=1)
        for m in (self.ann_index_lowres, self.index_uv_lowres, self.u_lowres, self.v_lowres):
            if init == "detectron1":  # body_uv_rcnn_heads.py: GaussianFill std 0.001, bias 0
                nn.init.normal_(m.weight, std=0.001)
            else:  # detectron2 initialize_module_params: kaiming normal fan_out
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            nn.init.zeros_(m.bias)

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        def up(t: Tensor) -> Tensor:
            return F.interpolate(t, scale_factor=2, mode="bilinear", align_corners=False)

        return {
            "coarse": up(self.ann_index_lowres(x)),
            "fine": up(self.index_uv_lowres(x)),
            "u": up(self.u_lowres(x)),
            "v": up(self.v_lowres(x)),
        }


# --- training targets ---------------------------------------------------------------------------------
@dataclass
class DensePoseTargets:
    """Packed supervision of the head RoIs of a batch (R RoIs, P points; points are concatenated, never
    padded). Boxes are continuous ``[x, y, w, h]`` in input pixels."""

    roi_boxes: Tensor  # (R, 4) the proposals the head ran on
    gt_boxes: Tensor  # (R, 4) the matched GT box (frame of the points and of the coarse map)
    point_roi: Tensor  # (P,) int64 RoI index of each point
    x: Tensor  # (P,) point position in the 256×256 GT box frame
    y: Tensor
    i: Tensor  # (P,) int64 chart 1..24 (0 allowed for dense teacher targets: background)
    u: Tensor  # (P,) in [0, 1]
    v: Tensor
    coarse: Tensor | None  # (R, 256, 256) int64 coarse part map in the GT box frame
    has_coarse: Tensor  # (R,) bool: the matched GT has dp_masks

    @property
    def num_rois(self) -> int:
        return int(self.roi_boxes.shape[0])


def xyxy_to_xywh(b: Tensor) -> Tensor:
    return torch.cat([b[:, :2], b[:, 2:] - b[:, :2]], dim=1)


def select_densepose_rois(
    proposals: Tensor, labels: Tensor, gt_boxes: Tensor, has_points: Tensor, iou_threshold: float = 0.7
) -> tuple[Tensor, Tensor]:
    """Head RoIs of one image: foreground proposals (``labels > 0``) whose IoU with a GT that has dense
    points exceeds ``iou_threshold``, each matched to that GT (highest IoU among those; Detectron1
    ``body_uv_rcnn.py``: ``fg_polys_value > 0.7``). Returns (proposal indices, GT indices)."""
    empty = torch.zeros(0, dtype=torch.int64, device=proposals.device)
    dp_gt = torch.nonzero(has_points, as_tuple=False).flatten()
    fg = torch.nonzero(labels > 0, as_tuple=False).flatten()
    if dp_gt.numel() == 0 or fg.numel() == 0:
        return empty, empty
    iou = box_iou(proposals[fg], gt_boxes[dp_gt])
    best, arg = iou.max(dim=1)
    keep = best > iou_threshold
    return fg[keep], dp_gt[arg[keep]]


def map_points_to_grid(
    p: Tensor, gt0: Tensor, gt_size: Tensor, roi0: Tensor, roi_size: Tensor, size: int
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """One axis of the point mapping (detectron2 ``losses/utils.py`` ``_linear_interpolation_utilities``):
    image v = gt0 + p·gt_size/256; grid g = (v − roi0)·size/roi_size; a point is valid when
    0 ≤ v − roi0 < roi_size (points in [size − 1, size) are kept, detectron2 behaviour). Returns the lower
    and upper sample indices, the weight of the upper one, and the valid flags."""
    v = gt0 + p * gt_size / 256.0
    valid = (v - roi0 >= 0) & (v - roi0 < roi_size)
    g = (v - roi0) * size / roi_size
    lo = g.floor().long().clamp(min=0, max=size - 1)
    hi = (lo + 1).clamp(max=size - 1)
    w = torch.minimum(hi.to(g.dtype), g) - lo.to(g.dtype)
    return lo, hi, w, valid


@dataclass
class PointSampler:
    """Bilinear sampling of (R, C, S, S) maps at the valid points of a :class:`DensePoseTargets`."""

    roi: Tensor
    x_lo: Tensor
    x_hi: Tensor
    y_lo: Tensor
    y_hi: Tensor
    wx: Tensor
    wy: Tensor
    valid: Tensor

    @classmethod
    def build(cls, t: DensePoseTargets, size: int) -> PointSampler:
        gt = t.gt_boxes[t.point_roi]
        roi = t.roi_boxes[t.point_roi]
        x_lo, x_hi, wx, vx = map_points_to_grid(t.x, gt[:, 0], gt[:, 2], roi[:, 0], roi[:, 2], size)
        y_lo, y_hi, wy, vy = map_points_to_grid(t.y, gt[:, 1], gt[:, 3], roi[:, 1], roi[:, 3], size)
        return cls(t.point_roi, x_lo, x_hi, y_lo, y_hi, wx, wy, vx & vy)

    def sample(self, z: Tensor, channel: Tensor | None = None) -> Tensor:
        """(P_valid, C) at the valid points (all channels), or (P_valid,) of ``channel`` per point."""
        m = self.valid
        r, xl, xh, yl, yh = self.roi[m], self.x_lo[m], self.x_hi[m], self.y_lo[m], self.y_hi[m]
        wx, wy = self.wx[m], self.wy[m]
        if channel is None:
            zz = z.permute(0, 2, 3, 1)  # (R, S, S, C): one gather per corner gives (P, C)

            def at(yy: Tensor, xx: Tensor) -> Tensor:
                return zz[r, yy, xx]

            wx, wy = wx[:, None], wy[:, None]
        else:
            c = channel[m]

            def at(yy: Tensor, xx: Tensor) -> Tensor:
                return z[r, c, yy, xx]

        return (
            at(yl, xl) * (1 - wx) * (1 - wy)
            + at(yl, xh) * wx * (1 - wy)
            + at(yh, xl) * (1 - wx) * wy
            + at(yh, xh) * wx * wy
        )


def resample_coarse(coarse: Tensor, gt_boxes: Tensor, roi_boxes: Tensor, size: int) -> Tensor:
    """Nearest resampling of (R, 256, 256) box-frame label maps into the proposals' (R, size, size) grids:
    output cell (r, c) takes the map cell under its centre; outside the GT box → 0 (background).
    Detectron1 samples at the cells' left edges with ``cv2.remap`` and detectron2 with an ``align_corners``
    grid; the pixel-centre rule is the unbiased version of both."""
    n = coarse.shape[0]
    if n == 0:
        return coarse.new_zeros((0, size, size))
    dev = coarse.device
    j = (torch.arange(size, device=dev, dtype=torch.float32) + 0.5) / size
    x = roi_boxes[:, 0:1] + j[None] * roi_boxes[:, 2:3]  # (R, S) image x of the cell centres
    y = roi_boxes[:, 1:2] + j[None] * roi_boxes[:, 3:4]
    cx = torch.floor((x - gt_boxes[:, 0:1]) * 256.0 / gt_boxes[:, 2:3]).long()
    cy = torch.floor((y - gt_boxes[:, 1:2]) * 256.0 / gt_boxes[:, 3:4]).long()
    inx = (cx >= 0) & (cx < 256)
    iny = (cy >= 0) & (cy < 256)
    cx, cy = cx.clamp(0, 255), cy.clamp(0, 255)
    r = torch.arange(n, device=dev)[:, None, None]
    out = coarse[r, cy[:, :, None], cx[:, None, :]]
    return out * (iny[:, :, None] & inx[:, None, :]).to(out.dtype)


def densepose_losses(
    outputs: dict[str, Tensor],
    t: DensePoseTargets,
    weights: Sequence[float] = (2.0, 0.3, 0.1),
    num_coarse: int = 15,
) -> dict[str, Tensor]:
    """``loss_densepose_{S,I,U,V}`` (paper §3.1; detectron2 ``DensePoseChartLoss``):

    * I: cross-entropy over the 25 fine classes at the valid points (mean), weight ``weights[1]``;
    * U, V: smooth-L1 (β 1, summed) on the GT chart's channel, points with I > 0 only, weight ``weights[2]``;
    * S: cross-entropy of the coarse head against the resampled coarse map (mean over the RoIs that have
      one; fg/bg when ``num_coarse == 2``), weight ``weights[0]``.

    Without any valid point every term is 0 and still attached to the graph (no NaN)."""
    w_s, w_i, w_uv = weights
    zero = {k: outputs[k].sum() * 0.0 for k in ("coarse", "fine", "u", "v")}
    losses = {
        "loss_densepose_S": zero["coarse"],
        "loss_densepose_I": zero["fine"],
        "loss_densepose_U": zero["u"],
        "loss_densepose_V": zero["v"],
    }
    size = outputs["fine"].shape[-1]
    if t.num_rois == 0:
        return losses
    sampler = PointSampler.build(t, size)
    if bool(sampler.valid.any()):
        gt_i = t.i[sampler.valid]
        fine = sampler.sample(outputs["fine"])
        losses["loss_densepose_I"] = F.cross_entropy(fine, gt_i) * w_i
        fg = gt_i > 0
        if bool(fg.any()):
            u = sampler.sample(outputs["u"], t.i)[fg]
            v = sampler.sample(outputs["v"], t.i)[fg]
            losses["loss_densepose_U"] = (
                F.smooth_l1_loss(u, t.u[sampler.valid][fg], reduction="sum", beta=1.0) * w_uv
            )
            losses["loss_densepose_V"] = (
                F.smooth_l1_loss(v, t.v[sampler.valid][fg], reduction="sum", beta=1.0) * w_uv
            )
    if t.coarse is not None and bool(t.has_coarse.any()):
        m = t.has_coarse
        with torch.no_grad():
            gt_s = resample_coarse(t.coarse[m], t.gt_boxes[m], t.roi_boxes[m], size)
            if num_coarse == 2:
                gt_s = (gt_s > 0).long()
        losses["loss_densepose_S"] = F.cross_entropy(outputs["coarse"][m], gt_s) * w_s
    return losses


# --- inference -----------------------------------------------------------------------------------------
def densepose_iuv(coarse: Tensor, fine: Tensor, u: Tensor, v: Tensor, box_xyxy: Sequence[float]) -> Tensor:
    """uint8 (3, h, w) (I, U·255, V·255) of one detection from its (K, S, S) maps (one box, its maps
    without the batch dimension), at the integer box size w = max(int(x2 − x1), 1), h likewise."""
    x1, y1, x2, y2 = (float(c) for c in box_xyxy)
    w, h = max(int(x2 - x1), 1), max(int(y2 - y1), 1)

    def rs(t: Tensor) -> Tensor:
        return F.interpolate(t[None].float(), (h, w), mode="bilinear", align_corners=False)[0]

    labels = rs(fine).argmax(0) * (rs(coarse).argmax(0) > 0).long()
    uu = rs(u).gather(0, labels[None])[0]
    vv = rs(v).gather(0, labels[None])[0]
    fg = labels > 0
    uu, vv = uu * fg, vv * fg
    # truncation to uint8 after clamping (detectron2 ``quantize_densepose_chart_result``)
    return torch.stack([labels.float(), (uu * 255.0).clamp(0, 255), (vv * 255.0).clamp(0, 255)]).to(
        torch.uint8
    )


# --- the branch ----------------------------------------------------------------------------------------
class DecoderRoIAlign(nn.Module):
    """detectron2 preset pooler: the Panoptic-FPN decoder merges the FPN levels into one stride-4 map and
    ``ROIAlignV2`` (RoIAlign with the half-pixel offset, ``aligned=True``) pools every RoI from it."""

    def __init__(
        self,
        featmap_names: Sequence[str],
        output_size: int,
        sampling_ratio: int,
        aligned: bool = True,
        in_channels: int = 256,
    ):
        super().__init__()
        self.featmap_names = [str(n) for n in featmap_names]
        self.output_size = int(output_size)
        self.sampling_ratio = int(sampling_ratio)
        self.aligned = aligned
        self.decoder = DensePoseDecoder(in_channels, in_channels, in_channels)

    def forward(
        self, features: dict[str, Tensor], boxes: list[Tensor], image_shapes: list[tuple[int, int]]
    ) -> Tensor:
        fmap = self.decoder([features[n] for n in self.featmap_names])
        # the decoder map has the stride of P2 (detectron2 DECODER_COMMON_STRIDE 4)
        return roi_align(
            fmap,
            boxes,
            self.output_size,
            spatial_scale=0.25,
            sampling_ratio=self.sampling_ratio,
            aligned=self.aligned,
        )


class CascadeRefinement(nn.Module):
    """Second stage of the cross-cascading architecture (paper §3.2, Fig. 7). The paper gives neither the
    combination operator nor the refinement unit's layers and no code was released; this project's
    choice: concat[stage-1 head feature, stage-1 DensePose S/I/U/V logits, the enabled auxiliary tasks'
    stage-1 logits (mask, keypoint heatmaps), all resized to the RoI grid, and the RoI feature] →
    conv1x1 → ``num_convs`` × (conv3x3 + ReLU) → the same predictors as stage 1."""

    def __init__(
        self,
        in_channels: int,
        dim: int = 512,
        num_convs: int = 4,
        num_coarse: int = 15,
        init: str = "detectron2",
    ):
        super().__init__()
        self.reduce = nn.Conv2d(in_channels, dim, 1)
        nn.init.kaiming_normal_(self.reduce.weight, mode="fan_out", nonlinearity="relu")
        nn.init.zeros_(self.reduce.bias)
        self.head = DensePoseHead(dim, dim, num_convs, init)
        self.predictor = DensePosePredictor(dim, num_coarse, NUM_PATCHES, init)

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        feat = self.head(F.relu(self.reduce(x)))
        out = self.predictor(feat)
        out["feature"] = feat
        return out


class DensePoseBranch(RoIBranch):
    """The DensePose branch of the human RoI heads (paper §3.1; presets in the module docstring).

    Args:
        preset: ``original`` | ``detectron2``; the arguments below override its entries when given.
        in_channels: FPN width. ``featmap_names``: pooled FPN levels (P2..P5 = ``'0'..'3'``).
        fg_iou_threshold: head RoIs need IoU > this with a GT that carries points (0.7).
        max_rois_per_image: optional cap on the training RoIs per image (None: all of them).
        cascade: add the second-stage refinement (:class:`CascadeRefinement`); ``aux_tasks`` names the
            sibling branches (``mask``, ``keypoints``) whose stage-1 outputs it combines ("DensePose-ST" =
            cascade without auxiliary tasks). The siblings are attached by the detector
            (:meth:`attach_aux`).
        supervision: ``sparse`` (annotated points) | ``distilled`` (dense targets of a teacher, read from
            ``teacher`` = a :class:`~humanparse.models.densepose.distill.TeacherTargets`, the cache path, or
            ``{cache, uv_symmetry}``).
        head_type: ``v1convx`` (the 8-conv head) | ``parsing_rcnn`` (Parsing R-CNN's GCE + PBD head, its
            ``parsing_head`` arguments; Parsing R-CNN Table 9 with ``featmap_names=['0']`` (PSS) and
            ``pooler_resolution=32`` (ERR)).
    """

    def __init__(
        self,
        preset: str = "original",
        in_channels: int = 256,
        featmap_names: Sequence[str] = ("0", "1", "2", "3"),
        pooler_resolution: int | None = None,
        sampling_ratio: int = 2,
        num_coarse: int | None = None,
        decoder: bool | None = None,
        aligned: bool | None = None,
        loss_weights: Sequence[float] | None = None,
        head_dim: int = 512,
        num_convs: int = 8,
        fg_iou_threshold: float = 0.7,
        max_rois_per_image: int | None = None,
        init: str | None = None,
        cascade: bool = False,
        aux_tasks: Sequence[str] = (),
        cascade_convs: int = 4,
        supervision: str = "sparse",
        teacher=None,
        head_type: str = "v1convx",
        parsing_head: Mapping | None = None,
    ):
        super().__init__()
        if preset not in PRESETS:
            raise ValueError(f"DensePose head preset must be one of {sorted(PRESETS)}, got {preset!r}")
        if supervision not in ("sparse", "distilled"):
            raise ValueError(f"DensePose supervision must be 'sparse' or 'distilled', got {supervision!r}")
        if supervision == "distilled":
            if teacher is None:
                raise ValueError(
                    "DensePose supervision=distilled needs teacher=<cached teacher outputs (.pt)>"
                )
            if not hasattr(teacher, "targets"):
                from humanparse.models.densepose.distill import TeacherTargets

                teacher = (
                    TeacherTargets(**teacher) if isinstance(teacher, Mapping) else TeacherTargets(teacher)
                )
        p = PRESETS[preset]
        self.preset = preset
        self.pooler_resolution = int(pooler_resolution or p["pooler_resolution"])
        self.num_coarse = int(num_coarse or p["num_coarse"])
        self.use_decoder = p["decoder"] if decoder is None else bool(decoder)
        aligned = p["aligned"] if aligned is None else bool(aligned)
        self.loss_weights = tuple(float(w) for w in (loss_weights or p["weights"]))
        self.fg_iou_threshold = float(fg_iou_threshold)
        self.max_rois_per_image = max_rois_per_image
        self.supervision = supervision
        self.teacher = teacher
        init = init or p["init"]
        names = [str(n) for n in featmap_names]
        if self.use_decoder:
            self.pooler = DecoderRoIAlign(names, self.pooler_resolution, sampling_ratio, aligned, in_channels)
        else:
            if aligned:
                raise ValueError("aligned RoIAlign is only available with the decoder (detectron2 preset)")
            # Detectron1: RoIAlign without the half-pixel offset, FPN level assignment as in Mask R-CNN
            self.pooler = MultiScaleRoIAlign(names, self.pooler_resolution, sampling_ratio)
        if head_type == "v1convx":
            self.head = DensePoseHead(in_channels, head_dim, num_convs, init)
        elif head_type == "parsing_rcnn":
            # Parsing R-CNN Table 9 (§4.3): its head (GCE + PBD; PSS and ERR are the pooler's featmap_names and
            # resolution) with the dense pose losses in place of the per-pixel softmax
            from humanparse.models.parsing_rcnn.parsing_rcnn import ParsingHead

            self.head = ParsingHead(in_channels, **dict(parsing_head or {}))
        else:
            raise ValueError(f"DensePose head_type must be 'v1convx' or 'parsing_rcnn', got {head_type!r}")
        head_dim = self.head.out_channels
        self.predictor = DensePosePredictor(head_dim, self.num_coarse, NUM_PATCHES, init)
        self.aux_tasks = tuple(aux_tasks)
        bad = [a for a in self.aux_tasks if a not in AUX_CHANNELS]
        if bad:
            raise ValueError(f"DensePose cascade aux_tasks must be among {sorted(AUX_CHANNELS)}, got {bad}")
        if self.aux_tasks and not cascade:
            raise ValueError(
                "aux_tasks feed the cascade's second stage: set cascade=true (multi-task training "
                "without a cascade = add the mask / keypoint branches to the detector)"
            )
        self.cascade = None
        if cascade:
            c_in = (
                head_dim
                + in_channels
                + self.num_coarse
                + 3 * (NUM_PATCHES + 1)
                + sum(AUX_CHANNELS[a] for a in self.aux_tasks)
            )
            self.cascade = CascadeRefinement(c_in, head_dim, cascade_convs, self.num_coarse, init)
        self._aux: dict[str, RoIBranch] = {}

    @property
    def output_size(self) -> int:
        return 4 * self.pooler_resolution

    def attach_aux(self, branches: dict[str, RoIBranch]) -> None:
        """Give the cascade the sibling branches of ``aux_tasks`` (not registered as submodules: they are
        the detector's own branches with their own losses)."""
        missing = [a for a in self.aux_tasks if a not in branches]
        if missing:
            raise ValueError(f"DensePose cascade aux_tasks {missing} need the detector's {missing} branch")
        self._aux = {a: branches[a] for a in self.aux_tasks}

    def forward_rois(
        self, features: dict[str, Tensor], rois: list[Tensor], image_shapes: list[tuple[int, int]]
    ) -> dict[str, Tensor]:
        """``coarse``, ``fine``, ``u``, ``v`` (R, K, S, S) of the last stage, ``stage1`` (the first stage's
        maps) when cascading, and the head feature ``feature`` (R, 512, S/4, S/4)."""
        x = self.pooler(features, rois, image_shapes)
        feat = self.head(x)
        out = self.predictor(feat)
        out["feature"] = feat
        if self.cascade is None:
            return out
        grid = feat.shape[-2:]

        def to_grid(t: Tensor) -> Tensor:
            return F.interpolate(t, size=grid, mode="bilinear", align_corners=False)

        parts = [feat] + [to_grid(out[k]) for k in ("coarse", "fine", "u", "v")]
        for name, branch in self._aux.items():
            aux = branch.forward_rois(features, rois, image_shapes)
            parts.append(to_grid(aux["mask_logits"][:, 1:2] if name == "mask" else aux["keypoint_logits"]))
        parts.append(x)
        second = self.cascade(torch.cat(parts, dim=1))
        second["stage1"] = {k: out[k] for k in ("coarse", "fine", "u", "v")}
        return second

    # training
    def select(
        self, proposals: list[Tensor], matched_idxs: list[Tensor], labels: list[Tensor], targets: list[dict]
    ) -> tuple[list[Tensor], list[Tensor]]:
        rois, matched = [], []
        for props, labs, tgt in zip(proposals, labels, targets):
            has_points = torch.as_tensor(
                [points_count(d) > 0 for d in _dp_list(tgt)], dtype=torch.bool, device=props.device
            )
            keep, gidx = select_densepose_rois(props, labs, tgt["boxes"], has_points, self.fg_iou_threshold)
            if self.max_rois_per_image is not None and len(keep) > self.max_rois_per_image:
                perm = torch.randperm(len(keep), device="cpu")[: self.max_rois_per_image].to(keep.device)
                keep, gidx = keep[perm], gidx[perm]
            rois.append(props[keep])
            matched.append(gidx)
        return rois, matched

    def pack_targets(
        self, rois: list[Tensor], targets: list[dict], matched: list[Tensor]
    ) -> DensePoseTargets:
        """The points and coarse maps of the matched GTs, packed for :func:`densepose_losses`."""
        return pack_targets(rois, targets, matched)

    def loss(self, features, rois, image_shapes, targets, matched):
        names = ["loss_densepose_S", "loss_densepose_I", "loss_densepose_U", "loss_densepose_V"]
        if self.cascade is not None:
            names += [f"{n}_stage1" for n in names]
        if sum(len(r) for r in rois) == 0:
            return self.zero_loss(features, image_shapes, names)
        out = self.forward_rois(features, rois, image_shapes)
        packed = pack_targets(rois, targets, matched)
        if (
            self.supervision == "distilled"
        ):  # teacher points for I/U/V (paper §3.3), dp_masks for the coarse head
            dense = self.teacher.targets(rois, targets, matched, self.output_size)
            dense.coarse, dense.has_coarse = packed.coarse, packed.has_coarse
            packed = dense
        losses = densepose_losses(out, packed, self.loss_weights, self.num_coarse)
        if self.cascade is not None:  # deep supervision of both stages (paper §3.2)
            first = densepose_losses(out["stage1"], packed, self.loss_weights, self.num_coarse)
            losses.update({f"{k}_stage1": v for k, v in first.items()})
        return losses

    # inference
    @torch.no_grad()
    def predict(self, features, detections, image_shapes) -> None:
        """Adds ``densepose_coarse``, ``densepose_fine``, ``densepose_u``, ``densepose_v`` (D, K, S, S) to
        each detection dict; the postprocess resizes them to the boxes in original pixels
        (:func:`densepose_iuv`)."""
        boxes = [d["boxes"] for d in detections]
        if sum(len(b) for b in boxes) == 0:
            s, dev = self.output_size, boxes[0].device if boxes else torch.device("cpu")
            for d in detections:
                for key, k in (("coarse", self.num_coarse), ("fine", 25), ("u", 25), ("v", 25)):
                    d[f"densepose_{key}"] = torch.zeros((0, k, s, s), device=dev)
            return
        out = self.forward_rois(features, boxes, image_shapes)
        start = 0
        for d in detections:
            n = len(d["boxes"])
            for key in ("coarse", "fine", "u", "v"):
                d[f"densepose_{key}"] = out[key][start : start + n]
            start += n


AUX_CHANNELS = {"mask": 1, "keypoints": 17}


def _dp_list(target: dict) -> list:
    dps = target.get("dp")
    return list(dps) if dps is not None else [None] * len(target["boxes"])


def points_count(d: dict | None) -> int:
    return 0 if d is None else len(d["x"])


def pack_targets(rois: list[Tensor], targets: list[dict], matched: list[Tensor]) -> DensePoseTargets:
    """Packed :class:`DensePoseTargets` of the head RoIs ``rois`` matched to GT ``matched`` (one tensor per
    image). ``targets[i]`` has ``boxes`` (continuous xyxy) and ``dp`` (per GT: ``x``, ``y``, ``I``, ``U``,
    ``V``, ``coarse`` or None)."""
    dev = rois[0].device if rois else torch.device("cpu")
    roi_boxes, gt_boxes, has_coarse, coarse = [], [], [], []
    pr, px, py, pi, pu, pv = [], [], [], [], [], []
    offset = 0
    for r, tgt, gidx in zip(rois, targets, matched):
        dps = _dp_list(tgt)
        roi_boxes.append(xyxy_to_xywh(r))
        gt_boxes.append(xyxy_to_xywh(tgt["boxes"][gidx]))
        for k, g in enumerate(gidx.tolist()):
            d = dps[g]
            n = points_count(d)
            pr.append(torch.full((n,), offset + k, dtype=torch.int64, device=dev))
            for acc, key, dtype in (
                (px, "x", torch.float32),
                (py, "y", torch.float32),
                (pi, "I", torch.int64),
                (pu, "U", torch.float32),
                (pv, "V", torch.float32),
            ):
                acc.append(
                    torch.as_tensor(d[key], device=dev).to(dtype)
                    if n
                    else torch.zeros(0, dtype=dtype, device=dev)
                )
            c = None if d is None else d.get("coarse")
            has_coarse.append(c is not None)
            coarse.append(
                torch.zeros((256, 256), dtype=torch.int64, device=dev)
                if c is None
                else torch.as_tensor(c, device=dev).long()
            )
        offset += len(r)

    def cat(xs: list[Tensor], dtype) -> Tensor:
        return torch.cat(xs) if xs else torch.zeros(0, dtype=dtype, device=dev)

    return DensePoseTargets(
        roi_boxes=torch.cat(roi_boxes) if roi_boxes else torch.zeros((0, 4), device=dev),
        gt_boxes=torch.cat(gt_boxes) if gt_boxes else torch.zeros((0, 4), device=dev),
        point_roi=cat(pr, torch.int64),
        x=cat(px, torch.float32),
        y=cat(py, torch.float32),
        i=cat(pi, torch.int64),
        u=cat(pu, torch.float32),
        v=cat(pv, torch.float32),
        coarse=torch.stack(coarse) if coarse else None,
        has_coarse=torch.as_tensor(has_coarse, dtype=torch.bool, device=dev),
    )


# --- the detector ------------------------------------------------------------------------------------
class DensePoseRCNN(HumanRCNN):
    """DensePose-RCNN: the human R-CNN with the DensePose branch, optionally the Mask R-CNN mask and
    keypoint branches on the shared backbone (paper §3.2, Table 1 multi-task rows) and any further branch
    (Parsing R-CNN's parsing branch: Parsing R-CNN Table 9).

    Args:
        densepose: a :class:`DensePoseBranch` or its keyword arguments.
        multitask: auxiliary branches trained next to it: ``mask`` and/or ``keypoints`` (torchvision's Mask R-CNN
            heads: 4 × conv 256 → 28×28 masks, 8 × conv 512 → 56×56 heatmaps; ``multitask_layers`` narrows them).
        extra_branches: further :class:`~humanparse.models.rcnn.RoIBranch` instances by name.
        init: ``null`` | ``imagenet`` | ``coco_keypoints`` (:mod:`humanparse.models.densepose.weights`);
            ``weights``: a local file for it (no download).
        ignore_crowd: leave crowd regions out of the detector's targets (detectron2's dataset mapper drops
            ``iscrowd`` annotations for training; they carry no points either).
        box_detections_per_img: 20 (Detectron1 DensePose keeps ≤ 20 detections, the evaluator's maxDets).
        **detector: :class:`~humanparse.models.rcnn.HumanRCNN` arguments (backbone, RPN, box branch).
    """

    def __init__(
        self,
        densepose: DensePoseBranch | Mapping | None = None,
        multitask: Sequence[str] = (),
        extra_branches: Mapping[str, RoIBranch] | None = None,
        ignore_crowd: bool = True,
        box_detections_per_img: int = 20,
        num_keypoints: int = 17,
        init: str | None = None,
        weights: str | None = None,
        multitask_layers: Mapping[str, Sequence[int]] | None = None,
        **detector,
    ):
        branches: dict[str, RoIBranch] = {}
        multitask = [str(m) for m in multitask]
        bad = [m for m in multitask if m not in ("mask", "keypoints")]
        if bad:
            raise ValueError(f"DensePose-RCNN multitask entries must be 'mask' or 'keypoints', got {bad}")
        fpn = int(detector.get("fpn_channels", 256))
        widths = dict(multitask_layers or {})
        if "mask" in multitask:
            branches["mask"] = MaskBranch(fpn, layers=tuple(widths.get("mask", (256,) * 4)))
        if "keypoints" in multitask:
            branches["keypoints"] = KeypointBranch(
                fpn, num_keypoints, layers=tuple(widths.get("keypoints", (512,) * 8))
            )
        for name, b in dict(extra_branches or {}).items():
            branches[str(name)] = b
        if not isinstance(densepose, DensePoseBranch):
            kwargs = dict(densepose or {})
            kwargs.setdefault("in_channels", fpn)
            densepose = DensePoseBranch(**kwargs)
        branches["densepose"] = densepose
        super().__init__(branches, box_detections_per_img=box_detections_per_img, **detector)
        densepose.attach_aux(branches)
        self.ignore_crowd = ignore_crowd
        if init is not None:
            from humanparse.models.densepose.weights import load_init

            load_init(self, init, weights)

    def data_requirements(self) -> dict:
        """The task's data check: DensePose points per person (a dataset without them is refused)."""
        return {"densepose": True, "hints": {"densepose": "use data=densepose_coco"}}

    def prepare_targets(self, targets: list[dict] | None) -> list[dict] | None:
        """Targets for the detector: boxes from the continuous COCO ``bbox`` [x, y, w, h] when present
        (DensePose points live in that box's 256×256 frame), crowd regions left out (``ignore_crowd``)."""
        if targets is None:
            return None
        out = []
        for t in targets:
            t = dict(t)
            n = len(t["boxes"])
            if t.get("bbox") is not None and len(t["bbox"]) == n and n:
                b = torch.stack([torch.as_tensor(x, dtype=torch.float32) for x in t["bbox"]]).to(
                    t["boxes"].device
                )
                t["boxes"] = torch.cat([b[:, :2], b[:, :2] + b[:, 2:]], dim=1)
            if self.ignore_crowd and t.get("iscrowd") is not None and n:
                keep = [i for i, c in enumerate(t["iscrowd"]) if not int(c)]
                if len(keep) < n:
                    t = select_persons(t, keep, n)
            out.append(t)
        return out

    def forward(self, images, targets: list[dict] | None = None, meta: list[dict] | None = None):
        """``meta`` (the samples' placement, ``affine`` / ``flipped``) is only read by distilled supervision."""
        targets = self.prepare_targets(targets)
        if targets is not None and meta is not None:
            targets = [{**t, "meta": m} for t, m in zip(targets, meta)]
        return super().forward(images, targets)


def select_persons(target: dict, keep: list[int], n: int) -> dict:
    """The persons ``keep`` of a target dict with ``n`` persons: every tensor or list whose first dimension
    is ``n`` is indexed, anything else is kept as it is."""
    out = {}
    idx = torch.as_tensor(keep, dtype=torch.int64)
    for k, v in target.items():
        if torch.is_tensor(v) and v.ndim > 0 and v.shape[0] == n:
            out[k] = v[idx.to(v.device)]
        elif isinstance(v, (list, tuple)) and len(v) == n:
            out[k] = [v[i] for i in keep]
        else:
            out[k] = v
    return out
