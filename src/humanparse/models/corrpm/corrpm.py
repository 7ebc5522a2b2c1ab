"""CorrPM — Correlation Parsing Machine (Zhang, Wang, Shen et al., "Correlating Edge, Pose with Parsing",
CVPR 2020).

Facts: the paper and the released code
``ziwei-zh/CorrPM`` (``networks/model.py``, ``networks/non_local.py``, ``networks/simple_pose_net_deconv.py``).
The training objective (paper §3.5, Eq. 4) is :class:`humanparse.models.corrpm.loss.CorrPMCriterion`.

Shapes for a 384×384 input (paper §4.1: C = 512, H = W = 96)::

    backbone   ResNet-101, deep stem, output stride 16   x2 256@96², x3 512@48², x4 1024@24², x5 2048@24²
    ParsingEncoder         ASPP(x5) ⊕ x2               → fp 512@96²  → seg1 (C classes)
    EdgeEncoder            x2, x3, x4                  → fb 512@96²  → edge (2-way)
    PoseEncoder            x5, two ×2 deconvolutions   → fk 512@96²  → pose (J heatmaps)
    HeterogeneousNonLocal  fh = Wa(fp ⊕ fb ⊕ fk); fp2 = Wb(softmax(θ(fh)ᵀφ(fp))·g(fp)) + fp
    classifier             fp2                         → seg2 (C classes, the inference output)

Normalisation and activations. The released code normalises with InPlaceABNSync; here every such
layer is ``BatchNorm2d`` + LeakyReLU(0.01) (:class:`~humanparse.models.blocks.norm.NormAct`; SyncBN through
``trainer.sync_batchnorm``). Kept as in the code: ReLU inside the ResNet (its BN layers are built with
``activation='none'`` and followed by ``nn.ReLU``); ReLU after the pose deconvolutions (SimpleBaseline's
plain ``BatchNorm2d`` + ReLU); **no** norm and no activation after the edge fusion conv (fb is linear);
BN without activation in Wb (``activation='none'``), with γ = β = 0 at initialisation.

Not built: the released code's dead parameters, which receive no gradient — the edge module's per-level
3×3 ``conv4`` and the decoder's ``conv1``/``conv2`` inherited from CE2P (148,578 parameters in total).
:func:`count_parameters` therefore gives 71.56 M for C = 20, J = 16, ResNet-101 against the 71.71 M of
the released model (−0.2 %).

Exact reorderings (same parameters, same outputs up to float rounding, less work): the decoder's and
the edge encoder's "upsample, concatenate, conv1x1" run each 1×1 slice at its feature's own resolution
(:func:`~humanparse.models.blocks.fusion.concat_conv1x1`), and the HNL affinity is computed by SDPA on
GPUs (never materialising the 9216×2304 matrix) and in query chunks with oneDNN products on CPUs
(:func:`~humanparse.models.blocks.attention.dot_product_attention`). Weights and
activations are channels-last by default (``channels_last``): oneDNN's convolutions are faster in that
layout on CPU, and the position-major features reach the attention kernel without copies.

Released checkpoints (``LIP_best.pth`` ...) load through :mod:`humanparse.models.corrpm.released` (key map,
dead layers, InPlace-ABN weights read as ``|w| + eps``); with them this module computes the released forward
(all four outputs within 1e-4 × max|output| of the released code's, ``tests/test_released_corrpm.py``).

Ablation variants (paper Table 5) are selected by ``variant``; a zero edge or pose loss
weight removes that branch (Table 6), see :func:`effective_variant`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from humanparse.models.blocks.aspp import ASPP
from humanparse.models.blocks.attention import NonLocal2d
from humanparse.models.blocks.backbones import DilatedResNet
from humanparse.models.blocks.fusion import Projected, concat_conv1x1
from humanparse.models.blocks.norm import ConvNormAct, NormAct

log = logging.getLogger(__name__)


# --- ablation variants (paper Table 5) ------------------------------------------------------------
@dataclass(frozen=True)
class Variant:
    """One row of paper Table 5.

    Attributes:
        factors: features fused with fp, in order: ``b`` = edge fb, ``k`` = pose fk (PBB/PKK repeat one).
        fusion: ``none`` (classifier on fp), ``self`` (self non-local on fp), ``concat`` (fp ⊕ factors →
            conv1x1-BN-act) or ``hnl`` (heterogeneous non-local with fh = Wa(fp ⊕ factors)).
    """

    factors: tuple[str, ...]
    fusion: str

    @property
    def edge(self) -> bool:
        return "b" in self.factors

    @property
    def pose(self) -> bool:
        return "k" in self.factors


VARIANTS: dict[str, Variant] = {
    "P": Variant((), "none"),
    "PP": Variant((), "self"),
    "P+B": Variant(("b",), "concat"),
    "P+K": Variant(("k",), "concat"),
    "P+B+K": Variant(("b", "k"), "concat"),
    "PB": Variant(("b",), "hnl"),
    "PK": Variant(("k",), "hnl"),
    "PBB": Variant(("b", "b"), "hnl"),
    "PKK": Variant(("k", "k"), "hnl"),
    "full": Variant(("b", "k"), "hnl"),
}


def effective_variant(variant: str, edge_weight: float = 1.0, pose_weight: float = 1.0) -> str:
    """The variant actually built: a zero loss weight removes its branch (paper Table 6).

    ``full`` with ``edge_weight=0`` is ``PK``, with ``pose_weight=0`` ``PB``, with both ``P``; the
    concatenation variants lose the same factor (``P+B+K`` → ``P+K``); a variant left without factors is
    ``P`` (``PP`` has none to lose).
    """
    if variant not in VARIANTS:
        raise ValueError(f"unknown CorrPM variant {variant!r}; choose one of {list(VARIANTS)}")
    spec = VARIANTS[variant]
    factors = tuple(
        f for f in spec.factors if not ((f == "b" and edge_weight == 0) or (f == "k" and pose_weight == 0))
    )
    if factors == spec.factors:
        return variant
    if not factors:
        return "P"
    return next(name for name, v in VARIANTS.items() if v == Variant(factors, spec.fusion))


# --- encoders (paper §3.2) ---------------------------------------------------------------------------
class ParsingEncoder(nn.Module):
    """Paper §3.2 "Parsing Encoder": ASPP on the last backbone feature for context, upsampled to Res2's
    size and fused with Res2 for detail → fp; a conv1x1 predicts the coarse parsing seg1.

    Released code: ``ASPPModule`` (rates 12/24/36, 256 per branch → 512, Dropout2d 0.1) and
    ``Decoder_Module.conv3`` (conv1x1 on [up(aspp), x2], 768 → 512, BN-act; the upsampling is the code's
    only ``align_corners=False`` one) and ``conv4`` (→ seg1).
    """

    def __init__(
        self,
        in_channels: int,
        low_channels: int,
        num_classes: int,
        channels: int = 512,
        aspp_channels: int = 256,
        aspp_rates: Sequence[int] = (12, 24, 36),
        aspp_dropout: float = 0.1,
        act: str = "leaky_relu",
        classifier: bool = True,
    ):
        super().__init__()
        self.aspp = ASPP(in_channels, aspp_channels, channels, aspp_rates, dropout=aspp_dropout, act=act)
        self.fuse = nn.Conv2d(channels + low_channels, channels, 1, bias=False)  # on [up(aspp), x2]
        self.fuse_act = NormAct(channels, act)
        self.classifier = nn.Conv2d(channels, num_classes, 1) if classifier else None

    def forward(self, x2: torch.Tensor, x5: torch.Tensor) -> torch.Tensor:
        context = self.aspp(x5)
        return self.fuse_act(
            concat_conv1x1(self.fuse.weight, None, [context, x2], x2.shape[-2:], align_corners=False)
        )


class EdgeEncoder(nn.Module):
    """Paper §3.2 "Edge Encoder": Res2, Res3 and Res4, each reduced by conv1x1-BN-act, upsampled
    (bilinear, ``align_corners=True``) to Res2's size, concatenated and fused by a conv1x1 into fb —
    with no norm and no activation, as the released ``Edge_Module.conv6``; a conv1x1 gives the 2-way
    edge logits (``conv5``)."""

    def __init__(
        self,
        in_channels: Sequence[int],
        mid_channels: int = 256,
        channels: int = 512,
        act: str = "leaky_relu",
    ):
        super().__init__()
        self.reduce = nn.ModuleList(ConvNormAct(c, mid_channels, 1, act=act) for c in in_channels)
        self.fuse = nn.Conv2d(mid_channels * len(in_channels), channels, 1, bias=False)
        self.classifier = nn.Conv2d(channels, 2, 1)

    def forward(self, feats: Sequence[torch.Tensor]) -> Projected:
        """fb, kept unevaluated (:class:`~humanparse.models.blocks.fusion.Projected`): it is linear and only
        1×1 convolutions consume it (the edge classifier here, Wa in the HNL), so they compose their
        weights with ``fuse`` instead of building the 512×96² map; ``.materialize()`` gives the map."""
        reduced = [r(f) for r, f in zip(self.reduce, feats)]
        return Projected(self.fuse.weight, reduced, tuple(feats[0].shape[-2:]), align_corners=True)

    def logits(self, fb: Projected) -> torch.Tensor:
        """The 2-way edge logits of fb."""
        return concat_conv1x1(self.classifier.weight, self.classifier.bias, [fb], fb.size, align_corners=True)


class PoseEncoder(nn.Module):
    """Paper §3.2 "Pose Encoder": two stride-2 transposed convolutions (SimpleBaseline, Xiao et al. 2018)
    upsample the last backbone feature ×4 into fk (same size as fp); a conv1x1 regresses J heatmaps.

    Released ``simple_pose_net_deconv.py``: ConvTranspose2d(k4, s2, p1, no bias) → BN → ReLU, twice
    (2048 → 256 → 512); weights N(0, 0.001), BN (1, 0), final conv N(0, 0.001) with zero bias.
    """

    def __init__(self, in_channels: int, num_joints: int, mid_channels: int = 256, channels: int = 512):
        super().__init__()
        self.deconv = nn.Sequential(
            nn.ConvTranspose2d(in_channels, mid_channels, 4, stride=2, padding=1, bias=False),
            NormAct(mid_channels, "relu"),
            nn.ConvTranspose2d(mid_channels, channels, 4, stride=2, padding=1, bias=False),
            NormAct(channels, "relu"),
        )
        self.classifier = nn.Conv2d(channels, num_joints, 1)
        for m in self.modules():
            if isinstance(m, (nn.ConvTranspose2d, nn.Conv2d)):
                nn.init.normal_(m.weight, std=0.001)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def forward(self, x5: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        fk = self.deconv(x5)
        if tuple(fk.shape[-2:]) != tuple(size):  # inputs not divisible by 16, or output stride 8
            fk = F.interpolate(fk, size=size, mode="bilinear", align_corners=True)
        return fk


# --- correlation (paper §3.3) ---------------------------------------------------------------------------
class HeterogeneousNonLocal(nn.Module):
    """Paper §3.3, Fig. 3. Eq. 1: the hybrid feature fh = Wa(fp ⊕ fb ⊕ fk), Wa = conv1x1-BN-act.
    Eq. 2: S = softmax(θ(fh)ᵀ φ(fp)) — queries from fh, keys and values from fp, no scaling; φ and g are
    max-pooled 2×2 as in the released code (the paper does not mention it). Eq. 3: fp2 = Wb(S·g(fp)) + fp,
    Wb = conv1x1 + BN with γ = β = 0 at initialisation ("Wb is initialized as 0"): the block starts as
    the identity on fp.

    ``num_factors`` features of ``channels`` channels each join fp (2 for the full model, PB/PK: 1).
    """

    def __init__(
        self,
        channels: int = 512,
        num_factors: int = 2,
        inter_channels: int = 256,
        subsample: int = 2,
        act: str = "leaky_relu",
        attention: str = "auto",
    ):
        super().__init__()
        self.Wa = nn.Conv2d(channels * (1 + num_factors), channels, 1, bias=False)
        self.Wa_act = NormAct(channels, act)
        self.non_local = NonLocal2d(
            channels, inter_channels, subsample=subsample, scale=1.0, attention=attention
        )

    def hybrid(self, fp: torch.Tensor, factors: Sequence[torch.Tensor]) -> torch.Tensor:
        """fh (Eq. 1); the 1×1 conv of the concatenation is computed slice by slice (no 1536-channel copy)."""
        return self.Wa_act(
            concat_conv1x1(self.Wa.weight, None, [fp, *factors], fp.shape[-2:], align_corners=True)
        )

    def forward(self, fp: torch.Tensor, factors: Sequence[torch.Tensor]) -> torch.Tensor:
        return self.non_local(fp, query=self.hybrid(fp, factors))

    def relation_map(self, fp: torch.Tensor, factors: Sequence[torch.Tensor]) -> torch.Tensor:
        """S of Eq. 2, (B, H·W, H·W/4): rows are fh positions (paper Fig. 4's sub-relation maps)."""
        return self.non_local.affinity(fp, query=self.hybrid(fp, factors))


class ConcatFusion(nn.Module):
    """The concatenation baselines P+B / P+K / P+B+K (paper Table 5): fp ⊕ factors → conv1x1-BN-act.
    Neither the paper nor the released code specifies the layer; this one mirrors Wa."""

    def __init__(self, channels: int = 512, num_factors: int = 1, act: str = "leaky_relu"):
        super().__init__()
        self.fuse = nn.Conv2d(channels * (1 + num_factors), channels, 1, bias=False)
        self.fuse_act = NormAct(channels, act)

    def forward(self, fp: torch.Tensor, factors: Sequence[torch.Tensor]) -> torch.Tensor:
        return self.fuse_act(
            concat_conv1x1(self.fuse.weight, None, [fp, *factors], fp.shape[-2:], align_corners=True)
        )


class SelfNonLocal(nn.Module):
    """The self-correlation baseline PP (paper Table 5): a standard non-local block on fp alone."""

    def __init__(
        self, channels: int = 512, inter_channels: int = 256, subsample: int = 2, attention: str = "auto"
    ):
        super().__init__()
        self.non_local = NonLocal2d(
            channels, inter_channels, subsample=subsample, scale=1.0, attention=attention
        )

    def forward(self, fp: torch.Tensor, factors: Sequence[torch.Tensor] = ()) -> torch.Tensor:
        return self.non_local(fp)


# --- the model ---------------------------------------------------------------------------------------
class CorrPM(nn.Module):
    """Correlation Parsing Machine (paper Fig. 2).

    Args:
        num_classes: C, background included (LIP 20).
        num_joints: J, heatmap channels (LIP 16; COCO-17 pseudo-pose on ATR/CIHP).
        variant: paper Table 5 row, one of :data:`VARIANTS` (``full`` = CorrPM).
        edge_weight / pose_weight: the loss weights α and β; only whether they are zero matters here
            (a zero weight removes that branch, :func:`effective_variant`).
        seg1_weight: weight of L_p; 0 ("Ours†", paper Table 2) removes the seg1 classifier.
        backbone / backbone_kwargs / pretrained / output_stride: :class:`DilatedResNet` arguments
            (``resnet101s`` at output stride 16 with every layer4 block at dilation 2).
        channels: C of the paper's fp, fb, fk, fh (512).
        aspp_channels / aspp_rates / aspp_dropout: ASPP branch width (256), rates (12, 24, 36), dropout.
        edge_channels: per-level width in the edge encoder (256).
        pose_channels: width of the first pose deconvolution (256).
        nl_channels / nl_subsample: θ/φ/g width (256) and key/value max-pool (2).
        act: activation after the heads' BatchNorms (``leaky_relu`` = InPlace-ABN).
        attention: the HNL affinity kernel: ``auto`` (SDPA on GPU, never materialising the 9216×2304
            matrix; query-chunked oneDNN products on CPU), ``sdpa``, ``chunked`` or ``explicit``
            (:mod:`humanparse.models.blocks.attention`).
        channels_last: keep weights and activations in channels-last memory format (faster convolutions
            on CPU and tensor-core GPUs; position-major features feed the attention kernel without copies).

    ``forward(images)`` returns a dict of logits at 1/4 of the input: in training mode ``seg1``, ``seg2``,
    ``edge`` and ``pose`` (those the variant has; variant P has only its single classifier, ``seg2``);
    in eval mode only ``seg2`` — seg1, edge and pose heads are skipped (paper §4.1 "Testing phase").
    ``forward(images, all_heads=True)`` returns every head in either mode.
    """

    def __init__(
        self,
        num_classes: int,
        num_joints: int = 16,
        variant: str = "full",
        edge_weight: float = 1.0,
        pose_weight: float = 1.0,
        seg1_weight: float = 1.0,
        backbone: str = "resnet101s",
        backbone_kwargs: dict | None = None,
        pretrained: str | None = None,
        output_stride: int = 16,
        channels: int = 512,
        aspp_channels: int = 256,
        aspp_rates: Sequence[int] = (12, 24, 36),
        aspp_dropout: float = 0.1,
        edge_channels: int = 256,
        pose_channels: int = 256,
        nl_channels: int = 256,
        nl_subsample: int = 2,
        act: str = "leaky_relu",
        attention: str = "auto",
        channels_last: bool = True,
    ):
        super().__init__()
        self.variant = effective_variant(variant, edge_weight, pose_weight)
        if self.variant != variant:
            log.info(
                "CorrPM variant %s with edge weight %s and pose weight %s builds variant %s (paper Table 6)",
                variant,
                edge_weight,
                pose_weight,
                self.variant,
            )
        spec = VARIANTS[self.variant]
        self.spec = spec
        self.num_classes = num_classes
        if spec.pose and not num_joints:
            raise ValueError(
                f"CorrPM variant {self.variant} has a pose branch, but the dataset has no keypoints (num_joints="
                f"{num_joints}): train 'CorrPM without pose' with model.pose_weight=0 (paper Table 6), or give the "
                "dataset keypoints and model.num_joints"
            )
        self.num_joints = num_joints if spec.pose else 0

        self.backbone = DilatedResNet(backbone, output_stride, pretrained, **dict(backbone_kwargs or {}))
        c2, c3, c4, c5 = self.backbone.channels
        # fp's own classifier: seg1, or the only one (seg2) in variant P
        seg1 = spec.fusion == "none" or seg1_weight != 0
        self.parsing_encoder = ParsingEncoder(
            c5, c2, num_classes, channels, aspp_channels, aspp_rates, aspp_dropout, act, classifier=seg1
        )
        self.edge_encoder = EdgeEncoder((c2, c3, c4), edge_channels, channels, act) if spec.edge else None
        self.pose_encoder = PoseEncoder(c5, num_joints, pose_channels, channels) if spec.pose else None
        n = len(spec.factors)
        if spec.fusion == "hnl":
            self.fusion = HeterogeneousNonLocal(channels, n, nl_channels, nl_subsample, act, attention)
        elif spec.fusion == "self":
            self.fusion = SelfNonLocal(channels, nl_channels, nl_subsample, attention)
        elif spec.fusion == "concat":
            self.fusion = ConcatFusion(channels, n, act)
        else:
            self.fusion = None
        # seg2's classifier; variant P has only the parsing encoder's
        self.classifier = nn.Conv2d(channels, num_classes, 1) if self.fusion is not None else None
        self.channels_last = channels_last
        if channels_last:
            self.to(memory_format=torch.channels_last)

    def forward(self, images: torch.Tensor, all_heads: bool | None = None) -> dict[str, torch.Tensor]:
        heads = self.training if all_heads is None else all_heads
        if self.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        x2, x3, x4, x5 = self.backbone(images)
        fp = self.parsing_encoder(x2, x5)
        out: dict[str, torch.Tensor] = {}
        features = {}
        if self.edge_encoder is not None:
            features["b"] = fb = self.edge_encoder((x2, x3, x4))
            if heads:
                out["edge"] = self.edge_encoder.logits(fb)
        if self.pose_encoder is not None:
            features["k"] = fk = self.pose_encoder(x5, fp.shape[-2:])
            if heads:
                out["pose"] = self.pose_encoder.classifier(fk)
        if self.fusion is None:
            out["seg2"] = self.parsing_encoder.classifier(fp)
            return out
        if heads and self.parsing_encoder.classifier is not None:
            out["seg1"] = self.parsing_encoder.classifier(fp)
        fp2 = self.fusion(fp, [features[f] for f in self.spec.factors])
        out["seg2"] = self.classifier(fp2)
        return out

    def required_targets(self) -> list[str]:
        """The derived targets the built branches train on: CorrPM edges for the edge encoder, joint
        heatmaps (σ 7 at 1/4, paper §3.2) for the pose encoder."""
        return (["semantic_edge"] if self.edge_encoder is not None else []) + (
            ["pose_heatmaps"] if self.pose_encoder is not None else []
        )

    def data_requirements(self) -> dict:
        """What the built branches need from the data, checked by the datamodule before training: the
        pose encoder trains on keypoints with ``num_joints`` joints (datasets without pose annotations —
        ATR, CIHP — need a pseudo-pose file, or the run drops the branch with ``model.pose_weight=0``,
        "CorrPM without pose", paper Table 6)."""
        if self.pose_encoder is None:
            return {}
        return {
            "keypoints": self.num_joints,
            "hints": {"keypoints": "or train 'CorrPM without pose' (variant PB) with model.pose_weight=0"},
        }


def count_parameters(model: nn.Module) -> int:
    """Number of parameters (every one of CorrPM's receives a gradient: no dead layers are built)."""
    return sum(p.numel() for p in model.parameters())
