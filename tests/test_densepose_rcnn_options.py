"""DensePose-RCNN options: multi-task heads, the cross-cascade (paper Table 1), distilled supervision from a
cached teacher (incl. mirrored samples through the UV symmetry table), the Parsing R-CNN head (Parsing R-CNN
Table 9), the COCO-keypoints initialisation, and the Hydra presets."""

from __future__ import annotations

from pathlib import Path

import hydra
import numpy as np
import pytest
import torch

from humanparse.data.meta import DENSEPOSE_FINE_FLIP
from humanparse.models.densepose import DensePoseBranch, DensePoseRCNN
from humanparse.models.densepose.distill import TeacherTargets, load_teacher_cache, save_teacher_cache
from humanparse.synthetic.body_surface import synthetic_uv_symmetry
from humanparse.utils.instantiate import instantiate_task

TINY = dict(
    backbone="resnet10",
    resnet_kwargs={"block": "basic", "layers": [1, 1, 1, 1]},
    trainable_layers=5,
    norm="bn",
    fpn_channels=16,
    representation_size=32,
    anchor_sizes=(16, 32, 64, 128, 256),
    rpn_post_nms_top_n_train=50,
    rpn_post_nms_top_n_test=50,
    box_batch_size_per_image=16,
)
HEAD = {"head_dim": 16, "num_convs": 2, "pooler_resolution": 8}


def _targets(n_img: int = 2):
    g = torch.Generator().manual_seed(0)
    out = []
    for _ in range(n_img):
        boxes = torch.tensor([[4.0, 6.0, 30.0, 60.0], [34.0, 2.0, 60.0, 58.0]])
        dps = [
            {
                "x": torch.rand(30, generator=g) * 256,
                "y": torch.rand(30, generator=g) * 256,
                "I": torch.randint(1, 25, (30,), generator=g),
                "U": torch.rand(30, generator=g),
                "V": torch.rand(30, generator=g),
                "coarse": torch.randint(0, 15, (256, 256), generator=g),
            },
            None,
        ]
        masks = torch.zeros(2, 64, 64, dtype=torch.uint8)
        for k, b in enumerate(boxes.long()):
            masks[k, b[1] : b[3], b[0] : b[2]] = 1
        kps = torch.zeros(2, 17, 3)
        kps[:, :, 0], kps[:, :, 1], kps[:, :, 2] = boxes[:, :1] + 5, boxes[:, 1:2] + 10, 2
        out.append(
            {
                "boxes": boxes,
                "labels": torch.ones(2, dtype=torch.int64),
                "masks": masks,
                "keypoints": kps,
                "dp": dps,
                "person_ids": torch.tensor([11, 12]),
                "iscrowd": [0, 0],
            }
        )
    return out


def test_multitask_and_cascade_losses_and_outputs():
    torch.manual_seed(0)
    net = DensePoseRCNN(
        {**HEAD, "cascade": True, "aux_tasks": ["mask", "keypoints"]},
        multitask=["mask", "keypoints"],
        multitask_layers={"mask": [16, 16], "keypoints": [16, 16]},
        **TINY,
    )
    images = torch.randn(2, 3, 64, 64)
    losses = net(images, _targets())
    dp = ["loss_densepose_S", "loss_densepose_I", "loss_densepose_U", "loss_densepose_V"]
    assert set(dp + [f"{k}_stage1" for k in dp] + ["loss_mask", "loss_keypoint"]) <= set(losses)
    sum(losses.values()).backward()
    branch = net.branches["densepose"]
    # deep supervision reaches both stages, and the cascade reads the auxiliary heads' first-stage outputs
    assert branch.head.layers[0].weight.grad.abs().sum() > 0
    assert branch.cascade.reduce.weight.grad.abs().sum() > 0
    aux = 1 + 17  # mask logit of the person class + 17 keypoint heatmaps
    assert branch.cascade.reduce.in_channels == 16 + 16 + 15 + 75 + aux
    net.eval()
    with torch.no_grad():
        det = net(images)["detections"][0]
    assert {"densepose_fine", "masks", "keypoints"} <= set(det)
    assert det["densepose_fine"].shape[1:] == (25, 32, 32)
    # DensePose-ST: the cascade on the DensePose task alone
    st = DensePoseBranch("original", in_channels=16, cascade=True, **HEAD)
    assert st.cascade.reduce.in_channels == 16 + 16 + 15 + 75
    with pytest.raises(ValueError, match="cascade=true"):
        DensePoseBranch("original", aux_tasks=["mask"])
    with pytest.raises(ValueError, match="branch"):
        DensePoseRCNN({**HEAD, "cascade": True, "aux_tasks": ["mask"]}, **TINY)


