"""Tests of the procedural synthetic-person generator (humanparse.synthetic)."""

from __future__ import annotations

import csv
import json
import re
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from humanparse.data.meta import DATASETS, DENSEPOSE_FINE_FLIP, DENSEPOSE_FINE_PARTS, LIP_JOINTS
from humanparse.synthetic import (
    NUM_TAGS,
    TAG_FLIP,
    TAG_FLIP_PAIRS,
    Tag,
    flip_tags,
    generate_lip,
    labels_for,
    make_lip_sample,
    render_person,
    render_scene,
    tag_lut,
)

LIP = DATASETS["lip"]
LIP_ID = {name: i for i, name in enumerate(LIP.classes)}
JOINT = {name: i for i, name in enumerate(LIP_JOINTS)}
FIVE = ("lip", "atr", "cihp", "mhp_v2", "pascal_person_part")


def _sample(i: int, h: int = 128, w: int = 112) -> dict:
    return make_lip_sample(np.random.default_rng([7, i]), h, w)


@pytest.fixture(scope="module")
def samples() -> list[dict]:
    """200 in-memory LIP samples of ~128 px, variable sizes."""
    out = []
    for i in range(200):
        rng = np.random.default_rng([11, i])
        h, w = int(rng.integers(100, 150)), int(rng.integers(90, 140))
        out.append(make_lip_sample(rng, h, w))
    return out


# --- determinism --------------------------------------------------------------------------------
def test_same_seed_same_sample_different_seed_differs() -> None:
    a, b, c = _sample(3), _sample(3), _sample(4)
    assert np.array_equal(a["image"], b["image"])
    assert np.array_equal(a["label"], b["label"])
    np.testing.assert_array_equal(a["joints"], b["joints"])  # NaN-aware
    assert np.array_equal(a["scene"].parts, b["scene"].parts)
    assert not np.array_equal(a["image"], c["image"])
    assert not np.array_equal(a["label"], c["label"])


# --- LIP writer ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def lip_root(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("syn") / "LIP"
    t0 = time.perf_counter()
    info = generate_lip(root, num_train=40, num_val=12, num_test=6, image_size=(64, 112), seed=5)
    dt = time.perf_counter() - t0
    print(f"\nsynthetic LIP: 58 images in {dt:.2f}s ({1000 * dt / 58:.1f} ms/image)")
    return root, info


def _read_ids(path: Path) -> list[str]:
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


def test_lip_layout_exact(lip_root: tuple[Path, dict]) -> None:
    root, info = lip_root
    ids = {
        s: _read_ids(p)
        for s, p in (
            ("train", root / "TrainVal_images/train_id.txt"),
            ("val", root / "TrainVal_images/val_id.txt"),
            ("test", root / "Testing_images/test_id.txt"),
        )
    }
    assert {s: len(v) for s, v in ids.items()} == {"train": 40, "val": 12, "test": 6}
    assert ids == info["ids"]
    all_ids = ids["train"] + ids["val"] + ids["test"]
    assert len(set(all_ids)) == len(all_ids)
    assert all(re.fullmatch(r"\d{6}_\d{6}", i) for i in all_ids)
    expected = {
        "TrainVal_images/train_id.txt",
        "TrainVal_images/val_id.txt",
        "Testing_images/test_id.txt",
        "TrainVal_pose_annotations/lip_train_set.csv",
        "TrainVal_pose_annotations/lip_val_set.csv",
        "synthetic.json",
    }
    for split in ("train", "val"):
        expected |= {f"TrainVal_images/TrainVal_images/{split}_images/{i}.jpg" for i in ids[split]}
        expected |= {
            f"TrainVal_parsing_annotations/TrainVal_parsing_annotations/{split}_segmentations/{i}.png"
            for i in ids[split]
        }
    expected |= {f"Testing_images/testing_images/{i}.jpg" for i in ids["test"]}
    found = {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}
    assert found == expected
    assert not list(root.parent.glob("LIP.tmp-*"))
    manifest = json.loads((root / "synthetic.json").read_text())
    assert manifest["seed"] == 5 and manifest["counts"] == {"train": 40, "val": 12, "test": 6}


