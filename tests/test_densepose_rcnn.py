"""DensePose-RCNN branch: parameter counts of both presets, head RoI selection, point mapping into the
proposal grid (incl. flipped persons through the UV symmetry table), bilinear sampling, the losses on a
hand-made RoI, persons without points, per-box post-processing, the results writer round trip."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from humanparse.data.densepose_transforms import flip_person
from humanparse.data.meta import DENSEPOSE_FINE_FLIP
from humanparse.models.densepose import (
    DensePoseBranch,
    DensePoseRCNN,
    densepose_iuv,
    densepose_losses,
    pack_targets,
)
from humanparse.models.densepose.densepose_rcnn import (
    DensePoseTargets,
    PointSampler,
    map_points_to_grid,
    resample_coarse,
    select_densepose_rois,
)
from humanparse.models.densepose.postprocess import (
    DensePosePostprocess,
    boxes_to_original,
    metric_prediction,
    write_results,
)
from humanparse.synthetic.body_surface import synthetic_uv_symmetry

BODY_TORCHVISION = 41_352_281  # torchvision fasterrcnn_resnet50_fpn(num_classes=2), BN affine counted


def _count(model: torch.nn.Module) -> int:
    """Parameters plus the FrozenBatchNorm2d affine terms (buffers there, parameters in the released nets)."""
    frozen = sum(b.numel() for n, b in model.named_buffers() if n.endswith((".weight", ".bias")))
    return sum(p.numel() for p in model.parameters()) + frozen


@pytest.mark.parametrize(
    "preset,branch,total", [("original", 18_436_186, 59_788_467), ("detectron2", 22_526_029, 63_878_310)]
)
def test_parameter_counts(preset, branch, total):
    b = DensePoseBranch(preset)
    assert sum(p.numel() for p in b.parameters()) == branch
    assert _count(DensePoseRCNN({"preset": preset})) == total
    assert sum(p.numel() for p in DensePoseRCNN({"preset": preset}, norm="bn").parameters()) == total
    assert total - branch == BODY_TORCHVISION


def test_preset_shapes_and_decoder():
    feats = {str(i): torch.randn(1, 256, 64 // 2**i, 64 // 2**i) for i in range(4)}
    for preset, size, k in (("original", 56, 15), ("detectron2", 112, 2)):
        b = DensePoseBranch(preset).eval()
        out = b.forward_rois(feats, [torch.tensor([[10.0, 10.0, 100.0, 200.0]])], [(256, 256)])
        assert out["coarse"].shape == (1, k, size, size)
        for key in ("fine", "u", "v"):
            assert out[key].shape == (1, 25, size, size)
    d2 = DensePoseBranch("detectron2")
    assert d2.pooler.aligned and [len(h) for h in d2.pooler.decoder.scale_heads] == [
        2,
        3,
        6,
        9,
    ]  # (conv, ReLU[, up]) × 1, 1, 2, 3
    with pytest.raises(ValueError, match="preset"):
        DensePoseBranch("legacy")


def test_head_roi_selection():
    gt = torch.tensor([[0.0, 0.0, 100.0, 100.0], [200.0, 0.0, 300.0, 100.0]])
    has_points = torch.tensor([True, False])
    props = torch.tensor(
        [
            [0.0, 0.0, 100.0, 100.0],  # IoU 1 with the GT with points
            [0.0, 0.0, 100.0, 72.0],  # IoU 0.72
            [0.0, 0.0, 100.0, 69.0],  # IoU 0.69: not a head RoI
            [200.0, 0.0, 300.0, 100.0],  # matches the GT without points: no head RoI
            [0.0, 0.0, 100.0, 100.0],
        ]
    )  # a background sample (label 0)
    labels = torch.tensor([1, 1, 1, 1, 0])
    keep, gidx = select_densepose_rois(props, labels, gt, has_points, 0.7)
    assert keep.tolist() == [0, 1] and gidx.tolist() == [0, 0]
    keep, _ = select_densepose_rois(props, labels, gt, torch.tensor([False, False]), 0.7)
    assert keep.numel() == 0


def test_point_mapping_by_hand():
    # GT box x0 = 10, w = 64; RoI x0 = 2, w = 80; S = 56. dp_x = 128 → x = 10 + 32 = 42 → g = 40·56/80 = 28
    p = torch.tensor([128.0, 100.0, 0.0, 255.0])
    lo, hi, w, valid = map_points_to_grid(
        p, torch.tensor(10.0), torch.tensor(64.0), torch.tensor(2.0), torch.tensor(80.0), 56
    )
    g = ((10 + p * 64 / 256) - 2) * 56 / 80
    assert torch.allclose(g[:2], torch.tensor([28.0, 23.1]), atol=1e-4)
    assert lo.tolist() == [28, 23, 5, 50] and hi.tolist() == [29, 24, 6, 51]  # 255 → 73.75 → 50.225
    assert torch.allclose(w, g - g.floor(), atol=1e-5)
    assert valid.all()
    # a RoI starting right of a point drops it; points in [S - 1, S) are kept with the upper index clamped
    lo, hi, w, valid = map_points_to_grid(
        torch.tensor([0.0, 255.9]),
        torch.tensor(0.0),
        torch.tensor(256.0),
        torch.tensor(1.0),
        torch.tensor(255.0),
        56,
    )
    assert valid.tolist() == [False, True]
    assert lo[1] == 55 and hi[1] == 55 and w[1] == 0


def test_flipped_person_maps_to_the_mirrored_grid_cell():
    sym = synthetic_uv_symmetry()
    width = 200
    person = {
        "bbox": np.array([30.0, 10.0, 64.0, 128.0]),
        "box": np.array([30.0, 10.0, 94.0, 138.0], np.float32),
        "mask": np.zeros((150, width), bool),
        "keypoints": np.zeros((17, 3), np.float32),
        "dp": {
            "x": np.array([40.0, 200.5]),
            "y": np.array([60.0, 10.0]),
            "I": np.array([3, 16]),
            "U": np.array([0.2, 0.7]),
            "V": np.array([0.9, 0.4]),
            "coarse": None,
        },
    }
    flipped = flip_person(person, width, sym)
    roi = torch.tensor([[26.0, 6.0, 100.0, 140.0]])
    roi_f = torch.tensor([[width - 100.0, 6.0, width - 26.0, 140.0]])
    S = 56

    def grid(p, r):
        t = pack_targets(
            [r], [{"boxes": torch.as_tensor(p["box"])[None].float(), "dp": [p["dp"]]}], [torch.tensor([0])]
        )
        gt, ro = t.gt_boxes[0], t.roi_boxes[0]
        gx = ((gt[0] + t.x * gt[2] / 256) - ro[0]) * S / ro[2]
        gy = ((gt[1] + t.y * gt[3] / 256) - ro[1]) * S / ro[3]
        return t, gx, gy

    t0, gx0, gy0 = grid(person, roi)
    t1, gx1, gy1 = grid(flipped, roi_f)
    assert torch.allclose(gx1, S - gx0, atol=1e-4) and torch.allclose(gy1, gy0)
    assert t1.i.tolist() == DENSEPOSE_FINE_FLIP[[3, 16]].tolist() == [4, 15]
    # U/V through the symmetry table, looked up with the old part at [⌊V·255⌋, ⌊U·255⌋]
    for k, (part, u, v) in enumerate([(3, 0.2, 0.9), (16, 0.7, 0.4)]):
        r, c = int(v * 255), int(u * 255)
        assert t1.u[k].item() == pytest.approx(float(sym.u_transforms[part - 1, r, c]), abs=1e-6)
        assert t1.v[k].item() == pytest.approx(float(sym.v_transforms[part - 1, r, c]), abs=1e-6)


def _targets(x, y, i, u, v, gt=(0.0, 0.0, 8.0, 8.0), roi=(0.0, 0.0, 8.0, 8.0), coarse=None):
    n = len(x)
    return DensePoseTargets(
        roi_boxes=torch.tensor([roi]),
        gt_boxes=torch.tensor([gt]),
        point_roi=torch.zeros(n, dtype=torch.int64),
        x=torch.tensor(x, dtype=torch.float32),
        y=torch.tensor(y, dtype=torch.float32),
        i=torch.tensor(i),
        u=torch.tensor(u, dtype=torch.float32),
        v=torch.tensor(v, dtype=torch.float32),
        coarse=None if coarse is None else coarse[None],
        has_coarse=torch.tensor([coarse is not None]),
    )


def test_bilinear_sampling_reproduces_linear_maps():
    S = 8
    r, c = torch.meshgrid(
        torch.arange(S, dtype=torch.float32), torch.arange(S, dtype=torch.float32), indexing="ij"
    )
    z = torch.stack([c + 10 * r, 3 * c - r])[None]  # (1, 2, S, S)
    # GT = RoI = [0, 8]² so grid g = dp·8/256
    t = _targets([40.0, 100.0, 210.0], [30.0, 170.0, 64.0], [1, 1, 1], [0, 0, 0], [0, 0, 0])
    s = PointSampler.build(t, S)
    gx, gy = t.x * S / 256, t.y * S / 256
    assert torch.allclose(s.sample(z), torch.stack([gx + 10 * gy, 3 * gx - gy], 1), atol=1e-5)
    assert torch.allclose(
        s.sample(z, torch.tensor([1, 0, 1])),
        torch.stack([3 * gx[0] - gy[0], gx[1] + 10 * gy[1], 3 * gx[2] - gy[2]]),
        atol=1e-5,
    )


def test_losses_on_a_hand_made_roi():
    S = 8
    fine = torch.zeros(1, 25, S, S)
    a = torch.arange(25, dtype=torch.float32) / 50  # U of channel c = c / 50 everywhere
    u = a[None, :, None, None].expand(1, 25, S, S).clone()
    v = (1 - a)[None, :, None, None].expand(1, 25, S, S).clone()
    coarse = torch.zeros(1, 15, S, S)
    out = {"coarse": coarse, "fine": fine, "u": u, "v": v}
    # points: two foreground (I 3 and 20), one I = 0 (teacher-style background), one outside the RoI
    # GT box [0, 8]², RoI [0, 4]²: image x = dp·8/256, so the point at dp_x = 200 (x = 6.25) is outside
    t = _targets(
        [32.0, 100.0, 64.0, 200.0],
        [32.0, 60.0, 64.0, 20.0],
        [3, 20, 0, 5],
        [0.5, 0.1, 0.9, 0.3],
        [0.2, 0.6, 0.9, 0.3],
        roi=(0.0, 0.0, 4.0, 4.0),
    )
    w = (2.0, 0.3, 0.1)
    losses = densepose_losses(out, t, w, 15)
    assert losses["loss_densepose_I"].item() == pytest.approx(0.3 * math.log(25), rel=1e-5)

    def sl1(d):
        d = abs(d)
        return 0.5 * d * d if d < 1 else d - 0.5

    # only the two foreground points inside the RoI, each on its own chart's channel
    eu = sl1(3 / 50 - 0.5) + sl1(20 / 50 - 0.1)
    ev = sl1(1 - 3 / 50 - 0.2) + sl1(1 - 20 / 50 - 0.6)
    assert losses["loss_densepose_U"].item() == pytest.approx(0.1 * eu, rel=1e-5)
    assert losses["loss_densepose_V"].item() == pytest.approx(0.1 * ev, rel=1e-5)
    assert losses["loss_densepose_S"].item() == 0.0  # no dp_masks
    # with a coarse map: zero logits → log(15) per cell
    cm = torch.zeros(256, 256, dtype=torch.int64)
    cm[:, 128:] = 4
    t2 = _targets([32.0], [32.0], [3], [0.5], [0.5], coarse=cm)
    assert densepose_losses(out, t2, w, 15)["loss_densepose_S"].item() == pytest.approx(
        2.0 * math.log(15), rel=1e-5
    )
    # a confident correct coarse prediction gives (almost) no loss, for 15 channels and binarised for 2
    good = torch.full((1, 15, S, S), -20.0)
    good[0, 0, :, : S // 2] = 20
    good[0, 4, :, S // 2 :] = 20
    assert densepose_losses({**out, "coarse": good}, t2, w, 15)["loss_densepose_S"].item() < 1e-6
    good2 = torch.stack([good[:, 0], good[:, 4]], 1)
    assert densepose_losses({**out, "coarse": good2}, t2, w, 2)["loss_densepose_S"].item() < 1e-6


def test_resample_coarse_by_hand():
    cm = torch.zeros(1, 256, 256, dtype=torch.int64)
    cm[0, :, 128:] = 3
    cm[0, 192:, :] = 7
    gt = torch.tensor([[10.0, 20.0, 64.0, 128.0]])
    same = resample_coarse(cm, gt, gt, 4)
    assert same[0].tolist() == [[0, 0, 3, 3], [0, 0, 3, 3], [0, 0, 3, 3], [7, 7, 7, 7]]
    # a RoI twice as wide, starting at the GT's centre: right half of the GT, then outside (background)
    roi = torch.tensor([[42.0, 20.0, 64.0, 128.0]])
    assert resample_coarse(cm, gt, roi, 4)[0].tolist() == [
        [3, 3, 0, 0],
        [3, 3, 0, 0],
        [3, 3, 0, 0],
        [7, 7, 0, 0],
    ]


def test_no_points_persons_and_empty_point_lists_give_no_loss():
    torch.manual_seed(0)
    b = DensePoseBranch("original", in_channels=16, head_dim=16, num_convs=1)
    feats = {str(i): torch.randn(1, 16, 32 // 2**i, 32 // 2**i, requires_grad=True) for i in range(4)}
    empty = {
        "x": torch.zeros(0),
        "y": torch.zeros(0),
        "I": torch.zeros(0, dtype=torch.int64),
        "U": torch.zeros(0),
        "V": torch.zeros(0),
        "coarse": None,
    }
    tgt = {"boxes": torch.tensor([[0.0, 0.0, 60.0, 100.0], [60.0, 0.0, 120.0, 100.0]]), "dp": [None, empty]}
    props = [tgt["boxes"].clone()]
    rois, matched = b.select(props, None, [torch.tensor([1, 1])], [tgt])
    assert len(rois[0]) == 0
    losses = b.loss(feats, rois, [(128, 128)], [tgt], matched)
    assert set(losses) == {"loss_densepose_S", "loss_densepose_I", "loss_densepose_U", "loss_densepose_V"}
    total = sum(losses.values())
    assert torch.isfinite(total) and total.item() == 0.0
    total.backward()
    assert b.head.layers[0].weight.grad is not None
    # packing never pads: the points of a person are exactly its annotated ones
    pts = {
        "x": torch.tensor([10.0, 20.0]),
        "y": torch.tensor([5.0, 6.0]),
        "I": torch.tensor([1, 2]),
        "U": torch.tensor([0.1, 0.2]),
        "V": torch.tensor([0.3, 0.4]),
        "coarse": None,
    }
    tgt2 = {"boxes": tgt["boxes"], "dp": [pts, empty]}
    t = pack_targets([tgt2["boxes"]], [tgt2], [torch.tensor([0, 1])])
    assert t.num_rois == 2 and t.point_roi.tolist() == [0, 0] and t.i.tolist() == [1, 2]


def test_per_box_iuv_by_hand():
    S = 4
    coarse = torch.zeros(2, S, S)
    coarse[1, :, :2] = -1.0  # background on the left half
    coarse[1, :, 2:] = 1.0
    fine = torch.zeros(25, S, S)
    fine[7, :2] = 5.0  # chart 7 on the top half
    fine[12, 2:] = 5.0  # chart 12 on the bottom half
    u = (torch.arange(25, dtype=torch.float32) / 100)[:, None, None].expand(25, S, S)
    v = torch.full((25, S, S), 1.5)  # beyond 1: clamped to 255
    iuv = densepose_iuv(coarse, fine, u, v, (1.5, 2.2, 9.9, 6.3))  # int(8.4) x int(4.1) = 8 x 4
    assert iuv.dtype == torch.uint8 and iuv.shape == (3, 4, 8)
    want_i = np.zeros((4, 8), np.int64)
    want_i[:2, 4:] = 7
    want_i[2:, 4:] = 12
    assert iuv[0].numpy().tolist() == want_i.tolist()
    want_u = np.where(want_i > 0, np.floor(want_i / 100 * 255), 0)
    assert iuv[1].numpy().tolist() == want_u.tolist()
    assert iuv[2].numpy().tolist() == np.where(want_i > 0, 255, 0).tolist()


def test_postprocess_maps_boxes_back_and_caps_detections():
    s = 2.0
    affine = np.array([[s, 0.0, 0.0], [0.0, s, 0.0], [0.0, 0.0, 1.0]])  # c' = s (c − ½) + ½
    b = torch.tensor([[10.5, 20.5, 50.5, 100.5]])
    assert torch.allclose(boxes_to_original(b, affine), (b - 0.5) / s + 0.5)
    n, S = 25, 8
    det = {
        "boxes": torch.tensor([[2.0, 2.0, 40.0, 60.0]]).repeat(n, 1),
        "scores": torch.linspace(0.1, 0.9, n),
        "labels": torch.ones(n, dtype=torch.int64),
        "densepose_coarse": torch.randn(n, 15, S, S),
        "densepose_fine": torch.randn(n, 25, S, S),
        "densepose_u": torch.rand(n, 25, S, S),
        "densepose_v": torch.rand(n, 25, S, S),
    }
    batch = {"meta": [{"affine": affine, "orig_size": (40, 30)}]}
    insts = DensePosePostprocess()({"detections": [det]}, batch)[0]["instances"]
    assert len(insts) == 20 and insts[0]["score"] == pytest.approx(0.9)
    x1, y1, x2, y2 = insts[0]["box"]
    assert (x1, y1) == (pytest.approx(1.25), pytest.approx(1.25)) and (x2, y2) == (
        pytest.approx(20.25),
        pytest.approx(30.25),
    )
    dp = insts[0]["densepose"]
    assert dp["box"] == [1, 1, 19, 29] and dp["iuv"].shape == (3, 29, 19) and dp["iuv"].dtype == np.uint8


def test_results_writer_round_trips_through_the_standalone_evaluator(tmp_path):
    from humanparse.data.densepose_coco import images_from_coco, read_coco
    from humanparse.metrics.densepose import DensePoseMetric
    from humanparse.metrics.densepose_results import evaluate_densepose
    from humanparse.synthetic.densepose import synthetic_eval_set

    gt, dets = synthetic_eval_set(num_images=4, image_size=(64, 96), seed=2)
    gt_path = tmp_path / "gt.json"
    gt_path.write_text(json.dumps(gt))
    preds: dict[int, list[dict]] = {}
    for d in dets:  # noisy detections rendered from the synthetic bodies, as instances
        x, y, w, h = d["bbox"]
        iuv = np.asarray(d["uv"], dtype=np.uint8)
        preds.setdefault(d["image_id"], []).append(
            {
                "score": float(d["score"]),
                "box": [x, y, x + w, y + h],
                "label": 1,
                "densepose": {"iuv": iuv, "box": [int(x), int(y), iuv.shape[2], iuv.shape[1]]},
            }
        )
    path = write_results(tmp_path / "results.json", preds)
    cfg = OmegaConf.create(
        {
            "results": str(path),
            "gt": str(gt_path),
            "eval_data": "synthetic",
            "rcp": False,
            "bbox": False,
            "output": str(tmp_path / "m.json"),
        }
    )
    standalone = evaluate_densepose(cfg)["metrics"]
    metric = DensePoseMetric("synthetic", rcp=False)
    images = images_from_coco(read_coco(gt_path), gt_path)
    metric.update([metric_prediction(preds.get(im["image_id"], [])) for im in images], images)
    direct = metric.compute()
    for key in ("dp_ap", "dp_ap50", "dp_gpsm_ap"):
        assert standalone[key] == pytest.approx(float(direct[key]), abs=1e-9)
    assert (
        standalone["dp_ap"] > 0.1 and standalone["dp_gpsm_ap"] > 0.1
    )  # the GT boxes with random charts still match some persons at low thresholds
