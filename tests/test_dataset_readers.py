"""Readers of ATR, PASCAL-Person-Part, CIHP and MHP v2.0 on generated data in their official layouts:
counts, classes, ids, instance decoding, round-trip of what the generator wrote, alternative layouts,
and bad input per dataset (a clear error naming the file)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from PIL import Image

from helpers.datasets import TINY, copy_of, tiny_root
from humanparse.data.atr import ATRDataset, graphonomy_split
from humanparse.data.base import DatasetNotFoundError
from humanparse.data.cihp import CIHPDataset, read_instance_txt
from humanparse.data.instances import paint_persons
from humanparse.data.io import DataError
from humanparse.data.mhp import MHPv2Dataset
from humanparse.data.pascal import PascalPersonPartDataset
from humanparse.data.pseudo_pose import read_pseudo_pose
from humanparse.data.targets import instance_edges
from humanparse.synthetic.cihp import cihp_maps
from humanparse.synthetic.mhp import person_maps
from humanparse.synthetic.scene import render_scene
from humanparse.synthetic.writer import draw_size, image_rng


@pytest.fixture(scope="module")
def atr(cache_dir):
    return tiny_root(cache_dir, "atr")


@pytest.fixture(scope="module")
def pascal(cache_dir):
    return tiny_root(cache_dir, "pascal_person_part")


@pytest.fixture(scope="module")
def cihp(cache_dir):
    return tiny_root(cache_dir, "cihp")


@pytest.fixture(scope="module")
def mhp(cache_dir):
    return tiny_root(cache_dir, "mhp_v2")


# --- ATR ------------------------------------------------------------------------------------------
def test_atr_split_is_computed_by_the_string_order_rule(atr):
    n_val = TINY["num_val"]
    tr = ATRDataset(atr, "train", val_count=n_val)
    va = ATRDataset(atr, "val", val_count=n_val)
    assert (len(tr), len(va)) == (TINY["num_train"], n_val)
    all_ids = sorted(p.stem for p in (atr / "humanparsing" / "JPEGImages").glob("*.jpg"))
    assert sorted(tr.ids + va.ids) == all_ids and not set(tr.ids) & set(va.ids)
    c2500 = sorted(i for i in all_ids if i.startswith("2500_"))
    assert va.ids == c2500[:n_val]  # plain string order ...
    numeric = sorted(c2500, key=lambda i: int(i.split("_")[1]))[:n_val]
    assert set(numeric) != set(va.ids)  # ... which the generated ids tell apart from numeric order
    assert any(i.startswith("2500_") for i in tr.ids)  # more 2500_ ids than val images
    assert not list(atr.rglob("*_id.txt"))  # no list file is shipped or copied
    s = tr.load(0)
    assert s["semantic"].shape == s["image"].shape[:2] and s["semantic"].max() < 18
    assert s["keypoints"].shape == (17, 3)
    # on the real id set the rule gives exactly 16,706 / 1,000
    real = (
        [f"2500_{i}" for i in range(1, 2501)]
        + [f"dataset10k_{i}" for i in range(10003)]
        + [f"997_{i}" for i in range(5203)]
    )  # 17,706 ids
    split = graphonomy_split(real)
    assert (len(split["train"]), len(split["val"])) == (16706, 1000)
    assert split["val"][:3] == ["2500_1", "2500_10", "2500_100"]


def test_atr_pseudo_pose_round_trip_and_custom_split(atr, tmp_path):
    va = ATRDataset(atr, "val", val_count=TINY["num_val"])
    entries = json.loads((atr / "pseudo_pose" / "val.json").read_text())
    assert {e["person_id"] for e in entries} == {1} and all(len(e["keypoints"]) == 51 for e in entries)
    e = entries[0]
    kp = va.load(va.ids.index(e["image_id"]))["keypoints"]
    raw = np.asarray(e["keypoints"], np.float32).reshape(17, 3)
    assert np.array_equal(kp[:, 2] > 0, raw[:, 2] > 0)
    assert np.allclose(kp[raw[:, 2] > 0, :2], raw[raw[:, 2] > 0, :2])
    lists = {"train": str(tmp_path / "a.txt"), "val": str(tmp_path / "b.txt")}
    (tmp_path / "a.txt").write_text("\n".join(va.ids[:2]) + "\n")
    (tmp_path / "b.txt").write_text(va.ids[3] + "\n")
    assert ATRDataset(atr, "train", split_rule="custom", lists=lists).ids == va.ids[:2]
    with pytest.raises(DatasetNotFoundError, match="lists.val"):
        ATRDataset(atr, "val", split_rule="custom")
    with pytest.raises(DataError, match="needs 1000 ids"):
        ATRDataset(atr, "val")  # the default rule on a set without 1,000 "2500_" ids


def test_atr_alternative_layouts(atr, tmp_path):
    va = ATRDataset(atr, "val", val_count=TINY["num_val"])
    g = copy_of(atr / "humanparsing", tmp_path / "g" / "ATR")
    (g / "list").mkdir()
    (g / "list" / "val_id.txt").write_text("\n".join(va.ids) + "\n")
    gv = ATRDataset(tmp_path / "g", "val", layout="graphonomy", split_rule="custom")
    assert gv.ids == va.ids and np.array_equal(gv.load(1)["semantic"], va.load(1)["semantic"])
    h = copy_of(atr / "humanparsing", tmp_path / "h")
    (h / "SegmentationClassAug").rename(h / "Segmentations")
    hv = ATRDataset(h, "val", layout="hhp", val_count=TINY["num_val"])
    assert hv.ids == va.ids and np.array_equal(hv.load(2)["semantic"], va.load(2)["semantic"])


def test_atr_bad_input_names_the_file(atr, tmp_path):
    root = copy_of(atr, tmp_path / "ATR")
    ds = ATRDataset(root, "train", val_count=TINY["num_val"])
    lab = root / "humanparsing" / "SegmentationClassAug" / f"{ds.ids[0]}.png"
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(lab)  # a colour render instead of an index map
    with pytest.raises(DataError, match="mode 'RGB'") as e:
        ds.load(0)
    assert str(lab) in str(e.value)
    Image.fromarray(np.full((8, 8), 30, np.uint8)).save(lab)
    with pytest.raises(DataError, match=r"out of range: expected 0..17"):
        ds.load(0)
    (root / "humanparsing" / "JPEGImages" / f"{ds.ids[1]}.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(DataError, match="corrupt or unreadable image"):
        ds.load(1)
    (root / "humanparsing" / "SegmentationClassAug" / f"{ds.ids[2]}.png").unlink()
    with pytest.raises(DataError, match="label file is missing") as e:
        ATRDataset(root, "train", val_count=TINY["num_val"])
    assert ds.ids[2] in str(e.value)
    with pytest.raises(DatasetNotFoundError, match="humanparsing"):
        ATRDataset(tmp_path / "nothing-here", "train")


# --- PASCAL-Person-Part -----------------------------------------------------------------------------
def test_pascal_lists_and_instance_level(pascal):
    manifest = json.loads((pascal / "synthetic.json").read_text())
    tr = PascalPersonPartDataset(pascal, "train")
    hhp = PascalPersonPartDataset(pascal, "val")
    grapy = PascalPersonPartDataset(pascal, "val", val_list="grapy")
    assert (len(tr), len(hhp)) == (TINY["num_train"], TINY["num_val"])
    assert set(hhp.ids) != set(grapy.ids) and set(hhp.ids) - set(grapy.ids) and set(grapy.ids) - set(hhp.ids)
    assert not (set(tr.ids) & (set(hhp.ids) | set(grapy.ids)))
    assert len(grapy) == manifest["counts"]["val_grapy"]
    invalid = []
    for i in range(len(hhp)):
        s = hhp.load(i)
        sem, pid = s["semantic"], s["person_ids"]
        assert sem.max() < 7 and ((sem > 0) == (pid > 0)).all()
        assert [p["id"] for p in s["persons"]] == sorted(np.unique(pid[pid > 0]).tolist())
        for p in s["persons"]:
            assert np.array_equal(p["mask"], pid == p["id"]) and np.array_equal(
                p["parts"][p["mask"]], sem[p["mask"]]
            )
        # the shipped txt decodes as inst = class + 7 (human - 1) and matches the pixels
        txt = read_instance_txt(pascal / "pascal" / "Instance_ids" / f"{hhp.ids[i]}.txt")
        shipped = np.asarray(Image.open(pascal / "pascal" / "Instance_ids" / f"{hhp.ids[i]}.png"))
        for iid, c, h in txt:
            assert iid == c + 7 * (h - 1)
            assert np.array_equal(shipped == iid, (sem == c) & (pid == h))
        if not s["meta"]["instance_valid"]:
            invalid.append(hhp.ids[i])
    assert invalid == manifest["category_mismatch"] and len(invalid) == 1
    assert any(invalid[0] in path for path, _ in hhp.issues)
    off = PascalPersonPartDataset(pascal, "train", instances=False)
    assert "persons" not in off.load(0) and "person_ids" not in off.load(0)


def test_pascal_bad_input_names_the_file(pascal, tmp_path):
    root = copy_of(pascal, tmp_path / "P")
    ds = PascalPersonPartDataset(root, "train")
    Image.fromarray(np.full((10, 10), 7, np.uint8)).save(
        root / "pascal" / "SegmentationPart" / f"{ds.ids[0]}.png"
    )
    with pytest.raises(DataError, match=r"SegmentationPart/.*out of range: expected 0..6"):
        ds.load(0)
    hp = root / "pascal" / "Human_ids" / f"{ds.ids[1]}.png"
    Image.fromarray(np.zeros((5, 5), np.uint8)).save(hp)
    with pytest.raises(DataError, match="size mismatch") as e:
        ds.load(1)
    assert str(hp) in str(e.value)
    (root / "pascal" / "list" / "val_id_grapy.txt").unlink()
    with pytest.raises(DatasetNotFoundError, match="val_id_grapy.txt"):
        PascalPersonPartDataset(root, "val", val_list="grapy")
    lst = root / "pascal" / "list" / "train_id.txt"
    lst.write_text(lst.read_text() + ds.ids[0] + "\n")
    with pytest.raises(DataError, match="duplicate id"):
        PascalPersonPartDataset(root, "train")


# --- CIHP -----------------------------------------------------------------------------------------
def test_cihp_round_trip_of_the_generated_scenes(cihp):
    manifest = json.loads((cihp / "synthetic.json").read_text())
    tr = CIHPDataset(cihp, "train")
    assert (len(tr), len(CIHPDataset(cihp, "val")), len(CIHPDataset(cihp, "test"))) == (8, 6, 3)
    assert all(len(i) == 7 and i.isdigit() for i in tr.ids)
    for i in range(len(tr)):
        rng = image_rng(manifest["seed"], "train", i)
        h, w = draw_size(rng, manifest["image_size"])
        scene = render_scene(rng, h, w, int(rng.integers(2, 6)))
        category, humans, mapping = cihp_maps(rng, scene, manifest["gap_prob"], manifest["ignore_prob"])
        s = tr.load(i)
        assert np.array_equal(s["semantic"], category) and np.array_equal(s["person_ids"], humans)
        assert [p["id"] for p in s["persons"]] == sorted(mapping.values())
        # part instances: the table and the map agree with the (class, person) pairs
        for iid, c, hid in s["instances"]:
            assert np.array_equal(s["instance_ids"] == iid, (category == c) & (humans == hid))
        assert len(s["instances"]) == len(
            {(c, hh) for c, hh in zip(category[humans > 0], humans[humans > 0]) if 0 < c < 20}
        )
        for p in s["persons"]:
            ys, xs = np.nonzero(p["mask"])
            assert p["box"].tolist() == [xs.min(), ys.min(), xs.max(), ys.max()]
            assert p["keypoints"].shape == (17, 3)
        assert s["keypoints"].shape == (len(s["persons"]), 17, 3)
    assert not tr.issues  # the shipped Instance_ids and txt agree with the pairs


def test_cihp_person_gaps_ignore_regions_and_pseudo_pose(cihp, cache_dir):
    big = tiny_root(cache_dir, "cihp", num_train=30, num_val=0, num_test=0)
    tr = CIHPDataset(big, "train", persons=False)
    samples = [tr.load(i) for i in range(len(tr))]
    assert "persons" not in samples[0]
    assert any(s["person_ids"].max() > len(np.unique(s["person_ids"])) - 1 for s in samples)  # ids with gaps
    assert any((s["semantic"] == 255).any() for s in samples)  # 255 regions
    pose = read_pseudo_pose(big / "pseudo_pose" / "train.json")
    full = CIHPDataset(big, "train")
    assert 1 <= full.missing_pose < len(full)  # a few images have no pseudo-pose entry
    missing = next(i for i, sid in enumerate(full.ids) if sid not in pose)
    assert not full.load(missing)["keypoints"][..., 2].any()
    s = full.load(next(i for i, sid in enumerate(full.ids) if sid in pose))
    sid = s["meta"]["id"]
    assert set(pose[sid]) == {p["id"] for p in s["persons"]}
    for p in s["persons"]:
        assert np.array_equal(p["keypoints"], pose[sid][p["id"]])
    assert s["keypoints"][..., 2].sum() > 0


def test_cihp_alternative_layouts_and_instance_mismatch(cihp, tmp_path, caplog):
    va = CIHPDataset(cihp, "val")
    off = cihp / "Validation"
    g = tmp_path / "g" / "CIHP_4w"
    shutil.copytree(off / "Images", g / "Images")
    shutil.copytree(off / "Category_ids", g / "Category_ids")
    (g / "lists").mkdir()
    shutil.copy(off / "val_id.txt", g / "lists" / "val_id.txt")
    gv = CIHPDataset(tmp_path / "g", "val", layout="graphonomy")
    assert gv.ids == va.ids and np.array_equal(gv.load(0)["semantic"], va.load(0)["semantic"])
    assert "persons" not in gv.load(0)
    p = tmp_path / "p" / "CIHP"
    shutil.copytree(off / "Images", p / "images")
    shutil.copytree(off / "Category_ids", p / "labels")
    (p / "edges").mkdir()
    (p / "list").mkdir()
    shutil.copy(off / "val_id.txt", p / "list" / "val_id.txt")
    for i, sid in enumerate(va.ids):
        Image.fromarray(instance_edges(va.load(i)["person_ids"])).save(p / "edges" / f"{sid}.png")
    pv = CIHPDataset(tmp_path / "p", "val", layout="pgn").load(1)
    assert np.array_equal(pv["instance_edge"], instance_edges(va.load(1)["person_ids"]))
    # a shipped Instance_ids that merges two persons' instances: logged, the Category/Human pair wins
    root = copy_of(cihp, tmp_path / "broken")
    ds = CIHPDataset(root, "val")
    s = ds.load(0)
    ipath = root / "Validation" / "Instance_ids" / f"{ds.ids[0]}.png"
    inst = np.asarray(Image.open(ipath)).copy()
    inst[inst > 20] = 1
    Image.fromarray(inst).save(ipath)
    with caplog.at_level("WARNING"):
        s2 = ds.load(0)
    assert any(str(ipath) in path for path, _ in ds.issues) and str(ipath) in caplog.text
    assert np.array_equal(s2["instance_ids"], s["instance_ids"])


def test_cihp_bad_input_names_the_file(cihp, tmp_path):
    root = copy_of(cihp, tmp_path / "C")
    ds = CIHPDataset(root, "train")
    hp = root / "Training" / "Human_ids" / f"{ds.ids[0]}.png"
    hp.unlink()
    with pytest.raises(DataError, match="label file is missing") as e:
        ds.load(0)
    assert str(hp) in str(e.value)
    txt = root / "Training" / "Instance_ids" / f"{ds.ids[1]}.txt"
    txt.write_text("1 2\n")
    with pytest.raises(DataError, match="line 1: expected 'inst_id class_id human_id'"):
        ds.load(1)
    pose = root / "pseudo_pose" / "train.json"
    pose.write_text('[{"image_id": "x", "person_id": 1, "keypoints": [1, 2, 3]}]')
    with pytest.raises(DataError, match="keypoints must hold 51 numbers") as e:
        CIHPDataset(root, "train", check_files=False)
    assert str(pose) in str(e.value)
    with pytest.raises(DatasetNotFoundError, match="Training/Category_ids"):
        CIHPDataset(tmp_path, "train")


# --- MHP v2.0 -------------------------------------------------------------------------------------
def test_mhp_reads_three_channel_person_files(mhp):
    manifest = json.loads((mhp / "synthetic.json").read_text())
    tr = MHPv2Dataset(mhp, "train")
    assert len(tr) == 8 and len(MHPv2Dataset(mhp, "test")) == 3
    assert 1 <= len(MHPv2Dataset(mhp, "test_inter_top20")) <= 3
    files = sorted((mhp / "train" / "parsing_annos").glob("*.png"))
    with Image.open(files[0]) as im:
        assert im.mode == "RGB" and not np.asarray(im)[..., 1:].any()
    empty = 0
    for i in range(len(tr)):
        rng = image_rng(manifest["seed"], "train", i)
        h, w = draw_size(rng, manifest["image_size"])
        scene = render_scene(rng, h, w, int(rng.integers(2, 6)))
        maps = person_maps(rng, scene, manifest["amodal_prob"], 1.0 if i == 0 else manifest["empty_prob"])
        s = tr.load(i)
        sem, pid = paint_persons(maps)
        assert np.array_equal(s["semantic"], sem) and np.array_equal(s["person_ids"], pid)
        assert len(s["persons"]) == len(maps) == s["meta"]["num_person_files"]
        for p, m in zip(s["persons"], maps):
            assert np.array_equal(p["parts"], m)
        empty += sum(not p["mask"].any() for p in s["persons"])
    assert empty >= 1  # the empty-person trap
    dropped = MHPv2Dataset(mhp, "train", empty_persons="drop").load(0)
    kept = tr.load(0)
    assert len(dropped["persons"]) == len(kept["persons"]) - sum(not p["mask"].any() for p in kept["persons"])
    assert [p["id"] for p in dropped["persons"]] == [p["id"] for p in kept["persons"] if p["mask"].any()]


def test_mhp_bad_input_names_the_file(mhp, tmp_path):
    root = copy_of(mhp, tmp_path / "M")
    ds = MHPv2Dataset(root, "val")
    f = sorted((root / "val" / "parsing_annos").glob(f"{ds.ids[0]}_*.png"))[0]
    rgb = np.zeros((*Image.open(f).size[::-1], 3), np.uint8)
    rgb[0, 0, 0] = 70
    Image.fromarray(rgb).save(f)
    with pytest.raises(DataError, match=r"out of range: expected 0..58") as e:
        ds.load(0)
    assert str(f) in str(e.value)
    Image.fromarray(np.zeros((4, 4, 4), np.uint8)).save(f)  # RGBA: channel 0 is read, but the size is wrong
    with pytest.raises(DataError, match="size mismatch"):
        ds.load(0)
    for g in (root / "val" / "parsing_annos").glob(f"{ds.ids[1]}_*.png"):
        g.unlink()
    with pytest.raises(DataError, match=f"no parsing_annos file for image '{ds.ids[1]}'"):
        MHPv2Dataset(root, "val")
    # inconsistent person numbering is tolerated, reported, and persons keep sorted file order
    g = sorted((root / "val" / "parsing_annos").glob(f"{ds.ids[2]}_*.png"))[0]
    g.rename(g.with_name(f"{ds.ids[2]}_09_09.png"))
    ds2 = MHPv2Dataset(root, "val", check_files=False)
    assert any(ds.ids[2] in problem for _, problem in ds2.issues)
