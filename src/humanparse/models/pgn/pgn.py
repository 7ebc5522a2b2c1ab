"""PGN — Part Grouping Network (Gong, Liang, Li, Lin et al., "Instance-level Human Parsing via Part
Grouping Network", ECCV 2018, §3).

Layer for layer as the released network (``Engineering-Course/CIHP_PGN utils/model_pgn.py``). Shapes for
a 512×512 input at C classes (every head map at output stride 8, 64×64)::

    trunk        ResNet-101, layer3/4 dilated (2, 4)      taps res3 512, res4 1024, res5 2048 @ 64²
    PartSegmentationBranch (§3.1)  conv3x3 512 per tap → concat 1536 → conv3x3 512 ("parsing_branch")
                 → PyramidPooling (4 × 512) → conv3x3 512 ("parsing_pp_conv") → dropout → classifier C
                 = ``parsing_fc``
    EdgeDetectionBranch (§3.2)     conv3x3 256 per tap → concat 768 → conv3x3 256 ("edge_branch")
                 → PyramidPooling (4 × 512) → conv3x3 512 ("edge_pp_conv") → dropout → classifier 1
                 = ``edge_fc``; deep supervision: per tap the sum of five conv3x3(256 → 1) at dilations
                 1, 2, 4, 8, 16 = ``edge_res3`` / ``edge_res4`` / ``edge_res5``
    RefinementBranch (§3.3)        pf = conv3x3(parsing_pp_conv → 256), pr = conv1x1(parsing_fc → 128),
                 ef = conv3x3(edge_pp_conv → 256), er = conv1x1(edge_fc → 128);
                 refined parts: [pf, pr, ef, er] → conv3x3 512 → PyramidPooling → conv3x3 512 → dropout
                 → classifier C = ``parsing_rf_fc``; refined edges: [ef, er, pf, pr] → the same stack
                 with its own weights → classifier 1 = ``edge_rf_fc``

No BatchNorm in the heads; ReLU after every convolution except the classifiers and the side outputs; head
weights start from a normal distribution truncated at 2σ, σ = 0.01, biases 0 (the released
initialisation). The trunk's BatchNorm keeps its running statistics frozen while γ and β train
(``freeze_bn``), as the released training (``is_training=False``, all variables trainable).

Project choices, each switchable (see the model config):

* ``classifier_kernel``: 1 (the paper's "1×1 convolutional classifiers", default) or 3 (the released
  code). At C = 20 with 3×3 classifiers the network has 164,839,673 parameters, the released count;
  1×1 classifiers have 172,032 fewer.
* ``ppm_mode``: ``bins`` (paper: average pooling to 1×1, 2×2, 3×3, 6×6, default) or ``windows`` (the
  released ``pyramid_pooling``: windows of 60, 30, 20, 10 feature pixels with stride = window and
  TensorFlow SAME padding, averaging the valid pixels only).
* trunk: torchvision ``resnet101(replace_stride_with_dilation=[False, True, True])`` — its dilated
  stages start at the previous dilation and stride in the 3×3 conv, unlike the Caffe-style DeepLab
  ResNet of the code; same parameter count (42,500,160).

Ablations (by config): ``refinement`` (off: ``parsing_fc``/``edge_fc`` are the outputs), ``edge_branch``
(off: a plain parser, no edges, no refinement, no instances), ``side_outputs``, ``ppm``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence

import timm
import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from humanparse.models.pretrained import is_local_file, load_into, require_download

log = logging.getLogger(__name__)

TORCHVISION_RESNETS = ("resnet50", "resnet101", "resnet152")
PPM_MODES = ("bins", "windows")
SIDE_DILATIONS = (1, 2, 4, 8, 16)
HEAD_INITS = ("released", "kaiming")


def conv3x3(cin: int, cout: int, dilation: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, padding=dilation, dilation=dilation, bias=True)


def conv_relu(cin: int, cout: int, kernel: int = 3) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, kernel, padding=kernel // 2, bias=True), nn.ReLU(inplace=True))


# --- trunk -------------------------------------------------------------------------------------------
class ResNetTrunk(nn.Module):
    """ResNet at output stride 8 returning the outputs of layer2, layer3 and layer4 (res3b3, res4b22,
    res5c of the released code).

    ``name``: a torchvision ResNet (``resnet50/101/152``; stages 3 and 4 dilated with
    ``replace_stride_with_dilation``) or any timm ResNet (``resnet18``, ``resnet10t``, ... for tests;
    ``output_stride=8``). ``pretrained``: ``None``, ``imagenet`` (torchvision / timm weights; fails fast
    offline) or a local state-dict file of the trunk.
    """

    def __init__(
        self, name: str = "resnet101", pretrained: str | None = None, freeze_bn: bool = True, **kwargs
    ):
        super().__init__()
        by_name = pretrained is not None and not is_local_file(pretrained)
        if by_name:
            require_download(f"backbone {name}", str(pretrained))
        self.name = name
        if name in TORCHVISION_RESNETS:
            weights = "DEFAULT" if by_name else None
            net = getattr(torchvision.models, name)(
                weights=weights, replace_stride_with_dilation=[False, True, True], **kwargs
            )
            self.stem = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool)
            self.layer1, self.layer2, self.layer3, self.layer4 = (
                net.layer1,
                net.layer2,
                net.layer3,
                net.layer4,
            )
            self.channels = [
                net.layer2[-1].conv3.out_channels,
                net.layer3[-1].conv3.out_channels,
                net.layer4[-1].conv3.out_channels,
            ]
            self.timm_body = None
        else:
            body = timm.create_model(
                name, pretrained=by_name, features_only=True, out_indices=(2, 3, 4), output_stride=8, **kwargs
            )
            self.timm_body = body
            self.channels = list(body.feature_info.channels())
        if pretrained is not None and not by_name:
            load_into(self.timm_body if self.timm_body is not None else self, pretrained)
        self.freeze_bn = freeze_bn

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        if self.timm_body is not None:
            return list(self.timm_body(x))
        x = self.layer1(self.stem(x))
        x2 = self.layer2(x)
        x3 = self.layer3(x2)
        return [x2, x3, self.layer4(x3)]

    def train(self, mode: bool = True) -> ResNetTrunk:
        super().train(mode)
        if self.freeze_bn:  # running statistics stay as loaded; γ and β still train
            for m in self.modules():
                if isinstance(m, nn.modules.batchnorm._BatchNorm):
                    m.eval()
        return self


# --- context module --------------------------------------------------------------------------------
def same_avg_pool(x: torch.Tensor, k: int) -> torch.Tensor:
    """TensorFlow ``avg_pool(ksize=k, strides=k, padding='SAME')``: ceil(n/k) cells, the padding
    ((ceil(n/k) − 1)·k + k − n, the odd pixel at the end) excluded from each average."""
    h, w = x.shape[-2:]
    ph = (math.ceil(h / k) - 1) * k + k - h
    pw = (math.ceil(w / k) - 1) * k + k - w
    pad = (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2)
    total = F.avg_pool2d(F.pad(x, pad), k, k)
    ones = F.pad(torch.ones(1, 1, h, w, dtype=x.dtype, device=x.device), pad)
    return total / F.avg_pool2d(ones, k, k)


class PyramidPooling(nn.Module):
    """PSPNet-style pyramid pooling (PGN §3.1): four pooled maps → conv3x3 (+ bias, ReLU) → bilinear
    upsampling; the output is ``[x, p1, p2, p3, p4]`` (``in + 4·out`` channels).

    ``mode='bins'`` pools to ``bins`` cells (paper); ``'windows'`` pools with ``windows``-pixel windows
    (the released code's TF-SAME average pooling).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int = 512,
        mode: str = "bins",
        bins: Sequence[int] = (1, 2, 3, 6),
        windows: Sequence[int] = (60, 30, 20, 10),
    ):
        super().__init__()
        if mode not in PPM_MODES:
            raise ValueError(f"ppm_mode must be one of {PPM_MODES}, got {mode!r}")
        self.mode = mode
        self.sizes = tuple(int(b) for b in (bins if mode == "bins" else windows))
        self.convs = nn.ModuleList(conv3x3(in_channels, out_channels) for _ in self.sizes)
        self.out_channels = in_channels + len(self.sizes) * out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[-2:]
        outs = [x]
        for s, conv in zip(self.sizes, self.convs):
            p = F.adaptive_avg_pool2d(x, s) if self.mode == "bins" else same_avg_pool(x, s)
            p = F.relu(conv(p))
            outs.append(F.interpolate(p, size=size, mode="bilinear", align_corners=False))
        return torch.cat(outs, dim=1)


