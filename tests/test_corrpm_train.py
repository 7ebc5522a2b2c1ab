"""CorrPM through the real configs: flip consistency of its pipeline, data checks at setup, a short fit."""

from __future__ import annotations

import math

import hydra
import numpy as np
import pytest
import pytorch_lightning as pl
import torch

from humanparse.data.meta import CORRPM_BUGGY_JOINT_FLIP_PAIRS, LIP_JOINT_FLIP_PAIRS, get_info
from humanparse.train import train

CORRPM = ("model=corrpm", "experiment=corrpm_lip", "model.pretrained=null")
NO_JITTER = ("data.augment.rotation=0", "data.augment.scale=[1.0,1.0]")


def train_set(compose_train, *overrides):
    cfg = compose_train(*CORRPM, *overrides)
    dm = hydra.utils.instantiate(cfg.data)
    dm.prepare_data()
    dm.setup("fit")
    return cfg, dm


def perm_of(pairs) -> np.ndarray:
    perm = np.arange(16)
    for a, b in pairs:
        perm[a], perm[b] = b, a
    return perm


@pytest.mark.parametrize("buggy", [False, True])
def test_flip_swaps_classes_and_joints_consistently(compose_train, buggy):
    parity = f"parity.corrpm_joint_flip={str(buggy).lower()}"
    _, plain = train_set(compose_train, *NO_JITTER, "data.augment.flip_prob=0.0", parity)
    cfg, flipped = train_set(compose_train, *NO_JITTER, "data.augment.flip_prob=1.0", parity)
    perm = perm_of(CORRPM_BUGGY_JOINT_FLIP_PAIRS if buggy else LIP_JOINT_FLIP_PAIRS)
    assert np.array_equal(flipped.datasets["train"].flip_tables.joint_perm, perm)
    lut = torch.from_numpy(get_info("lip").flip_permutation().astype(np.int64))
    w = cfg.data.input_size[1]
    checked = 0
    for i in range(4):
        a, b = plain.datasets["train"][i], flipped.datasets["train"][i]
        # labels: mirrored with left/right classes swapped (nearest sampling may differ on a few ties)
        assert (b["semantic"] == lut[a["semantic"].flip(-1)]).float().mean() > 0.98
        assert (b["semantic_edge"] == a["semantic_edge"].flip(-1)).float().mean() > 0.95
        assert torch.allclose(b["image"], a["image"].flip(-1), atol=1e-4)
        # keypoints: x ← W − 1 − x and joint j moves to perm[j], presence flags included
        ka, kb = a["keypoints"].numpy(), b["keypoints"].numpy()
        for j in range(16):
            assert kb[perm[j], 2] == ka[j, 2]
            if ka[j, 2] > 0:
                assert kb[perm[j], 0] == pytest.approx(w - 1 - ka[j, 0], abs=1e-3)
                assert kb[perm[j], 1] == pytest.approx(ka[j, 1], abs=1e-3)
                # the heatmap of the moved joint peaks at the mirrored position
                ha, hb = a["heatmaps"][j], b["heatmaps"][perm[j]]
                if ha.max() == 1:
                    ya, xa = divmod(int(ha.argmax()), ha.shape[1])
                    yb, xb = divmod(int(hb.argmax()), hb.shape[1])
                    assert yb == ya and abs(xb - (ha.shape[1] - 1 - xa)) <= 1
                checked += 1
    assert checked > 10
    if buggy:  # the released code's pairs send the right wrist (10) to the left shoulder (13)
        assert perm[10] == 13 and perm[0] == 3


def checked(compose_train, *overrides):
    """The model of the composed config and its datamodule, adapted to the model and set up for fitting
    (where the data-requirement checks run)."""
    cfg = compose_train(*CORRPM, *overrides)
    task = hydra.utils.instantiate(cfg.model)
    dm = hydra.utils.instantiate(cfg.data)
    dm.adapt_to_model(task.data_requirements(), "corrpm")
    dm.prepare_data()
    dm.setup("fit")
    return task, dm


def test_corrpm_refuses_data_it_cannot_learn_from(compose_train):
    checked(compose_train)  # LIP with its pose CSV, edges and heatmaps: fine
    with pytest.raises(ValueError, match="model.pose_weight=0"):
        checked(compose_train, "data.reader_options.pose=false")
    task, _ = checked(compose_train, "data.reader_options.pose=false", "model.pose_weight=0")
    assert task.net.variant == "PB"
    with pytest.raises(ValueError, match="model.num_joints=16"):
        checked(compose_train, "model.num_joints=17")
    # the derived targets the branches train on are added by the datamodule (no preset needed)
    task, dm = checked(compose_train, "data.targets=[]")
    assert {type(t).__name__ for t in dm.targets} >= {"SemanticEdges", "PoseHeatmaps"}
    # a dataset without keypoints: refused when the model is built, with the fix in the message
    with pytest.raises(Exception, match="model.pose_weight=0"):
        hydra.utils.instantiate(compose_train(*CORRPM, "model.num_joints=null").model)


def test_training_stops_at_setup_without_keypoints(compose_train, tmp_path):
    cfg = compose_train(*CORRPM, "data.reader_options.pose=false")
    with pytest.raises(ValueError, match="trains on keypoints"):
        train(cfg)


def test_short_fit_improves_miou(compose_train):
    cfg = compose_train(*CORRPM, "model.optimizer.lr=0.02")
    dm, task = hydra.utils.instantiate(cfg.data), hydra.utils.instantiate(cfg.model)
    trainer = pl.Trainer(
        accelerator="cpu",
        max_epochs=6,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        use_distributed_sampler=False,
        inference_mode=False,
    )  # validate() then fit() reuse the metric states
    first = trainer.validate(task, datamodule=dm, verbose=False)[0]
    trainer.fit(task, datamodule=dm)
    last = {k: float(v) for k, v in trainer.callback_metrics.items()}
    assert math.isfinite(last["val/miou"]) and last["val/miou"] > first["val/miou"] + 0.01, (first, last)
    assert last["val/pixel_acc"] > first["val/pixel_acc"] + 0.1
    assert all(math.isfinite(last[f"train/loss_{k}"]) for k in ("seg1", "seg2", "edge", "pose"))
