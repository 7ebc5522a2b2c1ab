"""DensePose-COCO: the synthetic generator, the reader (layouts d2 / detectron1), errors naming the file,
the instance collate and the flip start-up check."""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from pycocotools import mask as mask_utils
from torch.utils.data import DataLoader

from humanparse.data.base import DatasetNotFoundError, collate_dense
from humanparse.data.datamodule import ParsingDataModule
from humanparse.data.densepose_coco import DensePoseCOCODataset, load_gt_images, paint_coarse
from humanparse.data.io import DataError
from humanparse.data.meta import DENSEPOSE_FINE_TO_COARSE
from humanparse.data.pipeline import SamplePipeline
from humanparse.data.transforms import AffineTransform, Compose
from humanparse.evaluation.evaluators import DensePoseEvaluator
from humanparse.synthetic.densepose import ANN_FILES, generate_densepose_coco, make_densepose_image

COUNTS = {"num_train": 6, "num_val": 5, "num_valminusminival": 2}


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    r = tmp_path_factory.mktemp("dp") / "densepose"
    info = generate_densepose_coco(r, image_size=(64, 96), seed=3, **COUNTS)
    assert info["counts"] == {"train": 6, "valminusminival": 2, "minival": 5}
    return r


def _json(root: Path, split: str) -> dict:
    return json.loads((root / "coco" / "annotations" / ANN_FILES[split]).read_text())


def test_generator_layout_and_traps(root):
    assert (root / "synthetic.json").is_file()
    for split, n in (("train", 6), ("valminusminival", 2), ("minival", 5)):
        data = _json(root, split)
        assert len(data["images"]) == n
        folder = "train2014" if split == "train" else "val2014"
        for im in data["images"]:
            assert (root / "coco" / folder / im["file_name"]).is_file() and im["file_name"].startswith(
                "COCO_"
            )
    eval_dir = root / "densepose_eval_data"
    for name in (
        "SMPL_subdiv.mat",
        "SMPL_SUBDIV_TRANSFORM.mat",
        "Pdist_matrix.pkl",
        "UV_symmetry_transforms.mat",
        "body_surface.npz",
    ):
        assert (eval_dir / name).is_file()
    anns = [a for s in ("train", "valminusminival", "minival") for a in _json(root, s)["annotations"]]
    with_dp = [a for a in anns if "dp_x" in a]
    assert with_dp and any("dp_x" not in a and not a["iscrowd"] for a in anns)  # persons without points
    crowd = [a for a in anns if a["iscrowd"]]
    assert crowd and all("dp_x" not in a and isinstance(a["segmentation"]["counts"], list) for a in crowd)
    assert any(m == [] for a in with_dp for m in a["dp_masks"])  # empty dp_masks entries
    assert any(isinstance(a["segmentation"], dict) for a in anns if not a["iscrowd"])  # RLE next to polygons
    assert any(isinstance(a["segmentation"], list) for a in anns)
    ids = [im["id"] for im in _json(root, "train")["images"]]
    assert ids != sorted(ids)  # file order is not id order
    for a in with_dp:
        assert len(a["dp_masks"]) == 14
        n = len(a["dp_x"])
        assert all(len(a[k]) == n for k in ("dp_y", "dp_I", "dp_U", "dp_V"))
        assert 0 <= min(a["dp_x"]) and max(a["dp_x"]) < 256 and 1 <= min(a["dp_I"]) and max(a["dp_I"]) <= 24
        coarse = DENSEPOSE_FINE_TO_COARSE[np.asarray(a["dp_I"], int)]
        assert np.bincount(coarse).max() <= 14  # at most 14 points per part (paper §2.1)


def test_points_and_masks_agree_with_the_rendering():
    out = make_densepose_image(np.random.default_rng(5), 160, 140, num_persons=2, crowd=True, no_dp_prob=0.0)
    scene = out["scene"]
    totals = []
    for ann, owner in zip(out["annotations"], out["owners"]):
        if "dp_x" not in ann:
            continue
        x, y, w, h = ann["bbox"]
        cols = np.floor(x + np.asarray(ann["dp_x"]) * w / 256).astype(int)  # training convention /256
        rows = np.floor(y + np.asarray(ann["dp_y"]) * h / 256).astype(int)
        assert np.all(scene.person_ids[rows, cols] == owner)
        assert np.array_equal(scene.parts[rows, cols], np.asarray(ann["dp_I"], int))
        assert np.allclose(scene.u[rows, cols], ann["dp_U"], atol=1e-5)
        assert np.allclose(scene.v[rows, cols], ann["dp_V"], atol=1e-5)
        coarse = paint_coarse(ann["dp_masks"])
        cell = coarse[
            np.minimum((np.asarray(ann["dp_y"])).astype(int), 255),
            np.minimum(np.asarray(ann["dp_x"]).astype(int), 255),
        ]
        assert np.mean(cell == DENSEPOSE_FINE_TO_COARSE[np.asarray(ann["dp_I"], int)]) > 0.85
        totals.append(len(ann["dp_x"]))
    assert totals and 40 <= np.mean(totals) <= 130  # about 100 points per annotated person


