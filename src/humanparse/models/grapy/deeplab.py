"""DeepLab v3+ on the modified aligned Xception-65, as the Grapy-ML paper uses it (He et al., AAAI 2020,
§"Implementation details": "DeepLab v3+ with Xception, output stride 16"; released code
``Charleshhy/Grapy-ML networks/deeplab_xception_synBN.py``).

Shapes at a 512×512 input (output stride 16)::

    XceptionBackbone   timm xception65 (entry, 16 middle blocks, exit at dilation 2)   2048 @ 32², low 256 @ 128²
    SeparableASPP      1×1, separable 3×3 at rates 6/12/18, image pooling → concat 1280 → 1×1 → 256 @ 32²
    Decoder            ×4 bilinear (align_corners) ⊕ 1×1(low → 48) → two separable 3×3 (304→256, 256→256) = f0
    classifier         1×1 256 → C = y (the raw / "aux" logits of Grapy-ML), at 1/4 of the input

timm's ``xception65`` has the released backbone's parameter shapes (37,867,312 parameters without its
classifier) and, at output stride 16, its dilations: the exit block runs at stride 1 and dilation 1, the
final 1536/1536/2048 separable convs at dilation 2. The released code taps the low-level feature inside
entry block 2, *before* the ReLU that precedes its strided separable conv (it clones the tensor before the
in-place ReLU); :class:`XceptionBackbone` taps the same tensor (timm's ``features_only`` taps it after
that ReLU). The released BatchNorms use eps 1e-5 (timm: 1e-3); ``bn_eps`` sets it.

Separable convs of the ASPP and decoder are depthwise 3×3-BN-ReLU-pointwise 1×1-BN-ReLU without biases
(timm's ``SeparableConv2d``); no dropout anywhere. Without the classifier this head on Xception-65 has
41,050,016 parameters, the released ``DeepLabv3_plus`` minus its classifier.

Several label sets (Grapy-ML mutual learning, released ``DeepLabv3_plus_multi_set``): ``num_classes`` may be
a list, one classifier per dataset; ``forward(images, dataset_idx)`` uses the classifier of that dataset.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import timm
import torch
import torch.nn.functional as F
from timm.models.xception_aligned import SeparableConv2d
from torch import nn

from humanparse.models.pretrained import is_local_file, load_into, require_download

log = logging.getLogger(__name__)


def conv_bn_relu(in_channels: int, out_channels: int) -> nn.Sequential:
    """conv1x1 (no bias) → BN → ReLU."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 1, bias=False), nn.BatchNorm2d(out_channels), nn.ReLU()
    )


def separable_conv(in_channels: int, out_channels: int, dilation: int = 1) -> SeparableConv2d:
    """Depthwise 3×3 (dilated) → BN → ReLU → pointwise 1×1 → BN → ReLU, no biases (DeepLab v3+ §3.2)."""
    return SeparableConv2d(in_channels, out_channels, 3, dilation=dilation, act_layer=nn.ReLU)


