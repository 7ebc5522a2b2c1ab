"""DeepLab v3+ baseline: head configuration, outputs, pretrained weights from a file, offline failure."""

from __future__ import annotations

import socket

import pytest
import torch

from humanparse.models import pretrained as pt
from humanparse.models.baseline import DeepLabV3Plus

TINY = "tu-mobilenetv3_small_050"


def test_outputs_and_paper_head_settings():
    m = DeepLabV3Plus(num_classes=20, encoder=TINY, decoder_channels=32).eval()
    out = m(torch.randn(2, 3, 64, 48))
    assert set(out) == {"seg"} and out["seg"].shape == (2, 20, 64, 48)
    aspp = m.net.decoder.aspp[0]
    rates = sorted(
        mod.dilation[0] for mod in aspp.modules() if isinstance(mod, torch.nn.Conv2d) and mod.dilation[0] > 1
    )
    assert rates == [6, 12, 18]
    assert m.net.decoder.block1[0].out_channels == 48  # low-level projection


def test_pretrained_weights_from_a_local_file(tmp_path):
    src = DeepLabV3Plus(num_classes=7, encoder=TINY, decoder_channels=32)
    path = tmp_path / "enc.pth"
    torch.save({"state_dict": {f"module.{k}": v for k, v in src.encoder.state_dict().items()}}, path)
    dst = DeepLabV3Plus(num_classes=7, encoder=TINY, decoder_channels=32, pretrained=str(path))
    for (k, a), (_, b) in zip(src.encoder.state_dict().items(), dst.encoder.state_dict().items()):
        assert torch.equal(a, b), k


def test_mismatched_or_foreign_weight_files_are_errors(tmp_path):
    bad = tmp_path / "bad.pth"
    torch.save({"foo.weight": torch.zeros(3)}, bad)
    with pytest.raises(pt.PretrainedWeightsError, match="no tensor name matches"):
        DeepLabV3Plus(num_classes=7, encoder=TINY, pretrained=str(bad))
    with pytest.raises(pt.PretrainedWeightsError, match="does not exist"):
        DeepLabV3Plus(num_classes=7, encoder=TINY, pretrained=str(tmp_path / "missing.pth"))


def test_named_weights_fail_fast_and_clearly_when_offline(monkeypatch):
    calls = []

    def refuse(addr, timeout=None, **kw):
        calls.append(addr)
        raise OSError("network unreachable (test)")

    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    with pytest.raises(pt.PretrainedWeightsError, match=r"model.pretrained=/path/to/weights.pth"):
        DeepLabV3Plus(num_classes=20, encoder=TINY, pretrained="imagenet")
    assert calls, "the reachability probe must run before any download"