def test_coarse_masks_paint_in_order_later_parts_win():
    a = np.zeros((256, 256), np.uint8)
    a[10:50, 10:50] = 1
    b = np.zeros((256, 256), np.uint8)
    b[30:70, 30:70] = 1
    enc = [{**(r := mask_utils.encode(np.asfortranarray(m))), "counts": r["counts"].decode()} for m in (a, b)]
    masks = [enc[0], [], enc[1]] + [[]] * 11
    coarse = paint_coarse(masks)
    assert coarse[20, 20] == 1 and coarse[40, 40] == 3 and coarse[60, 60] == 3 and coarse[100, 100] == 0
    assert (coarse == 2).sum() == 0
    with pytest.raises(DataError, match="dp_masks"):
        paint_coarse(masks + [[]])  # 15 entries
    with pytest.raises(DataError, match="expected \\[256, 256\\]"):
        paint_coarse([{"size": [10, 10], "counts": enc[0]["counts"]}])


def test_reader_splits_persons_and_flags(root):
    ds = DensePoseCOCODataset(root, split="minival")
    assert len(ds) == 5 and ds.ids == sorted(ds.ids, key=int)
    assert len(DensePoseCOCODataset(root, split="val")) == 5
    assert len(DensePoseCOCODataset(root, split="train+valminusminival")) == 8
    raw = {im["id"]: im for im in _json(root, "minival")["images"]}
    anns = _json(root, "minival")["annotations"]
    seen_dp = seen_crowd = seen_plain = False
    for i in range(len(ds)):
        s = ds.load(i)
        iid = s["meta"]["image_id"]
        assert s["image"].shape[:2] == (raw[iid]["height"], raw[iid]["width"]) == s["meta"]["orig_size"]
        mine = [a for a in anns if a["image_id"] == iid]
        assert [p["id"] for p in s["persons"]] == [a["id"] for a in mine]
        for p, a in zip(s["persons"], mine):
            assert (
                np.array_equal(p["bbox"], a["bbox"])
                and p["area"] == a["area"]
                and p["iscrowd"] == a["iscrowd"]
            )
            assert p["mask"].shape == s["image"].shape[:2] and p["mask"].any()
            assert p["keypoints"].shape == (17, 3)
            if "dp_x" in a:
                seen_dp = True
                assert (
                    p["has_dp"]
                    and np.array_equal(p["dp"]["x"], a["dp_x"])
                    and np.array_equal(p["dp"]["I"], a["dp_I"])
                )
                assert p["dp"]["coarse"].shape == (256, 256) and p["dp"]["coarse"].max() <= 14
            else:
                assert not p["has_dp"] and len(p["dp"]["x"]) == 0 and p["dp"]["coarse"] is None
                seen_crowd |= bool(a["iscrowd"])
                seen_plain |= not a["iscrowd"]
    assert seen_dp
    gt = load_gt_images(root / "coco" / "annotations" / ANN_FILES["minival"])
    assert [g["image_id"] for g in gt] == [int(i) for i in ds.ids]


def test_detectron1_layout(root, tmp_path):
    d1 = tmp_path / "d1" / "coco"
    (d1 / "annotations").mkdir(parents=True)
    shutil.copytree(root / "coco" / "train2014", d1 / "coco_train2014")
    shutil.copytree(root / "coco" / "val2014", d1 / "coco_val2014")
    for split, name in (("train", "train"), ("valminusminival", "valminusminival"), ("minival", "minival")):
        shutil.copy(
            root / "coco" / "annotations" / ANN_FILES[split],
            d1 / "annotations" / f"densepose_coco_2014_{name}.json",
        )
    a = DensePoseCOCODataset(tmp_path / "d1", split="minival", layout="detectron1")
    b = DensePoseCOCODataset(root, split="minival")
    assert a.ids == b.ids
    sa, sb = a.load(0), b.load(0)
    assert np.array_equal(sa["image"], sb["image"]) and len(sa["persons"]) == len(sb["persons"])
    with pytest.raises(ValueError, match="does not exist in layout 'd2'"):
        DensePoseCOCODataset(root, split="test")


