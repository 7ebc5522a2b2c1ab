"""The human R-CNN family: torchvision body counts, the batch-only transform, the branch loop (select /
loss / predict), torchvision's mask and keypoint heads as branches, and two branches in one net."""

from __future__ import annotations

import torch
from torchvision.models.detection import _utils as det_utils
from torchvision.ops import box_iou

from humanparse.models.rcnn import BatchOnlyTransform, HumanRCNN, KeypointBranch, MaskBranch, RoIBranch
from humanparse.models.rcnn.roi_heads import rematch, sample_at_most

TINY = dict(
    backbone="resnet",
    resnet_kwargs={"block": "basic", "layers": [1, 1, 1, 1]},
    trainable_layers=5,
    norm="bn",
    fpn_channels=16,
    representation_size=32,
    rpn_pre_nms_top_n_test=100,
    rpn_post_nms_top_n_test=50,
    box_batch_size_per_image=64,
)


def count_with_frozen_affine(m: torch.nn.Module) -> int:
    frozen = sum(b.numel() for n, b in m.named_buffers() if n.endswith((".weight", ".bias")))
    return sum(p.numel() for p in m.parameters()) + frozen


def targets(h: int = 64, w: int = 64, kp: bool = False) -> list[dict]:
    boxes = torch.tensor([[8.0, 6.0, 30.0, 58.0], [34.0, 10.0, 60.0, 62.0]])
    masks = torch.zeros(2, h, w, dtype=torch.uint8)
    masks[0, 6:58, 8:30] = 1
    masks[1, 10:62, 34:60] = 1
    t = {"boxes": boxes, "labels": torch.ones(2, dtype=torch.int64), "masks": masks}
    empty = {
        "boxes": torch.zeros(0, 4),
        "labels": torch.zeros(0, dtype=torch.int64),
        "masks": torch.zeros(0, h, w, dtype=torch.uint8),
    }
    if kp:
        t["keypoints"] = torch.cat([torch.rand(2, 17, 2) * 20 + 10, torch.ones(2, 17, 1)], -1)
        empty["keypoints"] = torch.zeros(0, 17, 3)
    return [t, empty]


def test_body_matches_torchvision_faster_rcnn_count():
    # fasterrcnn_resnet50_fpn(weights=None, weights_backbone=None, num_classes=2): 41,352,281
    assert sum(p.numel() for p in HumanRCNN(norm="bn").parameters()) == 41_352_281
    frozen = HumanRCNN(norm="frozen_bn")
    assert count_with_frozen_affine(frozen) == 41_352_281
    # trainable_layers=3 freezes the stem and res2 (Detectron's FREEZE_AT 2)
    assert not frozen.backbone.body.layer1[0].conv1.weight.requires_grad
    assert frozen.backbone.body.layer2[0].conv1.weight.requires_grad


def test_transform_only_batches():
    t = BatchOnlyTransform(32)
    img = torch.randn(3, 50, 70) * 7 + 3
    il, _ = t([img, img[:, :40, :64]])
    assert il.tensors.shape == (2, 3, 64, 96)
    assert il.image_sizes == [(50, 70), (40, 64)]
    assert torch.equal(il.tensors[0, :, :50, :70], img)  # no resize, no normalisation
    assert il.tensors[0, :, 50:].abs().sum() == 0
    dets = [{"boxes": torch.tensor([[1.0, 2.0, 3.0, 4.0]])}]
    assert t.postprocess(dets, [(50, 70)], [(100, 140)]) is dets  # boxes stay in input pixels


class Recorder(RoIBranch):
    """A minimal branch: records what the heads hand it, one linear layer on 4×4 RoIs."""

    def __init__(self, channels: int):
        super().__init__()
        from torchvision.ops import MultiScaleRoIAlign

        self.pooler = MultiScaleRoIAlign(["0"], 4, 2)
        self.fc = torch.nn.Linear(channels * 16, 1)
        self.calls: list[str] = []

    def forward_rois(self, features, rois, image_shapes):
        return {"y": self.fc(self.pooler(features, rois, image_shapes).flatten(1))}

    def select(self, proposals, matched_idxs, labels, targets):
        self.calls.append("select")
        self.seen = (proposals, matched_idxs, labels)
        return super().select(proposals, matched_idxs, labels, targets)

    def loss(self, features, rois, image_shapes, targets, matched):
        self.calls.append("loss")
        self.rois, self.matched = rois, matched
        if sum(len(r) for r in rois) == 0:
            return self.zero_loss(features, image_shapes, ["loss_rec"])
        return {"loss_rec": self.forward_rois(features, rois, image_shapes)["y"].pow(2).mean()}

    def predict(self, features, detections, image_shapes):
        self.calls.append("predict")
        y = self.forward_rois(features, [d["boxes"] for d in detections], image_shapes)["y"]
        for d, v in zip(detections, y.split([len(d["boxes"]) for d in detections])):
            d["rec"] = v


