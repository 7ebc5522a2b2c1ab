"""LIP reader on generated data in the official layout, plus every kind of bad input."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from PIL import Image

from humanparse.data.base import DatasetNotFoundError, collate_dense
from humanparse.data.datamodule import ParsingDataModule, ensure_synthetic
from humanparse.data.io import DataError
from humanparse.data.lip import LIPDataset, parse_pose_csv
from humanparse.data.pipeline import SamplePipeline
from humanparse.data.transforms import AffineTransform, Compose, Normalize
from humanparse.synthetic import generate_lip

OPTS = {"num_train": 12, "num_val": 6, "num_test": 3, "image_size": [40, 64], "seed": 3}


@pytest.fixture(scope="module")
def lip_root(tmp_path_factory):
    return ensure_synthetic(tmp_path_factory.mktemp("lipcache"), "lip", OPTS)


@pytest.fixture
def broken_root(lip_root, tmp_path):
    dst = tmp_path / "LIP"
    shutil.copytree(lip_root, dst)
    return dst


def _train_dirs(root):
    return (
        root / "TrainVal_images" / "TrainVal_images" / "train_images",
        root / "TrainVal_parsing_annotations" / "TrainVal_parsing_annotations" / "train_segmentations",
    )


def test_reads_every_split_of_the_generated_layout(lip_root):
    tr = LIPDataset(lip_root, "train")
    va = LIPDataset(lip_root, "val")
    te = LIPDataset(lip_root, "test")
    assert (len(tr), len(va), len(te)) == (12, 6, 3)
    ids = (lip_root / "TrainVal_images" / "train_id.txt").read_text().split()
    assert tr.ids == ids
    s = tr.load(0)
    assert s["image"].dtype == np.uint8 and s["image"].shape[:2] == s["semantic"].shape
    assert s["semantic"].max() < 20 and s["keypoints"].shape == (16, 3)
    assert s["meta"]["orig_size"] == s["semantic"].shape
    assert "semantic" not in te.load(0)
    labels = np.concatenate([tr.load(i)["semantic"].ravel() for i in range(len(tr))])
    assert len(np.unique(labels)) >= 8  # a real parsing map, not a blob
    # CSV rows exist for most images and are read as (x, y, present)
    present = np.stack([tr.load(i)["keypoints"][:, 2] for i in range(len(tr))])
    assert present.sum() > 0.5 * present.size


def test_round_trip_of_pose_csv(lip_root):
    rows = parse_pose_csv(lip_root / "TrainVal_pose_annotations" / "lip_train_set.csv")
    raw = (lip_root / "TrainVal_pose_annotations" / "lip_train_set.csv").read_text().splitlines()
    first = raw[0].split(",")
    key = first[0].rsplit(".", 1)[0]
    for j in range(16):
        x, y = first[1 + 3 * j], first[2 + 3 * j]
        if x == "nan":
            assert rows[key][j].tolist() == [0, 0, 0]
        else:
            assert rows[key][j].tolist() == [float(x), float(y), 1.0]


def test_transformed_samples_and_collate(lip_root):
    t = Compose([AffineTransform((32, 32), rotation=30), Normalize()])
    ds = SamplePipeline(LIPDataset(lip_root, "val"), transform=t, keep_original=True)
    batch = collate_dense([ds[(0, 1)], ds[(1, 1)]])
    assert batch["image"].shape == (2, 3, 32, 32) and batch["semantic"].shape == (2, 32, 32)
    assert isinstance(batch["gt"], list) and batch["gt"][0]["semantic"].shape == tuple(
        batch["meta"][0]["orig_size"]
    )
    # per-sample augmentation depends on (seed, epoch, index) only
    assert (ds[(0, 5)]["semantic"] == ds[(0, 5)]["semantic"]).all()


def test_single_level_variant_and_missing_root(lip_root, tmp_path):
    dst = tmp_path / "flat"
    shutil.copytree(lip_root, dst)
    inner = dst / "TrainVal_images" / "TrainVal_images"
    for d in inner.iterdir():
        d.rename(dst / "TrainVal_images" / d.name)
    inner.rmdir()
    assert len(LIPDataset(dst, "val")) == 6
    with pytest.raises(DatasetNotFoundError, match="TrainVal_images"):
        LIPDataset(tmp_path / "nowhere", "train")


def test_corrupt_image(broken_root):
    img_dir, _ = _train_dirs(broken_root)
    victim = sorted(img_dir.iterdir())[2]
    victim.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    ds = LIPDataset(broken_root, "train")
    idx = ds.ids.index(victim.stem)
    with pytest.raises(DataError, match=f"{victim.name}.*corrupt"):
        ds.load(idx)


def test_missing_label_file(broken_root):
    _, lab_dir = _train_dirs(broken_root)
    victim = sorted(lab_dir.iterdir())[1]
    victim.unlink()
    with pytest.raises(DataError, match=f"{victim.name}: label file is missing"):
        LIPDataset(broken_root, "train")


def test_label_out_of_range(broken_root):
    _, lab_dir = _train_dirs(broken_root)
    victim = sorted(lab_dir.iterdir())[0]
    lab = np.array(Image.open(victim))
    lab[0, 0] = 37
    Image.fromarray(lab).save(victim)
    ds = LIPDataset(broken_root, "train")
    with pytest.raises(DataError, match=rf"{victim.name}: label value\(s\) \[37\] out of range"):
        ds.load(ds.ids.index(victim.stem))


def test_colour_render_is_not_a_label(broken_root):
    _, lab_dir = _train_dirs(broken_root)
    victim = sorted(lab_dir.iterdir())[0]
    Image.open(victim).convert("RGB").save(victim)
    ds = LIPDataset(broken_root, "train")
    with pytest.raises(DataError, match="mode 'RGB'"):
        ds.load(ds.ids.index(victim.stem))


def test_image_label_size_mismatch(broken_root):
    _, lab_dir = _train_dirs(broken_root)
    victim = sorted(lab_dir.iterdir())[3]
    lab = Image.open(victim)
    lab.resize((lab.width + 3, lab.height), Image.NEAREST).save(victim)
    ds = LIPDataset(broken_root, "train")
    with pytest.raises(DataError, match=f"{victim.name}: size mismatch"):
        ds.load(ds.ids.index(victim.stem))


def test_malformed_pose_csv_row(broken_root):
    csv = broken_root / "TrainVal_pose_annotations" / "lip_train_set.csv"
    lines = csv.read_text().splitlines()
    lines[1] = ",".join(lines[1].split(",")[:20])
    csv.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"lip_train_set.csv: line 2: malformed pose row with 20 fields"):
        LIPDataset(broken_root, "train")
    lines[1] = lines[0].replace(lines[0].split(",")[1], "abc", 1)
    csv.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match="non-numeric"):
        LIPDataset(broken_root, "train")


def test_duplicate_ids_are_an_error(broken_root):
    f = broken_root / "TrainVal_images" / "val_id.txt"
    ids = f.read_text().split()
    f.write_text("\n".join(ids + ids[:1]) + "\n")
    with pytest.raises(DataError, match="duplicate id"):
        LIPDataset(broken_root, "val")


def test_datamodule_generates_once_and_splits_the_global_batch(tmp_path):
    dm = ParsingDataModule(
        "lip",
        synthetic=True,
        synthetic_options=OPTS,
        cache_dir=str(tmp_path),
        batch_size=4,
        num_workers=0,
        input_size=(32, 32),
    )
    dm.prepare_data()
    root = dm.data_root()
    stamp = (root / "synthetic.json").stat().st_mtime_ns
    dm.prepare_data()
    assert (root / "synthetic.json").stat().st_mtime_ns == stamp
    dm.setup("fit")
    b = next(iter(dm.train_dataloader()))
    assert b["image"].shape == (4, 3, 32, 32)
    assert len(dm.val_dataloader().dataset) == 6
    with pytest.raises(ValueError, match="data.root is not set"):
        ParsingDataModule("lip", root=None).data_root()


def test_generate_refuses_to_overwrite(tmp_path):
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "keep.txt").write_text("user data")
    with pytest.raises(FileExistsError):
        generate_lip(tmp_path / "x", num_train=1, num_val=1, num_test=1)
    assert (tmp_path / "x" / "keep.txt").read_text() == "user data"