def _broken(root: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "broken"
    shutil.copytree(root, dst)
    return dst


def test_errors_name_the_file(root, tmp_path):
    bad = _broken(root, tmp_path)
    ann = bad / "coco" / "annotations" / ANN_FILES["minival"]
    data = json.loads(ann.read_text())
    # inconsistent dense arrays
    d = copy.deepcopy(data)
    target = next(a for a in d["annotations"] if "dp_x" in a)
    target["dp_y"] = target["dp_y"][:-1]
    ann.write_text(json.dumps(d))
    ds = DensePoseCOCODataset(bad, split="minival")
    idx = ds.ids.index(str(target["image_id"]))
    with pytest.raises(DataError, match=rf"{ann.name}.*annotation {target['id']}.*differ in length"):
        ds.load(idx)
    # dp_I out of range
    d = copy.deepcopy(data)
    target = next(a for a in d["annotations"] if "dp_x" in a)
    target["dp_I"][0] = 25
    ann.write_text(json.dumps(d))
    with pytest.raises(DataError, match="dp_I values must be integers 1..24"):
        DensePoseCOCODataset(bad, split="minival").load(idx)
    # malformed json
    ann.write_text("{not json")
    with pytest.raises(DataError, match=rf"{ann.name}: malformed JSON"):
        DensePoseCOCODataset(bad, split="minival")
    ann.write_text(json.dumps({"annotations": []}))
    with pytest.raises(DataError, match="no 'images' list"):
        DensePoseCOCODataset(bad, split="minival")
    # missing image
    ann.write_text(json.dumps(data))
    victim = bad / "coco" / "val2014" / data["images"][0]["file_name"]
    victim.unlink()
    with pytest.raises(DataError, match=rf"{victim.name}: image file is missing"):
        DensePoseCOCODataset(bad, split="minival")
    # image size differs from the json
    d = copy.deepcopy(data)
    d["images"][1]["width"] += 3
    ann.write_text(json.dumps(d))
    ds = DensePoseCOCODataset(bad, split="minival", check_files=False)
    with pytest.raises(DataError, match="but .* says"):
        ds.load(ds.ids.index(str(d["images"][1]["id"])))
    (bad / "coco" / "annotations" / ANN_FILES["train"]).unlink()
    with pytest.raises(DatasetNotFoundError, match="densepose_train2014.json"):
        DensePoseCOCODataset(bad, split="train")


def test_flip_without_uv_symmetry_is_a_startup_error(root, tmp_path):
    real_like = tmp_path / "real"
    shutil.copytree(root / "coco", real_like / "coco")  # no synthetic.json: nothing ships a table
    flipping = Compose([AffineTransform((64, 64), flip_prob=0.5)])
    with pytest.raises(ValueError, match="uv_symmetry"):
        SamplePipeline(DensePoseCOCODataset(real_like, split="minival"), transform=flipping)
    SamplePipeline(
        DensePoseCOCODataset(real_like, split="minival"),
        transform=Compose([AffineTransform((64, 64), flip_prob=0.0)]),
    )
    SamplePipeline(
        DensePoseCOCODataset(real_like, split="minival"),
        transform=Compose([AffineTransform((64, 64), train=False)]),
    )
    ds = SamplePipeline(
        DensePoseCOCODataset(
            real_like,
            split="minival",
            uv_symmetry=root / "densepose_eval_data" / "UV_symmetry_transforms.mat",
        ),
        transform=flipping,
    )
    assert ds.uv_symmetry is not None
    with pytest.raises(FileNotFoundError, match="UV_symmetry_transforms.mat"):
        SamplePipeline(
            DensePoseCOCODataset(real_like, split="minival", uv_symmetry=tmp_path / "none.mat"),
            transform=flipping,
        )
    # through the datamodule: the error comes when it is set up, before any training step
    dm = ParsingDataModule(
        "densepose_coco",
        root=str(real_like),
        input_size=(64, 64),
        batch_size=2,
        num_workers=0,
        augment={"flip_prob": 0.5},
        train_split="minival",
        val_split="minival",
    )
    with pytest.raises(ValueError, match="uv_symmetry"):
        dm.setup("fit")
    # the synthetic set ships its own table
    assert (
        SamplePipeline(DensePoseCOCODataset(root, split="minival"), transform=flipping).uv_symmetry
        is not None
    )


def test_datamodule_batches_with_instance_collate(root, tmp_path):
    dm = ParsingDataModule(
        "densepose_coco",
        root=str(root),
        input_size=(80, 80),
        batch_size=2,
        num_workers=0,
        augment={"flip_prob": 0.5, "scale": [0.8, 1.0]},
        train_split="train+valminusminival",
        val_split="minival",
        evaluators=[DensePoseEvaluator(eval_data="synthetic")],
    )
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    assert batch["image"].shape == (2, 3, 80, 80) and len(batch["persons"]) == 2
    for persons in batch["persons"]:
        for p in persons:
            assert p["box"].dtype == torch.float32 and p["mask"].shape == (80, 80)
            assert p["dp"]["I"].dtype == torch.int64 and len(p["dp"]["x"]) == len(p["dp"]["U"])
            assert (p["dp"]["x"] >= 0).all() and (p["dp"]["x"] <= 256).all()
    val = next(iter(DataLoader(dm.datasets["val"], batch_size=2, collate_fn=collate_dense)))
    assert "gt" in val and isinstance(val["gt"][0]["dp_persons"], list)
    assert val["gt"][0]["dp_persons"] and isinstance(val["gt"][0]["dp_persons"][0]["mask"], np.ndarray)