def test_crowd_regions_and_coco_boxes_in_the_detector_targets():
    net = DensePoseRCNN(HEAD, **TINY)
    t = _targets(1)[0]
    t["iscrowd"] = [0, 1]
    t["bbox"] = [torch.tensor([4.0, 6.0, 26.0, 54.0]), torch.tensor([34.0, 2.0, 26.0, 56.0])]
    (out,) = net.prepare_targets([t])
    assert out["boxes"].tolist() == [[4.0, 6.0, 30.0, 60.0]]
    assert len(out["dp"]) == 1 and out["masks"].shape[0] == 1 and out["person_ids"].tolist() == [11]


def _teacher(tmp_path: Path) -> Path:
    iuv = np.zeros((3, 256, 256), np.uint8)
    iuv[0, :, :128] = 3  # left half of the box frame: chart 3 (right hand) ...
    iuv[0, :, 128:] = 16  # ... right half: chart 16
    iuv[1] = np.arange(256, dtype=np.uint8)[None, :]  # U·255 = column
    iuv[2] = 100
    iuv[0, :32] = 0  # top rows: background inside the box
    return save_teacher_cache(tmp_path / "teacher.pt", {11: {"bbox": [4.0, 6.0, 26.0, 54.0], "iuv": iuv}})


def test_distilled_targets_from_the_teacher_cache(tmp_path):
    path = _teacher(tmp_path)
    cache = load_teacher_cache(path)
    assert cache[11]["iuv"].shape == (3, 256, 256)
    sym_path = synthetic_uv_symmetry().save_mat(tmp_path / "UV_symmetry_transforms.mat")
    teacher = TeacherTargets(path, sym_path)
    roi = torch.tensor([[4.0, 6.0, 30.0, 60.0]])  # the GT box itself, identity placement
    tgt = {
        "boxes": roi.clone(),
        "person_ids": torch.tensor([11]),
        "meta": {"affine": np.eye(3), "flipped": False},
    }
    t = teacher.targets([roi], [tgt], [torch.tensor([0])], 8)
    assert len(t.i) == 64  # one point per cell of the 8×8 grid, all inside the box
    col = torch.arange(64) % 8
    row = torch.arange(64) // 8
    # the cell centres: box-frame x = (c + ½)·32, read at floor(x) of the teacher map
    assert torch.allclose(t.x, (col.float() + 0.5) * 32) and torch.allclose(t.y, (row.float() + 0.5) * 32)
    want_i = torch.where(col < 4, 3, 16) * (row > 0)
    assert t.i.tolist() == want_i.tolist()
    assert torch.allclose(t.u, ((col * 32 + 16).float() / 255), atol=1e-6)
    # mirrored sample: the placement contains the mirror, the label goes through the flip tables
    w = 64
    mirror = np.array(
        [[-1.0, 0.0, w - 1.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]
    )  # pixel i → W − 1 − i: c' = W − c
    roi_f = torch.tensor([[34.5, 6.0, 59.5, 60.0]])
    tgt_f = {
        "boxes": roi_f.clone(),
        "person_ids": torch.tensor([11]),
        "meta": {"affine": mirror, "flipped": True},
    }
    tf = teacher.targets([roi_f], [tgt_f], [torch.tensor([0])], 8)
    sym = synthetic_uv_symmetry()
    x_orig = w - (34.5 + (np.arange(8) + 0.5) * 25 / 8)  # back through the mirror
    cx = np.floor((x_orig - 4.0) * 256 / 26).astype(int)  # teacher map column (box x = 4, w = 26)
    chart = np.where(cx < 128, 3, 16)
    want_i, want_u = [], []
    for r in range(8):
        for c in range(8):
            fg = r > 0  # teacher rows < 32 are background
            want_i.append(int(DENSEPOSE_FINE_FLIP[chart[c]]) if fg else 0)
            want_u.append(float(sym.u_transforms[chart[c] - 1, 100, cx[c]]) if fg else cx[c] / 255)
    assert tf.i.tolist() == want_i
    assert np.allclose(tf.u.numpy(), want_u, atol=1e-6)
    with pytest.raises(ValueError, match="uv_symmetry"):
        TeacherTargets(path).targets([roi_f], [tgt_f], [torch.tensor([0])], 8)


def test_distilled_supervision_trains_and_bad_caches_fail_clearly(tmp_path):
    path = _teacher(tmp_path)
    torch.manual_seed(0)
    # every positive sample of the box sampler (GT boxes included) is a candidate head RoI
    net = DensePoseRCNN(
        {**HEAD, "supervision": "distilled", "teacher": str(path)},
        **{**TINY, "box_batch_size_per_image": 256, "box_positive_fraction": 1.0},
    )
    targets = _targets(1)
    meta = [{"affine": np.eye(3), "flipped": False}]
    losses = net(torch.randn(1, 3, 64, 64), targets, meta)
    assert losses["loss_densepose_I"] > 0 and torch.isfinite(sum(losses.values()))
    with pytest.raises(ValueError, match="teacher"):
        DensePoseBranch("original", supervision="distilled")
    with pytest.raises(FileNotFoundError, match="teacher cache"):
        DensePoseBranch("original", supervision="distilled", teacher=str(tmp_path / "missing.pt"))
    bad = tmp_path / "bad.pt"
    torch.save({"persons": {}}, bad)
    with pytest.raises(ValueError, match="bad.pt.*not a DensePose teacher cache"):
        load_teacher_cache(bad)


def test_parsing_rcnn_head_for_densepose_table9():
    b = DensePoseBranch(
        "original",
        in_channels=16,
        featmap_names=["0"],
        pooler_resolution=8,
        head_type="parsing_rcnn",
        parsing_head={"conv_dim": 16, "gce_dim": 8, "aspp_dim": 8},
    )
    feats = {str(i): torch.randn(1, 16, 32 // 2**i, 32 // 2**i) for i in range(4)}
    out = b.forward_rois(feats, [torch.tensor([[0.0, 0.0, 60.0, 100.0]])], [(128, 128)])
    assert out["fine"].shape == (1, 25, 32, 32) and out["coarse"].shape == (1, 15, 32, 32)
    assert b.head.gce is not None and len(b.head.after) == 4 and list(b.pooler.featmap_names) == ["0"]
    with pytest.raises(ValueError, match="head_type"):
        DensePoseBranch("original", head_type="deeplab")


def test_coco_keypoints_init_from_a_local_file(tmp_path):
    from torchvision.models.detection import keypointrcnn_resnet50_fpn

    torch.manual_seed(0)
    ref = keypointrcnn_resnet50_fpn(weights=None, weights_backbone=None, num_classes=2)
    path = tmp_path / "kp.pth"
    torch.save(ref.state_dict(), path)
    net = DensePoseRCNN(
        {"preset": "original"}, multitask=["keypoints"], init="coco_keypoints", weights=str(path)
    )
    sd = ref.state_dict()
    head = net.branches["densepose"].head
    convs = [m for m in head.layers if isinstance(m, torch.nn.Conv2d)]
    for k, conv in enumerate(convs):
        assert torch.equal(conv.weight, sd[f"roi_heads.keypoint_head.{2 * k}.weight"])
    assert torch.equal(net.backbone.body.layer1[0].conv1.weight, sd["backbone.body.layer1.0.conv1.weight"])
    assert torch.equal(
        net.branches["keypoints"].predictor.kps_score_lowres.weight,
        sd["roi_heads.keypoint_predictor.kps_score_lowres.weight"],
    )


@pytest.mark.parametrize(
    "experiment,total",
    [
        ("densepose_rcnn_original", 59_788_467),
        ("densepose_rcnn_detectron2", 63_878_310),
        ("parsing_rcnn_densepose", None),
    ],
)
def test_presets_build_the_papers_nets(compose_train, experiment, total):
    cfg = compose_train(f"experiment={experiment}", "model.init=null", "model.norm=bn", tiny=False)
    task = instantiate_task(cfg)
    n = sum(p.numel() for p in task.net.parameters())
    if total is not None:
        assert n == total
    else:
        b = task.net.branches["densepose"]
        assert b.head.gce is not None and b.output_size == 128 and list(b.pooler.featmap_names) == ["0"]
    assert cfg.paper_ref and cfg.optimized_metric == "val/dp_ap"
    kappa = [e.get("kappa") for e in cfg.data.evaluators if e._target_.endswith("DensePoseEvaluator")]
    assert kappa == (
        ["fixed"] if experiment == "densepose_rcnn_original" else ["per_part"]
    )  # Table 1: κ 0.255


def test_demo_preset_instantiates(compose_train):
    cfg = compose_train("experiment=densepose_demo", tiny=False)
    task = instantiate_task(cfg)
    dm = hydra.utils.instantiate(cfg.data)
    dm.adapt_to_model(task.data_requirements(), "densepose_rcnn")
    branch = task.net.branches["densepose"]
    assert dm.collate == "instance" and branch.output_size == 56 and branch.loss_weights == (5.0, 1.0, 0.01)