def test_branch_loop_training_and_eval():
    torch.manual_seed(0)
    rec = Recorder(16)
    net = HumanRCNN({"rec": rec}, **TINY)
    imgs = torch.randn(2, 3, 64, 64)
    losses = net(imgs, targets())
    assert set(losses) == {
        "loss_objectness",
        "loss_rpn_box_reg",
        "loss_classifier",
        "loss_box_reg",
        "loss_rec",
    }
    assert rec.calls == ["select", "loss"]
    proposals, matched, labels = rec.seen
    assert len(proposals) == 2 and all(len(p) <= 64 for p in proposals)
    # default select = the box sampler's positives; the GT boxes are among the proposals
    assert len(rec.rois[0]) >= 2 and len(rec.rois[1]) == 0
    gt = targets()[0]["boxes"]
    for roi, m in zip(rec.rois[0], rec.matched[0]):
        assert box_iou(roi[None], gt).argmax() == m and box_iou(roi[None], gt).max() >= 0.5
    sum(losses.values()).backward()
    assert rec.fc.weight.grad is not None
    net.eval()
    with torch.no_grad():
        out = net(imgs)
    assert rec.calls[-1] == "predict"
    dets = out["detections"]
    assert len(dets) == 2 and {"boxes", "scores", "labels", "rec"} <= set(dets[0])
    assert dets[0]["rec"].shape == (len(dets[0]["boxes"]), 1)


def test_zero_loss_without_rois_is_finite_and_connected():
    rec = Recorder(16)
    net = HumanRCNN({"rec": rec}, **TINY)
    feats = {"0": torch.randn(2, 16, 16, 16, requires_grad=True)}
    out = rec.loss(
        feats,
        [torch.zeros(0, 4), torch.zeros(0, 4)],
        [(64, 64), (64, 64)],
        [{}, {}],
        [torch.zeros(0, dtype=torch.int64)] * 2,
    )
    assert out["loss_rec"].item() == 0.0
    out["loss_rec"].backward()
    assert rec.fc.weight.grad is not None and torch.isfinite(rec.fc.weight.grad).all()
    del net


def test_mask_and_keypoint_branches_and_composition():
    torch.manual_seed(0)
    net = HumanRCNN(
        {
            "mask": MaskBranch(16, layers=(8, 8)),
            "keypoint": KeypointBranch(16, 17, layers=(8, 8)),
            "rec": Recorder(16),
        },
        **TINY,
    )
    losses = net(torch.randn(2, 3, 64, 64), targets(kp=True))
    assert {"loss_mask", "loss_keypoint", "loss_rec"} <= set(losses)
    assert all(torch.isfinite(v) for v in losses.values())
    net.eval()
    with torch.no_grad():
        d = net(torch.randn(1, 3, 64, 64))["detections"][0]
    n = len(d["boxes"])
    assert (
        d["masks"].shape == (n, 1, 28, 28) and d["keypoints"].shape == (n, 17, 3) and d["rec"].shape == (n, 1)
    )


def test_rematch_and_sample_helpers():
    m = det_utils.Matcher(0.5, 0.5, allow_low_quality_matches=False)
    gt = torch.tensor([[0.0, 0.0, 10.0, 10.0], [20.0, 20.0, 30.0, 30.0]])
    rois = torch.tensor([[0.0, 0.0, 10.0, 9.0], [21.0, 20.0, 30.0, 30.0], [0.0, 0.0, 4.0, 4.0]])
    assert rematch(rois, gt, m).tolist() == [0, 1, -1]
    assert rematch(rois, gt[:0], m).tolist() == [-1, -1, -1]
    idx = sample_at_most(4, 10, torch.device("cpu"))
    assert len(idx) == 4 and len(set(idx.tolist())) == 4 and idx.max() < 10
    assert sample_at_most(4, 3, torch.device("cpu")).tolist() == [0, 1, 2]
    assert sample_at_most(None, 3, torch.device("cpu")).tolist() == [0, 1, 2]