def test_lip_labels_and_images(lip_root: tuple[Path, dict]) -> None:
    root, info = lip_root
    modes, sizes = set(), set()
    for split in ("train", "val"):
        for i in info["ids"][split]:
            lab = Image.open(
                root / f"TrainVal_parsing_annotations/TrainVal_parsing_annotations/"
                f"{split}_segmentations/{i}.png"
            )
            img = Image.open(root / f"TrainVal_images/TrainVal_images/{split}_images/{i}.jpg")
            modes.add(lab.mode)
            assert lab.mode in ("L", "P") and img.mode == "RGB" and img.format == "JPEG"
            assert lab.size == img.size
            assert 64 <= img.size[0] <= 112 and 64 <= img.size[1] <= 112
            sizes.add(img.size)
            arr = np.asarray(lab)
            assert arr.ndim == 2 and arr.max() < LIP.num_classes and (arr > 0).any()
            assert (i in info["palette_labels"]) == (lab.mode == "P")
    assert modes == {"L", "P"}
    assert len(sizes) > 10 and any(w != h for w, h in sizes)


def test_lip_pose_csv(lip_root: tuple[Path, dict]) -> None:
    root, info = lip_root
    n_nan = 0
    for split in ("train", "val"):
        with open(root / f"TrainVal_pose_annotations/lip_{split}_set.csv", newline="") as f:
            rows = list(csv.reader(f))
        names = [r[0] for r in rows]
        assert all(len(r) == 49 for r in rows)
        assert all(n.endswith(".jpg") for n in names)
        row_ids = [n[:-4] for n in names]
        assert len(set(row_ids)) == len(row_ids) and set(row_ids) <= set(info["ids"][split])
        if split == "train":
            missing = set(info["ids"]["train"]) - set(row_ids)
            assert missing and missing == set(info["missing_pose"])
        for r in rows:
            w, h = Image.open(root / f"TrainVal_images/TrainVal_images/{split}_images/{r[0]}").size
            for j in range(16):
                x, y, v = r[1 + 3 * j : 4 + 3 * j]
                if x == "nan":
                    assert y == "nan" and v == "nan"
                    n_nan += 1
                    continue
                assert x.lstrip("-").isdigit() and y.lstrip("-").isdigit() and v in ("0", "1")
                assert 0 <= int(x) <= w - 1 and 0 <= int(y) <= h - 1
    assert n_nan > 0


def test_lip_writer_deterministic_and_refuses_existing(lip_root: tuple[Path, dict], tmp_path: Path) -> None:
    root, _ = lip_root
    with pytest.raises(FileExistsError):
        generate_lip(root, num_train=2, num_val=1, num_test=1)
    other = tmp_path / "LIP2"
    info = generate_lip(other, num_train=6, num_val=2, num_test=1, image_size=(64, 112), seed=5)
    assert info["ids"]["train"] == lip_root[1]["ids"]["train"][:6]  # per-image RNG: counts do not matter
    for i in info["ids"]["train"]:
        rel = f"TrainVal_parsing_annotations/TrainVal_parsing_annotations/train_segmentations/{i}.png"
        assert np.array_equal(np.asarray(Image.open(root / rel)), np.asarray(Image.open(other / rel)))
        rel = f"TrainVal_images/TrainVal_images/train_images/{i}.jpg"
        assert (root / rel).read_bytes() == (other / rel).read_bytes()


