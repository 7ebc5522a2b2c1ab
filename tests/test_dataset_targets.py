"""Derived targets wired into the datasets: by name through the data module, the instance-edge disk
cache, multi-person pose heatmaps, shipped PGN edges, pseudo-pose keypoints."""

from __future__ import annotations

import os

import numpy as np
import pytest

from helpers.datasets import TINY, tiny_root
from humanparse.data import targets as T
from humanparse.data.atr import ATRDataset
from humanparse.data.cihp import CIHPDataset
from humanparse.data.datamodule import ParsingDataModule


def test_instance_edge_disk_cache_hits_and_invalidates(cache_dir, tmp_path, monkeypatch):
    ds = CIHPDataset(tiny_root(cache_dir, "cihp"), "val", persons=False)
    maker = T.InstanceEdges(cache="disk", cache_dir=tmp_path)
    s = maker(ds.load(0))
    assert np.array_equal(s["instance_edge"], T.instance_edges(s["person_ids"]))
    assert len(list((tmp_path / "derived" / "instance_edge").rglob("*.png"))) == 1

    def boom(_):
        raise AssertionError("recomputed although cached")

    monkeypatch.setattr(T, "instance_edges", boom)
    again = maker(ds.load(0))
    assert np.array_equal(again["instance_edge"], s["instance_edge"])
    src = s["meta"]["sources"]["person_ids"][0]
    st = os.stat(src)
    os.utime(src, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # an edited annotation is recomputed
    with pytest.raises(AssertionError, match="recomputed"):
        maker(ds.load(0))
    with pytest.raises(ValueError, match="cache_dir"):
        T.InstanceEdges(cache="disk")


def test_instance_edges_need_person_ids_and_keep_shipped_edges(cache_dir):
    s = ATRDataset(tiny_root(cache_dir, "atr"), "train", val_count=TINY["num_val"]).load(0)
    with pytest.raises(KeyError, match="LIP and ATR, have no instance edges"):
        T.InstanceEdges()(s)
    shipped = {"instance_edge": np.ones((3, 3), np.uint8), "person_ids": np.zeros((3, 3), np.uint8)}
    assert T.InstanceEdges()(shipped)["instance_edge"].all()


def test_multi_person_heatmaps_keep_every_peak():
    kp = np.zeros((2, 17, 3), np.float32)
    kp[0, 0] = (8, 8, 1)
    kp[1, 0] = (40, 24, 1)
    out = T.PoseHeatmaps(stride=4, sigma=1.0)({"semantic": np.zeros((32, 48), np.uint8), "keypoints": kp})
    hm = out["heatmaps"]
    assert hm.shape == (17, 8, 12)
    assert hm[0, 2, 2] == 1.0 and hm[0, 6, 10] == 1.0 and not hm[1:].any()


@pytest.mark.parametrize(
    "spec",
    [
        ["semantic_edge", "instance_edge", "pose_heatmaps", "hierarchy"],
        {
            "semantic_edge": True,
            "instance_edge": {"cache": "none"},
            "pose_heatmaps": {"sigma": 2.0},
            "hierarchy": None,
        },
    ],
)
def test_targets_by_name_through_the_data_module(cache_dir, spec):
    dm = ParsingDataModule(
        "cihp",
        synthetic=True,
        synthetic_options=TINY,
        cache_dir=str(cache_dir),
        batch_size=2,
        num_workers=0,
        input_size=(48, 48),
        targets=spec,
        target_options={"pose_heatmaps": {"sigma": 3.0}},
        augment={"mode": "crop", "scale": [0.8, 1.2], "rotation": 10},
    )
    dm.prepare_data()
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    assert batch["semantic_edge"].shape == (2, 48, 48) and set(batch["semantic_edge"].unique().tolist()) <= {
        0,
        1,
    }
    assert batch["instance_edge"].shape == (2, 48, 48) and batch["instance_edge"].sum() > 0
    assert batch["heatmaps"].shape == (2, 17, 12, 12) and batch["heatmaps"].max() == 1.0
    sigma = [m for m in dm.targets if isinstance(m, T.PoseHeatmaps)][0].sigma
    assert sigma == (3.0 if isinstance(spec, list) else 2.0)
    assert ("level2" in batch) == isinstance(spec, list)
    if "level2" in batch:
        lab, lv = batch["semantic"], batch["level2"]
        assert ((lab == 13) <= (lv == 1)).all() and ((lab == 255) == (lv == 255)).all()
    # instance edges are person boundaries: each (warped) edge pixel sees two person ids within 3 pixels
    pid = batch["person_ids"].numpy()
    for b in range(2):
        ys, xs = np.nonzero(batch["instance_edge"][b].numpy())
        for y, x in zip(ys, xs):
            win = pid[b, max(0, y - 3) : y + 4, max(0, x - 3) : x + 4]
            assert len(np.unique(win)) >= 2
    with pytest.raises(KeyError, match="unknown derived target"):
        ParsingDataModule("cihp", targets=["edges"])


def test_atr_pose_heatmaps_from_pseudo_pose(cache_dir):
    dm = ParsingDataModule(
        "atr",
        synthetic=True,
        synthetic_options=TINY,
        cache_dir=str(cache_dir),
        batch_size=2,
        num_workers=0,
        input_size=(64, 64),
        targets=["pose_heatmaps"],
        reader_options={"val_count": 1000},
    )  # the synthetic manifest's val_count wins
    dm.prepare_data()
    dm.setup("fit")
    assert len(dm.datasets["val"]) == TINY["num_val"]
    batch = next(iter(dm.val_dataloader()))
    assert batch["keypoints"].shape == (2, 17, 3) and batch["heatmaps"].shape == (2, 17, 16, 16)
    present = batch["keypoints"][..., 2] > 0
    assert (batch["heatmaps"].amax((-1, -2)) > 0.99)[present].all()
    assert dm.describe()["reader_options"]["val_count"] == TINY["num_val"]
