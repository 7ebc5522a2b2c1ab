"""Building blocks shared by several papers (ASPP, non-local attention, dilated ResNets, norm + activation)."""

from humanparse.models.blocks.aspp import ASPP, ImagePooling
from humanparse.models.blocks.attention import NonLocal2d, dot_product_attention
from humanparse.models.blocks.backbones import DilatedResNet, ce2p_to_timm, dilate_first_blocks
from humanparse.models.blocks.fusion import Projected, concat_conv1x1
from humanparse.models.blocks.norm import ConvNormAct, NormAct, activation

__all__ = [
    "ASPP",
    "ConvNormAct",
    "DilatedResNet",
    "ImagePooling",
    "NonLocal2d",
    "NormAct",
    "activation",
    "ce2p_to_timm",
    "Projected",
    "concat_conv1x1",
    "dilate_first_blocks",
    "dot_product_attention",
]
