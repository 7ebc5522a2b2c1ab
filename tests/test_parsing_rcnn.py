"""Parsing R-CNN: parameter counts against the released net, head shapes for every ablation switch, RoI
selection, targets (crop + nearest, flip swap), paste-back, semantic map, TTA merge, initialisations."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from humanparse.models.parsing_rcnn import (
    NonLocal2d,
    ParsingBranch,
    ParsingHead,
    ParsingRCNN,
    ParsingRCNNPostprocess,
    boxes_to_original,
    merge_flipped,
    parsing_targets,
    paste_parsing,
    semantic_map,
)
from humanparse.models.parsing_rcnn import weights as prw
from humanparse.models.pretrained import PretrainedWeightsError

CODE_HEAD = dict(gce_dim=512, nl_norm="gn")  # the released roi_gce_head (CONV_DIM 512, GroupNorm non-local)
BASELINE_HEAD = dict(gce="none", convs_after_gce=8, roi_levels="fpn_assign", roi_size=14, output_size=56)
TINY_HEAD = dict(conv_dim=16, gce_dim=8, aspp_dim=8)
TINY_NET = dict(
    backbone="resnet",
    resnet_kwargs={"block": "basic", "layers": [1, 1, 1, 1]},
    trainable_layers=5,
    norm="bn",
    fpn_channels=16,
    representation_size=32,
    rpn_pre_nms_top_n_test=100,
    rpn_post_nms_top_n_test=50,
    box_batch_size_per_image=64,
    box_detections_per_img=10,
)


def nparams(m: torch.nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


# ------------------------------------------------------------------------------------------------
# parameter counts (released soeaver/Parsing-R-CNN, R50-FPN, CIHP C = 20)


def test_parameter_counts_match_the_released_model():
    net = ParsingRCNN(20, parsing=CODE_HEAD, norm="bn")
    assert nparams(net) == 54_564_717
    branch = net.branches["parsing"]
    assert nparams(branch) == 13_212_436
    assert nparams(net) - nparams(branch) == 41_352_281
    gce = branch.head.gce
    assert nparams(gce.aspp) == 1_836_032 and nparams(gce.image_pool) == 65_792
    assert nparams(gce.project) == 655_872 and nparams(gce.nonlocal_block) == 1_051_648
    assert nparams(branch.head.after) == 9_439_232 and nparams(branch.output) == 163_860
    # the 8conv baseline head (released roi_convx_head defaults): 17,698,816 convs + 163,860 deconv
    assert nparams(ParsingBranch(20, **BASELINE_HEAD)) == 17_862_676
    # the paper's GCE width 256 (default): 1x1 1280->256, non-local at 256, first PBD conv 256->512
    paper = ParsingBranch(20)
    expected = (
        1_836_032
        + 65_792
        + (1280 * 256 + 256)
        + (4 * (256 * 256 + 256) + 512)
        + (256 * 512 * 9 + 512)
        + 3 * (512 * 512 * 9 + 512)
        + 163_860
    )
    assert nparams(paper) == expected == 10_916_884


# ------------------------------------------------------------------------------------------------
# head shapes for every ablation switch (Tables 1-4, 6)


@pytest.mark.parametrize("gce", ["none", "aspp", "nonlocal", "aspp+nonlocal"])
@pytest.mark.parametrize("before,after", [(0, 4), (4, 0), (4, 4), (0, 8)])
def test_head_shapes_gce_and_pbd(gce, before, after):
    if gce == "none" and before + after == 0:
        pytest.skip("empty head")
    head = ParsingHead(16, gce, before, after, **TINY_HEAD)
    y = head(torch.randn(3, 16, 32, 32))
    width = 16 if after or (gce == "none" and before) else 8
    assert y.shape == (3, width, 32, 32) == (3, head.out_channels, 32, 32)
    assert (head.gce is None) == (gce == "none")
    if head.gce is not None:
        assert (head.gce.nonlocal_block is not None) == ("nonlocal" in gce)
        assert head.gce.use_aspp == ("aspp" in gce)


@pytest.mark.parametrize("roi_size,output_size", [(14, 56), (32, 128), (32, 64), (64, 256), (64, 128)])
@pytest.mark.parametrize("levels", ["p2", "fpn_assign"])
def test_branch_roi_sizes_and_levels(roi_size, output_size, levels):
    b = ParsingBranch(
        5, in_channels=16, roi_levels=levels, roi_size=roi_size, output_size=output_size, **TINY_HEAD
    )
    assert b.pooler.featmap_names == (["0"] if levels == "p2" else ["0", "1", "2", "3"])
    feats = {k: torch.randn(1, 16, 64 // 2**i, 64 // 2**i) for i, k in enumerate("0123")}
    out = b.forward_rois(feats, [torch.tensor([[4.0, 4.0, 60.0, 60.0], [0.0, 0.0, 8.0, 8.0]])], [(256, 256)])
    assert out["parsing_logits"].shape == (2, 5, output_size, output_size)


def test_output_size_must_be_a_multiple():
    with pytest.raises(ValueError, match="multiple"):
        ParsingBranch(5, roi_size=32, output_size=96)


@pytest.mark.parametrize("norm", ["bn", "gn", "none"])
def test_nonlocal_is_the_embedded_gaussian(norm):
    torch.manual_seed(0)
    nl = NonLocal2d(32, 32, norm).eval()
    x = torch.randn(2, 32, 8, 8)
    th = nl.theta(x).flatten(2)  # (B, d, HW)
    pooled = F.max_pool2d(x, 2)
    ph, g = nl.phi(pooled).flatten(2), nl.g(pooled).flatten(2)
    a = torch.softmax(th.transpose(1, 2) @ ph * 32**-0.5, -1)
    y = (a @ g.transpose(1, 2)).transpose(1, 2).reshape(2, 32, 8, 8)
    torch.testing.assert_close(nl(x), x + nl.norm(nl.out(y)), atol=1e-5, rtol=1e-4)


def test_box_roi_levels_p2_row():
    net = ParsingRCNN(5, parsing=TINY_HEAD, box_roi_levels="p2", **TINY_NET)
    assert net.roi_heads.box_roi_pool.featmap_names == ["0"]
    assert net.branches["parsing"].pooler.featmap_names == ["0"]


# ------------------------------------------------------------------------------------------------
# parsing RoI selection and loss


def test_selection_positives_rematch_cap():
    b = ParsingBranch(5, in_channels=16, rois_per_image=3, **TINY_HEAD)
    gt = torch.tensor([[0.0, 0.0, 20.0, 20.0], [30.0, 30.0, 50.0, 50.0]])
    near0 = torch.tensor(
        [[0.0, 0.0, 20.0, 19.0], [1.0, 0.0, 20.0, 20.0], [0.0, 1.0, 20.0, 20.0], [0.0, 0.0, 19.0, 20.0]]
    )
    near1 = torch.tensor([[30.0, 30.0, 50.0, 49.0]])
    far = torch.tensor([[0.0, 0.0, 5.0, 5.0]])
    proposals = torch.cat([near0, near1, far, gt[1:]])
    # labels from the box sampler: the last (a GT box) is marked background (not sampled as positive);
    # the matched indices are deliberately wrong: the branch re-matches
    labels = torch.tensor([1, 1, 1, 1, 1, 1, 0])
    matched = torch.zeros(7, dtype=torch.int64)
    rois, m = b.select([proposals], [matched], [labels], [{"boxes": gt}])
    assert len(rois[0]) == 3  # 5 re-matched positives, capped at 3
    for r, j in zip(rois[0], m[0]):
        assert r.tolist() in proposals[:5].tolist()  # never the negative 'far' box, never the label-0 box
        assert int(j) == (1 if r[0] >= 30 else 0)
    b.rois_per_image = None
    rois, m = b.select([proposals], [matched], [labels], [{"boxes": gt}])
    assert len(rois[0]) == 5 and m[0].tolist() == [0, 0, 0, 0, 1]
    # different draws at the cap
    b.rois_per_image = 2
    draws = {
        tuple(map(tuple, b.select([proposals], [matched], [labels], [{"boxes": gt}])[0][0].tolist()))
        for _ in range(20)
    }
    assert len(draws) > 1


def test_no_positive_gives_zero_loss_without_nan():
    b = ParsingBranch(5, in_channels=16, **TINY_HEAD)
    feats = {"0": torch.randn(2, 16, 16, 16)}
    rois, m = b.select(
        [torch.tensor([[0.0, 0.0, 5.0, 5.0]])] * 2,
        [torch.zeros(1, dtype=torch.int64)] * 2,
        [torch.zeros(1, dtype=torch.int64)] * 2,
        [{"boxes": torch.zeros(0, 4)}] * 2,
    )
    assert sum(len(r) for r in rois) == 0
    loss = b.loss(feats, rois, [(64, 64)] * 2, [{}, {}], m)["loss_parsing"]
    assert loss.item() == 0.0
    loss.backward()
    grads = [p.grad for p in b.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)


def test_loss_is_weighted_ce_with_ignore():
    torch.manual_seed(0)
    b = ParsingBranch(5, in_channels=16, roi_size=8, output_size=16, loss_weight=2.0, **TINY_HEAD)
    feats = {"0": torch.randn(1, 16, 16, 16)}
    parts = torch.randint(0, 5, (1, 64, 64), dtype=torch.uint8)
    parts[0, :10] = 255
    roi = torch.tensor([[0.0, 0.0, 40.0, 40.0]])
    out = b.loss(feats, [roi], [(64, 64)], [{"parts": parts}], [torch.zeros(1, dtype=torch.int64)])
    logits = b.forward_rois(feats, [roi], [(64, 64)])["parsing_logits"]
    gt = parsing_targets(parts, roi, 16)
    torch.testing.assert_close(out["loss_parsing"], 2.0 * F.cross_entropy(logits, gt, ignore_index=255))


# ------------------------------------------------------------------------------------------------
# targets: crop to the rounded box, nearest resize


def test_targets_by_hand():
    h, w = 10, 12
    parts = torch.tensor([[(x + 3 * y) % 20 for x in range(w)] for y in range(h)], dtype=torch.uint8)[None]
    # rounded box [2, 2, 10, 7] -> crop rows 2:7, cols 2:10 (5 x 8) -> 4 x 4:
    # source x = floor(j * 8 / 4) = 0, 2, 4, 6 -> cols 2, 4, 6, 8; y = floor(j * 5 / 4) = 0, 1, 2, 3 -> rows 2..5
    t = parsing_targets(parts, torch.tensor([[2.4, 1.6, 9.5, 7.4]]), 4)[0]
    expect = torch.tensor([[(x + 3 * y) % 20 for x in (2, 4, 6, 8)] for y in (2, 3, 4, 5)])
    assert torch.equal(t, expect)
    # a box over the top-left border: [max(0, x0):x1] -> cols 0:4 (4 -> 4: identity), rows 0:2 (2 -> 4: doubled)
    t = parsing_targets(parts, torch.tensor([[-3.0, -1.2, 4.2, 2.0]]), 4)[0]
    expect = torch.tensor([[(x + 3 * y) % 20 for x in range(4)] for y in (0, 0, 1, 1)])
    assert torch.equal(t, expect)
    # a box beyond the bottom-right border: the crop stops at the image (numpy slicing)
    t = parsing_targets(parts, torch.tensor([[8.0, 6.0, 20.0, 14.0]]), 4)[0]
    expect = torch.tensor([[(x + 3 * y) % 20 for x in (8, 9, 10, 11)] for y in (6, 7, 8, 9)])
    assert torch.equal(t, expect)


def test_targets_equal_opencv_nearest():
    rng = np.random.default_rng(0)
    parts = rng.integers(0, 20, (3, 40, 50)).astype(np.uint8)
    boxes = np.array([[3.3, 4.6, 33.2, 38.9], [-4.0, 2.5, 21.7, 17.2], [10.5, 0.4, 55.0, 44.6]], np.float32)
    got = parsing_targets(torch.from_numpy(parts), torch.from_numpy(boxes), 32)
    for i in range(3):
        x0, y0, x1, y1 = np.round(boxes[i]).astype(int)  # numpy rounds half to even, like torch.round
        crop = parts[i][max(0, y0) : y1, max(0, x0) : x1]
        ref = cv2.resize(crop, (32, 32), interpolation=cv2.INTER_NEAREST)
        np.testing.assert_array_equal(got[i].numpy(), ref)


def test_targets_of_a_flipped_image_are_flipped_and_swapped():
    # LIP/CIHP swap: (14, 15) arms, (16, 17) legs, (18, 19) shoes
    perm = np.arange(20)
    for a, b in ((14, 15), (16, 17), (18, 19)):
        perm[a], perm[b] = b, a
    rng = np.random.default_rng(1)
    w = 40
    parts = torch.from_numpy(rng.choice([0, 2, 14, 15, 16, 17, 18, 19], (1, 30, w)).astype(np.uint8))
    flipped = torch.from_numpy(perm[parts.numpy()[:, :, ::-1]].astype(np.uint8))  # the data pipeline's flip
    for box, size in (
        ([4.0, 3.0, 20.0, 19.0], 16),
        ([10.0, 2.0, 18.0, 26.0], 24),
    ):  # 1:1 and integer up-sampling
        b = torch.tensor([box])
        fb = torch.tensor([[w - box[2], box[1], w - box[0], box[3]]])
        t, tf = parsing_targets(parts, b, size), parsing_targets(flipped, fb, size)
        assert torch.equal(tf, torch.from_numpy(perm[t.numpy()[:, :, ::-1]]))


# ------------------------------------------------------------------------------------------------
# paste-back and the semantic map


def released_paste(probs: np.ndarray, box: np.ndarray, h_img: int, w_img: int) -> np.ndarray:
    """The released ``parsing_results`` written out with numpy/OpenCV (one instance)."""
    m = probs.shape[-1]
    p = probs.transpose(1, 2, 0)
    half = (box[2:] - box[:2]) * 0.5 * (m + 2.0) / m
    ctr = (box[2:] + box[:2]) * 0.5
    b = np.concatenate([ctr - half, ctr + half]).astype(np.int32)
    padded = np.zeros((m + 2, m + 2, p.shape[-1]), np.float32)
    padded[1:-1, 1:-1] = p
    w, h = max(b[2] - b[0] + 1, 1), max(b[3] - b[1] + 1, 1)
    lab = np.argmax(cv2.resize(padded, (w, h), interpolation=cv2.INTER_LINEAR), axis=2)
    out = np.zeros((h_img, w_img), np.uint8)
    x0, x1, y0, y1 = max(b[0], 0), min(b[2] + 1, w_img), max(b[1], 0), min(b[3] + 1, h_img)
    out[y0:y1, x0:x1] = lab[y0 - b[1] : y1 - b[1], x0 - b[0] : x1 - b[0]]
    return out


def test_paste_back_by_hand():
    # M = 4, class 1 certain everywhere; box [10, 10, 20, 20] -> enlarged by 6/4 about 15 -> [7.5, 22.5] ->
    # int [7, 22], 16 px. Bilinear 6 -> 16: output 0 and 15 read only the zero padding (argmax 0 =
    # background), outputs 1..14 blend in the interior (class 1).
    probs = torch.zeros(1, 3, 4, 4)
    probs[:, 1] = 1.0
    out = paste_parsing(probs, torch.tensor([[10.0, 10.0, 20.0, 20.0]]), (30, 32))
    expect = torch.zeros(30, 32, dtype=torch.uint8)
    expect[8:22, 8:22] = 1
    assert torch.equal(out[0], expect)
    # left half class 2: columns whose source x < 2 (interior columns 0, 1 -> padded 1, 2) go to class 2
    probs[:, 1, :, :2] = 0.0
    probs[:, 2, :, :2] = 1.0
    out = paste_parsing(probs, torch.tensor([[10.0, 10.0, 20.0, 20.0]]), (30, 32))[0]
    assert set(out[8:22, 8:15].unique().tolist()) == {2} and set(out[8:22, 15:22].unique().tolist()) == {1}


@pytest.mark.parametrize(
    "box",
    [
        [3.2, 5.7, 40.9, 33.1],
        [-6.0, -3.5, 12.2, 20.0],
        [30.0, 20.0, 49.5, 39.9],
        [44.0, 1.0, 70.0, 50.0],
        [10.0, 10.0, 10.4, 10.3],
    ],
)
def test_paste_back_equals_the_released_routine(box):
    rng = np.random.default_rng(2)
    probs = rng.random((5, 16, 16)).astype(np.float32)
    probs /= probs.sum(0, keepdims=True)
    got = paste_parsing(torch.from_numpy(probs)[None], torch.tensor([box]), (40, 50))[0].numpy()
    ref = released_paste(probs, np.array(box, np.float32), 40, 50)
    assert (got != ref).sum() <= 2  # float rounding of near-ties only
    assert got.shape == (40, 50)


def test_semantic_map_order_and_threshold():
    parts = torch.zeros(3, 6, 6, dtype=torch.uint8)
    parts[0, 0:4, 0:4] = 2  # score 0.9
    parts[1, 2:6, 2:6] = 5  # score 0.2: below 0.3, skipped
    parts[2, 1:5, 1:5] = 7  # score 0.5: pasted first, 0.9 overwrites the overlap
    parts[2, 1, 1] = 0  # a zero label never overwrites
    sem = semantic_map(parts, torch.tensor([0.9, 0.2, 0.5]), 0.3)
    expect = torch.zeros(6, 6, dtype=torch.int64)
    expect[1:5, 1:5] = 7
    expect[0:4, 0:4] = 2
    assert torch.equal(sem, expect)
    sem = semantic_map(parts, torch.tensor([0.9, 0.2, 0.5]), 0.05)  # the MHP v2.0 threshold keeps 0.2
    assert sem[5, 5] == 5 and sem[3, 3] == 2 and sem[4, 4] == 7
    from humanparse.metrics.instance import semantic_from_instances

    ref = semantic_from_instances(parts.numpy(), np.array([0.9, 0.2, 0.5]), (6, 6), 0.3)
    np.testing.assert_array_equal(semantic_map(parts, torch.tensor([0.9, 0.2, 0.5]), 0.3).numpy(), ref)


def test_boxes_to_original_inverts_the_affine():
    # crop-mode affine: scale 2 (cv2 pixel centres), then a shift: u = 2 (x + 0.5) - 0.5 - 10
    a = np.array([[2.0, 0.0, 0.5 - 10], [0.0, 2.0, 0.5 - 4], [0.0, 0.0, 1.0]])
    orig = torch.tensor([[3.0, 4.0, 10.0, 12.5]])
    inp = orig * 2 - torch.tensor([10.0, 4.0, 10.0, 4.0])  # continuous coordinates scale about 0
    torch.testing.assert_close(boxes_to_original(inp, a), orig)
    mirror = np.array([[-1.0, 0.0, 19.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])  # a flip of a 20-px wide image
    torch.testing.assert_close(
        boxes_to_original(torch.tensor([[2.0, 1.0, 5.0, 3.0]]), mirror),
        torch.tensor([[15.0, 1.0, 18.0, 3.0]]),
    )


def test_merge_flipped_swaps_channels():
    perm = np.array([0, 2, 1, 3])
    plain = torch.rand(2, 4, 3, 3)
    flipped = torch.rand(2, 4, 3, 3)
    det = {"parsing_probs": plain, "parsing_probs_flipped": flipped, "parsing_views": torch.tensor([2, 1])}
    got = merge_flipped(det, perm)
    swapped = flipped[:, [0, 2, 1, 3]]
    torch.testing.assert_close(got, (2 * plain + swapped) / 3)
    with pytest.raises(ValueError, match="flip_permutation"):
        merge_flipped(det, None)
    assert merge_flipped({"parsing_probs": plain}, None) is plain


def test_postprocess_contract():
    probs = torch.zeros(2, 3, 4, 4)
    probs[0, 1] = 1.0
    probs[1, 2] = 1.0
    det = {
        "boxes": torch.tensor([[4.0, 4.0, 20.0, 20.0], [10.0, 10.0, 30.0, 30.0]]),
        "scores": torch.tensor([0.2, 0.8]),
        "labels": torch.tensor([1, 1]),
        "parsing_probs": probs,
    }
    affine = np.diag([2.0, 2.0, 1.0])
    affine[:2, 2] = 0.5  # input = 2 (x + 0.5) - 0.5: the original image is 16 x 20
    out = ParsingRCNNPostprocess(semseg_score_thresh=0.3)(
        {"detections": [det]}, {"meta": [{"orig_size": (16, 20), "affine": affine}]}
    )
    inst = out[0]["instances"]
    assert [i["score"] for i in inst] == pytest.approx([0.8, 0.2])  # descending
    assert inst[0]["box"] == pytest.approx([5.0, 5.0, 15.0, 15.0]) and inst[0]["label"] == 1
    assert inst[0]["parts"].shape == (16, 20) and inst[0]["parts"].dtype == torch.uint8
    assert set(inst[0]["parts"].unique().tolist()) == {0, 2} and set(inst[1]["parts"].unique().tolist()) == {
        0,
        1,
    }
    sem = out[0]["semantic"]
    assert sem.shape == (16, 20) and set(sem.unique().tolist()) == {0, 2}  # the 0.2 instance is below 0.3


# ------------------------------------------------------------------------------------------------
# TTA geometry


def test_tta_views():
    torch.manual_seed(0)
    net = ParsingRCNN(5, parsing=dict(roi_size=8, output_size=16, **TINY_HEAD), **TINY_NET).eval()
    img = torch.randn(1, 3, 64, 64)
    net.tta = {"scales": [0.5], "flip": True}
    with torch.no_grad():
        d = net(img)["detections"][0]
        assert d["parsing_views"].tolist() == [1, 1] and len(d["boxes"]) > 0
        branch = net.branches["parsing"]
        # the 0.5 view: image halved, boxes halved
        il, feats = net.features(F.interpolate(img, size=(32, 32), mode="bilinear", align_corners=False))
        p = branch.forward_rois(feats, [d["boxes"] * 0.5], il.image_sizes)["parsing_logits"].softmax(1)
        torch.testing.assert_close(d["parsing_probs"], p)
        # the flipped 0.5 view: boxes mirrored in the 32-px frame, probabilities flipped back
        il, feats = net.features(
            F.interpolate(img, size=(32, 32), mode="bilinear", align_corners=False).flip(-1)
        )
        b = d["boxes"] * 0.5
        fb = torch.stack([32 - b[:, 2], b[:, 1], 32 - b[:, 0], b[:, 3]], 1)
        p = branch.forward_rois(feats, [fb], il.image_sizes)["parsing_logits"].softmax(1).flip(-1)
        torch.testing.assert_close(d["parsing_probs_flipped"], p)
        net.tta = None
        d0 = net(img)["detections"][0]
        assert "parsing_probs_flipped" not in d0 and d0["parsing_probs"].shape[1:] == (5, 16, 16)


# ------------------------------------------------------------------------------------------------
# initialisations


def test_coco_keypoints_init_from_a_file(tmp_path):
    from torchvision.models.detection import keypointrcnn_resnet50_fpn

    torch.manual_seed(0)
    kp = keypointrcnn_resnet50_fpn(weights=None, weights_backbone=None)
    path = tmp_path / "kp.pth"
    torch.save(kp.state_dict(), path)
    sd = kp.state_dict()
    net = ParsingRCNN(20, parsing=BASELINE_HEAD, init="coco_keypoints", weights=str(path))
    convs = net.branches["parsing"].head.convs()
    assert len(convs) == 8
    for k, conv in enumerate(convs):
        assert torch.equal(conv.weight, sd[f"roi_heads.keypoint_head.{2 * k}.weight"])
    assert torch.equal(net.backbone.body.layer3[0].conv2.weight, sd["backbone.body.layer3.0.conv2.weight"])
    assert torch.equal(
        net.roi_heads.box_predictor.cls_score.weight, sd["roi_heads.box_predictor.cls_score.weight"]
    )
    assert torch.equal(net.rpn.head.conv[0][0].weight, sd["rpn.head.conv.0.0.weight"])
    # the final head (code width 512): the PBD convs take the last four pose convs
    net = ParsingRCNN(20, parsing=CODE_HEAD, init="coco_keypoints", weights=str(path))
    for k, conv in enumerate(net.branches["parsing"].head.convs()):
        assert torch.equal(conv.weight, sd[f"roi_heads.keypoint_head.{2 * (4 + k)}.weight"])


def test_init_offline_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setattr(prw.pretrained, "reachable", lambda *a, **k: False)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    for init in ("coco_keypoints", "imagenet"):
        with pytest.raises(PretrainedWeightsError, match="not reachable"):
            ParsingRCNN(20, init=init)
    with pytest.raises(PretrainedWeightsError, match="does not exist"):
        ParsingRCNN(20, init="coco_keypoints", weights=str(tmp_path / "missing.pth"))
    with pytest.raises(ValueError, match="init"):
        ParsingRCNN(20, init="coco")


# ------------------------------------------------------------------------------------------------
# released checkpoints (soeaver/Parsing-R-CNN): Caffe-style trunk, names, frozen affine BN


def released_names(net: torch.nn.Module) -> dict[str, str]:
    """This net's parameter names → the released model's (rcnn/modeling module names), written out."""
    fpn = {3: "p5", 2: "fpn_#0", 1: "fpn_#1", 0: "fpn_#2"}
    out = {}
    for k in net.state_dict():
        if k.startswith("backbone.body."):
            out[k] = "Conv_Body." + k[len("backbone.body.") :]
        elif k.startswith("backbone.fpn."):
            kind, lvl, _, p = k.split(".")[2:]
            io = "in" if kind == "inner_blocks" else "out"
            name = fpn[int(lvl)]
            out[k] = (
                f"Conv_Body_FPN.p5_{io}.{p}" if name == "p5" else f"Conv_Body_FPN.fpn_{io}.{name[-1]}.{p}"
            )
        elif k.startswith("rpn.head.conv."):
            out[k] = "RPN.head.conv." + k.split(".")[-1]
        elif k.startswith("rpn.head."):
            out[k] = "RPN." + k[len("rpn.") :]
        elif k.startswith("roi_heads.box_head."):
            out[k] = "Fast_RCNN.Head." + k[len("roi_heads.box_head.") :]
        elif k.startswith("roi_heads.box_predictor."):
            out[k] = "Fast_RCNN.Output." + k[len("roi_heads.box_predictor.") :]
    head = "Parsing_RCNN.Head."
    for k in net.state_dict():
        rest = (
            k[len("roi_heads.branches.parsing.") :] if k.startswith("roi_heads.branches.parsing.") else None
        )
        if rest is None:
            continue
        rest = (
            rest.replace("head.gce.image_pool.1.0.", head + "im_pool.1.0.")
            .replace("head.gce.aspp.", head + "asppv3.")
            .replace("head.gce.project.0.", head + "feat.0.0.")
            .replace("head.gce.nonlocal_block.norm.", head + "feat.1.gn.")
            .replace("head.gce.nonlocal_block.", head + "feat.1.")
            .replace("head.after.", head + "conv_after_asppv3.")
            .replace("output.deconv.", "Parsing_RCNN.Output.parsing_score_lowres.")
        )
        out[k] = rest
    return out


def test_caffe_trunk_puts_the_stride_in_the_1x1():
    net = ParsingRCNN(20, parsing=CODE_HEAD, stride_in_1x1=True, norm="affine")
    for stage in (net.backbone.body.layer2, net.backbone.body.layer3, net.backbone.body.layer4):
        assert stage[0].conv1.stride == (2, 2) and stage[0].conv2.stride == (1, 1)
        assert stage[0].downsample[0].stride == (2, 2)
    assert net.backbone.body.layer1[0].conv1.stride == (1, 1)
    feats = net.backbone(torch.randn(1, 3, 64, 96))
    assert [tuple(f.shape[-2:]) for f in feats.values()] == [(16, 24), (8, 12), (4, 6), (2, 3), (1, 2)]


def test_released_checkpoint_loads_every_tensor(tmp_path):
    from humanparse.models.released import ReleasedWeightsError, load_released_weights

    torch.manual_seed(0)
    # the released layout (Caffe trunk, affine BN, GroupNorm non-local) at small widths: same names, small file
    built = dict(
        parsing=dict(gce_dim=32, conv_dim=32, aspp_dim=16, nl_norm="gn"),
        stride_in_1x1=True,
        norm="affine",
        resnet_kwargs={"layers": [1, 1, 1, 1], "width_per_group": 16},
        fpn_channels=16,
        representation_size=32,
    )
    ref = ParsingRCNN(20, **built).state_dict()
    names = released_names(ParsingRCNN(20, **built))
    assert len(names) == len(ref)  # frozen affine BN: weight and bias only, all mapped
    released = {r: torch.randn_like(ref[k]) for k, r in names.items()}
    released["RPN.anchor_generator.cell_anchors.0"] = torch.zeros(3, 4)  # released buffers, dropped
    path = tmp_path / "model_latest.pth"
    torch.save({"model": released}, path)
    net = ParsingRCNN(20, **built)
    load_released_weights(net, path, "parsing_rcnn")
    got = net.state_dict()
    for k, r in names.items():
        assert torch.equal(got[k], released[r]), k
    # the released AffineChannel: x * weight + bias
    bn = net.backbone.body.layer3[0].bn2
    x = torch.randn(2, bn.weight.numel(), 3, 3)
    torch.testing.assert_close(bn(x), x * bn.weight[:, None, None] + bn.bias[:, None, None])
    # a file of another head, or for another class count, is refused naming the file
    torch.save(
        {"model": {k: v for k, v in released.items() if "conv_after" not in k}}, tmp_path / "partial.pth"
    )
    with pytest.raises(ReleasedWeightsError, match="partial.pth.*missing from the file"):
        load_released_weights(ParsingRCNN(20, **built), tmp_path / "partial.pth", "parsing_rcnn")
    with pytest.raises(ReleasedWeightsError, match="num_classes=20.*num_classes=59"):
        load_released_weights(ParsingRCNN(59, **built), path, "parsing_rcnn")


def test_parsing_with_another_branch_is_one_module():
    """Parsing R-CNN Table 9 style: the parsing branch next to another per-RoI branch in one detector."""
    from humanparse.models.rcnn import KeypointBranch

    torch.manual_seed(0)
    net = ParsingRCNN(
        5,
        parsing=dict(roi_size=8, output_size=16, **TINY_HEAD),
        extra_branches={"keypoint": KeypointBranch(16, 17, layers=(8, 8))},
        **TINY_NET,
    )
    parts = torch.zeros(1, 64, 64, dtype=torch.uint8)
    parts[0, 8:56, 10:30] = 3
    t = {
        "boxes": torch.tensor([[10.0, 8.0, 30.0, 56.0]]),
        "labels": torch.ones(1, dtype=torch.int64),
        "parts": parts,
        "keypoints": torch.tensor([[[20.0, 20.0, 1.0]] * 17]),
    }
    losses = net(torch.randn(1, 3, 64, 64), [t])
    assert {"loss_parsing", "loss_keypoint", "loss_classifier", "loss_objectness"} <= set(losses)
    net.eval()
    with torch.no_grad():
        d = net(torch.randn(1, 3, 64, 64))["detections"][0]
    assert d["parsing_probs"].shape == (len(d["boxes"]), 5, 16, 16) and d["keypoints"].shape == (
        len(d["boxes"]),
        17,
        3,
    )
