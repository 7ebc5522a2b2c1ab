"""Build callbacks and loggers from their config groups (each entry has a ``_target_``)."""

from __future__ import annotations

import logging
from pathlib import Path

import hydra
import pytorch_lightning as pl
import torch
from omegaconf import DictConfig
from pytorch_lightning import Callback
from pytorch_lightning.loggers import CSVLogger, Logger, WandbLogger

log = logging.getLogger(__name__)


def instantiate_callbacks(cfg: DictConfig | None) -> list[Callback]:
    callbacks: list[Callback] = []
    if not cfg:
        return callbacks
    for name, cb in cfg.items():
        if isinstance(cb, DictConfig) and "_target_" in cb:
            log.debug("callback %s: %s", name, cb._target_)
            callbacks.append(hydra.utils.instantiate(cb))
    return callbacks


def instantiate_loggers(cfg: DictConfig | None, run_dir: str | Path, wandb_id: str | None = None,
                        wandb_resume: bool = False) -> list[Logger]:
    """The configured loggers plus, always, a CSV history under ``<run_dir>/csv/version_N``.

    A Weights & Biases logger gets a fixed run id (kept in ``<run_dir>/wandb_id.txt``) so that a resumed
    run continues the same wandb run.
    """
    loggers: list[Logger] = []
    for _name, lg_cfg in (cfg or {}).items():
        if not (isinstance(lg_cfg, DictConfig) and "_target_" in lg_cfg):
            continue
        kwargs = {}
        if lg_cfg._target_.endswith("WandbLogger"):
            if wandb_id is not None:
                kwargs = {"id": wandb_id, "resume": "allow" if wandb_resume else None}
            kwargs.update(sweep_name_and_tags(lg_cfg))
        loggers.append(hydra.utils.instantiate(lg_cfg, **kwargs))
    if not any(isinstance(lg, CSVLogger) for lg in loggers):
        loggers.append(CSVLogger(save_dir=str(run_dir), name="csv"))
    return loggers


def sweep_name_and_tags(lg_cfg: DictConfig) -> dict:
    """In a multirun, the swept ``key=value`` pairs of this job appended to the wandb run name and added as
    tags (``deeplabv3plus-lip-sweep optimizer.lr=0.01 max_epochs=10``), plus a ``multirun:<folder>`` tag."""
    from humanparse.utils.hydra_utils import in_multirun, short_key, swept_values

    if not in_multirun():
        return {}
    pairs = [f"{short_key(k)}={v}" for k, v in swept_values()]
    tags = list(lg_cfg.get("tags") or [])
    from hydra.core.hydra_config import HydraConfig

    sweep_dir = Path(str(HydraConfig.get().sweep.dir)).name
    tags += [p for p in pairs if p not in tags] + [f"multirun:{sweep_dir}"]
    name = " ".join([str(lg_cfg.get("name") or "run"), *pairs])
    return {"name": name, "tags": [t[:64] for t in tags]}  # wandb limits a tag to 64 characters


def finish_wandb(loggers: list[Logger]) -> None:
    """Close the wandb run of this job (needed between the jobs of a multirun)."""
    if any(isinstance(lg, WandbLogger) for lg in loggers):
        import wandb

        if wandb.run is not None:
            wandb.finish()


def _runs_on_cpu(trainer_cfg: DictConfig) -> bool:
    acc = str(trainer_cfg.get("accelerator", "auto"))
    return acc == "cpu" or (acc == "auto" and not torch.cuda.is_available())


def instantiate_trainer(trainer_cfg: DictConfig, **kwargs) -> pl.Trainer:
    """The configured Trainer, with our own samplers and, on CPU, a SyncBatchNorm that works there.

    ``accelerator``, ``devices``, ``precision`` and ``strategy`` may be ``auto`` (see
    :mod:`humanparse.utils.devices`): GPU when there is one, bf16/16-mixed there, CPU and 32 otherwise.

    ``torch.nn.SyncBatchNorm`` refuses CPU modules, so ``sync_batchnorm=true`` on CPU becomes the
    :class:`~humanparse.utils.syncbn.CPUSyncBatchNorm` plugin (gloo all-reduce of the statistics).
    """
    from humanparse.utils.devices import resolve_trainer_config

    trainer_cfg = resolve_trainer_config(trainer_cfg)  # accelerator/devices/precision "auto" → this machine's
    kwargs.setdefault("use_distributed_sampler", False)
    if trainer_cfg.get("sync_batchnorm") and _runs_on_cpu(trainer_cfg):
        from humanparse.utils.syncbn import CPUSyncBatchNorm

        kwargs["sync_batchnorm"] = False
        kwargs["plugins"] = [*kwargs.get("plugins", []), CPUSyncBatchNorm()]
    return hydra.utils.instantiate(trainer_cfg, **kwargs)
