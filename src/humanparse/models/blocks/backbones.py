"""Dilated ResNets from timm as multi-level feature extractors (CE2P / CorrPM / PGN backbone).

CE2P, CorrPM and PGN run a ResNet-101 with the deep 3×3 stem (64-64-128) at output stride 16 (or 8):
timm's ``resnet101s`` is that network (``resnet101d`` is not: its stem is 32-32-64 and it downsamples
shortcuts by average pooling). timm turns the strides of the last stages into dilations, but — like
torchvision — gives the *first* block of a dilated stage the previous stage's dilation; the released
CE2P/CorrPM code runs every block of the stage at its dilation (multi-grid 1, 1, 1).
:class:`DilatedResNet` corrects that block.

Pretrained weights (``pretrained``):

* ``None``: random initialisation;
* ``imagenet``: the model's default timm weights (``resnet101s`` → ``resnet101s.gluon_in1k``), or any timm
  pretrained tag (``gluon_in1k``); downloads fail fast offline (:mod:`humanparse.models.pretrained`);
* a local file: a timm-format state dict, or CE2P's ``resnet101-imagenet.pth`` (the checkpoint CorrPM
  starts from), whose stem keys are mapped by :func:`ce2p_to_timm`.
"""

from __future__ import annotations

import logging

import timm
import torch
from torch import nn

from humanparse.models.pretrained import is_local_file, load_into, require_download

log = logging.getLogger(__name__)

# dilation of (layer1, layer2, layer3, layer4) for each output stride
STAGE_DILATIONS = {32: (1, 1, 1, 1), 16: (1, 1, 1, 2), 8: (1, 1, 2, 4)}

# CE2P / CorrPM ResNet stem names → timm deep-stem names
_CE2P_STEM = {
    "conv1.": "conv1.0.",
    "bn1.": "conv1.1.",
    "conv2.": "conv1.3.",
    "bn2.": "conv1.4.",
    "conv3.": "conv1.6.",
    "bn3.": "bn1.",
}


def ce2p_to_timm(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename a CE2P-style deep-stem ResNet state dict (``conv1``/``bn1``/``conv2``/``bn2``/``conv3``/``bn3``
    stem, as in ``resnet101-imagenet.pth``) to timm's ``resnet*s`` names; ``fc`` is dropped. Other state
    dicts are returned unchanged."""
    strip = [
        k.split(".", 1)[1] if k.startswith(("module.", "backbone.", "encoder.", "model.")) else k
        for k in state
    ]
    if not ("conv2.weight" in strip and "bn3.weight" in strip and "conv1.0.weight" not in strip):
        return state
    out = {}
    for key, value in zip(strip, state.values()):
        if key.startswith("fc."):
            continue
        for old, new in _CE2P_STEM.items():
            if key.startswith(old):
                key = new + key[len(old) :]
                break
        out[key] = value
    return out


def dilate_first_blocks(net: nn.Module, output_stride: int) -> None:
    """Give every 3×3 conv in the first block of each dilated stage that stage's dilation (in place)."""
    for i, d in enumerate(STAGE_DILATIONS[output_stride]):
        stage = getattr(net, f"layer{i + 1}")
        if d == 1:
            continue
        for m in stage[0].modules():
            if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3):
                if m.stride != (1, 1):
                    raise ValueError(
                        f"layer{i + 1}[0] still has a strided 3x3 conv; expected a dilated stage"
                    )
                m.dilation, m.padding = (d, d), (d, d)


class DilatedResNet(nn.Module):
    """Stem and stages of a timm ResNet returning ``[x2, x3, x4, x5]`` (layer1..layer4 outputs).

    Args:
        name: timm ResNet name (``resnet101s`` for CE2P/CorrPM/PGN; ``resnet50s``, ``resnet18d``, ...).
        output_stride: 8, 16 or 32; every block of a dilated stage runs at the stage's dilation.
        pretrained: see the module docstring.
        **kwargs: overrides of timm's ``ResNet`` arguments (``layers``, ``channels``, ``stem_width``, ...),
            e.g. tiny networks for tests.

    ``channels`` and ``reductions`` give the four outputs' widths and strides.
    """

    def __init__(
        self, name: str = "resnet101s", output_stride: int = 16, pretrained: str | None = None, **kwargs
    ):
        super().__init__()
        if output_stride not in STAGE_DILATIONS:
            raise ValueError(f"output_stride must be one of {sorted(STAGE_DILATIONS)}, got {output_stride}")
        by_name = pretrained is not None and not is_local_file(pretrained)
        model_name = name
        if by_name:
            require_download(f"backbone {name}", str(pretrained))
            if pretrained != "imagenet":
                model_name = f"{name}.{pretrained}"
        body = timm.create_model(
            model_name,
            pretrained=by_name,
            num_classes=0,
            global_pool="",
            output_stride=output_stride,
            **dict(kwargs),
        )
        if not hasattr(body, "layer4"):
            raise ValueError(f"backbone {name!r} is not a timm ResNet (no layer1..layer4)")
        dilate_first_blocks(body, output_stride)
        if pretrained is not None and not by_name:
            load_into(body, pretrained, key_map=ce2p_to_timm)
        self.body = body
        self.name = name
        self.output_stride = output_stride
        info = body.feature_info[1:]  # stem (act1) first, then layer1..layer4
        self.channels = [int(f["num_chs"]) for f in info]
        self.reductions = [min(4 * 2**i, output_stride) for i in range(4)]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        b = self.body
        x = b.maxpool(b.act1(b.bn1(b.conv1(x))))
        feats = []
        for stage in (b.layer1, b.layer2, b.layer3, b.layer4):
            x = stage(x)
            feats.append(x)
        return feats
