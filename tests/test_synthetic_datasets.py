"""The ATR, PASCAL-Person-Part, CIHP and MHP v2.0 writers: exact layouts, file formats, determinism,
atomic output and the pseudo-pose files."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from humanparse.data import registry
from humanparse.synthetic import writer
from humanparse.synthetic.__main__ import main as cli_main

SMALL = {"num_train": 3, "num_val": 2, "num_test": 1, "image_size": (40, 56), "seed": 2}


def _tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}


def _gen(name: str, root: Path, **over) -> dict:
    return registry.generator(name)(root, **{**SMALL, **over})


def test_atr_release_layout(tmp_path):
    info = _gen("atr", tmp_path / "a")
    files = _tree(tmp_path / "a")
    ids = info["ids"]["train"] + info["ids"]["val"]
    assert files == {"synthetic.json", "pseudo_pose/train.json", "pseudo_pose/val.json"} | {
        f"humanparsing/JPEGImages/{i}.jpg" for i in ids
    } | {f"humanparsing/SegmentationClassAug/{i}.png" for i in ids}
    assert all(re.fullmatch(r"(2500|4565|997|fash|Multi|dataset10k)_\d+", i) for i in ids)
    modes = {
        Image.open(tmp_path / "a" / "humanparsing" / "SegmentationClassAug" / f"{i}.png").mode for i in ids
    }
    assert modes <= {"L", "P"}
    assert json.loads((tmp_path / "a" / "synthetic.json").read_text())["reader_options"] == {"val_count": 2}


def test_pascal_layout_and_instance_files(tmp_path):
    info = _gen("pascal_person_part", tmp_path / "p")
    base = tmp_path / "p" / "pascal"
    ids = info["ids"]["train"] + info["ids"]["val"] + info["ids"]["extra"]
    expected = {
        "synthetic.json",
        "pascal/list/train_id.txt",
        "pascal/list/val_id.txt",
        "pascal/list/val_id_grapy.txt",
    }
    for i in ids:
        expected |= {
            f"pascal/JPEGImages/{i}.jpg",
            f"pascal/SegmentationPart/{i}.png",
            f"pascal/Human_ids/{i}.png",
            f"pascal/Instance_ids/{i}.png",
            f"pascal/Instance_ids/{i}.txt",
            f"pascal/Category_ids/{i}.png",
        }
    assert _tree(tmp_path / "p") == expected
    assert all(re.fullmatch(r"20(08|09|10)_\d{6}", i) for i in ids)
    assert (base / "list" / "val_id.txt").read_text().split() == info["ids"]["val"]


def test_cihp_layout_encodings_and_pseudo_pose(tmp_path):
    info = _gen("cihp", tmp_path / "c")
    root = tmp_path / "c"
    expected = {
        "synthetic.json",
        "pseudo_pose/train.json",
        "pseudo_pose/val.json",
        "Training/train_id.txt",
        "Validation/val_id.txt",
        "Testing/test_id.txt",
    }
    for split, d in (("train", "Training"), ("val", "Validation")):
        for i in info["ids"][split]:
            expected |= {
                f"{d}/Images/{i}.jpg",
                f"{d}/Category_ids/{i}.png",
                f"{d}/Human_ids/{i}.png",
                f"{d}/Instance_ids/{i}.png",
                f"{d}/Instance_ids/{i}.txt",
            }
    expected |= {f"Testing/Images/{i}.jpg" for i in info["ids"]["test"]}
    assert _tree(root) == expected
    all_ids = sorted(int(i) for s in info["ids"].values() for i in s)
    assert len(set(all_ids)) == 6 and all(len(i) == 7 for s in info["ids"].values() for i in s)
    i = info["ids"]["train"][0]
    cat = np.asarray(Image.open(root / "Training" / "Category_ids" / f"{i}.png"))
    hum = np.asarray(Image.open(root / "Training" / "Human_ids" / f"{i}.png"))
    inst = np.asarray(Image.open(root / "Training" / "Instance_ids" / f"{i}.png")).astype(int)
    assert len(np.unique(hum[hum > 0])) >= 2  # 2-5 persons per scene
    on = (cat > 0) & (cat < 20) & (hum > 0)
    assert (
        np.array_equal(inst[on], cat[on].astype(int) + 20 * (hum[on].astype(int) - 1)) and not inst[~on].any()
    )
    lines = (root / "Training" / "Instance_ids" / f"{i}.txt").read_text().splitlines()
    assert sorted(int(x.split()[0]) for x in lines) == sorted(np.unique(inst[inst > 0]).tolist())
    entries = json.loads((root / "pseudo_pose" / "val.json").read_text())
    assert entries and all(set(e) == {"image_id", "person_id", "keypoints", "source"} for e in entries)
    assert all(len(e["keypoints"]) == 51 and e["person_id"] >= 1 for e in entries)
    assert {e["image_id"] for e in entries} <= set(info["ids"]["val"])


def test_mhp_layout_three_channel_files_and_lists(tmp_path):
    info = _gen("mhp_v2", tmp_path / "m", num_test=5)
    root = tmp_path / "m"
    files = _tree(root)
    assert {
        f"list/{n}.txt" for n in ("train", "val", "test_all", "test_inter_top20", "test_inter_top10")
    } <= files
    annos = sorted(f for f in files if "/parsing_annos/" in f)
    assert sum(info["num_persons"].values()) == len(annos)
    for f in annos:
        m = re.fullmatch(r"(train|val)/parsing_annos/(\d+)_(\d\d)_(\d\d)\.png", f)
        assert (
            m
            and int(m.group(3)) == info["num_persons"][m.group(2)]
            and 1 <= int(m.group(4)) <= int(m.group(3))
        )
        with Image.open(root / f) as im:
            arr = np.asarray(im)
        assert im.mode == "RGB" and not arr[..., 1:].any() and arr[..., 0].max() < 59
    assert info["empty_persons"]  # the empty-person trap is always written (train image 0)
    top20 = (root / "list" / "test_inter_top20.txt").read_text().split()
    assert set(top20) <= set(info["ids"]["test"]) and len(top20) == 1


@pytest.mark.parametrize("name", ["atr", "pascal_person_part", "cihp", "mhp_v2"])
def test_deterministic_by_seed_and_atomic(tmp_path, name, monkeypatch):
    _gen(name, tmp_path / "a")
    _gen(name, tmp_path / "b")
    _gen(name, tmp_path / "c", seed=3)
    ta, tc = _tree(tmp_path / "a"), _tree(tmp_path / "c")
    assert ta == _tree(tmp_path / "b")
    assert all((tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes() for f in ta)
    assert ta != tc or any((tmp_path / "a" / f).read_bytes() != (tmp_path / "c" / f).read_bytes() for f in ta)
    with pytest.raises(FileExistsError, match="not an empty directory"):
        _gen(name, tmp_path / "a")
    calls = {"n": 0}
    real = writer.write_jpeg

    def flaky(*a, **k):
        calls["n"] += 1
        if calls["n"] == 3:
            raise OSError("disk full")
        return real(*a, **k)

    monkeypatch.setattr(
        f"humanparse.synthetic.{'pascal' if name == 'pascal_person_part' else name.split('_')[0]}.write_jpeg",
        flaky,
    )
    with pytest.raises(OSError, match="disk full"):
        _gen(name, tmp_path / "d")
    assert not (tmp_path / "d").exists() and not list(tmp_path.glob("d.tmp-*"))


def test_command_line(tmp_path, capsys):
    cli_main(
        [
            "cihp",
            str(tmp_path / "x"),
            "--train",
            "1",
            "--val",
            "1",
            "--test",
            "0",
            "--min-side",
            "32",
            "--max-side",
            "40",
        ]
    )
    assert "wrote" in capsys.readouterr().out and (tmp_path / "x" / "Training" / "train_id.txt").is_file()
