"""Every config group option composes, and what it describes can be instantiated and run."""

from __future__ import annotations

from pathlib import Path

import hydra
import pytest
import pytorch_lightning as pl
import torch

from humanparse.utils.instantiate import instantiate_callbacks, instantiate_loggers, instantiate_trainer

CONF = Path(__file__).resolve().parents[1] / "conf"


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


def test_groups_present():
    for g in ("data", "model", "trainer", "logger", "callbacks", "paths", "hydra", "experiment", "debug"):
        assert options(g), g


@pytest.mark.parametrize("name", options("data"))
def test_data_configs(compose_train, name):
    cfg = compose_train(f"data={name}", "data.synthetic=true")
    dm = hydra.utils.instantiate(cfg.data)
    dm.prepare_data()
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    assert batch["image"].ndim == 4 and batch["image"].shape[0] == cfg.data.batch_size


@pytest.mark.parametrize("name", options("model"))
def test_model_configs(compose_train, name):
    cfg = compose_train(f"model={name}")
    if (cfg.model.get("requires") or {}).get("multi_dataset"):  # per-dataset heads: one forward per dataset
        cfg = compose_train(f"model={name}", "data=grapy_ml")
        task = hydra.utils.instantiate(cfg.model).eval()
        x = torch.randn(1, 3, *cfg.data.input_size)
        with torch.no_grad():
            for d, c in enumerate(cfg.data.num_classes):
                assert task.net(x, d)["seg"].shape[:2] == (1, c)
        return
    task = hydra.utils.instantiate(cfg.model)
    task.eval()
    x = torch.randn(1, 3, *cfg.data.input_size)
    if (cfg.model.get("requires") or {}).get(
        "collate"
    ) == "instance":  # region-based models: prediction dicts, no dense logits
        with torch.no_grad():
            pred = task.predict_batch({"image": x})[0]
        assert isinstance(pred["instances"], list)
        if "semantic" in pred:  # instance parsing models also paste a semantic map (DensePose-RCNN does not)
            assert pred["semantic"].shape == tuple(cfg.data.input_size)
        return
    with torch.no_grad():
        logits = task.input_logits(x)
    assert logits.shape == (1, cfg.data.num_classes, *cfg.data.input_size)


@pytest.mark.parametrize("name", options("trainer"))
def test_trainer_configs(compose_train, name):
    cfg = compose_train(f"trainer={name}")
    if cfg.trainer.accelerator == "gpu" and not torch.cuda.is_available():
        assert cfg.trainer.devices >= 1
        return
    if cfg.trainer.get("strategy", "auto").startswith("ddp"):
        assert cfg.trainer.sync_batchnorm and cfg.trainer.devices in (2, "auto")
    # the entry points' builder: accelerator/devices/precision "auto" resolved for this machine
    trainer = instantiate_trainer(cfg.trainer, callbacks=[], logger=False)
    assert isinstance(trainer, pl.Trainer)


@pytest.mark.parametrize("name", options("logger"))
def test_logger_configs(compose_train, tmp_path, name):
    cfg = compose_train(f"logger={name}")
    loggers = instantiate_loggers(cfg.get("logger"), tmp_path, wandb_id="abc123")
    kinds = {type(lg).__name__ for lg in loggers}
    assert "CSVLogger" in kinds  # the CSV history is always kept
    if name == "wandb":
        assert "WandbLogger" in kinds
        assert cfg.logger.wandb.group == "deeplabv3plus-lip" and cfg.logger.wandb.job_type == "train"


@pytest.mark.parametrize("name", options("callbacks"))
def test_callback_configs(compose_train, name):
    cfg = compose_train(f"callbacks={name}")
    cbs = instantiate_callbacks(cfg.get("callbacks"))
    if name == "default":
        kinds = {type(c).__name__ for c in cbs}
        assert {
            "ModelCheckpoint",
            "LastCheckpointLink",
            "EpochSeed",
            "ProgressBar",
            "ValidationImages",
        } <= kinds


@pytest.mark.parametrize("name", options("experiment"))
def test_experiment_configs_compose_and_build(compose_train, name):
    cfg = compose_train(f"experiment={name}", tiny=False)
    assert cfg.data.name and cfg.model.name
    dm = hydra.utils.instantiate(cfg.data)
    assert dm.batch_size == cfg.data.batch_size
    if cfg.model.get("pretrained") in (None, "null"):
        task = hydra.utils.instantiate(cfg.model)
        assert sum(p.numel() for p in task.parameters()) > 0


def test_paths_and_hydra_dirs(compose_train):
    cfg = compose_train()
    assert "/train/runs/" in cfg.hydra.run.dir and "/train/multiruns/" in cfg.hydra.sweep.dir
    assert cfg.hydra.output_subdir == ".hydra"
    assert cfg.paths.cache_dir and cfg.paths.data_dir
    resumed = compose_train("resume=/some/run")
    assert resumed.hydra.run.dir == "/some/run" and resumed.hydra.output_subdir == ".hydra_resume"
