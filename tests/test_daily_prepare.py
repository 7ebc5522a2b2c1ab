"""humanparse.tools.prepare_data: archives in the official structure (built from the synthetic generators' output,
with the wrapping folders real downloads have) are unpacked into the readers' layout and pass the checker;
a missing or incomplete archive is named in the error."""

from __future__ import annotations

import shutil
import tarfile
import zipfile
from pathlib import Path

import pytest

from helpers.datasets import tiny_root
from humanparse.tools.prepare_data import main as prepare_main

SMALL = {"num_train": 3, "num_val": 3, "num_test": 2, "image_size": [48, 64]}
# the real ATR release has 1,000+ "2500_" ids for the Graphonomy split; the tiny set has 3 val ids
CHECK = {"atr": ["overrides=[data.reader_options.val_count=3]"]}


def _zip(path: Path, folder: Path, prefix: str = "") -> Path:
    """Zip ``folder``'s content, member names prefixed with ``prefix`` (a wrapping folder)."""
    with zipfile.ZipFile(path, "w") as z:
        for f in sorted(folder.rglob("*")):
            if f.is_file():
                z.write(f, prefix + str(f.relative_to(folder)))
    return path


def _tar(path: Path, folder: Path, arcname: str) -> Path:
    with tarfile.open(path, "w:gz" if path.name.endswith("gz") else "w") as t:
        t.add(folder, arcname=arcname)
    return path


def _archives(name: str, syn: Path, out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    if name == "lip":  # each zip: its folder's content, the inner folder repeating the name
        for stem in (
            "TrainVal_images",
            "TrainVal_parsing_annotations",
            "TrainVal_pose_annotations",
            "Testing_images",
        ):
            _zip(out / f"{stem}.zip", syn / stem)
    elif name == "atr":
        _tar(out / "humanparsing.tar.gz", syn / "humanparsing", "humanparsing")
    elif name == "cihp":  # the download wraps everything in a doubled instance-level_human_parsing/
        _tar(
            out / "instance-level_human_parsing.tar.gz",
            syn,
            "instance-level_human_parsing/instance-level_human_parsing",
        )
    elif name == "mhp_v2":
        _zip(out / "LV-MHP-v2.zip", syn, "LV-MHP-v2/")
    elif name == "pascal_person_part":  # labels without images + the VOC 2010 tar with its VOCdevkit/VOC2010/
        labels = out / "_labels" / "pascal"
        shutil.copytree(syn / "pascal", labels, ignore=shutil.ignore_patterns("JPEGImages"))
        _zip(out / "pascal.zip", labels.parent)
        _tar(
            out / "VOCtrainval_03-May-2010.tar", syn / "pascal" / "JPEGImages", "VOCdevkit/VOC2010/JPEGImages"
        )
        shutil.rmtree(out / "_labels")
    elif name == "densepose_coco":  # COCO image zips + the annotation files under their DensePose names
        for split in ("train2014", "val2014"):
            _zip(out / f"{split}.zip", syn / "coco" / split, f"{split}/")
        for split, old in (
            ("train2014", "densepose_coco_2014_train.json"),
            ("valminusminival2014", "densepose_coco_2014_valminusminival.json"),
            ("minival2014", "densepose_coco_2014_minival.json"),
        ):
            shutil.copyfile(syn / "coco" / "annotations" / f"densepose_{split}.json", out / old)
    return out


@pytest.mark.parametrize("name", ["lip", "atr", "cihp", "mhp_v2", "pascal_person_part", "densepose_coco"])
def test_prepare_official_archives(name, tmp_path, cache_dir, capsys):
    syn = tiny_root(cache_dir, name, **SMALL)
    archives = _archives(name, syn, tmp_path / "downloads")
    root = tmp_path / "data"
    assert (
        prepare_main([f"data={name}", f"archives={archives}", f"root={root}", *CHECK.get(name, [])]) == 0
    ), capsys.readouterr()
    out = capsys.readouterr().out
    assert "0 errors" in out and f"ready: data={name}" in out
    assert not (root / ".prepare").exists()


def test_missing_and_incomplete_archives_are_named(tmp_path, cache_dir, capsys):
    syn = tiny_root(cache_dir, "lip", **SMALL)
    archives = _archives("lip", syn, tmp_path / "downloads")
    (archives / "TrainVal_parsing_annotations.zip").unlink()
    assert prepare_main(["data=lip", f"archives={archives}", f"root={tmp_path / 'a'}"]) == 2
    err = capsys.readouterr().err
    assert "missing in" in err and "TrainVal_parsing_annotations.zip" in err and "sysu-hcp.net" in err
    # an archive without its val labels
    partial = tmp_path / "partial"
    shutil.copytree(syn / "TrainVal_parsing_annotations", partial)
    shutil.rmtree(next(partial.rglob("val_segmentations")))
    _zip(archives / "TrainVal_parsing_annotations.zip", partial)
    assert prepare_main(["data=lip", f"archives={archives}", f"root={tmp_path / 'b'}"]) == 2
    err = capsys.readouterr().err
    assert "TrainVal_parsing_annotations.zip: incomplete archive: lacks 'val_segmentations'" in err
    # a truncated download
    (archives / "TrainVal_parsing_annotations.zip").write_bytes(b"PK\x03\x04 truncated")
    assert prepare_main(["data=lip", f"archives={archives}", f"root={tmp_path / 'c'}"]) == 2
    assert "TrainVal_parsing_annotations.zip" in capsys.readouterr().err
    assert prepare_main(["data=lip", "list=true"]) == 0
    assert "TrainVal_pose_annotations.zip (optional)" in capsys.readouterr().out
