"""Per-person targets under the affine augmentation: masks, part maps, boxes, keypoints, person and
instance ids stay consistent; flip twice is the identity; the instance collate."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from helpers.datasets import tiny_root
from humanparse.data.base import collate_instances, to_tensors
from humanparse.data.cihp import CIHPDataset
from humanparse.data.instances import part_instances, persons_from_ids
from humanparse.data.meta import COCO_JOINTS, get_info
from humanparse.data.mhp import MHPv2Dataset
from humanparse.data.pipeline import SamplePipeline
from humanparse.data.transforms import (
    PERSON_WARPERS,
    AffineTransform,
    FlipTables,
    box_affine,
    mirror_matrix,
    register_person_warper,
    warp_sample,
)

CIHP = get_info("cihp")
J = {n: i for i, n in enumerate(COCO_JOINTS)}
H, W = 40, 50


def _sample() -> dict:
    """Two persons, CIHP classes: person 1 (image left) has a Left-arm (14) and a face, person 2 a
    Right-arm (15); COCO keypoints on the drawn parts."""
    sem = np.zeros((H, W), np.uint8)
    pid = np.zeros((H, W), np.uint8)
    sem[10:21, 2:7], pid[10:21, 2:7] = 14, 1
    sem[2:7, 8:13], pid[2:7, 8:13] = 13, 1
    sem[12:30, 30:35], pid[12:30, 30:35] = 15, 3
    sem[12:30, 36:40], pid[12:30, 36:40] = 5, 3
    sem[35:38, 0:4] = 255
    persons = persons_from_ids(sem, pid)
    kps = np.zeros((2, 17, 3), np.float32)
    kps[0, J["left_wrist"]] = (4, 15, 1)
    kps[0, J["nose"]] = (10, 4, 1)
    kps[1, J["right_wrist"]] = (32, 25, 1)
    for p, k in zip(persons, kps):
        p["keypoints"] = k
    inst, table = part_instances(sem, pid, 20)
    image = np.random.default_rng(0).integers(0, 255, (H, W, 3), dtype=np.uint8)
    return {
        "image": image,
        "semantic": sem,
        "person_ids": pid,
        "instance_ids": inst,
        "instances": table,
        "keypoints": kps,
        "persons": persons,
        "meta": {"id": "x"},
    }


def _same(a: dict, b: dict) -> None:
    for key in ("image", "semantic", "person_ids", "instance_ids", "keypoints"):
        assert np.array_equal(a[key], b[key]), key
    for p, q in zip(a["persons"], b["persons"]):
        for key in ("mask", "parts", "box", "keypoints"):
            assert np.array_equal(p[key], q[key]), key


def test_flip_swaps_parts_and_joints_consistently_and_twice_is_identity():
    s = _sample()
    tables = FlipTables.from_info(CIHP)
    m = mirror_matrix(W)
    f = warp_sample(s, m, (H, W), True, tables)
    p1 = f["persons"][0]
    # the Left-arm region is now on the image right and labelled Right-arm, in both maps
    assert (p1["parts"] == 15).sum() == (s["persons"][0]["parts"] == 14).sum() and not (
        p1["parts"] == 14
    ).any()
    assert np.array_equal(p1["parts"], np.where(p1["mask"], f["semantic"], 0))
    assert np.array_equal(p1["mask"], f["person_ids"] == 1)
    # the left wrist becomes the right wrist, mirrored, and still lies on its (now right) arm
    assert p1["keypoints"][J["left_wrist"], 2] == 0
    x, y, v = p1["keypoints"][J["right_wrist"]]
    assert (x, y, v) == (W - 1 - 4, 15, 1) and p1["parts"][int(y), int(x)] == 15
    assert p1["keypoints"][J["nose"]].tolist() == [W - 1 - 10, 4, 1]
    assert np.array_equal(f["keypoints"][0], p1["keypoints"])  # top-level (P, 17, 3) agrees
    # boxes follow the mirrored masks
    x1, y1, x2, y2 = s["persons"][0]["box"]
    assert p1["box"].tolist() == [W - 1 - x2, y1, W - 1 - x1, y2]
    # instance ids keep their (class, person) table once the classes are swapped
    for iid, c, h in s["instances"]:
        c2 = int(tables.label_lut[c])
        assert np.array_equal(f["instance_ids"] == iid, (f["semantic"] == c2) & (f["person_ids"] == h))
    _same(warp_sample(f, m, (H, W), True, tables), s)


def test_rotation_and_scale_keep_boxes_tight_around_masks():
    s = _sample()
    tables = FlipTables.from_info(CIHP)
    m = box_affine((H, W), (48, 48), scale=0.8, rotation=33, flip=True)
    out = warp_sample(s, m, (48, 48), True, tables)
    for p in out["persons"]:
        ys, xs = np.nonzero(p["mask"])
        assert p["box"].tolist() == [xs.min(), ys.min(), xs.max(), ys.max()]
        assert not p["empty"]
        assert np.array_equal(p["mask"], out["person_ids"] == p["id"])
        assert np.array_equal(p["parts"], np.where(p["mask"], out["semantic"], 0))
        assert p["keypoints"].shape == (17, 3)


def test_boxes_without_masks_move_with_transform_boxes_and_unknown_entries_fail():
    tables = FlipTables.from_info(CIHP)
    s = {
        "image": np.zeros((H, W, 3), np.uint8),
        "meta": {},
        "persons": [{"id": 1, "box": np.array([2, 10, 6, 20], np.float32)}],
    }
    out = warp_sample(s, mirror_matrix(W), (H, W), True, tables)
    assert out["persons"][0]["box"].tolist() == [W - 1 - 6, 10, W - 1 - 2, 20]
    s["persons"][0]["dense_points"] = np.zeros((5, 4), np.float32)
    with pytest.raises(KeyError, match="dense_points.*register"):
        warp_sample(s, mirror_matrix(W), (H, W), True, tables)

    calls = []

    @register_person_warper("dense_points")
    def _warp(value, w):
        calls.append(w.flip)
        return value

    try:
        warp_sample(s, mirror_matrix(W), (H, W), True, tables)
        assert calls == [True]
    finally:
        PERSON_WARPERS.pop("dense_points")


def test_keypoint_tables_by_format():
    lip, atr = FlipTables.from_info(get_info("lip")), FlipTables.from_info(get_info("atr"))
    assert lip.keypoint_perm(16).tolist()[:6] == [5, 4, 3, 2, 1, 0]
    perm = atr.keypoint_perm(17)  # ATR has no joints of its own: COCO pseudo pose
    assert perm[J["left_eye"]] == J["right_eye"] and perm[J["nose"]] == J["nose"]
    with pytest.raises(ValueError, match="no left/right joint table for 5"):
        atr.keypoint_perm(5)


def test_instance_collate_keeps_per_image_targets():
    tables = FlipTables.from_info(CIHP)
    a = _sample()
    # crop the right half away: person 3 leaves the input and is dropped from the targets
    a = warp_sample(a, np.eye(3), (H, 28), False, tables)
    b = _sample()
    b["persons"], b["keypoints"] = [], np.zeros((0, 17, 3), np.float32)
    b = warp_sample(b, np.eye(3), (H, 28), False, tables)
    batch = collate_instances([to_tensors(a), to_tensors(b)])
    assert batch["image"].shape == (2, H, 28, 3) and len(batch["targets"]) == 2
    t0, t1 = batch["targets"]
    assert t0["boxes"].tolist() == [[2.0, 2.0, 13.0, 21.0]]  # inclusive extent + 1: continuous corners
    assert t0["masks"].dtype == torch.uint8 and t0["masks"].shape == (1, H, 28)
    assert t0["parts"].shape == (1, H, 28) and t0["keypoints"].shape == (1, 17, 3)
    assert t0["person_ids"].tolist() == [1] and t0["labels"].tolist() == [1] and t0["image_id"] == "x"
    assert t1["boxes"].shape == (0, 4) and t1["labels"].shape == (0,)
    kept = collate_instances([to_tensors(a)], drop_empty=False)["targets"][0]
    assert kept["person_ids"].tolist() == [1, 3]


def test_generated_cihp_and_mhp_samples_stay_consistent_under_augmentation(cache_dir):
    t = AffineTransform((56, 56), mode="crop", scale=(0.7, 1.3), rotation=25, flip_prob=1.0)
    ds = SamplePipeline(CIHPDataset(tiny_root(cache_dir, "cihp"), "train"), transform=t)
    for i in range(3):
        raw = ds.load(i)
        s = ds.transform(raw, np.random.default_rng(i))
        assert s["meta"]["flipped"]
        for p in s["persons"]:
            assert np.array_equal(p["mask"], s["person_ids"] == p["id"])
            assert np.array_equal(p["parts"], np.where(p["mask"], s["semantic"], 0))
            if not p["empty"]:
                ys, xs = np.nonzero(p["mask"])
                assert p["box"].tolist() == [xs.min(), ys.min(), xs.max(), ys.max()]
    mhp = SamplePipeline(MHPv2Dataset(tiny_root(cache_dir, "mhp_v2"), "train"), transform=t)
    lut = FlipTables.from_info(get_info("mhp_v2")).label_lut
    raw = mhp.load(1)
    s = mhp.transform(mhp.load(1), np.random.default_rng(0))
    m = s["meta"]["affine"]
    back = warp_sample(s, np.linalg.inv(m), raw["semantic"].shape, False, None)
    for p, q in zip(back["persons"], raw["persons"]):
        inside = back["image"].any(-1)  # pixels that went through the crop and back
        swapped = lut[q["parts"]]
        agree = (p["parts"] == swapped) | ~inside
        assert agree.mean() > 0.97
