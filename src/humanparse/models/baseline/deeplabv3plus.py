"""DeepLab v3+ baseline (Grapy-ML stage 1, the model of its DeepLab v3+ rows) on segmentation-models-pytorch.

Built on ``smp.DeepLabV3Plus`` with the papers' settings where smp exposes them: atrous rates 6/12/18,
output stride 16, 256-channel ASPP/decoder, 48-channel low-level projection, bilinear ×4 output, any
smp/timm encoder (``tu-xception65`` = the papers' modified aligned Xception-65, ``resnet50``/``resnet101``,
and tiny ones such as ``tu-mobilenetv3_small_050`` for tests and the demo).

Remaining differences from the papers' head (smp's design, not configurable there):

* smp adds one separable conv3x3-BN-ReLU after the ASPP projection;
* smp's decoder has one separable 3×3 conv after the concatenation, the papers' has two;
* smp's ASPP projection is followed by dropout (``aspp_dropout``, paper value unstated; default here 0.1,
  smp's own default is 0.5);
* the classifier is smp's segmentation head (conv3x3 → C) instead of conv1x1 → C.

Runs made with this model are labelled ``deeplabv3plus_smp`` in their metadata.
"""

from __future__ import annotations

from collections.abc import Sequence

import segmentation_models_pytorch as smp
import torch
from torch import nn

from humanparse.models.pretrained import is_local_file, load_into, require_download


class DeepLabV3Plus(nn.Module):
    """DeepLab v3+ (Chen et al., ECCV 2018) as used for the "DeepLab v3+" rows of Grapy-ML Tables 1–4.

    Args:
        num_classes: C, background included.
        encoder: smp encoder name (``tu-<timm name>`` for timm models).
        pretrained: ``None``, a weight name known to smp (``imagenet``) or a local state-dict file of
            the encoder.
        output_stride: 8 or 16.
        atrous_rates: ASPP rates (papers: 6, 12, 18 at OS 16).
        decoder_channels: ASPP / decoder width (256).
        aspp_separable: depthwise-separable ASPP convs (the papers' Xception DeepLab v3+ uses them).
        aspp_dropout: dropout after the ASPP projection.

    ``forward`` returns ``{"seg": logits}`` at the input resolution.
    """

    variant = "deeplabv3plus_smp"

    def __init__(
        self,
        num_classes: int,
        encoder: str = "resnet50",
        pretrained: str | None = None,
        output_stride: int = 16,
        atrous_rates: Sequence[int] = (6, 12, 18),
        decoder_channels: int = 256,
        aspp_separable: bool = True,
        aspp_dropout: float = 0.1,
        in_channels: int = 3,
    ):
        super().__init__()
        by_name = pretrained is not None and not is_local_file(pretrained)
        if by_name:
            require_download(f"encoder {encoder}", str(pretrained))
        self.net = smp.DeepLabV3Plus(
            encoder_name=encoder,
            encoder_weights=pretrained if by_name else None,
            encoder_output_stride=output_stride,
            decoder_channels=decoder_channels,
            decoder_atrous_rates=tuple(atrous_rates),
            decoder_aspp_separable=aspp_separable,
            decoder_aspp_dropout=aspp_dropout,
            in_channels=in_channels,
            classes=num_classes,
        )
        if pretrained is not None and not by_name:
            load_into(self.net.encoder, pretrained)
        self.num_classes = num_classes

    @property
    def encoder(self) -> nn.Module:
        return self.net.encoder

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"seg": self.net(images)}
