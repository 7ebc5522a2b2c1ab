"""Where a run trains and at which precision: GPU when there is one, CPU otherwise.

``trainer.accelerator=auto`` (the default) picks the GPU when ``torch.cuda.is_available()`` and falls back
to the CPU. ``trainer.precision=auto`` (the default) becomes ``bf16-mixed`` on GPUs that support bfloat16
(Ampere and newer), ``16-mixed`` on older GPUs and ``32`` on the CPU. The choice is written to the run
record (``metrics.json``: ``accelerator``, ``devices``, ``precision``). ``trainer=ddp_all`` trains with DDP
on every visible GPU (one device, no DDP, when only one is visible).
"""

from __future__ import annotations

import logging

import torch
from omegaconf import DictConfig, OmegaConf, open_dict

log = logging.getLogger(__name__)


def resolve_accelerator(accelerator: str) -> str:
    """``auto`` → ``gpu`` when CUDA is available, else ``cpu``; other values unchanged."""
    accelerator = str(accelerator)
    if accelerator == "auto":
        return "gpu" if torch.cuda.is_available() else "cpu"
    if accelerator in ("gpu", "cuda") and not torch.cuda.is_available():
        raise RuntimeError(
            f"trainer.accelerator={accelerator}: no CUDA device on this machine "
            "(use trainer.accelerator=auto or cpu)"
        )
    return accelerator


def resolve_precision(precision, accelerator: str) -> str:
    """``auto`` → ``bf16-mixed`` (GPU with bfloat16), ``16-mixed`` (older GPU) or ``32`` (CPU)."""
    if str(precision) != "auto":
        return str(precision)
    if accelerator in ("gpu", "cuda"):
        return "bf16-mixed" if torch.cuda.is_bf16_supported() else "16-mixed"
    return "32"


def resolve_devices(devices, accelerator: str):
    """``auto`` / ``-1`` → every visible GPU (1 on the CPU: one process, torch uses every core)."""
    if str(devices) in ("auto", "-1"):
        return max(1, torch.cuda.device_count()) if accelerator in ("gpu", "cuda") else 1
    return devices


def resolve_trainer_config(trainer_cfg: DictConfig) -> DictConfig:
    """A copy of ``trainer_cfg`` with ``accelerator``, ``devices``, ``precision`` and, with ``strategy:
    ddp_if_many``, ``strategy`` made concrete for this machine."""
    cfg = OmegaConf.create(OmegaConf.to_container(trainer_cfg, resolve=True))
    acc = resolve_accelerator(cfg.get("accelerator", "auto"))
    devices = resolve_devices(cfg.get("devices", "auto"), acc)
    with open_dict(cfg):
        cfg.accelerator = acc
        cfg.devices = devices
        cfg.precision = resolve_precision(cfg.get("precision", "auto"), acc)
        if str(cfg.get("strategy", "auto")) == "ddp_if_many":
            cfg.strategy = "ddp" if isinstance(devices, int) and devices > 1 else "auto"
            if cfg.strategy == "auto":
                cfg.sync_batchnorm = False
    log.info(
        "trainer: accelerator=%s devices=%s precision=%s strategy=%s",
        cfg.accelerator,
        cfg.devices,
        cfg.precision,
        cfg.get("strategy", "auto"),
    )
    return cfg


def device_record(trainer) -> dict:
    """What the run actually used, for the run record."""
    return {
        "accelerator": type(trainer.accelerator).__name__.replace("Accelerator", "").lower(),
        "devices": int(trainer.num_devices),
        "num_nodes": int(trainer.num_nodes),
        "precision": str(trainer.precision),
        "strategy": type(trainer.strategy).__name__,
    }
