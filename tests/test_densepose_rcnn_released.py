"""detectron2 DensePose weights: the key map fills the DensePose head (decoder, 8 convs, predictors) and the
converted head computes detectron2's head function on fixed features; the box classifier / regressor and the
trunk names; the model-zoo pickle reader only rebuilds numpy arrays."""

from __future__ import annotations

import os
import pickle

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torchvision.ops import roi_align

from humanparse.models.densepose import DensePoseRCNN
from humanparse.models.densepose.released import (
    convert_detectron2,
    load_detectron2,
    read_detectron2_pkl,
    rename,
)


def _d2_head(
    g: torch.Generator, decoder: bool, k_coarse: int, c: int = 8, dim: int = 16
) -> dict[str, np.ndarray]:
    """Random tensors under detectron2's names (Decoder, DensePoseV1ConvXHead, DensePoseChartPredictor)."""
    sd = {}

    def add(name, *shape):
        sd[name] = (torch.randn(*shape, generator=g) * 0.2).numpy()

    if decoder:
        for level, n in ((2, 1), (3, 1), (4, 2), (5, 3)):
            for j in range(n):
                add(f"roi_heads.decoder.p{level}.{2 * j}.weight", c, c, 3, 3)
                add(f"roi_heads.decoder.p{level}.{2 * j}.bias", c)
        add("roi_heads.decoder.predictor.weight", c, c, 1, 1)
        add("roi_heads.decoder.predictor.bias", c)
    for k in range(1, 3):
        add(f"roi_heads.densepose_head.body_conv_fcn{k}.weight", dim, c if k == 1 else dim, 3, 3)
        add(f"roi_heads.densepose_head.body_conv_fcn{k}.bias", dim)
    for name, out in (
        ("ann_index_lowres", k_coarse),
        ("index_uv_lowres", 25),
        ("u_lowres", 25),
        ("v_lowres", 25),
    ):
        add(f"roi_heads.densepose_predictor.{name}.weight", dim, out, 4, 4)
        add(f"roi_heads.densepose_predictor.{name}.bias", out)
    return sd


def _d2_head_function(sd, feats: list[torch.Tensor], boxes: torch.Tensor, decoder: bool, res: int) -> dict:
    """detectron2's DensePose head written from its modules: Decoder (conv + ReLU [+ ×2 bilinear] per level,
    summed, 1×1), ROIAlignV2 (aligned) at stride 4 — or RoIAlign on one FPN level here for the legacy
    preset —, 2 × (conv3x3 + ReLU), ConvTranspose2d(k4, s2, p1) + ×2 bilinear."""
    t = {k: torch.as_tensor(v) for k, v in sd.items()}
    if decoder:
        x = None
        for level, n in ((2, 1), (3, 1), (4, 2), (5, 3)):
            y = feats[level - 2]
            for j in range(n):
                y = F.relu(
                    F.conv2d(
                        y,
                        t[f"roi_heads.decoder.p{level}.{2 * j}.weight"],
                        t[f"roi_heads.decoder.p{level}.{2 * j}.bias"],
                        padding=1,
                    )
                )
                if level != 2:
                    y = F.interpolate(y, scale_factor=2, mode="bilinear", align_corners=False)
            x = y if x is None else x + y
        x = F.conv2d(x, t["roi_heads.decoder.predictor.weight"], t["roi_heads.decoder.predictor.bias"])
        x = roi_align(x, [boxes], res, spatial_scale=0.25, sampling_ratio=2, aligned=True)
    else:
        x = roi_align(feats[0], [boxes], res, spatial_scale=0.25, sampling_ratio=2, aligned=False)
    for k in range(1, 3):
        x = F.relu(
            F.conv2d(
                x,
                t[f"roi_heads.densepose_head.body_conv_fcn{k}.weight"],
                t[f"roi_heads.densepose_head.body_conv_fcn{k}.bias"],
                padding=1,
            )
        )
    out = {}
    for name, key in (
        ("ann_index_lowres", "coarse"),
        ("index_uv_lowres", "fine"),
        ("u_lowres", "u"),
        ("v_lowres", "v"),
    ):
        y = F.conv_transpose2d(
            x,
            t[f"roi_heads.densepose_predictor.{name}.weight"],
            t[f"roi_heads.densepose_predictor.{name}.bias"],
            stride=2,
            padding=1,
        )
        out[key] = F.interpolate(y, scale_factor=2, mode="bilinear", align_corners=False)
    return out


