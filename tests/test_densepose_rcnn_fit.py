"""A short fit of a tiny DensePose-RCNN on synthetic DensePose-COCO: the losses fall and its GPS AP beats the
trivial predictor that returns every GT box with a constant chart (torso, U = V = 0.5)."""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import DataLoader

from humanparse.data.base import collate_instances
from humanparse.data.densepose_coco import DensePoseCOCODataset
from humanparse.data.pipeline import SamplePipeline
from humanparse.data.transforms import AffineTransform, Compose, Normalize
from humanparse.metrics.densepose import DensePoseMetric
from humanparse.models.densepose import DensePoseRCNN
from humanparse.models.densepose.postprocess import DensePosePostprocess, metric_prediction
from humanparse.synthetic.densepose import generate_densepose_coco

SIZE = 64
TINY = dict(
    backbone="resnet10",
    resnet_kwargs={"block": "basic", "layers": [1, 1, 1, 1]},
    trainable_layers=5,
    norm="bn",
    fpn_channels=16,
    representation_size=64,
    anchor_sizes=(16, 32, 64, 128, 256),
    rpn_pre_nms_top_n_train=200,
    rpn_post_nms_top_n_train=100,
    rpn_pre_nms_top_n_test=100,
    rpn_post_nms_top_n_test=100,
    box_batch_size_per_image=32,
)
HEAD = {"preset": "original", "head_dim": 32, "num_convs": 2, "pooler_resolution": 8}


def _dataset(root, train: bool) -> SamplePipeline:
    tf = Compose([AffineTransform((SIZE, SIZE), scale=(1.0, 1.0), flip_prob=0.0, train=train), Normalize()])
    return SamplePipeline(
        DensePoseCOCODataset(root, "train"), transform=tf, keep_original=False if train else ["dp_persons"]
    )


def _metric() -> DensePoseMetric:
    # the 2018 paper's fixed κ = 0.255, thresholds from 0.2 (AP20/AP30/AP40 reported as well)
    return DensePoseMetric("synthetic", kappa="fixed", min_threshold=0.2, rcp=False)


def _constant_chart(persons: list[dict]) -> dict:
    boxes = np.array([p["bbox"] for p in persons if not p["iscrowd"]], dtype=np.float64).reshape(-1, 4)
    iuv = []
    for _, _, w, h in boxes:
        hw = (max(int(h), 1), max(int(w), 1))
        iuv.append(np.stack([np.ones(hw), np.full(hw, 127), np.full(hw, 127)]).astype(np.uint8))
    return {"bbox": boxes, "scores": np.ones(len(boxes)), "iuv": iuv}


def test_tiny_densepose_rcnn_fits_synthetic_densepose_coco(tmp_path):
    root = tmp_path / "densepose"
    generate_densepose_coco(
        root,
        num_train=8,
        num_val=2,
        num_valminusminival=0,
        image_size=(56, 72),
        seed=1,
        no_dp_prob=0.0,
        crowd_frac=0.0,
    )
    gen = torch.Generator().manual_seed(0)
    loader = DataLoader(
        _dataset(root, True), batch_size=2, shuffle=True, collate_fn=collate_instances, generator=gen
    )
    torch.manual_seed(0)
    net = DensePoseRCNN(HEAD, **TINY)
    opt = torch.optim.Adam([p for p in net.parameters() if p.requires_grad], lr=2e-3)
    history: list[dict] = []
    net.train()
    while len(history) < 80:
        for batch in loader:
            losses = net(batch["image"], batch["targets"], batch["meta"])
            assert {"loss_densepose_S", "loss_densepose_I", "loss_densepose_U", "loss_densepose_V"} <= set(
                losses
            )
            opt.zero_grad()
            sum(losses.values()).backward()
            opt.step()
            history.append({k: float(v.detach()) for k, v in losses.items()})
            if len(history) == 80:
                break
    first = {k: np.mean([h[k] for h in history[:8]]) for k in history[0]}
    last = {k: np.mean([h[k] for h in history[-16:]]) for k in history[0]}
    for key in ("loss_densepose_S", "loss_densepose_I", "loss_objectness", "loss_classifier"):
        assert last[key] < 0.8 * first[key], (key, first, last)

    net.eval()
    post = DensePosePostprocess()
    ours, trivial = _metric(), _metric()
    with torch.no_grad():
        for batch in DataLoader(_dataset(root, False), batch_size=4, collate_fn=collate_instances):
            preds = post(net(batch["image"]), batch)
            gts = [
                {
                    "image_id": int(g["image_id"]),
                    "height": g["height"],
                    "width": g["width"],
                    "persons": g["dp_persons"],
                }
                for g in batch["gt"]
            ]
            for p in preds:
                for inst in p["instances"]:
                    assert inst["densepose"]["iuv"].dtype == np.uint8
            ours.update([metric_prediction(p["instances"]) for p in preds], gts)
            trivial.update([_constant_chart(g["persons"]) for g in gts], gts)
    ours, trivial = ours.compute(), trivial.compute()
    assert float(ours["dp_ap20"]) > float(trivial["dp_ap20"]) + 0.1, (ours, trivial)
    assert float(ours["dp_ap"]) > float(trivial["dp_ap"]), (ours, trivial)
