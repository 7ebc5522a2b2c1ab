"""VOC all-point AP and the stable score sort."""

from __future__ import annotations

import math

import numpy as np
import pytest

from helpers.reference_metrics import voc_ap_loop
from humanparse.metrics.ap import THRESHOLDS, average_precision, descending_order, voc_ap


def test_all_point_area_not_11_point():
    # TP, FP, TP with 2 GT: rec [.5, .5, 1], prec [1, .5, 2/3] -> envelope 1 on [0, .5], 2/3 on (.5, 1]
    ap = average_precision(np.array([1, 0, 1]), np.array([0, 1, 0]), npos=2)
    assert ap == pytest.approx(0.5 * 1 + 0.5 * 2 / 3)
    assert ap != pytest.approx((6 * 1 + 5 * 2 / 3) / 11)  # the VOC07 11-point value


def test_matches_the_reference_loop_on_random_curves():
    rng = np.random.default_rng(0)
    for _ in range(50):
        n = int(rng.integers(1, 30))
        rec = np.sort(rng.random(n)) * rng.uniform(0.5, 1.5)
        prec = rng.random(n)
        assert voc_ap(rec, prec) == pytest.approx(voc_ap_loop(rec, prec), abs=1e-15)


def test_edge_cases():
    assert average_precision(np.zeros(0), np.zeros(0), npos=3) == 0.0  # no detections
    assert average_precision(np.zeros(0), np.zeros(0), npos=0) == 0.0  # sentinel-only curve
    assert math.isnan(average_precision(np.array([0.0]), np.array([1.0]), npos=0))  # recall 0/0
    assert average_precision(np.array([0.0, 0.0]), np.array([1.0, 1.0]), npos=2) == 0.0


def test_recall_above_one_gives_ap_above_one():
    # two TPs on one GT (AP^r's PGN matching): rec [1, 2]; the closing sentinel has precision 0
    assert average_precision(np.array([1.0, 1.0]), np.array([0.0, 0.0]), npos=1) == pytest.approx(2.0)


def test_eps_floor_never_changes_the_area():
    # a prefix with neither TP nor FP (a skipped prediction left in the arrays) gives 0/eps = 0 with the
    # floor and 0/0 = NaN without; such prefixes have recall 0, so the NaN never reaches the area
    tp0, fp0 = np.array([0.0, 1.0]), np.array([0.0, 0.0])
    assert average_precision(tp0, fp0, 1, eps_floor=True) == pytest.approx(1.0)
    assert average_precision(tp0, fp0, 1, eps_floor=False) == pytest.approx(1.0)
    tp, fp = np.array([1.0, 0.0, 1.0]), np.array([0.0, 1.0, 0.0])
    assert average_precision(tp, fp, 3, eps_floor=True) == average_precision(tp, fp, 3, eps_floor=False)


def test_stable_descending_sort_and_nan_policy():
    s = np.array([0.5, 0.9, 0.5, 0.1, 0.9])
    assert descending_order(s).tolist() == [1, 4, 0, 2, 3]  # ties keep their input order
    with pytest.raises(ValueError, match="NaN"):
        descending_order(np.array([0.3, np.nan]))
    assert descending_order(np.array([0.3, np.nan, 0.7, np.nan]), nan_score="first").tolist() == [1, 3, 2, 0]


def test_thresholds_are_literal():
    assert THRESHOLDS == (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
    assert 0.3 in THRESHOLDS and 0.30000000000000004 not in THRESHOLDS