# --- geometry: joints on the body, person's left/right ---------------------------------------------
_SLEEVES = {"Upper-clothes", "Coat", "Dress", "Jumpsuits"}
_ON_JOINT = {
    "L_Wrist": {"Left-arm", "Glove"} | _SLEEVES,
    "R_Wrist": {"Right-arm", "Glove"} | _SLEEVES,
    "L_Elbow": {"Left-arm"} | _SLEEVES,
    "R_Elbow": {"Right-arm"} | _SLEEVES,
    "L_Knee": {"Left-leg", "Pants", "Jumpsuits", "Skirt", "Dress", "Coat"},
    "R_Knee": {"Right-leg", "Pants", "Jumpsuits", "Skirt", "Dress", "Coat"},
    "L_Ankle": {"Left-leg", "Left-shoe", "Socks", "Pants", "Jumpsuits", "Dress", "Coat"},
    "R_Ankle": {"Right-leg", "Right-shoe", "Socks", "Pants", "Jumpsuits", "Dress", "Coat"},
    "B_Head": {"Hair", "Hat", "Face"},
}


def test_present_joints_inside_image_and_visible_ones_on_their_limb(samples: list[dict]) -> None:
    checked = 0
    for s in samples[:80]:
        lab, joints, vis = s["label"], s["joints"], s["visible"]
        h, w = lab.shape
        present = ~np.isnan(joints[:, 0])
        assert (np.isnan(joints[:, 0]) == np.isnan(joints[:, 1])).all()
        assert (
            (joints[present] >= 0).all()
            and (joints[present, 0] <= w - 1).all()
            and (joints[present, 1] <= h - 1).all()
        )
        assert not (vis & ~present).any()
        for name, allowed in _ON_JOINT.items():
            j = JOINT[name]
            if not vis[j]:
                continue
            x, y = int(round(joints[j, 0])), int(round(joints[j, 1]))
            win = lab[max(y - 2, 0) : y + 3, max(x - 2, 0) : x + 3]
            assert np.isin(win, [LIP_ID[c] for c in allowed]).any(), (name, np.unique(win))
            checked += 1
    assert checked > 300


def test_person_left_is_image_right_when_facing_front() -> None:
    ok = {"front": 0, "back": 0}
    n = 30
    for facing in ok:
        for i in range(n):
            sc = render_scene(np.random.default_rng([3, i]), 128, 112, facing=facing, crop_prob=0.0)
            lab = labels_for(sc.tags, sc.parts, "lip")
            xs = np.arange(lab.shape[1])[None, :].repeat(lab.shape[0], 0)
            left, right = xs[lab == LIP_ID["Left-arm"]], xs[lab == LIP_ID["Right-arm"]]
            if left.size and right.size:
                ok[facing] += (left.mean() > right.mean()) == (facing == "front")
            j = sc.persons[0].joints
            assert (j[JOINT["L_Shoulder"], 0] > j[JOINT["R_Shoulder"], 0]) == (facing == "front")
            assert (j[JOINT["L_Hip"], 0] > j[JOINT["R_Hip"], 0]) == (facing == "front")
    assert ok["front"] >= 0.9 * n and ok["back"] >= 0.9 * n


# --- learnability proxies ---------------------------------------------------------------------------
def test_class_colours_differ_and_background_is_cluttered(samples: list[dict]) -> None:
    sums = np.zeros((LIP.num_classes, 3))
    counts = np.zeros(LIP.num_classes)
    bg_std = []
    for s in samples[:60]:
        img = s["image"].reshape(-1, 3).astype(np.float64)
        lab = s["label"].ravel()
        np.add.at(sums, lab, img)
        counts += np.bincount(lab, minlength=LIP.num_classes)
        bg_std.append(img[lab == 0].std(0).mean())
    means = sums / np.maximum(counts, 1)[:, None]
    for a, b in (
        ("Pants", "Upper-clothes"),
        ("Face", "Hair"),
        ("Dress", "Coat"),
        ("Skirt", "Pants"),
        ("Upper-clothes", "Coat"),
    ):
        assert np.linalg.norm(means[LIP_ID[a]] - means[LIP_ID[b]]) > 40, (a, b)
    assert float(np.mean(bg_std)) > 30


