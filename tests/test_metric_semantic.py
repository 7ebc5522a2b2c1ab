"""Semantic parsing metric: hand-computed confusion matrices, ignore 255, both absent-class conventions,
errors, and a two-process (gloo) run that must equal the one-process numbers."""

from __future__ import annotations

import math
import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torchmetrics.classification import MulticlassJaccardIndex

from humanparse.metrics.semantic import SemanticParsingMetric, confusion_matrix, scores_from_confmat

GT = torch.tensor([[0, 0, 1], [1, 2, 255]])
PRED = torch.tensor([[0, 1, 1], [1, 0, 2]])


def test_hand_computed_confusion_matrix_and_scores():
    cm = confusion_matrix(PRED, GT, 3)
    # (gt, pred) pairs over valid pixels: (0,0) (0,1) (1,1) (1,1) (2,0); the 255 pixel is dropped
    assert cm.tolist() == [[1, 1, 0], [0, 2, 0], [1, 0, 0]]
    s = scores_from_confmat(cm)
    assert float(s["pixel_acc"]) == pytest.approx(3 / 5)
    assert s["iou"].tolist() == pytest.approx([1 / 3, 2 / 3, 0.0])
    assert float(s["miou"]) == pytest.approx(1 / 3)
    assert s["acc"].tolist() == pytest.approx([0.5, 1.0, 0.0])
    assert float(s["mean_acc"]) == pytest.approx(0.5)
    # frequency weighted: (2/5)(1/3) + (2/5)(2/3) + (1/5)(0)
    assert float(s["fwiou"]) == pytest.approx(0.4)


def test_ignore_pixels_never_count_even_with_out_of_range_prediction():
    gt = torch.tensor([255, 255, 1])
    pred = torch.tensor([7, 200, 1])  # invalid labels under ignored pixels are fine
    assert confusion_matrix(pred, gt, 3).sum() == 1


def test_absent_class_conventions():
    m_nan = SemanticParsingMetric(4, absent_class="nan")
    m_zero = SemanticParsingMetric(4, absent_class="zero")
    for m in (m_nan, m_zero):
        m.update(PRED, GT)
    a, b = m_nan.compute(), m_zero.compute()
    # class 3 absent from GT and prediction
    assert math.isnan(a["iou"][3]) and math.isnan(a["acc"][3])
    assert float(a["miou"]) == pytest.approx(1 / 3)
    assert float(b["iou"][3]) == 0.0 and float(b["acc"][3]) == 0.0
    assert float(b["miou"]) == pytest.approx((1 / 3 + 2 / 3) / 4)
    assert float(b["mean_acc"]) == pytest.approx(1.5 / 4)
    # class absent from GT but predicted: IoU 0 (counted), acc NaN (skipped) under 'nan'
    m = SemanticParsingMetric(4, absent_class="nan")
    m.update(torch.tensor([3, 1]), torch.tensor([0, 1]))
    s = m.compute()
    assert float(s["iou"][3]) == 0.0 and math.isnan(s["acc"][3])
    assert float(s["miou"]) == pytest.approx((0 + 1 + 0) / 3)  # classes 0, 1, 3 (class 2 NaN)
    assert float(s["mean_acc"]) == pytest.approx(0.5)


def test_empty_and_all_undefined():
    s = scores_from_confmat(torch.zeros(3, 3, dtype=torch.int64), "nan")
    assert math.isnan(s["pixel_acc"]) and math.isnan(s["miou"])
    z = scores_from_confmat(torch.zeros(3, 3, dtype=torch.int64), "zero")
    assert float(z["miou"]) == 0.0


def test_errors_name_the_problem():
    with pytest.raises(ValueError, match="shape"):
        confusion_matrix(torch.zeros(2, 3), torch.zeros(3, 2), 3)
    with pytest.raises(ValueError, match="neither classes"):
        confusion_matrix(torch.zeros(3), torch.tensor([0, 5, 1]), 3)
    with pytest.raises(ValueError, match="outside"):
        confusion_matrix(torch.tensor([0, 3, 1]), torch.tensor([0, 1, 1]), 3)
    with pytest.raises(ValueError, match="absent_class"):
        SemanticParsingMetric(3, absent_class="skip")


def test_flat_names_and_agreement_with_torchmetrics():
    g = torch.Generator().manual_seed(0)
    gt = torch.randint(0, 5, (4, 17, 13), generator=g)
    gt[:, :2] = 255
    pred = torch.randint(0, 5, (4, 17, 13), generator=g)
    m = SemanticParsingMetric(5, ["background", "a", "b", "c", "d"])
    for i in range(4):  # several updates = one dataset-level matrix
        m.update(pred[i], gt[i])
    flat = m.flat(prefix="val")
    assert set(flat) >= {"val/miou", "val/pixel_acc", "val/mean_acc", "val/iou/background", "val/iou/d"}
    ref = MulticlassJaccardIndex(5, average="none", ignore_index=255)(pred, gt)
    assert torch.allclose(m.compute()["iou"].float(), ref, atol=1e-6)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, port: int, preds, gts, out):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    m = SemanticParsingMetric(6, absent_class="nan")
    # uneven shards: rank 0 gets 3 images, rank 1 gets 1
    idx = [0, 1, 2] if rank == 0 else [3]
    for i in idx:
        m.update(preds[i], gts[i])
    s = m.compute()
    out[rank] = {k: v.clone() for k, v in s.items()}
    dist.barrier()
    dist.destroy_process_group()


@pytest.mark.slow
def test_two_process_sum_equals_one_process():
    g = torch.Generator().manual_seed(1)
    gts = [torch.randint(0, 6, (20, 20), generator=g) for _ in range(4)]
    preds = [torch.randint(0, 6, (20, 20), generator=g) for _ in range(4)]
    single = SemanticParsingMetric(6)
    for p, t in zip(preds, gts):
        single.update(p, t)
    ref = single.compute()
    with mp.Manager() as manager:
        out = manager.dict()
        mp.spawn(_worker, args=(_free_port(), preds, gts, out), nprocs=2, join=True)
        results = dict(out)
    for rank in (0, 1):
        for k in ("pixel_acc", "mean_acc", "miou", "iou"):
            assert torch.allclose(results[rank][k], ref[k], equal_nan=True), (rank, k)
