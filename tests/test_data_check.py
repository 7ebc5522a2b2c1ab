"""The dataset checker on generated data (clean: exit 0) and on deliberately broken copies (exit 1,
every problem named with its file)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from conftest import run_cli
from helpers.datasets import TINY, copy_of, tiny_root
from humanparse.data import registry
from humanparse.tools.check_data import ERROR, WARNING, DatasetCheck, check_dataset, summary


def _issues(report, severity=ERROR):
    return [
        (s, i["path"], i["problem"])
        for s, r in report["splits"].items()
        for i in r["issues"]
        if i["severity"] == severity
    ]


@pytest.mark.parametrize(
    "name,splits",
    [
        ("atr", {"train": 8, "val": 6}),
        ("pascal_person_part", {"train": 8, "val": 6, "val_grapy": None}),
        ("cihp", {"train": 8, "val": 6, "test": 3}),
        ("mhp_v2", {"train": 8, "val": 6, "test_all": 3, "test_inter_top20": None, "test_inter_top10": None}),
    ],
)
def test_clean_generated_sets_pass(cache_dir, name, splits):
    opts = {"val_count": TINY["num_val"]} if name == "atr" else {}
    rep = check_dataset(name, tiny_root(cache_dir, name), opts, progress=False)
    assert rep["ok"] and rep["errors"] == 0, _issues(rep)
    assert list(rep["splits"]) == list(splits)
    for split, n in splits.items():
        s = rep["splits"][split]
        if n is not None:
            assert s["ids"] == s["images_found"] == s["checked"] == n
        assert s["annotations_found"] == s["annotations_expected"]
    train = rep["splits"]["train"]
    assert sum(train["class_pixels"].values()) > 0 and train["class_pixels"]["background"] > 0
    text = summary(rep)
    assert f"{name} at " in text and "class pixels" in text
    if name == "mhp_v2":  # the generator's empty person maps are reported, but tolerated
        assert train["persons_without_annotation"] >= 1 and rep["warnings"] >= 1
    if name in ("cihp", "pascal_person_part"):
        assert train["persons"] >= 8 and train["images_without_persons"] == 0


def test_broken_copies_report_every_problem_with_its_file(cache_dir, tmp_path):
    root = copy_of(tiny_root(cache_dir, "cihp"), tmp_path / "cihp")
    tr = root / "Training"
    ids = (tr / "train_id.txt").read_text().split()
    (tr / "Category_ids" / f"{ids[0]}.png").unlink()
    Image.fromarray(np.full((12, 12), 40, np.uint8)).save(tr / "Category_ids" / f"{ids[1]}.png")
    Image.fromarray(np.zeros((7, 7), np.uint8)).save(tr / "Human_ids" / f"{ids[2]}.png")
    (tr / "Images" / f"{ids[3]}.jpg").write_bytes(b"\x00" * 20)
    # an image whose persons were all erased: readable, no persons, its part pixels belong to nobody
    Image.fromarray(np.zeros(Image.open(tr / "Human_ids" / f"{ids[5]}.png").size[::-1], np.uint8)).save(
        tr / "Human_ids" / f"{ids[5]}.png"
    )
    val_ids = (root / "Validation" / "val_id.txt").read_text().split()
    (root / "Validation" / "val_id.txt").write_text("\n".join(val_ids + [ids[4]]) + "\n")
    rep = check_dataset("cihp", root, {}, progress=False)
    assert not rep["ok"]
    errors = _issues(rep)
    text = "\n".join(f"{p}: {m}" for _, p, m in errors)
    assert f"Category_ids/{ids[0]}.png: label file is missing" in text
    assert f"Category_ids/{ids[1]}.png: label value(s) [40] out of range" in text
    assert f"Human_ids/{ids[2]}.png: size mismatch" in text
    assert f"Images/{ids[3]}.jpg: corrupt or unreadable image" in text
    assert "ids are in both val and train" in text
    assert rep["splits"]["train"]["images_found"] == 8 and rep["splits"]["train"]["annotations_found"] == 15
    assert rep["splits"]["train"]["images_without_persons"] == 1
    assert any(f"{ids[5]}.jpg" in p and "belong to no person" in m for _, p, m in _issues(rep, WARNING))


class ProbeCheck(DatasetCheck):
    """A plug-in check, as a new dataset registers one in ``registry.CHECKS``."""

    splits = {"val": ("val", {}, False)}
    seen: list[str] = []

    def check_sample(self, reader, index, sample, report):
        self.seen.append(sample["meta"]["id"])
        report.add(WARNING, sample["meta"]["image_path"], "probe")


def test_registry_plugs_in_dataset_checks(cache_dir, monkeypatch):
    monkeypatch.setitem(registry.CHECKS, "atr", f"{__name__}:ProbeCheck")
    ProbeCheck.seen.clear()
    rep = check_dataset("atr", tiny_root(cache_dir, "atr"), {"val_count": TINY["num_val"]}, progress=False)
    assert list(rep["splits"]) == ["val"] and len(ProbeCheck.seen) == TINY["num_val"]
    assert rep["warnings"] == TINY["num_val"] and rep["ok"]
    assert registry.check("no_such_dataset") is DatasetCheck


def test_cli_exit_status_and_json_report(cache_dir, tmp_path):
    root = copy_of(tiny_root(cache_dir, "mhp_v2"), tmp_path / "mhp")
    anno = sorted((root / "val" / "parsing_annos").glob("*.png"))[0]
    rgb = np.array(Image.open(anno))
    rgb[0, 0, 0] = 99
    Image.fromarray(rgb).save(anno)
    report = tmp_path / "report.json"
    proc = run_cli(
        "humanparse.tools.check_data",
        "data=mhp_v2",
        f"data.root={root}",
        f"report={report}",
        "progress=false",
        cwd=tmp_path,
        cache_dir=cache_dir,
        check=False,
    )
    assert proc.returncode == 1, proc.stderr[-2000:]
    rep = json.loads(report.read_text())
    assert rep["errors"] == 1 and not rep["ok"]
    (err,) = _issues(rep)
    assert err[0] == "val" and err[1] == str(anno) and "out of range" in err[2]
    assert "1 errors" in proc.stdout and str(anno) in proc.stdout


def test_densepose_check_counts_dense_points_and_names_broken_files(cache_dir, tmp_path):
    root = tiny_root(cache_dir, "densepose_coco", image_size=[64, 96])
    rep = check_dataset("densepose_coco", root, {}, progress=False)
    assert rep["ok"], _issues(rep)
    train = rep["splits"]["train"]
    assert train["checked"] == train["ids"] > 0
    # persons without dp_x are evaluation ignore regions: counted, never flagged
    assert train["persons_without_annotation"] > 0 and not _issues(rep, WARNING)
    charts = train["extra"]["points_per_chart"]
    assert charts[0] == 0 and sum(charts) == train["extra"]["dense_points"] > 0
    broken = copy_of(root, tmp_path / "dp")
    victim = sorted((broken / "coco" / "train2014").glob("*.jpg"))[0]
    victim.unlink()
    rep = check_dataset("densepose_coco", broken, {}, progress=False)
    assert not rep["ok"]
    assert any(victim.name in path and "missing" in problem for _, path, problem in _issues(rep))
