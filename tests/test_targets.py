"""Derived targets on hand-made maps: CorrPM semantic edges, PGN instance edges, heatmaps, hierarchy, instances."""

from __future__ import annotations

import numpy as np
import pytest

from humanparse.data.instances import (
    instance_partition_mismatch,
    paint_persons,
    part_instances,
    persons_from_ids,
)
from humanparse.data.targets import hierarchy_labels, instance_edges, pose_heatmaps, semantic_edges
from humanparse.metrics.gather import GatheredMetric


def test_semantic_edges_neighbour_rule_and_ignore():
    lab = np.zeros((6, 6), np.uint8)
    lab[2:4, 2:4] = 5
    e = semantic_edges(lab, width=1)
    # marked: pixels differing from above/right/lower-right/lower-left neighbours
    expected = np.zeros((6, 6), np.uint8)
    for i in range(6):
        for j in range(6):
            for di, dj in ((-1, 0), (0, 1), (1, 1), (1, -1)):
                a, b = i + di, j + dj
                if 0 <= a < 6 and 0 <= b < 6 and lab[i, j] != lab[a, b]:
                    expected[i, j] = 1
    assert np.array_equal(e, expected)
    assert semantic_edges(lab, width=3).sum() > e.sum()  # 3x3 dilation
    lab2 = np.full((6, 6), 255, np.uint8)
    lab2[:, :3] = 0
    assert semantic_edges(lab2, width=1).sum() == 0  # 255 borders never make edges


def test_instance_edges_are_person_boundaries_only():
    pid = np.zeros((10, 12), np.uint8)
    pid[2:8, 1:5] = 1
    pid[2:8, 5:10] = 2
    e = instance_edges(pid)
    assert e[5, 4] == 1 and e[5, 5] == 1  # person/person boundary, one pixel each side
    assert e[5, 2] == 0  # inside a person
    assert e[0, 0] == 0 and e[9, 11] == 0  # the border makes no edge (replicate padding)
    assert e[1, 3] == 1 and e[2, 3] == 1  # person/background boundary


def test_pose_heatmaps_centre_sigma_and_absent():
    kp = np.array([[40.0, 20.0, 1.0], [0, 0, 0], [-500.0, 10.0, 1.0]], np.float32)
    hm = pose_heatmaps(kp, (96, 96), stride=4, sigma=7)
    assert hm.shape == (3, 24, 24)
    # centre int(40/4 + .5) = 10, int(20/4 + .5) = 5
    assert hm[0, 5, 10] == pytest.approx(1.0)
    assert hm[0, 5, 17] == pytest.approx(np.exp(-49 / 98), rel=1e-5)
    assert hm[1].sum() == 0 and hm[2].sum() == 0


def test_hierarchy_maps():
    lab = np.array([[0, 2, 14], [18, 255, 10]], np.uint8)
    assert hierarchy_labels(lab, "cihp", 2).tolist() == [[0, 1, 3], [4, 255, 2]]
    assert hierarchy_labels(lab, "cihp", 1).tolist() == [[0, 1, 1], [1, 255, 1]]


def test_persons_and_part_instances():
    sem = np.array([[0, 2, 2, 5], [0, 2, 13, 5], [255, 0, 0, 0]], np.uint8)
    pid = np.array([[0, 1, 1, 2], [0, 1, 1, 2], [0, 0, 0, 0]], np.uint8)
    persons = persons_from_ids(sem, pid)
    assert [p["id"] for p in persons] == [1, 2]
    assert persons[0]["box"].tolist() == [1, 0, 2, 1] and persons[1]["parts"][0, 3] == 5
    inst, table = part_instances(sem, pid, 20)
    assert len(table) == 3  # (p1, hair), (p1, face), (p2, upper clothes)
    assert sorted(table[:, 1].tolist()) == [2, 5, 13]
    assert instance_partition_mismatch(inst, sem, pid, 20) == 0
    official = (sem.astype(int) + 20 * (pid.astype(int) - 1)) * (pid > 0) * (sem > 0) * (sem < 20)
    assert instance_partition_mismatch(official, sem, pid, 20) == 0
    broken = official.copy()
    broken[0, 3] = official[0, 1]
    assert instance_partition_mismatch(broken, sem, pid, 20) > 0
    s, p = paint_persons([np.array([[1, 1], [0, 0]], np.uint8), np.array([[0, 3], [3, 0]], np.uint8)])
    assert s.tolist() == [[1, 3], [3, 0]] and p.tolist() == [[1, 2], [2, 0]]


class _Count(GatheredMetric):
    def update(self, order, image_id, value):
        self.add(order, image_id, value)

    def score(self, records):
        return {"n": len(records), "first": records[0][2] if records else -1}


def test_gathered_metric_dedupes_and_orders():
    m = _Count()
    m.update(2, "b", 20)
    m.update(1, "a", 10)
    m.update(2, "b", 99)
    out = m.compute()
    assert int(out["n"]) == 2 and int(out["first"]) == 10
    m.reset()
    assert int(m.compute()["n"]) == 0
