"""ATR accuracy / foreground accuracy / precision / recall / F1."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from humanparse.metrics.atr import ATRMetric, atr_scores_from_confmat

# rows = GT, columns = prediction; 3 classes (0 = background)
CM = torch.tensor([[50, 5, 5], [2, 8, 0], [3, 0, 7]], dtype=torch.int64)


def test_hhp_macro_hand_values_and_naming():
    s = atr_scores_from_confmat(CM)
    tp, gt, pr = np.array([50, 8, 7.0]), np.array([60, 10, 10.0]), np.array([55, 13, 12.0])
    assert float(s["pixel_acc"]) == pytest.approx(65 / 80)
    assert float(s["fg_acc"]) == pytest.approx(15 / 20)
    # precision = tp / predicted (HHP prints this as "meanRecall"), recall = tp / GT ("meanPrecision")
    p, r = np.mean(tp / pr), np.mean(tp / gt)
    assert float(s["precision"]) == pytest.approx(p)
    assert float(s["recall"]) == pytest.approx(r)
    assert float(s["f1"]) == pytest.approx(2 * p * r / (p + r))  # from the two averages
    a_c, p_c = tp / gt, tp / pr
    assert s["class_f1"].numpy() == pytest.approx(2 * a_c * p_c / (a_c + p_c))


def test_alternative_conventions():
    tp, gt, pr = np.array([50, 8, 7.0]), np.array([60, 10, 10.0]), np.array([55, 13, 12.0])
    a_c, p_c = tp / gt, tp / pr
    f1_c = 2 * a_c * p_c / (a_c + p_c)
    s = atr_scores_from_confmat(CM, "macro_f1")
    assert float(s["f1"]) == pytest.approx(f1_c.mean())
    assert float(s["precision"]) == pytest.approx(p_c.mean())
    s = atr_scores_from_confmat(CM, "fg_macro")
    p, r = p_c[1:].mean(), a_c[1:].mean()
    assert float(s["precision"]) == pytest.approx(p) and float(s["recall"]) == pytest.approx(r)
    assert float(s["f1"]) == pytest.approx(2 * p * r / (p + r))
    s = atr_scores_from_confmat(CM, "fg_pooled")
    p, r = 15 / 25, 15 / 20
    assert float(s["precision"]) == pytest.approx(p) and float(s["recall"]) == pytest.approx(r)
    assert float(s["recall"]) == float(s["fg_acc"])
    assert float(s["f1"]) == pytest.approx(2 * p * r / (p + r))
    with pytest.raises(ValueError, match="atr_convention"):
        atr_scores_from_confmat(CM, "micro")


def test_zero_division_never_predicted_class_and_absent_gt():
    cm = torch.tensor(
        [[10, 0, 0], [2, 0, 0], [0, 0, 0]]
    )  # class 1 never predicted, class 2 absent everywhere
    z = atr_scores_from_confmat(cm, atr_zero_division="zero")
    n = atr_scores_from_confmat(cm, atr_zero_division="nan")
    assert z["class_precision"].tolist() == pytest.approx([10 / 12, 0.0, 0.0])
    assert z["class_recall"].tolist() == pytest.approx([1.0, 0.0, 0.0])  # max(1, gt) guard: absent GT -> 0
    assert float(z["precision"]) == pytest.approx(10 / 12 / 3)
    assert z["class_f1"][1] == 0.0 and z["class_f1"][2] == 0.0
    # HHP parity: p_c = 0/0 is NaN, so P and F1 are NaN; recall keeps the max(1, gt) guard
    assert math.isnan(float(n["precision"])) and math.isnan(float(n["f1"]))
    assert math.isnan(float(n["class_f1"][1])) and float(n["recall"]) == pytest.approx(1 / 3)
    # the two settings agree when every class is predicted
    a, b = (
        atr_scores_from_confmat(CM, atr_zero_division="zero"),
        atr_scores_from_confmat(CM, atr_zero_division="nan"),
    )
    assert float(a["f1"]) == float(b["f1"])


def test_p_plus_r_zero_gives_f1_zero():
    cm = torch.tensor([[0, 5], [5, 0]])  # everything wrong
    s = atr_scores_from_confmat(cm)
    assert float(s["precision"]) == 0.0 and float(s["recall"]) == 0.0 and float(s["f1"]) == 0.0
    assert math.isnan(float(atr_scores_from_confmat(cm, atr_zero_division="nan")["f1"]))


def test_metric_accumulates_ignores_255_and_flattens():
    rng = np.random.default_rng(0)
    m = ATRMetric(num_classes=18, class_names=[f"c{i}" for i in range(18)])
    total = torch.zeros(18, 18, dtype=torch.int64)
    for _ in range(3):
        gt = torch.from_numpy(rng.integers(0, 18, (2, 9, 7)))
        gt[:, 0] = 255
        pred = torch.from_numpy(rng.integers(0, 18, (2, 9, 7)))
        m.update(pred, gt)
        v = gt != 255
        total += torch.bincount(gt[v] * 18 + pred[v], minlength=324).reshape(18, 18)
    assert torch.equal(m.confmat, total)
    flat = m.flat(prefix="val")
    ref = atr_scores_from_confmat(total)
    assert flat["val/f1"] == pytest.approx(float(ref["f1"]))
    assert flat["val/f1/c3"] == pytest.approx(float(ref["class_f1"][3]))
    assert {"val/pixel_acc", "val/fg_acc", "val/precision", "val/recall", "val/miou"} <= set(flat)
