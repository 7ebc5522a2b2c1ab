"""Atrous spatial pyramid pooling (DeepLab v3, Chen et al. 2017 §3.3), in the CE2P / CorrPM form.

CorrPM §3.2 (parsing encoder; released ``networks/model.py``): on the last backbone feature, parallel
branches — image pooling (global average → conv1x1 → BN-act → bilinear back, ``align_corners=True``),
conv1x1, and one dilated conv3x3 per rate — each with ``branch_channels`` outputs and BN-act, are
concatenated and projected by conv1x1 → BN-act → Dropout2d. Parsing R-CNN's GCE reuses it with its own
rates and widths.

Branch order (pool, 1×1, rates...) follows CE2P's ``ASPPModule`` so the projection's input channels
line up with the released checkpoints.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from humanparse.models.blocks.norm import LEAKY_SLOPE, ConvNormAct


class ImagePooling(nn.Module):
    """Global average pool → conv1x1 → BN-act → bilinear resize to the input's size.

    Bilinear resizing of a 1×1 map (with or without ``align_corners``) is a broadcast, so it is done
    with ``expand``.

    Its BatchNorm sees one value per channel and sample: training with a (per-process, unsynchronised)
    batch of one sample is undefined there, as for every DeepLab v3 image-pooling branch.
    """

    def __init__(
        self, in_channels: int, out_channels: int, act: str = "leaky_relu", slope: float = LEAKY_SLOPE
    ):
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.conv = ConvNormAct(in_channels, out_channels, 1, act=act, slope=slope)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(self.pool(x)).expand(-1, -1, *x.shape[-2:])


class ASPP(nn.Module):
    """ASPP head: ``in_channels`` → ``out_channels`` at the same resolution.

    Args:
        in_channels: backbone channels (2048 for ResNet-101).
        branch_channels: width of every branch (CorrPM: 256).
        out_channels: width after the projection (CorrPM: 512).
        rates: dilation rates of the conv3x3 branches (CorrPM: 12, 24, 36 at output stride 16).
        image_pooling: include the image-pooling branch.
        dropout: Dropout2d probability after the projection (CorrPM: 0.1).
        act / slope: activation after every BN (InPlace-ABN: LeakyReLU 0.01).
    """

    def __init__(
        self,
        in_channels: int,
        branch_channels: int = 256,
        out_channels: int = 512,
        rates: Sequence[int] = (12, 24, 36),
        image_pooling: bool = True,
        dropout: float = 0.1,
        act: str = "leaky_relu",
        slope: float = LEAKY_SLOPE,
    ):
        super().__init__()
        branches: list[nn.Module] = []
        if image_pooling:
            branches.append(ImagePooling(in_channels, branch_channels, act, slope))
        branches.append(ConvNormAct(in_channels, branch_channels, 1, act=act, slope=slope))
        branches += [
            ConvNormAct(in_channels, branch_channels, 3, dilation=int(r), act=act, slope=slope) for r in rates
        ]
        self.branches = nn.ModuleList(branches)
        self.project = nn.Sequential(
            ConvNormAct(branch_channels * len(branches), out_channels, 1, act=act, slope=slope),
            nn.Dropout2d(dropout),
        )
        self.rates = tuple(int(r) for r in rates)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.project(torch.cat([b(x) for b in self.branches], dim=1))
