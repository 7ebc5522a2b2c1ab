"""Train (and test) a model: ``python -m humanparse.train model=<model> data=<dataset> [overrides]``.

The whole run is described by the composed Hydra config (``conf/train.yaml``); this file only wires
the instantiated parts together. The return value of :func:`main` is the configured
``optimized_metric``, so Hydra sweepers can optimise it.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from pathlib import Path

import hydra
import pytorch_lightning as pl
from omegaconf import DictConfig, OmegaConf, open_dict

import humanparse.utils.resolvers  # noqa: F401  (registers ${hp.*} before Hydra composes)
from humanparse.models.released import released_of
from humanparse.utils import instantiate as inst
from humanparse.utils import run as runs
from humanparse.utils import safety
from humanparse.utils.devices import device_record
from humanparse.utils.errors import one_line_errors, run_main
from humanparse.utils.hydra_utils import hydra_overrides, in_multirun, print_config

log = logging.getLogger("humanparse.train")


def _processes_launched_by_slurm() -> bool:
    """SLURM started one process per device (the submitit launcher with ``tasks_per_node`` = devices):
    Lightning's SLURM environment wires them into DDP, nothing is re-launched."""
    from lightning_fabric.plugins.environments import SLURMEnvironment

    return SLURMEnvironment.detect() and int(os.environ.get("SLURM_NTASKS", "1")) > 1


def _adapt_strategy_for_multirun(cfg: DictConfig) -> None:
    """DDP re-launches the script with ``sys.argv``, which re-runs a whole sweep; spawn instead (unless
    SLURM already runs one process per device)."""
    strategy = str(cfg.trainer.get("strategy", "auto"))
    if (
        in_multirun()
        and strategy.startswith("ddp")
        and "spawn" not in strategy
        and not _processes_launched_by_slurm()
    ):
        log.warning(
            "multirun: trainer.strategy=%s re-launches the script per process, which a Hydra sweep "
            "cannot do; using ddp_spawn for this job",
            strategy,
        )
        with open_dict(cfg):
            cfg.trainer.strategy = "ddp_spawn"


