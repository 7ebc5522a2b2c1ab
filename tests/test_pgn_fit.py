"""PGN through the real configs on synthetic CIHP: a short fit beats the trivial baselines on mIoU and AP^r."""

from __future__ import annotations

import math

import hydra
import numpy as np
import pytorch_lightning as pl
import torch

# two persons per 96x96 image, no rescaling: enough for a from-scratch tiny network to learn in a few epochs
PGN = (
    "model=pgn",
    "data=cihp",
    "data.synthetic_options.num_train=48",
    "data.synthetic_options.num_val=8",
    "data.synthetic_options.image_size=[96,96]",
    "+data.synthetic_options.persons=[2,2]",
    "data.input_size=[96,96]",
    "data.augment.scale=[1.0,1.0]",
    "data.batch_size=4",
    "model.optimizer.lr=0.01",
    "model.net.freeze_bn=false",
    "model.net.head_width=0.125",
    "++model.net.backbone_kwargs={channels:[16,32,64,128],stem_width:16}",
)


def majority_miou(dm) -> float:
    """mIoU of predicting background everywhere (IoU_bg = background share; other present classes 0)."""
    counts = np.zeros(20, np.int64)
    for batch in dm.val_dataloader():
        for g in batch["gt"]:
            sem = np.asarray(g["semantic"]).reshape(-1)
            counts += np.bincount(sem[sem < 20], minlength=20)
    present = counts > 0
    iou = np.zeros(20)
    iou[0] = counts[0] / counts.sum()
    return float(iou[present].mean())


def test_short_fit_beats_trivial_baselines(compose_train):
    torch.manual_seed(0)
    cfg = compose_train(*PGN, "trainer.max_epochs=10")
    task = hydra.utils.instantiate(cfg.model)
    dm = hydra.utils.instantiate(cfg.data)
    dm.adapt_to_model(task.data_requirements(), "pgn")
    # from scratch, the released loss scale (50 x CE, pixel sums of edge losses) needs clipping at this lr
    trainer = pl.Trainer(
        accelerator="cpu",
        max_epochs=10,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        use_distributed_sampler=False,
        inference_mode=False,
        check_val_every_n_epoch=10,
        gradient_clip_val=5.0,
    )
    trainer.fit(task, datamodule=dm)
    m = {k: float(v) for k, v in trainer.callback_metrics.items()}
    assert all(
        math.isfinite(m[f"train/loss_{k}"]) for k in ("parsing", "edge", "parsing_rf_fc_gated", "edge_res3")
    )
    base = majority_miou(dm)
    assert m["val/miou"] > base + 0.01, (m["val/miou"], base)
    # predicting no part instance (or one class everywhere) scores AP^r = 0
    assert m["val/apr_vol"] > 0.0 and m["val/apr10"] > 0.01, {k: v for k, v in m.items() if "apr" in k}
    assert 0.0 < m["val/edge_recall"] <= 1.0 and "val/app50" in m
