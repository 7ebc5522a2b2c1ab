"""Dense-point transforms: flip with the UV symmetry table against the mirrored
rendering, flip twice = identity, and scale / crop / rotation keeping points, boxes and masks consistent."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from humanparse.data.densepose_transforms import DensePoseTransform, flip_person, transform_flips, warp_person
from humanparse.data.meta import DENSEPOSE_FINE_TO_COARSE, LIP_JOINT_FLIP_PAIRS
from humanparse.data.transforms import AffineTransform, Compose, rotation_matrix, scale_matrix, translate
from humanparse.synthetic.body_surface import synthetic_uv_symmetry
from humanparse.synthetic.outfit import sample_outfit
from humanparse.synthetic.render import draw_person
from humanparse.synthetic.skeleton import sample_skeleton

H, W = 160, 120


def _mirror_skeleton(sk, width: int):
    perm = np.arange(16)
    for a, b in LIP_JOINT_FLIP_PAIRS:
        perm[a], perm[b] = b, a

    def pts(p):
        p = np.array(p, dtype=np.float64, copy=True)
        p[..., 0] = width - 1 - p[..., 0]
        return p

    def vec(v):
        return np.array([-v[0], v[1]])

    return replace(
        sk,
        joints=pts(sk.joints[perm]),
        up=vec(sk.up),
        left=-vec(sk.left),
        head_up=vec(sk.head_up),
        hand_tips=pts(sk.hand_tips[::-1]),
        toes=pts(sk.toes[::-1]),
        arm_layers=sk.arm_layers[::-1],
        right_leg_first=not sk.right_leg_first,
        right_arm_first=not sk.right_arm_first,
        arm_modes=sk.arm_modes[::-1],
        leg_modes=sk.leg_modes[::-1],
    )


def _person_from_render(r, rng, n=400) -> dict:
    ys, xs = np.nonzero(r.parts)
    pick = rng.choice(len(xs), min(n, len(xs)), replace=False)
    ys, xs = ys[pick], xs[pick]
    coarse = np.zeros((256, 256), np.uint8)
    cols = np.floor((np.arange(256) + 0.5) * W / 256).astype(int)
    rows = np.floor((np.arange(256) + 0.5) * H / 256).astype(int)
    coarse[:] = DENSEPOSE_FINE_TO_COARSE[r.parts[rows[:, None], cols[None, :]]]
    kp = np.zeros((17, 3), np.float32)
    kp[5] = (40, 50, 2)
    kp[6] = (70, 50, 1)
    return {
        "id": 1,
        "bbox": np.array([0.0, 0.0, W, H]),
        "box": np.array([0, 0, W, H], np.float32),
        "area": float(r.mask.sum()),
        "iscrowd": 0,
        "mask": r.mask.copy(),
        "keypoints": kp,
        "has_dp": True,
        "dp": {
            "x": (xs + 0.5) * 256.0 / W,
            "y": (ys + 0.5) * 256.0 / H,
            "I": r.parts[ys, xs].astype(np.int64),
            "U": r.u[ys, xs].astype(np.float64),
            "V": r.v[ys, xs].astype(np.float64),
            "coarse": coarse,
        },
    }


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_flip_matches_the_mirrored_rendering(seed):
    rng = np.random.default_rng(seed)
    sk = sample_skeleton(rng, H, W, facing="front" if seed % 2 == 0 else "back", crop_prob=0.0)
    outfit = sample_outfit(rng, sk.facing)
    r = draw_person(H, W, sk, outfit)
    mirrored = draw_person(H, W, _mirror_skeleton(sk, W), replace(outfit, bag=-outfit.bag))
    person = _person_from_render(r, rng)
    f = flip_person(person, W, synthetic_uv_symmetry())
    cols = np.floor(np.asarray(f["dp"]["x"]) * W / 256).astype(int)  # 256 − x lands on the mirrored pixel
    rows = np.floor(np.asarray(f["dp"]["y"]) * H / 256).astype(int)
    ok = mirrored.parts[rows, cols] == f["dp"]["I"]
    assert ok.mean() > 0.95
    du = np.abs(mirrored.u[rows, cols] - f["dp"]["U"])[ok]
    dv = np.abs(mirrored.v[rows, cols] - f["dp"]["V"])[ok]
    assert np.median(du) < 0.01 and np.median(dv) < 0.01
    assert np.quantile(du, 0.9) < 0.06 and np.quantile(dv, 0.9) < 0.06
    # the flipped coarse map agrees with the mirrored rendering's coarse parts
    gc = np.floor((np.arange(256) + 0.5) * W / 256).astype(int)
    gr = np.floor((np.arange(256) + 0.5) * H / 256).astype(int)
    expect = DENSEPOSE_FINE_TO_COARSE[mirrored.parts[gr[:, None], gc[None, :]]]
    assert np.mean(f["dp"]["coarse"] == expect) > 0.97
    assert np.mean(f["mask"] == mirrored.mask) > 0.97
    # keypoints: mirrored (pixel-centre) and left/right swapped
    assert np.allclose(f["keypoints"][6], (W - 1 - 40, 50, 2)) and np.allclose(
        f["keypoints"][5], (W - 1 - 70, 50, 1)
    )


def test_flip_twice_is_identity():
    rng = np.random.default_rng(7)
    sk = sample_skeleton(rng, H, W, crop_prob=0.0)
    person = _person_from_render(draw_person(H, W, sk, sample_outfit(rng, sk.facing)), rng)
    person["bbox"] = np.array([10.3, 5.0, 90.2, 140.0])
    table = synthetic_uv_symmetry()
    back = flip_person(flip_person(person, W, table), W, table)
    assert np.allclose(back["bbox"], person["bbox"]) and np.array_equal(back["mask"], person["mask"])
    assert np.allclose(back["dp"]["x"], person["dp"]["x"]) and np.array_equal(
        back["dp"]["I"], person["dp"]["I"]
    )
    assert (
        np.abs(back["dp"]["U"] - person["dp"]["U"]).max() <= 1 / 255
        and np.abs(back["dp"]["V"] - person["dp"]["V"]).max() <= 1 / 255
    )
    assert np.array_equal(back["dp"]["coarse"], person["dp"]["coarse"]) and np.array_equal(
        back["keypoints"], person["keypoints"]
    )


def _image_points(p):
    x, y, w, h = p["bbox"]
    return np.stack([x + np.asarray(p["dp"]["x"]) * w / 256, y + np.asarray(p["dp"]["y"]) * h / 256], 1)


def test_scale_rotation_crop_keep_points_in_the_box_frame():
    rng = np.random.default_rng(8)
    sk = sample_skeleton(rng, H, W, crop_prob=0.0)
    r = draw_person(H, W, sk, sample_outfit(rng, sk.facing))
    person = _person_from_render(r, rng)
    ys, xs = np.nonzero(r.mask)
    person["bbox"] = np.array(
        [xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1], np.float64
    )
    # the points were made in the whole-image frame: re-express them in the tight box
    pts_img = np.stack(
        [(np.asarray(person["dp"]["x"]) * W / 256), (np.asarray(person["dp"]["y"]) * H / 256)], 1
    )
    x0, y0, w, h = person["bbox"]
    person["dp"]["x"] = (pts_img[:, 0] - x0) * 256 / w
    person["dp"]["y"] = (pts_img[:, 1] - y0) * 256 / h
    gc = np.floor(x0 + (np.arange(256) + 0.5) * w / 256).astype(int)
    gr = np.floor(y0 + (np.arange(256) + 0.5) * h / 256).astype(int)
    person["dp"]["coarse"] = DENSEPOSE_FINE_TO_COARSE[r.parts[gr[:, None], gc[None, :]]].astype(np.uint8)
    half = translate(0.5, 0.5)
    for m, size in (
        (translate(60, 80) @ rotation_matrix(25) @ scale_matrix(1.3) @ translate(-60, -80), (200, 200)),
        (scale_matrix(0.5), (80, 60)),
        (translate(-30, -40), (70, 70)),  # a crop that cuts the person
    ):
        q = warp_person(person, m, size)
        assert q is not None
        moved = np.linalg.inv(half) @ np.c_[pts_img, np.ones(len(pts_img))].T
        expect = (half @ m @ moved)[:2].T  # continuous image coordinates through the pixel-centre matrix
        got = _image_points(q)
        x, y, w2, h2 = q["bbox"]
        inside = (
            (expect[:, 0] >= x - 1e-9)
            & (expect[:, 0] <= x + w2 + 1e-9)
            & (expect[:, 1] >= y - 1e-9)
            & (expect[:, 1] <= y + h2 + 1e-9)
        )
        assert len(got) == inside.sum() and np.allclose(got, expect[inside], atol=1e-6)
        assert np.array_equal(q["dp"]["I"], person["dp"]["I"][inside])
        assert 0 <= x and 0 <= y and x + w2 <= size[1] + 1e-9 and y + h2 <= size[0] + 1e-9
        yy, xx = np.nonzero(q["mask"])
        assert (
            xx.min() >= np.floor(x) - 1
            and xx.max() <= x + w2
            and yy.min() >= np.floor(y) - 1
            and yy.max() <= y + h2
        )
        # the coarse map moves with the points: most points fall on a cell of their own coarse part
        c = q["dp"]["coarse"][
            np.minimum(np.asarray(q["dp"]["y"]).astype(int), 255),
            np.minimum(np.asarray(q["dp"]["x"]).astype(int), 255),
        ]
        assert np.mean(c == DENSEPOSE_FINE_TO_COARSE[q["dp"]["I"]]) > 0.95
    assert warp_person(person, translate(-500, 0), (50, 50)) is None  # box left the image


def test_dense_pose_transform_flips_only_with_a_table():
    rng = np.random.default_rng(9)
    sk = sample_skeleton(rng, H, W, crop_prob=0.0)
    r = draw_person(H, W, sk, sample_outfit(rng, sk.facing))
    sample = {"image": np.zeros((H, W, 3), np.uint8), "persons": [_person_from_render(r, rng)], "meta": {}}
    base = Compose([AffineTransform((H, W), flip_prob=1.0, scale=(1.0, 1.0))])
    assert transform_flips(base) and not transform_flips(Compose([AffineTransform((H, W), train=False)]))
    out = DensePoseTransform(base, synthetic_uv_symmetry())(dict(sample), np.random.default_rng(0))
    ref = flip_person(sample["persons"][0], W, synthetic_uv_symmetry())
    assert out["meta"]["flipped"]
    assert np.allclose(out["persons"][0]["dp"]["x"], ref["dp"]["x"], atol=1e-6)
    assert np.array_equal(out["persons"][0]["dp"]["I"], ref["dp"]["I"])
    with pytest.raises(RuntimeError, match="UV symmetry"):
        DensePoseTransform(base, None)(dict(sample), np.random.default_rng(0))
