"""Validation images (local PNG grid + wandb media) and the helpers that read predictions and GT of either contract."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from humanparse.callbacks.val_images import ground_truth_maps, prediction_map
from humanparse.train import train


def test_validation_images_grid_and_wandb(compose_train, tmp_path):
    train(
        compose_train(
            "trainer.max_epochs=2",
            "test=false",
            "logger=wandb",
            "logger.wandb.offline=true",
            "callbacks.val_images.num_images=3",
        )
    )
    grids = sorted((tmp_path / "val_images").glob("epoch_*.png"))
    assert [p.name for p in grids] == ["epoch_000.png", "epoch_001.png"]
    grid = np.asarray(Image.open(grids[-1]))
    # 3 rows of image | GT | prediction, each panel a 48x72 (w x h) synthetic image shown at 160 px high
    assert grid.shape[0] >= 3 * 160 and grid.shape[1] > 3 * 106
    media = list((tmp_path / "wandb").rglob("media/images/val/images_*.png"))
    assert len(media) == 2, media


def test_prediction_and_gt_of_both_contracts():
    sem = torch.tensor([[0, 1], [2, 2]])
    assert np.array_equal(prediction_map(sem), sem.numpy())
    assert np.array_equal(prediction_map({"semantic": sem}), sem.numpy())
    a = torch.tensor([[0, 3], [0, 0]])
    b = torch.tensor([[0, 5], [5, 0]])
    pasted = prediction_map({"instances": [{"parts": a, "score": 0.9}, {"parts": b, "score": 0.2}]})
    assert pasted.tolist() == [[0, 3], [5, 0]]  # higher score painted last
    assert prediction_map({"edge": sem}) is None
    gt = np.ones((2, 2), np.int64)
    assert ground_truth_maps({"meta": [{}], "gt_semantic": [gt]})[0].tolist() == gt.tolist()
    assert ground_truth_maps({"meta": [{}, {}], "gt": [{"semantic": gt}, {}]})[1] is None