def test_every_lip_class_occurs(samples: list[dict]) -> None:
    counts = np.zeros(LIP.num_classes)
    images = np.zeros(LIP.num_classes)
    for s in samples:
        b = np.bincount(s["label"].ravel(), minlength=LIP.num_classes)
        counts += b
        images += b > 0
    frac = counts / counts.sum()
    print("\nLIP class pixel fractions over 200 synthetic images:")
    for c, f, n in zip(LIP.classes, frac, images):
        print(f"  {c:14s} {100 * f:6.2f}%  in {int(n)} images")
    assert (images > 0).all(), [c for c, n in zip(LIP.classes, images) if n == 0]
    assert frac[0] < 0.9


# --- vocabulary and label mappings --------------------------------------------------------------------
@pytest.mark.parametrize("name", FIVE)
def test_tag_lut_in_range_and_left_right_consistent(name: str) -> None:
    info = DATASETS[name]
    lut = tag_lut(name)
    assert lut.shape == (256,) and lut.dtype == np.uint8
    assert lut[Tag.NONE] == 0
    assert (lut[:NUM_TAGS] < info.num_classes).all()
    assert (lut[NUM_TAGS:] == 255).all()
    flip = info.flip_permutation()
    for t in Tag:  # mirrored tag -> mirrored label
        assert flip[lut[t]] == lut[TAG_FLIP[t]], (name, t)
    reached = set()
    for a, b in TAG_FLIP_PAIRS:  # left tags -> the left member of a flip pair, right tags -> its partner
        cls_a, cls_b = info.classes[lut[a]].lower(), info.classes[lut[b]].lower()
        if "left" in cls_a or "right" in cls_a:
            assert cls_a.startswith("left") and cls_b.startswith("right"), (name, a, cls_a, cls_b)
            assert (lut[a], lut[b]) in info.flip_pairs, (name, a)
            reached.add((int(lut[a]), int(lut[b])))
        else:
            assert lut[a] == lut[b], (name, a)
    # arms, legs, shoes (+ hands and feet in MHP) have sided classes wherever the dataset has them
    assert len(reached) == {"lip": 3, "cihp": 3, "atr": 3, "mhp_v2": 5, "pascal_person_part": 0}[name]


@pytest.mark.parametrize("name", FIVE)
def test_labels_flip_equivariant(name: str) -> None:
    sc = render_scene(np.random.default_rng(21), 96, 80, num_persons=2)
    lab = labels_for(sc.tags, sc.parts, name)
    flipped = labels_for(flip_tags(sc.tags), DENSEPOSE_FINE_FLIP.astype(np.uint8)[sc.parts[:, ::-1]], name)
    assert np.array_equal(flipped, DATASETS[name].flip_permutation()[lab[:, ::-1]])


def test_pascal_uses_body_part_under_garments() -> None:
    lut = tag_lut("pascal_person_part")
    cls = DATASETS["pascal_person_part"].classes
    n = {c: i for i, c in enumerate(cls)}
    assert lut[Tag.L_HAND] == n["Lower-arms"] and lut[Tag.R_FOOT] == n["Lower-legs"]
    assert lut[Tag.HAIR] == lut[Tag.HAT] == lut[Tag.FACE] == n["Head"]
    tags = np.array([[Tag.PANTS, Tag.PANTS, Tag.UPPER_CLOTHES, Tag.SKIRT]], dtype=np.uint8)
    parts = np.array(
        [
            [
                DENSEPOSE_FINE_PARTS.index("lower_leg_left_front"),
                DENSEPOSE_FINE_PARTS.index("upper_leg_right_back"),
                DENSEPOSE_FINE_PARTS.index("lower_arm_right_front"),
                0,
            ]
        ],
        dtype=np.uint8,
    )
    assert labels_for(tags, parts, "pascal_person_part").tolist() == [
        [n["Lower-legs"], n["Upper-legs"], n["Lower-arms"], n["Upper-legs"]]
    ]


