"""Affine augmentation: one matrix for all targets, flips with left/right swaps, exact inverse mapping."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from humanparse.data.meta import CORRPM_BUGGY_JOINT_FLIP_PAIRS, get_info
from humanparse.data.transforms import (
    AffineTransform,
    FlipTables,
    box_affine,
    crop_affine,
    mirror_matrix,
    transform_boxes,
    warp_sample,
)
from humanparse.tasks.postprocess import map_back

LIP = get_info("lip")


def _sample(h=40, w=30):
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
    semantic = np.zeros((h, w), np.uint8)
    semantic[5:20, 2:10] = 14  # Left-arm on the image-left side
    semantic[5:20, 20:28] = 5
    semantic[30:35, 3:6] = 255
    kp = np.zeros((16, 3), np.float32)
    kp[5] = (4.0, 30.0, 1.0)  # L_Ankle
    kp[0] = (25.0, 31.0, 1.0)  # R_Ankle
    kp[9] = (15.0, 2.0, 1.0)  # B_Head
    return {"image": image, "semantic": semantic, "keypoints": kp, "meta": {"id": "x"}}


def test_identity_placement_is_exact():
    m = box_affine((40, 30), (40, 30))
    assert np.allclose(m, np.eye(3))
    assert np.allclose(crop_affine((40, 30), (40, 30), 1.0, 1.0, (0.0, 0.0)), np.eye(3))


def test_flip_swaps_classes_and_joints_and_twice_is_identity():
    s = _sample()
    tables = FlipTables.from_info(LIP)
    m = mirror_matrix(30)
    f = warp_sample(s, m, (40, 30), True, tables)
    assert (f["semantic"] == 15).sum() == (s["semantic"] == 14).sum()
    assert (f["semantic"] == 14).sum() == 0
    # the left arm region moves to the image right and becomes Right-arm
    assert f["semantic"][10, 29 - 5] == 15
    # L_Ankle (5) at x=4 becomes R_Ankle (0) at x = W-1-4
    assert f["keypoints"][0].tolist() == pytest.approx([25.0, 30.0, 1.0])
    assert f["keypoints"][5].tolist() == pytest.approx([4.0, 31.0, 1.0])
    assert f["keypoints"][9].tolist() == pytest.approx([14.0, 2.0, 1.0])
    assert np.array_equal(f["image"], s["image"][:, ::-1])
    ff = warp_sample(f, m, (40, 30), True, tables)
    assert np.array_equal(ff["semantic"], s["semantic"])
    assert np.array_equal(ff["image"], s["image"])
    assert np.allclose(ff["keypoints"], s["keypoints"])


def test_correct_versus_corrpm_joint_pairs():
    good = LIP.joint_flip_permutation()
    bad = LIP.joint_flip_permutation(CORRPM_BUGGY_JOINT_FLIP_PAIRS)
    assert good[0] == 5 and good[10] == 15 and good[12] == 13
    assert bad[0] == 3 and bad[10] == 13
    # under the correct pairs every left joint maps to its right counterpart by name
    for i, j in enumerate(good):
        a, b = LIP.joints[i], LIP.joints[j]
        assert a[2:] == b[2:] and (a[0] == b[0] == "B" or {a[0], b[0]} == {"L", "R"})


def test_absent_joints_stay_absent():
    s = _sample()
    s["keypoints"][3] = (0, 0, 0)
    t = AffineTransform((64, 64), rotation=30, flip_prob=1.0).bind(FlipTables.from_info(LIP))
    out = t(s, np.random.default_rng(3))
    assert out["keypoints"][:, 2].sum() == 3
    assert out["keypoints"][LIP.joint_flip_permutation()[3]].tolist() == [0, 0, 0]


def test_train_transform_is_deterministic_per_rng_and_pads_labels_with_ignore():
    s = _sample()
    t = AffineTransform((64, 64), scale=(0.75, 1.25), rotation=60, rotation_prob=1.0).bind(
        FlipTables.from_info(LIP)
    )
    a = t(s, np.random.default_rng(7))
    b = t(s, np.random.default_rng(7))
    assert np.array_equal(a["semantic"], b["semantic"]) and np.allclose(
        a["meta"]["affine"], b["meta"]["affine"]
    )
    # the letterboxed 30x40 image leaves padding at the sides: ignore, never background
    assert (a["semantic"] == 255).sum() > 64 * 4


@pytest.mark.parametrize("mode", ["logits", "labels"])
@pytest.mark.parametrize("flip,rotation,scale", [(False, 0.0, 1.0), (True, 20.0, 1.2)])
def test_map_back_inverts_the_warp(mode, flip, rotation, scale):
    h, w = 50, 70
    yy, xx = np.mgrid[:h, :w]
    label = ((xx // 10) % 4 + 4 * ((yy // 10) % 2)).astype(np.uint8)  # 8 blocky classes
    m = box_affine((h, w), (128, 128), scale=scale, rotation=rotation, flip=flip)
    warped = warp_sample(
        {"image": np.zeros((h, w, 3), np.uint8), "semantic": label}, m, (128, 128), flip, None
    )
    onehot = torch.nn.functional.one_hot(
        torch.from_numpy(warped["semantic"].astype(np.int64)).clamp(max=7), 8
    )
    logits = onehot.permute(2, 0, 1).float()
    back = map_back(logits, m, (h, w), mode=mode).numpy()
    inside = np.ones((h, w), bool)
    if scale != 1.0:  # parts of the image leave the input frame when zoomed in: compare what stayed
        pts = np.stack([xx.ravel(), yy.ravel(), np.ones(h * w)], 0)
        uv = (m @ pts)[:2].reshape(2, h, w)
        inside = (uv[0] >= 1) & (uv[0] <= 126) & (uv[1] >= 1) & (uv[1] <= 126)
    agree = (back == label)[inside].mean()
    assert agree > 0.97, agree


def test_boxes_follow_the_matrix():
    m = mirror_matrix(100)
    out = transform_boxes(np.array([[10, 20, 30, 40]]), m)
    assert out.tolist() == [[69.0, 20.0, 89.0, 40.0]]
