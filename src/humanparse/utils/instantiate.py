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


def instantiate_loggers(
    cfg: DictConfig | None, run_dir: str | Path, wandb_id: str | None = None, wandb_resume: bool = False
) -> list[Logger]:
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


class ConfigKeyError(ValueError):
    """A key of a model config that nothing reads (usually a misspelling)."""


def _references(node, group: str) -> set[str]:
    """Top-level keys of ``group`` referenced as ``${group.<key>...}`` anywhere in ``node``."""
    import re

    pattern = re.compile(r"\$\{" + re.escape(group) + r"\.([A-Za-z_][A-Za-z0-9_]*)")
    found: set[str] = set()

    def walk(x):
        if isinstance(x, dict):
            for v in x.values():
                walk(v)
        elif isinstance(x, list):
            for v in x:
                walk(v)
        elif isinstance(x, str):
            found.update(pattern.findall(x))

    walk(node)
    return found


def check_model_keys(cfg: DictConfig, group: str = "model") -> None:
    """Refuse a top-level key of ``cfg[group]`` that is neither an argument of its ``_target_`` nor a knob
    interpolated somewhere in the config (``${model.<key>}``): a misspelled ``model.pose_wieght=0`` would
    otherwise be accepted and ignored. The error names the key and the closest valid one."""
    import difflib
    import inspect

    from omegaconf import OmegaConf

    node = cfg.get(group)
    if not isinstance(node, DictConfig) or "_target_" not in node:
        return
    try:
        cls = hydra.utils.get_class(node._target_)
    except Exception:  # noqa: BLE001 - an unknown target is reported by instantiate itself
        return
    params = {
        n
        for n, p in inspect.signature(cls.__init__).parameters.items()
        if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL) and n != "self"
    }
    if not any(p.kind == p.VAR_KEYWORD for p in inspect.signature(cls.__init__).parameters.values()):
        return  # a closed signature: instantiate itself refuses unknown keys
    raw = OmegaConf.to_container(OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"]), resolve=False)
    used = _references(raw, group)
    name = node.get("name", group)
    for key in node:
        if key.startswith("_") or key in params or key in used:
            continue
        valid = sorted((params | used) - {"_target_"})
        close = difflib.get_close_matches(str(key), valid, n=1)
        raise ConfigKeyError(
            f"{group}.{key} is not an option of {group}={name}"
            + (f"; did you mean {group}.{close[0]}?" if close else f"; options: {', '.join(valid)}")
        )


def check_model_data(cfg: DictConfig) -> None:
    """Refuse, before anything is built, a single-head model on a multi-dataset data config (and the
    reverse): the net's class count would be a list, or the data a single label space."""
    data, model = cfg.get("data"), cfg.get("model")
    if not isinstance(data, DictConfig) or not isinstance(model, DictConfig):
        return
    multi_data = isinstance(data.get("datasets"), DictConfig)
    multi_model = bool((model.get("requires") or {}).get("multi_dataset", False))
    name, dname = model.get("name", "model"), data.get("name", "data")
    if multi_data and not multi_model:
        members = ", ".join(str(k) for k in data.datasets)
        raise ConfigKeyError(
            f"data={dname} trains on {members} at once, with their different label spaces; model={name} has a "
            f"single head. Use a model with per-dataset heads (model=grapy_ml, as experiment=grapy_ml selects), or train on "
            f"one dataset (data={next(iter(data.datasets))})"
        )
    if multi_model and not multi_data:
        raise ConfigKeyError(
            f"model={name} has per-dataset heads and trains on several datasets at once; data={dname} "
            "is a single dataset. Use a multi-dataset data config (data=grapy_ml) or the model's "
            "single-dataset preset"
        )


def instantiate_task(cfg: DictConfig, check_keys: bool = True):
    """The task of ``cfg.model``, after :func:`check_model_keys` and :func:`check_model_data`; a nested
    argument the net / criterion / postprocess does not take becomes an error naming the config key.
    ``check_keys=False`` for a stored, already resolved config (its knobs are no longer interpolated)."""
    if check_keys:
        check_model_keys(cfg)
        check_model_data(cfg)
    try:
        return hydra.utils.instantiate(cfg.model)
    except Exception as e:  # noqa: BLE001 - re-raised with the config path when it is an unknown argument
        import re

        msg = str(e)
        m = re.search(r"unexpected keyword argument '([^']+)'", msg)
        if m is None:
            raise
        where = re.search(r"full_key: ([\w.]+)", msg)
        path = where.group(1) if where else "model"
        raise ConfigKeyError(f"{path}: unknown option {m.group(1)!r} ({msg.splitlines()[0]})") from e