@pytest.mark.parametrize("preset,k_coarse,res", [("detectron2", 2, 8), ("original", 15, 6)])
def test_converted_head_computes_detectron2s_head(tmp_path, preset, k_coarse, res):
    g = torch.Generator().manual_seed(0)
    sd = _d2_head(g, preset == "detectron2", k_coarse)
    path = tmp_path / "model_final.pkl"
    path.write_bytes(pickle.dumps({"model": sd, "__author__": "test"}))
    # the legacy head pools P2..P5 with the level assignment: RoIs of P2 size check it on one level
    net = DensePoseRCNN(
        {"preset": preset, "head_dim": 16, "num_convs": 2, "pooler_resolution": res},
        backbone="resnet10",
        resnet_kwargs={"block": "basic", "layers": [1, 1, 1, 1]},
        fpn_channels=8,
        norm="bn",
    )
    missing = load_detectron2(net, path)
    assert not any(k.startswith("roi_heads.branches.densepose") for k in missing)
    feats = {str(i): torch.randn(1, 8, 64 // 2**i, 64 // 2**i, generator=g) for i in range(4)}
    boxes = torch.tensor(
        [[10.3, 20.7, 60.1, 90.4], [100.0, 30.0, 140.0, 120.0]]
    )  # small: P2 under FPN assignment
    net.eval()
    with torch.no_grad():
        ours = net.branches["densepose"].forward_rois(feats, [boxes], [(256, 256)])
        ref = _d2_head_function(sd, [feats[str(i)] for i in range(4)], boxes, preset == "detectron2", res)
    for key in ("coarse", "fine", "u", "v"):
        assert ours[key].shape == ref[key].shape
        assert torch.allclose(ours[key], ref[key], atol=1e-5), key


def test_box_predictor_and_trunk_names():
    g = torch.Generator().manual_seed(1)
    cls_w, box_w = torch.randn(2, 1024, generator=g), torch.randn(4, 1024, generator=g)
    out = convert_detectron2(
        {
            "roi_heads.box_predictor.cls_score.weight": cls_w,
            "roi_heads.box_predictor.bbox_pred.weight": box_w,
            "pixel_mean": torch.zeros(3),
        }
    )
    assert torch.equal(out["roi_heads.box_predictor.cls_score.weight"], cls_w[[1, 0]])
    bw = out["roi_heads.box_predictor.bbox_pred.weight"]
    assert bw.shape == (8, 1024) and torch.equal(bw[4:], box_w) and not bw[:4].any()
    assert (
        rename("backbone.bottom_up.res3.1.conv2.norm.running_var") == "backbone.body.layer2.1.bn2.running_var"
    )
    assert rename("backbone.bottom_up.res2.0.shortcut.weight") == "backbone.body.layer1.0.downsample.0.weight"
    assert rename("backbone.fpn_output5.bias") == "backbone.fpn.layer_blocks.3.0.bias"
    assert rename("proposal_generator.rpn_head.anchor_deltas.weight") == "rpn.head.bbox_pred.weight"
    # detectron2's R50-FPN names (stem, res2..res5 with 3 / 4 / 6 / 3 bottlenecks, FPN, RPN, 2-FC box head) map
    # one-to-one onto our body's tensors
    norm = ("weight", "bias", "running_mean", "running_var")
    d2 = ["backbone.bottom_up.stem.conv1.weight"] + [f"backbone.bottom_up.stem.conv1.norm.{n}" for n in norm]
    for stage, blocks in ((2, 3), (3, 4), (4, 6), (5, 3)):
        for b in range(blocks):
            convs = ["conv1", "conv2", "conv3"] + (["shortcut"] if b == 0 else [])
            for c in convs:
                d2 += [f"backbone.bottom_up.res{stage}.{b}.{c}.weight"]
                d2 += [f"backbone.bottom_up.res{stage}.{b}.{c}.norm.{n}" for n in norm]
    for level in range(2, 6):
        d2 += [
            f"backbone.fpn_{kind}{level}.{p}" for kind in ("lateral", "output") for p in ("weight", "bias")
        ]
    for m in (
        "proposal_generator.rpn_head.conv",
        "proposal_generator.rpn_head.objectness_logits",
        "proposal_generator.rpn_head.anchor_deltas",
        "roi_heads.box_head.fc1",
        "roi_heads.box_head.fc2",
        "roi_heads.box_predictor.cls_score",
        "roi_heads.box_predictor.bbox_pred",
    ):
        d2 += [f"{m}.weight", f"{m}.bias"]
    own = DensePoseRCNN({"preset": "detectron2"}).state_dict()
    body = {k for k in own if k.startswith(("backbone.", "rpn.", "roi_heads.box_"))}
    mapped = [rename(k) for k in d2]
    assert len(set(mapped)) == len(d2) and set(mapped) == body
    with pytest.raises(KeyError, match="without a mapping"):
        convert_detectron2({"roi_heads.mask_head.mask_fcn1.weight": torch.zeros(1)})


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_pickle_reader_only_rebuilds_arrays(tmp_path):
    good = tmp_path / "good.pkl"
    good.write_bytes(pickle.dumps({"model": {"a": np.arange(3, dtype=np.float32)}}))
    assert read_detectron2_pkl(good)["a"].tolist() == [0.0, 1.0, 2.0]
    bad = tmp_path / "bad.pkl"
    bad.write_bytes(pickle.dumps({"model": {"a": _Evil()}}))
    with pytest.raises(ValueError, match="bad.pkl.*refusing to load"):
        read_detectron2_pkl(bad)