def train(cfg: DictConfig) -> dict:
    """Fit and/or test as configured; returns the final metrics (``val/...``, ``test/...``)."""
    try:
        cfg, resume_ckpt = runs.prepare_resume(cfg, hydra_overrides())
    except runs.RunFinished as done:  # nothing to do, nothing touched
        print(done)
        return done.metrics
    run_dir = Path(cfg.paths.output_dir).resolve()
    run_dir.mkdir(parents=True, exist_ok=True)
    if resume_ckpt is None:
        runs.claim_run_dir(run_dir)
    runs.save_run_config(cfg, run_dir)
    # a checkpoint to continue from is read safely first: no code, a humanparse config, readable weights
    fit_ckpt = str(resume_ckpt) if resume_ckpt else cfg.get("ckpt_path")
    ckpt_state = safety.safe_torch_load(fit_ckpt) if fit_ckpt else None
    if cfg.get("seed") is not None:
        pl.seed_everything(cfg.seed, workers=True)
    _adapt_strategy_for_multirun(cfg)
    if in_multirun() and cfg.get("job_type") == "train":
        with open_dict(cfg):
            cfg.job_type = "sweep"
    if cfg.get("print_config", True) and runs.is_rank_zero():
        print_config(cfg)

    datamodule = hydra.utils.instantiate(cfg.data)
    task = inst.instantiate_task(cfg)
    if ckpt_state is not None:
        safety.check_weights_fit(task, ckpt_state["state_dict"], fit_ckpt)
        del ckpt_state
    datamodule.adapt_to_model(task.data_requirements(), model=str(cfg.model.get("name", "model")))
    resolved = OmegaConf.to_container(
        OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"]), resolve=True
    )
    task.run_config = resolved
    callbacks = inst.instantiate_callbacks(cfg.get("callbacks"))
    uses_wandb = any("Wandb" in str(v.get("_target_", "")) for v in (cfg.get("logger") or {}).values())
    wandb_id = runs.wandb_run_id(run_dir, resuming=resume_ckpt is not None) if uses_wandb else None
    loggers = inst.instantiate_loggers(
        cfg.get("logger"), run_dir, wandb_id, wandb_resume=resume_ckpt is not None
    )
    trainer = inst.instantiate_trainer(cfg.trainer, callbacks=callbacks, logger=loggers)
    for lg in loggers:
        lg.log_hyperparams(resolved)

    if fit_ckpt and not resume_ckpt:
        from humanparse.convert import init_from_checkpoint

        # a weights-only checkpoint (humanparse.convert of an authors' file): fine-tune from its weights
        if init_from_checkpoint(task, fit_ckpt) is not None:
            fit_ckpt = None
    record = {
        "status": "running",
        "model": cfg.model.get("name"),
        # the variant actually built (e.g. CorrPM "full" with a zero pose weight builds "PB")
        "variant": getattr(task.net, "variant", None) or cfg.model.get("variant"),
        "backbone": cfg.model.get("backbone"),
        "dataset": cfg.data.get("name"),
        "synthetic": bool(cfg.data.get("synthetic", False)),
        "splits": {
            "train": cfg.data.get("train_split"),
            "val": cfg.data.get("val_split"),
            "test": cfg.data.get("test_split"),
        },
        "task_name": cfg.get("task_name"),
        "tags": list(cfg.get("tags") or []),
        "seed": cfg.get("seed"),
        "run_dir": str(run_dir),
        "resumed_from": str(resume_ckpt) if resume_ckpt else None,
        # the authors' released file the weights started from (model.weights=, or a converted checkpoint)
        "released_weights": released_of(task),
        "optimized_metric": cfg.get("optimized_metric"),
        "wandb_id": wandb_id,
        "hardware": device_record(trainer),  # accelerator, devices, precision actually used
    }
    metrics: dict = {}
    start = time.time()
    try:
        if cfg.get("train", True):
            trainer.fit(task, datamodule=datamodule, ckpt_path=fit_ckpt, weights_only=True)
            metrics.update(runs.collect_metrics(trainer.callback_metrics))
        ckpt_cb = trainer.checkpoint_callback
        best = getattr(ckpt_cb, "best_model_path", "") if ckpt_cb else ""
        if cfg.get("test", True):
            trainer.test(
                task,
                datamodule=datamodule,
                ckpt_path=(best or None) if cfg.get("train", True) else fit_ckpt,
                weights_only=True,
                verbose=False,
            )
            metrics.update(runs.collect_metrics(trainer.callback_metrics, prefixes=("test/",)))
        record.update(
            status="finished",
            epochs=trainer.current_epoch,
            global_step=trainer.global_step,
            best={
                "metric": getattr(ckpt_cb, "monitor", None),
                "value": runs._clean(getattr(ckpt_cb, "best_model_score", None)),
                "path": best or None,
            }
            if ckpt_cb
            else None,
        )
    except BaseException as e:
        record.update(
            status="failed",
            error=f"{type(e).__name__}: {e}",
            **getattr(e, "record", {}),
            global_step=trainer.global_step,
        )
        raise
    finally:
        record["wall_time_s"] = round(time.time() - start, 2)
        record["metrics"] = metrics
        record["skipped_metrics"] = dict(getattr(task, "skipped", {}) or {})
        if trainer.is_global_zero:
            runs.write_metrics_json(run_dir, record)
        inst.finish_wandb(loggers)

    if trainer.is_global_zero:
        prefix = "test" if any(k.startswith("test/") for k in metrics) else "val"
        print(
            "\n"
            + runs.format_metrics_table(
                metrics,
                prefix,
                f"{prefix} metrics (%) — {record['model']} on {record['dataset']}"
                f"{' (synthetic)' if record['synthetic'] else ''}; run dir {run_dir}",
            )
        )
        runs.print_skipped(record["skipped_metrics"])
    return metrics


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
@one_line_errors
def main(cfg: DictConfig) -> float | None:
    metrics = train(cfg)
    return metrics.get(cfg.get("optimized_metric"))


if __name__ == "__main__":
    sys.exit(run_main(main, before=lambda: runs.check_run_dir_argument(sys.argv[1:])))
