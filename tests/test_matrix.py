"""The model × dataset matrix: every pair of a model config and a data config either trains and evaluates
(one tiny step on synthetic data, then one validation batch through the dataset's evaluators) or stops
before training with a message saying why and what to use instead."""

from __future__ import annotations

import math
import re
from pathlib import Path

import hydra
import pytest
import pytorch_lightning as pl
from omegaconf import open_dict

from humanparse.utils.instantiate import instantiate_task

CONF = Path(__file__).resolve().parents[1] / "conf"
MODELS = sorted(p.stem for p in (CONF / "model").glob("*.yaml"))
DATASETS = sorted(p.stem for p in (CONF / "data").glob("*.yaml"))

# pairs that must be refused, with what the message has to say (why, and what to use instead)
REFUSED = {
    ("deeplabv3plus", "densepose_coco"): r"part-label maps.*model=densepose_rcnn",
    ("corrpm", "densepose_coco"): r"part-label maps.*model=densepose_rcnn",
    ("deeplabv3plus", "grapy_ml"): r"single head.*model=grapy",
    ("corrpm", "grapy_ml"): r"single head.*model=grapy",
    ("densepose_rcnn", "grapy_ml"): r"single head.*model=grapy",
    **{
        ("densepose_rcnn", d): r"DensePose points.*data=densepose_coco"
        for d in ("atr", "cihp", "lip", "mhp_v2", "pascal_person_part")
    },
    ("parsing_rcnn", "densepose_coco"): r"part-label maps.*model=densepose_rcnn",
    ("parsing_rcnn", "grapy_ml"): r"single head.*model=grapy",
    ("pgn", "densepose_coco"): r"part-label maps.*model=densepose_rcnn",
    ("pgn", "grapy_ml"): r"single head.*model=grapy",
    ("pgn", "lip"): r"person-instance edges.*data=cihp",
    ("pgn", "atr"): r"person-instance edges.*data=cihp",
    ("deeplabv3plus_xception", "densepose_coco"): r"part-label maps.*model=densepose_rcnn",
    ("deeplabv3plus_xception", "grapy_ml"): r"single head.*model=grapy",
    ("grapy", "densepose_coco"): r"no Grapy-ML hierarchy table.*model=deeplabv3plus_xception",
    ("grapy", "mhp_v2"): r"no Grapy-ML hierarchy table.*model=deeplabv3plus_xception",
    ("grapy", "grapy_ml"): r"single head.*model=grapy",
    **{
        ("grapy_ml", d): r"per-dataset heads.*data=grapy_ml"
        for d in ("atr", "cihp", "densepose_coco", "lip", "mhp_v2", "pascal_person_part")
    },
}
# pairs that train with the documented switch (and are refused without it)
SWITCHES = {
    ("corrpm", "pascal_person_part"): (["model.pose_weight=0"], r"no keypoints.*model.pose_weight=0"),
    ("corrpm", "mhp_v2"): (["model.pose_weight=0"], r"no keypoints.*model.pose_weight=0"),
}
# extra overrides a model needs to run at all on tiny synthetic data (new models add theirs)
TINY_PAIR: dict[tuple[str, str], list[str]] = {}
MATRIX_DATA = ["data.synthetic_options.image_size=[64,80]", "data.eval_batch_size=2"]


def build(compose_train, model: str, data: str, *extra: str):
    limit = [] if data == "grapy_ml" else ["data.limit_val=2"]
    cfg = compose_train(
        f"model={model}", f"data={data}", *MATRIX_DATA, *limit, *TINY_PAIR.get((model, data), []), *extra
    )
    if data == "grapy_ml":
        with open_dict(cfg):
            cfg.data.batch_size = 3
    task = instantiate_task(cfg)
    dm = hydra.utils.instantiate(cfg.data)
    dm.adapt_to_model(task.data_requirements(), model)
    return task, dm


def run_one_step(task, dm) -> dict:
    trainer = pl.Trainer(
        accelerator="cpu",
        max_steps=1,
        limit_train_batches=1,
        limit_val_batches=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        use_distributed_sampler=False,
    )
    trainer.fit(task, datamodule=dm)
    return {k: float(v) for k, v in trainer.callback_metrics.items()}


@pytest.mark.parametrize("data", DATASETS)
@pytest.mark.parametrize("model", MODELS)
def test_pair_trains_or_refuses_clearly(compose_train, model, data):
    pair = (model, data)
    if pair in REFUSED:
        with pytest.raises(Exception, match=REFUSED[pair]):
            build(compose_train, model, data)
        return
    extra: list[str] = []
    if pair in SWITCHES:
        extra, message = SWITCHES[pair]
        with pytest.raises(Exception, match=message):
            build(compose_train, model, data)
    task, dm = build(compose_train, model, data, *extra)
    metrics = run_one_step(task, dm)
    assert math.isfinite(
        metrics["train/loss_epoch"] if "train/loss_epoch" in metrics else metrics["train/loss"]
    )
    assert ("val/dp_ap" if model == "densepose_rcnn" else "val/miou") in metrics, sorted(metrics)


def test_every_refusal_names_a_real_pair():
    for model, data in [*REFUSED, *SWITCHES, *TINY_PAIR]:
        assert model in MODELS and data in DATASETS, (model, data)
        assert re.compile(REFUSED.get((model, data), "x"))
