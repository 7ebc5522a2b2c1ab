"""Fusing multi-resolution features: "resize all to one size, concatenate, conv1x1" computed cheaply.

Decoders of the FCN parsers (CE2P/CorrPM decoder and edge branch, PGN, Grapy-ML) upsample coarse
features to the finest level, concatenate them and apply a 1×1 convolution. Bilinear resizing acts on
each channel and a 1×1 convolution on each position, both linearly, so they commute:

    conv1x1_W(cat[up(a), b]) = up(W_a · a) + W_b · b        (W = [W_a | W_b] split by input channels)

:func:`concat_conv1x1` computes the right-hand side: every slice of the 1×1 convolution runs at its
feature's own (smaller) resolution and only the projected maps are resized. The result equals the
left-hand side up to float rounding, with the same parameters (a single ``nn.Conv2d`` whose weight is
split on the fly), the same gradients, and no concatenated tensor. For CorrPM at 384² this removes
about 4.5 GMAC per image from the decoder and the edge encoder.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F


def concat_conv1x1(weight: torch.Tensor, bias: torch.Tensor | None, features: Sequence[torch.Tensor],
                   size: tuple[int, int], align_corners: bool) -> torch.Tensor:
    """``F.conv2d(cat([resize(f, size) for f in features]), weight, bias)`` computed per feature.

    ``weight`` is a 1×1 kernel (out, Σ C_i, 1, 1); features are resized bilinearly with
    ``align_corners`` (those already at ``size`` are used as they are).
    """
    splits = [f.shape[1] for f in features]
    if weight.shape[1] != sum(splits) or weight.shape[-2:] != (1, 1):
        raise ValueError(f"1x1 kernel {tuple(weight.shape)} does not match features with {splits} channels")
    out = None
    for w, f in zip(weight.split(splits, dim=1), features):
        y = F.conv2d(f, w)
        if tuple(y.shape[-2:]) != tuple(size):
            y = F.interpolate(y, size=size, mode="bilinear", align_corners=align_corners)
        out = y if out is None else out.add_(y)
    if bias is not None:
        out = out + bias.view(1, -1, 1, 1)
    return out