class XceptionBackbone(nn.Module):
    """timm's modified aligned Xception-65 returning ``(high, low)``: the last feature (2048 channels at the
    output stride) and the stride-4 feature of entry block 2 before its strided conv (256 channels).

    Args:
        name: timm model (``xception65``; ``xception41``/``xception71`` also work).
        output_stride: 8, 16 or 32 (paper: 16).
        pretrained: ``None``, ``imagenet`` (timm's default weights), a timm tag (``tf_in1k``: the TF DeepLab
            ImageNet weights, RGB input in [−1, 1]), or a
            local state-dict file with timm's keys.
        bn_eps: BatchNorm eps (released code 1e-5, timm/TF 1e-3).
        block_cfg: replaces timm's block list (tiny networks for tests); the low-level tap stays inside the
            second strided block.
    """

    def __init__(
        self,
        name: str = "xception65",
        output_stride: int = 16,
        pretrained: str | None = None,
        bn_eps: float = 1e-5,
        block_cfg: Sequence[dict] | None = None,
    ):
        super().__init__()
        by_name = pretrained is not None and not is_local_file(pretrained)
        model_name = name
        if by_name:
            require_download(f"backbone {name}", str(pretrained))
            if pretrained != "imagenet":
                model_name = f"{name}.{pretrained}"
        kwargs = {} if block_cfg is None else {"block_cfg": [dict(b) for b in block_cfg]}
        body = timm.create_model(
            model_name,
            pretrained=by_name,
            num_classes=0,
            global_pool="",
            output_stride=output_stride,
            **kwargs,
        )
        if pretrained is not None and not by_name:
            load_into(body, pretrained)
        for m in body.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.eps = bn_eps
        if len(body.feature_ends) < 3:
            raise ValueError(
                "the Xception needs at least two strided entry blocks (the low-level tap is in the second)"
            )
        self.tap_block = body.feature_ends[1]  # the stride-4 entry block (entry block 2)
        self.body = body
        self.output_stride = output_stride
        tap = body.blocks[self.tap_block]
        self.low_channels = int(tap.stack.conv2.conv_pw.out_channels)
        self.channels = int(body.num_features)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        b = self.body
        x = b.stem(x)
        low = None
        for i, block in enumerate(b.blocks):
            if i != self.tap_block:
                x = block(x)
                continue
            s = block.stack
            low = s.conv2(s.act2(s.conv1(s.act1(x))))  # before block 2's ReLU + strided separable conv
            x = block._residual(s.conv3(F.relu(low)), x)
        return x, low


class SeparableASPP(nn.Module):
    """DeepLab v3+ ASPP (released ``aspp1..4`` + ``global_avg_pool``): conv1x1-BN-ReLU, separable 3×3 at each
    rate, image pooling (GAP → conv1x1-BN-ReLU → broadcast back; bilinear resizing of a 1×1 map is a
    broadcast), concatenated in that order → conv1x1-BN-ReLU. No dropout."""

    def __init__(self, in_channels: int = 2048, channels: int = 256, rates: Sequence[int] = (6, 12, 18)):
        super().__init__()
        self.conv1x1 = conv_bn_relu(in_channels, channels)
        self.atrous = nn.ModuleList(separable_conv(in_channels, channels, int(r)) for r in rates)
        self.image_pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), conv_bn_relu(in_channels, channels))
        self.project = conv_bn_relu(channels * (len(rates) + 2), channels)
        self.rates = tuple(int(r) for r in rates)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = self.image_pool(x).expand(-1, -1, *x.shape[-2:])
        return self.project(torch.cat([self.conv1x1(x), *(a(x) for a in self.atrous), pooled], dim=1))


class Decoder(nn.Module):
    """DeepLab v3+ decoder: ASPP output ×4 (bilinear, align_corners) ⊕ conv1x1-BN-ReLU(low → 48), then two
    separable 3×3 convs (304 → 256 → 256). Output f0 at stride 4."""

    def __init__(
        self,
        low_channels: int = 256,
        aspp_channels: int = 256,
        channels: int = 256,
        low_level_channels: int = 48,
    ):
        super().__init__()
        self.low_project = conv_bn_relu(low_channels, low_level_channels)
        self.convs = nn.Sequential(
            separable_conv(aspp_channels + low_level_channels, channels), separable_conv(channels, channels)
        )

    def forward(self, x: torch.Tensor, low: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, size=low.shape[-2:], mode="bilinear", align_corners=True)
        return self.convs(torch.cat([x, self.low_project(low)], dim=1))


def as_list(num_classes: int | Sequence[int]) -> list[int]:
    return [int(num_classes)] if isinstance(num_classes, int) else [int(c) for c in num_classes]


