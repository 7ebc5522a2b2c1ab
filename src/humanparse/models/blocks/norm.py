"""Normalisation + activation, the PyTorch stand-in for InPlace-ABN(Sync) of the released code.

The released FCN parsers (CE2P, CorrPM, ...) normalise with ``InPlaceABNSync``: batch norm followed by
LeakyReLU(0.01), or by nothing when built with ``activation='none'``. humanparse uses plain
``nn.BatchNorm2d`` — which Lightning's ``trainer.sync_batchnorm`` (or, on CPU,
:mod:`humanparse.utils.syncbn`) turns into synchronised BN — followed by the same activation, so no
custom CUDA extension is needed. One difference is in the parametrisation, not the function: CE2P's
InPlace-ABN scales by ``|w| + eps`` (``libs/src/bn.cu``), so released weights are converted to that value
when loaded (:mod:`humanparse.models.released`).
"""

from __future__ import annotations

from torch import nn

ACTIVATIONS = ("leaky_relu", "relu", "none")
LEAKY_SLOPE = 0.01  # InPlace-ABN's default slope


def activation(kind: str = "leaky_relu", slope: float = LEAKY_SLOPE) -> nn.Module:
    """``leaky_relu`` (InPlace-ABN's default), ``relu`` (torchvision ResNets, the SimpleBaseline pose
    deconvolutions) or ``none`` (InPlace-ABN with ``activation='none'``)."""
    if kind == "leaky_relu":
        return nn.LeakyReLU(slope, inplace=True)
    if kind == "relu":
        return nn.ReLU(inplace=True)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"activation must be one of {ACTIVATIONS}, got {kind!r}")


class NormAct(nn.Sequential):
    """``BatchNorm2d`` then an activation: InPlace-ABN(Sync) without the extension."""

    def __init__(self, channels: int, act: str = "leaky_relu", slope: float = LEAKY_SLOPE):
        super().__init__(nn.BatchNorm2d(channels), activation(act, slope))


class ConvNormAct(nn.Sequential):
    """``Conv2d`` (bias-free, "same" padding) → ``BatchNorm2d`` → activation."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 1,
        dilation: int = 1,
        stride: int = 1,
        act: str = "leaky_relu",
        slope: float = LEAKY_SLOPE,
    ):
        pad = dilation * (kernel_size - 1) // 2
        super().__init__(
            nn.Conv2d(
                in_channels,
                out_channels,
                kernel_size,
                stride=stride,
                padding=pad,
                dilation=dilation,
                bias=False,
            ),
            nn.BatchNorm2d(out_channels),
            activation(act, slope),
        )
