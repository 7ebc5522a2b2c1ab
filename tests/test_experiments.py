"""Experiment presets (paper recipes), the Optuna search config and the SLURM launcher config compose."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import yaml
from hydra.core.hydra_config import HydraConfig
from omegaconf import OmegaConf, open_dict

from humanparse.compare import load_paper_results

CONF = Path(__file__).resolve().parents[1] / "conf"
PRESETS = sorted(p.stem for p in (CONF / "experiment").glob("deeplabv3plus_*.yaml"))
# the printed DeepLab v3+ numbers each preset reproduces (Grapy-ML Tables 1-3; none on LIP)
EXPECTED_MIOU = {
    "deeplabv3plus_atr": 76.52,
    "deeplabv3plus_cihp": 58.95,
    "deeplabv3plus_pascal_person_part": 68.6,
}


def _preset_data(name: str) -> str:
    defaults = yaml.safe_load((CONF / "experiment" / f"{name}.yaml").read_text())["defaults"]
    return next(d["override /data"] for d in defaults if isinstance(d, dict) and "override /data" in d)


def test_presets_cover_the_four_datasets():
    assert {_preset_data(p) for p in PRESETS} == {"lip", "atr", "cihp", "pascal_person_part"}


@pytest.mark.parametrize("name", PRESETS)
def test_deeplab_preset_composes_with_the_grapy_ml_stage1_recipe(compose_train, name):
    data = _preset_data(name)
    if not (CONF / "data" / f"{data}.yaml").is_file():
        pytest.skip(f"conf/data/{data}.yaml is not on this branch yet")
    cfg = compose_train(f"experiment={name}", tiny=False)
    assert cfg.data.name == data and cfg.model.name == "deeplabv3plus"
    # Grapy-ML stage 1: global batch 10, lr 0.007, poly 0.9, 100 epochs, 512 crops, scale 0.5-2, flip
    assert cfg.data.batch_size == 10 and list(cfg.data.input_size) == [512, 512]
    assert cfg.model.optimizer.lr == 0.007 and cfg.model.optimizer.momentum == 0.9
    assert cfg.model.optimizer.weight_decay == 5e-4 and cfg.model.scheduler.power == 0.9
    assert cfg.trainer.max_epochs == 100
    aug = cfg.data.augment
    assert aug.mode == "crop" and list(aug.scale) == [0.5, 2.0] and aug.aspect_jitter and aug.flip_prob == 0.5
    assert aug.rotation == 0
    assert cfg.model.backbone == "tu-xception65" and cfg.model.net.output_stride == 16
    assert list(cfg.model.net.atrous_rates) == [6, 12, 18] and cfg.model.net.decoder_channels == 256
    assert list(cfg.data.normalize.mean) == [0.5] * 3  # xception65: [-1, 1] input
    if name in EXPECTED_MIOU:
        row = load_paper_results().row(OmegaConf.to_container(cfg.paper_ref), data)
        assert row.get("miou").value == EXPECTED_MIOU[name] and row.get("miou").method == "DeepLab v3+"
    else:
        assert cfg.get("paper_ref") is None


def _needs(module: str):
    if importlib.util.find_spec(module) is None:
        pytest.skip(f"{module} is not installed (optional extra: pip install 'humanparse[sweeps]')")


def test_optuna_search_composes(compose_train):
    _needs("hydra_plugins.hydra_optuna_sweeper")
    cfg = compose_train("hparams_search=optuna", "experiment=deeplabv3plus_lip", tiny=False)
    sw = cfg.hydra.sweeper
    assert sw._target_.endswith("OptunaSweeper") and sw.direction == "maximize"
    assert sw.sampler._target_ == "optuna.samplers.TPESampler" and cfg.optimized_metric == "val/miou"
    assert str(cfg.hydra.mode) == "RunMode.MULTIRUN" and sw.study_name == "deeplabv3plus-lip"
    for key in sw.params:  # every searched key exists in the composed config
        assert OmegaConf.select(cfg, key) is not None, key


def test_slurm_launcher_composes(compose_train):
    _needs("hydra_plugins.hydra_submitit_launcher")
    cfg = compose_train(
        "hydra/launcher=slurm",
        "trainer=ddp",
        "trainer.devices=4",
        "trainer.num_nodes=2",
        "hydra.launcher.partition=gpu",
    )
    la = cfg.hydra.launcher
    assert la._target_.endswith("submitit_launcher.SlurmLauncher")
    assert (la.nodes, la.tasks_per_node, la.gpus_per_node, la.partition) == (2, 4, 4, "gpu")


def test_ddp_under_slurm_is_not_respawned(compose_train, monkeypatch):
    from humanparse.train import _adapt_strategy_for_multirun

    cfg = compose_train("trainer=ddp", "hydra.mode=MULTIRUN")
    HydraConfig().set_config(cfg)
    for var in ("SLURM_NTASKS", "SLURM_JOB_NAME"):
        monkeypatch.delenv(var, raising=False)
    plain = cfg.copy()
    with open_dict(plain):
        _adapt_strategy_for_multirun(plain)
    assert plain.trainer.strategy == "ddp_spawn"  # a local multirun cannot re-launch the script
    monkeypatch.setenv("SLURM_NTASKS", "8")
    monkeypatch.setenv("SLURM_JOB_NAME", "train")
    slurm = cfg.copy()
    _adapt_strategy_for_multirun(slurm)
    assert slurm.trainer.strategy == "ddp"  # SLURM runs one process per device already