class DeepLabV3PlusXception(nn.Module):
    """DeepLab v3+ (Chen et al., ECCV 2018) on Xception-65: the "DeepLab v3+" rows of Grapy-ML Tables 1–4 and
    Grapy-ML's stage 1.

    Args:
        num_classes: C, background included, or one C per dataset (mutual learning: one classifier each).
        backbone / pretrained / output_stride / bn_eps / block_cfg: see :class:`XceptionBackbone`.
        atrous_rates: ASPP rates (6, 12, 18 at output stride 16).
        aspp_channels / decoder_channels / low_level_channels: 256 / 256 / 48.
        datasets / init_from / init_datasets: dataset names of the classifiers, and a checkpoint to start from
            (:func:`humanparse.models.grapy.released.load_weights`; released ``DeepLabv3_plus`` files too).

    ``forward(images, dataset_idx=0)`` returns ``{"seg": logits}`` at stride 4 (the task and the loss
    upsample them) and ``{"features": f0}`` when ``return_features``.
    """

    def __init__(
        self,
        num_classes: int | Sequence[int],
        backbone: str = "xception65",
        pretrained: str | None = None,
        output_stride: int = 16,
        atrous_rates: Sequence[int] = (6, 12, 18),
        aspp_channels: int = 256,
        decoder_channels: int = 256,
        low_level_channels: int = 48,
        bn_eps: float = 1e-5,
        block_cfg: Sequence[dict] | None = None,
        datasets: Sequence[str] | None = None,
        init_from: str | None = None,
        init_datasets: Sequence[str] | None = None,
    ):
        super().__init__()
        self.num_classes = as_list(num_classes)
        self.datasets = (
            list(datasets) if datasets is not None else [str(i) for i in range(len(self.num_classes))]
        )
        self.backbone = XceptionBackbone(backbone, output_stride, pretrained, bn_eps, block_cfg)
        self.aspp = SeparableASPP(self.backbone.channels, aspp_channels, atrous_rates)
        self.decoder = Decoder(
            self.backbone.low_channels, aspp_channels, decoder_channels, low_level_channels
        )
        self.classifiers = nn.ModuleList(nn.Conv2d(decoder_channels, c, 1) for c in self.num_classes)
        for m in (*self.aspp.modules(), *self.decoder.modules()):
            if isinstance(m, nn.BatchNorm2d):
                m.eps = bn_eps
        self.channels = decoder_channels
        if init_from is not None:
            from humanparse.models.grapy.released import load_weights

            load_weights(
                self, init_from, self.datasets, None if init_datasets is None else list(init_datasets), ""
            )

    def trunk_parameters(self) -> int:
        """Parameters without the classifiers (41,050,016 on Xception-65)."""
        return sum(p.numel() for n, p in self.named_parameters() if not n.startswith("classifiers."))

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """f0: the decoder's 256-channel feature at stride 4."""
        high, low = self.backbone(images)
        return self.decoder(self.aspp(high), low)

    def forward(self, images: torch.Tensor, dataset_idx: int | torch.Tensor = 0) -> dict[str, torch.Tensor]:
        d = dataset_index(dataset_idx, len(self.classifiers))
        return {"seg": self.classifiers[d](self.features(images))}


def dataset_index(dataset_idx: int | torch.Tensor | Sequence[int], num_datasets: int) -> int:
    """One dataset per batch (Grapy-ML mutual learning): ``dataset_idx`` is an int, or a tensor/list whose
    entries must all be equal."""
    if isinstance(dataset_idx, torch.Tensor):
        values = dataset_idx.flatten().unique().tolist()
    elif isinstance(dataset_idx, (list, tuple)):
        values = sorted(set(int(v) for v in dataset_idx))
    else:
        values = [int(dataset_idx)]
    if len(values) != 1:
        raise ValueError(f"a batch must come from one dataset (mutual learning), got dataset_idx {values}")
    d = int(values[0])
    if not 0 <= d < num_datasets:
        raise ValueError(f"dataset_idx {d} out of range: the network has heads for {num_datasets} dataset(s)")
    return d