class ContextHead(nn.Module):
    """feature → PyramidPooling → conv3x3 + ReLU (the ``*_pp_conv`` map) → dropout → classifier."""

    def __init__(
        self,
        in_channels: int,
        ppm_channels: int,
        channels: int,
        out_channels: int,
        classifier_kernel: int,
        dropout: float,
        ppm: bool,
        ppm_kwargs: dict,
    ):
        super().__init__()
        self.ppm = PyramidPooling(in_channels, ppm_channels, **ppm_kwargs) if ppm else None
        self.conv = conv_relu(self.ppm.out_channels if ppm else in_channels, channels)
        self.dropout = nn.Dropout2d(dropout) if dropout > 0 else nn.Identity()
        self.classifier = nn.Conv2d(channels, out_channels, classifier_kernel, padding=classifier_kernel // 2)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        feat = self.conv(self.ppm(x) if self.ppm is not None else x)
        return feat, self.classifier(self.dropout(feat))


# --- branches ---------------------------------------------------------------------------------------
class PartSegmentationBranch(nn.Module):
    """Semantic part segmentation branch (PGN §3.1): per-tap conv3x3 → concat → conv3x3 → context head."""

    def __init__(
        self,
        in_channels: Sequence[int],
        num_classes: int,
        width: int,
        ppm_channels: int,
        pp_channels: int,
        classifier_kernel: int,
        dropout: float,
        ppm: bool,
        ppm_kwargs: dict,
    ):
        super().__init__()
        self.taps = nn.ModuleList(conv_relu(c, width) for c in in_channels)
        self.fuse = conv_relu(width * len(in_channels), width)
        self.head = ContextHead(
            width, ppm_channels, pp_channels, num_classes, classifier_kernel, dropout, ppm, ppm_kwargs
        )

    def forward(self, feats: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.fuse(torch.cat([t(f) for t, f in zip(self.taps, feats)], dim=1))
        return self.head(x)


class EdgeSideOutput(nn.Module):
    """Deep supervision of one tap (PGN §3.2): the sum of five conv3x3(→1) at dilations 1, 2, 4, 8, 16."""

    def __init__(self, channels: int, dilations: Sequence[int] = SIDE_DILATIONS):
        super().__init__()
        self.convs = nn.ModuleList(conv3x3(channels, 1, d) for d in dilations)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([c(x) for c in self.convs]).sum(0)


class EdgeDetectionBranch(nn.Module):
    """Instance-aware edge detection branch (PGN §3.2) with side outputs on the three taps."""

    def __init__(
        self,
        in_channels: Sequence[int],
        width: int,
        ppm_channels: int,
        pp_channels: int,
        classifier_kernel: int,
        dropout: float,
        ppm: bool,
        ppm_kwargs: dict,
        side_outputs: bool,
    ):
        super().__init__()
        self.taps = nn.ModuleList(conv_relu(c, width) for c in in_channels)
        self.fuse = conv_relu(width * len(in_channels), width)
        self.head = ContextHead(
            width, ppm_channels, pp_channels, 1, classifier_kernel, dropout, ppm, ppm_kwargs
        )
        self.sides = nn.ModuleList(EdgeSideOutput(width) for _ in in_channels) if side_outputs else None

    def forward(self, feats: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
        tapped = [t(f) for t, f in zip(self.taps, feats)]
        feat, logits = self.head(self.fuse(torch.cat(tapped, dim=1)))
        sides = [s(x) for s, x in zip(self.sides, tapped)] if self.sides is not None else []
        return feat, logits, sides


class RefinementBranch(nn.Module):
    """Refinement branch (PGN §3.3): both tasks' features and remapped predictions, concatenated in
    each task's own order, refine the parts and the edges with separate stacks."""

    def __init__(
        self,
        num_classes: int,
        pp_channels: int,
        fea_channels: int,
        remap_channels: int,
        width: int,
        ppm_channels: int,
        classifier_kernel: int,
        dropout: float,
        ppm: bool,
        ppm_kwargs: dict,
    ):
        super().__init__()
        self.parsing_fea = conv_relu(pp_channels, fea_channels)
        self.parsing_remap = conv_relu(num_classes, remap_channels, kernel=1)
        self.edge_fea = conv_relu(pp_channels, fea_channels)
        self.edge_remap = conv_relu(1, remap_channels, kernel=1)
        cin = 2 * (fea_channels + remap_channels)
        self.parsing_rf = conv_relu(cin, width)
        self.parsing_head = ContextHead(
            width, ppm_channels, width, num_classes, classifier_kernel, dropout, ppm, ppm_kwargs
        )
        self.edge_rf = conv_relu(cin, width)
        self.edge_head = ContextHead(
            width, ppm_channels, width, 1, classifier_kernel, dropout, ppm, ppm_kwargs
        )

    def forward(
        self, parsing_feat, parsing_logits, edge_feat, edge_logits
    ) -> tuple[torch.Tensor, torch.Tensor]:
        pf, pr = self.parsing_fea(parsing_feat), self.parsing_remap(parsing_logits)
        ef, er = self.edge_fea(edge_feat), self.edge_remap(edge_logits)
        _, parsing = self.parsing_head(self.parsing_rf(torch.cat([pf, pr, ef, er], dim=1)))
        _, edge = self.edge_head(self.edge_rf(torch.cat([ef, er, pf, pr], dim=1)))
        return parsing, edge


# --- the network -------------------------------------------------------------------------------------
class PartGroupingNetwork(nn.Module):
    """PGN (ECCV 2018 §3). Returns, at output stride 8: ``parsing_fc`` (C), ``parsing_rf_fc`` (C, with
    ``refinement``), ``edge_fc`` and ``edge_rf_fc`` (1 channel each, with ``edge_branch``), and the side
    outputs ``edge_res3/4/5`` (with ``side_outputs``).

    Args:
        num_classes: C (20 on CIHP, 7 on PASCAL-Person-Part).
        backbone / pretrained / backbone_kwargs / freeze_bn: see :class:`ResNetTrunk`.
        classifier_kernel: 1 (paper) or 3 (released code).
        ppm_mode / ppm_bins / ppm_windows: see :class:`PyramidPooling`.
        dropout: drop probability before each classifier (released: keep_prob 0.9).
        head_width: multiplies every head width (512/256/128); 1 = the paper's network, small values for tests.
        refinement / edge_branch / side_outputs / ppm: ablation switches.
        head_init: ``released`` (truncated N(0, 0.01²)) or ``kaiming`` (tiny heads from scratch).
    """

    required_targets = ["instance_edge"]

    def __init__(
        self,
        num_classes: int = 20,
        backbone: str = "resnet101",
        pretrained: str | None = None,
        classifier_kernel: int = 1,
        ppm_mode: str = "bins",
        ppm_bins: Sequence[int] = (1, 2, 3, 6),
        ppm_windows: Sequence[int] = (60, 30, 20, 10),
        dropout: float = 0.1,
        head_width: float = 1.0,
        refinement: bool = True,
        edge_branch: bool = True,
        side_outputs: bool = True,
        ppm: bool = True,
        freeze_bn: bool = True,
        backbone_kwargs: dict | None = None,
        head_init: str = "released",
    ):
        super().__init__()
        if head_init not in HEAD_INITS:
            raise ValueError(f"head_init must be one of {HEAD_INITS}, got {head_init!r}")
        self.head_init = head_init
        if classifier_kernel not in (1, 3):
            raise ValueError(f"classifier_kernel must be 1 or 3, got {classifier_kernel}")
        if refinement and not edge_branch:
            raise ValueError(
                "the refinement branch needs the edge branch (refinement=false with edge_branch=false)"
            )
        self.num_classes = num_classes
        self.refinement = refinement
        self.edge_branch = edge_branch
        self.side_outputs = side_outputs and edge_branch
        self.trunk = ResNetTrunk(backbone, pretrained, freeze_bn, **dict(backbone_kwargs or {}))

        def wd(c: int) -> int:
            return max(1, int(round(c * head_width)))

        ppm_kwargs = {"mode": ppm_mode, "bins": tuple(ppm_bins), "windows": tuple(ppm_windows)}
        taps = self.trunk.channels
        self.parsing = PartSegmentationBranch(
            taps, num_classes, wd(512), wd(512), wd(512), classifier_kernel, dropout, ppm, ppm_kwargs
        )
        self.edge = (
            EdgeDetectionBranch(
                taps,
                wd(256),
                wd(512),
                wd(512),
                classifier_kernel,
                dropout,
                ppm,
                ppm_kwargs,
                self.side_outputs,
            )
            if edge_branch
            else None
        )
        self.refine = (
            RefinementBranch(
                num_classes,
                wd(512),
                wd(256),
                wd(128),
                wd(512),
                wd(512),
                classifier_kernel,
                dropout,
                ppm,
                ppm_kwargs,
            )
            if refinement
            else None
        )
        self.reset_head_parameters()

    def heads(self) -> list[nn.Module]:
        return [m for m in (self.parsing, self.edge, self.refine) if m is not None]

    def reset_head_parameters(self) -> None:
        """``released``: weights ~ N(0, 0.01²) truncated at 2σ, biases 0 (made for 512-wide heads on a
        pretrained trunk); ``kaiming``: He-normal weights, biases 0 — narrow heads trained from scratch
        (tests, demos) would otherwise start with vanishing activations."""
        for head in self.heads():
            for m in head.modules():
                if isinstance(m, nn.Conv2d):
                    if self.head_init == "released":
                        nn.init.trunc_normal_(m.weight, std=0.01, a=-0.02, b=0.02)
                    else:
                        nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
                    nn.init.zeros_(m.bias)

    @property
    def inference_outputs(self) -> dict[str, str]:
        """Which outputs the released test uses: initial + refined parts, refined edges."""
        if self.refinement:
            return {"parsing": ["parsing_fc", "parsing_rf_fc"], "edge": "edge_rf_fc"}
        return {"parsing": ["parsing_fc"], "edge": "edge_fc" if self.edge_branch else None}

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        feats = self.trunk(images)
        parsing_feat, parsing_fc = self.parsing(feats)
        out = {"parsing_fc": parsing_fc}
        if self.edge is None:
            return out
        edge_feat, edge_fc, sides = self.edge(feats)
        out["edge_fc"] = edge_fc
        for name, s in zip(("edge_res3", "edge_res4", "edge_res5"), sides):
            out[name] = s
        if self.refine is not None:
            out["parsing_rf_fc"], out["edge_rf_fc"] = self.refine(
                parsing_feat, parsing_fc, edge_feat, edge_fc
            )
        return out


PGN = PartGroupingNetwork


def count_parameters(module: nn.Module) -> int:
    """All parameters (frozen ones included), BatchNorm running statistics excluded."""
    return sum(p.numel() for p in module.parameters())
