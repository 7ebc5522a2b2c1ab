"""Shared fixtures of the Grapy-ML tests: the model yaml's hierarchy tables and a tiny network."""

from __future__ import annotations

from pathlib import Path

from omegaconf import OmegaConf

CONF = Path(__file__).resolve().parents[2] / "conf"
HIERARCHY = OmegaConf.to_container(OmegaConf.load(CONF / "model" / "grapy.yaml").hierarchy)
ML = ["cihp", "pascal_person_part", "atr"]
# a tiny Xception (timm block list: 3 strided entry blocks, 1 middle, exit) and narrow heads
TINY = dict(
    block_cfg=[
        dict(in_chs=64, out_chs=16, stride=2),
        dict(in_chs=16, out_chs=24, stride=2),
        dict(in_chs=24, out_chs=32, stride=2),
        dict(in_chs=32, out_chs=32, stride=1),
        dict(in_chs=32, out_chs=(32, 48, 48), stride=2),
        dict(in_chs=48, out_chs=(48, 48, 64), stride=1, no_skip=True, start_with_relu=False),
    ],
    aspp_channels=16,
    decoder_channels=16,
    low_level_channels=8,
    graph_channels=16,
)