# --- DensePose body map, multi-person scenes -----------------------------------------------------------
_SKIN_CHART = {  # skin tag -> prefix of the DensePose charts it must lie on
    Tag.FACE: "head",
    Tag.NECK: "head",
    Tag.TORSO_SKIN: "torso",
    Tag.L_UPPER_ARM: "upper_arm_left",
    Tag.R_UPPER_ARM: "upper_arm_right",
    Tag.L_LOWER_ARM: "lower_arm_left",
    Tag.R_LOWER_ARM: "lower_arm_right",
    Tag.L_HAND: "left_hand",
    Tag.R_HAND: "right_hand",
    Tag.L_UPPER_LEG: "upper_leg_left",
    Tag.R_UPPER_LEG: "upper_leg_right",
    Tag.L_LOWER_LEG: "lower_leg_left",
    Tag.R_LOWER_LEG: "lower_leg_right",
    Tag.L_FOOT: "left_foot",
    Tag.R_FOOT: "right_foot",
}


def test_densepose_body_map() -> None:
    front_ok = 0
    for i in range(12):
        facing = "front" if i % 2 == 0 else "back"
        p = render_person(np.random.default_rng([9, i]), 128, 112, facing=facing)
        assert p.parts.max() < len(DENSEPOSE_FINE_PARTS)
        assert not (p.parts > 0)[~p.mask].any()
        assert (p.u >= 0).all() and (p.u <= 1).all() and (p.v >= 0).all() and (p.v <= 1).all()
        present = {DENSEPOSE_FINE_PARTS[k] for k in np.unique(p.parts) if k}
        for tag, prefix in _SKIN_CHART.items():  # skin lies on its own body part
            names = {DENSEPOSE_FINE_PARTS[k] for k in np.unique(p.parts[p.tags == tag])}
            assert all(n.startswith(prefix) for n in names), (tag, names)
        wrong = "back" if facing == "front" else "front"
        assert not any(n.endswith(wrong) for n in present)
        assert f"torso_{facing}" in present
        xs = np.nonzero(p.parts == DENSEPOSE_FINE_PARTS.index("head_left"))[1]
        xr = np.nonzero(p.parts == DENSEPOSE_FINE_PARTS.index("head_right"))[1]
        assert (xs.mean() > xr.mean()) == (facing == "front")
        # U grows along the upper arm, away from the shoulder
        ys, xs2 = np.nonzero(p.parts == DENSEPOSE_FINE_PARTS.index(f"upper_arm_left_{facing}"))
        if ys.size > 20:
            d = np.hypot(xs2 - p.joints[JOINT["L_Shoulder"], 0], ys - p.joints[JOINT["L_Shoulder"], 1])
            front_ok += np.corrcoef(d, p.u[ys, xs2])[0, 1] > 0.8
    assert front_ok >= 6


def test_multi_person_scene() -> None:
    sc = render_scene(np.random.default_rng(5), 160, 200, num_persons=4)
    assert sc.image.shape == (160, 200, 3) and sc.image.dtype == np.uint8
    assert [p.person_id for p in sc.persons] == [1, 2, 3, 4]
    assert set(np.unique(sc.person_ids)) <= {0, 1, 2, 3, 4}
    assert np.array_equal(sc.tags > 0, sc.person_ids > 0)
    for p in sc.persons:
        assert np.array_equal(p.mask, sc.person_ids == p.person_id)
        assert np.array_equal(p.tags[p.mask], sc.tags[p.mask]) and not p.tags[~p.mask].any()
        assert p.mask.sum() <= p.render.mask.sum()
        if p.box is not None:
            x0, y0, x1, y1 = p.box
            assert p.mask[y0:y1, x0:x1].sum() == p.mask.sum()
        assert not (p.visible & ~p.in_image).any()
    assert sum(p.mask.any() for p in sc.persons) >= 3


def test_generation_speed() -> None:
    t0 = time.perf_counter()
    for i in range(100):
        make_lip_sample(np.random.default_rng(i), 128, 100)
    dt = time.perf_counter() - t0
    print(f"\nmake_lip_sample: {1000 * dt / 100:.2f} ms per 128x100 image (1000 images ~ {10 * dt:.1f}s)")
