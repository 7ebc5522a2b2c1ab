"""Shared fixtures: composing the real Hydra configs with tiny settings, and a shared synthetic-data cache."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

# tests never reach the network: wandb runs offline, hub libraries use their local cache only
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("PYTHONHASHSEED", "0")
# the test suite's own classes (fake tasks, a killer callback) may be built from stored configs
# (checkpoints, run_config.yaml), which otherwise only build allowlisted classes (humanparse.utils.safety)
os.environ.setdefault("HUMANPARSE_TRUSTED_TARGETS", "helpers.")

import torch  # noqa: E402
from hydra import compose, initialize_config_module  # noqa: E402
from hydra.core.global_hydra import GlobalHydra  # noqa: E402
from hydra.core.hydra_config import HydraConfig  # noqa: E402
from omegaconf import DictConfig, open_dict  # noqa: E402

import humanparse.utils.resolvers  # noqa: E402,F401  (the configs use ${hp.*})

torch.set_num_threads(1)

REPO = Path(__file__).resolve().parents[1]
SRC = REPO / "src"
TINY_BACKBONE = "tu-mobilenetv3_small_050"

# tiny synthetic LIP: the generator options are shared so every test reuses one cached set
TINY_DATA = [
    "data.synthetic=true",
    "data.synthetic_options.num_train=24",
    "data.synthetic_options.num_val=8",
    "data.synthetic_options.num_test=4",
    "data.synthetic_options.image_size=[48,72]",
    "data.input_size=[64,64]",
    "data.batch_size=4",
    "data.num_workers=0",
]
# Grapy-ML: a tiny timm Xception (three strided entry blocks, one middle block, exit flow)
GRAPY_TINY_XCEPTION = (
    "model.net.block_cfg=[{in_chs:64,out_chs:16,stride:2},{in_chs:16,out_chs:24,stride:2},"
    "{in_chs:24,out_chs:32,stride:2},{in_chs:32,out_chs:32,stride:1},"
    "{in_chs:32,out_chs:[32,48,48],stride:2},"
    "{in_chs:48,out_chs:[48,48,64],stride:1,no_skip:true,start_with_relu:false}]"
)
# per model: the overrides that make it tiny (new models add a line)
TINY_MODELS = {
    "deeplabv3plus": [f"model.backbone={TINY_BACKBONE}", "model.net.decoder_channels=32"],
    "corrpm": [
        "model.backbone=resnet50s",
        "++model.net.backbone_kwargs={layers:[1,1,1,1],channels:[4,8,16,32],stem_width:8}",
        "model.net.channels=16",
        "model.net.aspp_channels=8",
        "model.net.edge_channels=8",
        "model.net.pose_channels=8",
        "model.net.nl_channels=8",
    ],
    "densepose_rcnn": [
        "model.backbone=resnet10",
        "++model.resnet_kwargs={block:basic,layers:[1,1,1,1]}",
        "model.init=null",
        "model.trainable_layers=5",
        "model.norm=bn",
        "model.fpn_channels=16",
        "model.representation_size=32",
        "model.anchor_sizes=[16,32,64,128,256]",
        "model.head_dim=16",
        "model.num_convs=2",
        "model.densepose_roi_size=8",
    ],
    "parsing_rcnn": [
        "model.backbone=resnet10",
        "++model.resnet_kwargs={block:basic,layers:[1,1,1,1]}",
        "model.norm=bn",
        "model.trainable_layers=5",
        "model.fpn_channels=16",
        "model.representation_size=32",
        "model.anchor_sizes=[16,32,64,128,256]",
        "model.parsing_roi_size=8",
        "model.parsing_output_size=32",
        "model.conv_dim=16",
        "model.aspp_dim=8",
        "model.gce_dim=8",
        "model.test_detections_per_img=10",
        "model.init=null",
    ],
    "pgn": [
        "model.backbone=resnet10t",
        "++model.net.backbone_kwargs={channels:[8,16,32,64],stem_width:8}",
        "model.net.head_width=0.0625",
        "model.net.head_init=kaiming",
        "model.test_scales=[1.0]",
        "model.test_edge_scales=[1.0]",
        "model.test_flip=false",
    ],
    **{
        m: [
            GRAPY_TINY_XCEPTION,
            "model.net.aspp_channels=16",
            "model.net.decoder_channels=16",
            "model.net.low_level_channels=8",
        ]
        + ([] if m == "deeplabv3plus_xception" else ["model.net.graph_channels=16"])
        for m in ("deeplabv3plus_xception", "grapy", "grapy_ml")
    },
}
TINY_TRAIN = TINY_DATA + [
    "trainer.max_epochs=1",
    "trainer.log_every_n_steps=1",
    "print_config=false",
    "++callbacks.progress_bar.refresh_rate=0",
]


def tiny_overrides(overrides) -> list[str]:
    """TINY_TRAIN + the tiny settings of the selected model + ``overrides``."""
    model = "deeplabv3plus"
    for o in overrides:
        if o.startswith("model="):
            model = o.split("=", 1)[1]
    return (
        TINY_TRAIN
        + [o for o in overrides if o.startswith("model=")]
        + TINY_MODELS.get(model, [])
        + [o for o in overrides if not o.startswith("model=")]
    )


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory) -> Path:
    """One synthetic-data cache for the whole session (shared by pytest-xdist workers, file-locked)."""
    base = tmp_path_factory.getbasetemp()
    shared = (base.parent if base.name.startswith("popen-") else base) / "hp-cache"
    shared.mkdir(parents=True, exist_ok=True)
    return shared


def compose_cfg(config_name: str, overrides: list[str], run_dir: Path, cache_dir: Path) -> DictConfig:
    """Compose a real config as the CLI would, with the run directory and caches in tmp folders."""
    GlobalHydra.instance().clear()
    with initialize_config_module(config_module="humanparse.conf", version_base="1.3"):
        cfg = compose(config_name, overrides=overrides, return_hydra_config=True)
        HydraConfig().set_config(cfg)
    with open_dict(cfg):
        cfg.paths.root_dir = str(run_dir)
        cfg.paths.output_dir = str(run_dir)
        cfg.paths.log_dir = str(run_dir / "logs")
        cfg.paths.cache_dir = str(cache_dir)
        cfg.paths.data_dir = str(run_dir / "data")
    return cfg


@pytest.fixture
def compose_train(tmp_path, cache_dir):
    def _compose(*overrides: str, tiny: bool = True, run_dir: Path | None = None) -> DictConfig:
        return compose_cfg(
            "train", tiny_overrides(overrides) if tiny else list(overrides), run_dir or tmp_path, cache_dir
        )

    yield _compose
    GlobalHydra.instance().clear()


def run_cli(
    module: str,
    *args: str,
    cwd: Path,
    cache_dir: Path,
    timeout: int = 300,
    env: dict | None = None,
    check: bool = True,
) -> subprocess.CompletedProcess:
    """Run ``python -m <module> args...`` as a user would, logs and caches under ``cwd``."""
    e = dict(os.environ)
    e.update(
        PYTHONPATH=os.pathsep.join([str(SRC), str(REPO / "tests"), e.get("PYTHONPATH", "")]),
        HUMANPARSE_CACHE=str(cache_dir),
        HUMANPARSE_LOGS=str(cwd / "logs"),
        HUMANPARSE_DATA=str(cwd / "data"),
        OMP_NUM_THREADS="1",
        PYTHONUNBUFFERED="1",
    )
    env = dict(env or {})
    if "PYTHONPATH" in env:  # extra folders go after the project's
        env["PYTHONPATH"] = os.pathsep.join([e["PYTHONPATH"], env["PYTHONPATH"]])
    e.update(env)
    proc = subprocess.run(
        [sys.executable, "-m", module, *args], cwd=cwd, env=e, capture_output=True, text=True, timeout=timeout
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"{module} {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-6000:]}"
        )
    return proc
