"""Evaluate a checkpoint: ``python -m humanparse.evaluate ckpt_path=<file.ckpt> [data=lip data.root=...]``.

The model is rebuilt from the config stored in the checkpoint (no ``model=`` needed). Without a
``data=...`` override, the checkpoint's own data config is used; with one, the new dataset config
applies, keeping the input size and normalisation the model was trained with. Writes
``metrics.json`` in the evaluation run directory and prints the metrics table.

An authors' released checkpoint is evaluated without converting it first by building the model from the
config with ``model.weights=<file>`` (loaded through the model's released format), usually with its
released-protocol preset: ``experiment=corrpm_released model.weights=LIP_best.pth data.root=...``.
"""

from __future__ import annotations

import copy
import logging
import sys
import time
from pathlib import Path

import hydra
import pytorch_lightning as pl
from omegaconf import DictConfig, OmegaConf

import humanparse.utils.resolvers  # noqa: F401
from humanparse.models.released import released_of
from humanparse.utils import instantiate as inst
from humanparse.utils import run as runs
from humanparse.utils import safety
from humanparse.utils.errors import one_line_errors, run_main
from humanparse.utils.instantiate import instantiate_task

log = logging.getLogger("humanparse.evaluate")

# data settings that belong to the trained model and follow it to another dataset config
MODEL_BOUND_DATA_KEYS = ("input_size", "normalize")


def load_checkpoint_config(ckpt_path: str | Path) -> tuple[dict, dict]:
    """(the run config stored by humanparse in the checkpoint, the checkpoint dict)."""
    # weights_only=True, the stored config checked against the allowlist; every failure names the file
    ckpt = safety.safe_torch_load(ckpt_path)
    return ckpt["humanparse"]["config"], ckpt


def build_task_from_checkpoint(ckpt_path: str | Path):
    """Instantiate the task described by the checkpoint and load its weights (no download)."""
    saved, ckpt = load_checkpoint_config(ckpt_path)
    model_cfg = copy.deepcopy(saved["model"])
    # the weights come from the checkpoint: never fetch pretrained backbones again
    model_cfg["pretrained"] = None
    if isinstance(model_cfg.get("net"), dict) and "pretrained" in model_cfg["net"]:
        model_cfg["net"]["pretrained"] = None
    # a released file it was converted from is recorded, not read again
    model_cfg["weights"] = None
    # a stored config only builds allowlisted classes (humanparse.utils.safety)
    safety.check_config_targets({"model": model_cfg}, f"{ckpt_path} (config stored in the checkpoint)")
    task = instantiate_task(OmegaConf.create({"model": model_cfg}), check_keys=False)
    safety.load_weights(task, ckpt["state_dict"], ckpt_path)
    task.run_config = saved
    task.on_load_checkpoint(ckpt)
    released = ckpt["humanparse"].get("released")
    if released:
        task.released_weights = released
    return task, saved


def build_task_from_released(cfg: DictConfig):
    """The configured model (``model=...``) with an authors' released checkpoint (``model.weights=...``)."""
    if cfg.get("model") is None:
        raise ValueError(
            "give ckpt_path=<file.ckpt>, or model=<name> model.weights=<released checkpoint> "
            "(e.g. experiment=corrpm_released model.weights=LIP_best.pth)"
        )
    if not cfg.model.get("weights"):
        raise ValueError(
            "model=... without ckpt_path needs model.weights=<released checkpoint>; "
            "otherwise it would evaluate untrained weights"
        )
    if cfg.get("data") is None:
        raise ValueError("model=... without ckpt_path needs data=<dataset>")
    saved = OmegaConf.to_container(OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"]), resolve=True)
    task = instantiate_task(cfg)
    task.run_config = saved
    return task, saved


def evaluate(cfg: DictConfig) -> dict:
    if cfg.get("ckpt_path"):
        task, saved = build_task_from_checkpoint(cfg.ckpt_path)
    else:
        task, saved = build_task_from_released(cfg)
    if cfg.get("data") is not None:
        data_cfg = OmegaConf.to_container(cfg.data, resolve=True)
        for k in MODEL_BOUND_DATA_KEYS:
            if k in saved["data"]:
                data_cfg[k] = saved["data"][k]
    else:
        data_cfg = copy.deepcopy(saved["data"])
    split_key = f"{cfg.split}_split"
    if split_key not in data_cfg:
        raise ValueError(f"split={cfg.split}: the data config has no {split_key}")
    data_cfg["test_split"] = data_cfg[split_key]
    trained_on = (saved.get("data") or {}).get("name")
    if data_cfg.get("name") != trained_on and data_cfg.get("num_classes") != (saved.get("data") or {}).get(
        "num_classes"
    ):
        raise ValueError(
            f"checkpoint was trained on {trained_on!r} ({saved['data'].get('num_classes')} classes) "
            f"but data={data_cfg.get('name')!r} has {data_cfg.get('num_classes')} classes"
        )
    datamodule = safety.safe_instantiate(OmegaConf.create(data_cfg), f"{cfg.ckpt_path} (data config)")
    datamodule.adapt_to_model(task.data_requirements(), model=str(saved["model"].get("name", "model")))

    run_dir = Path(cfg.paths.output_dir).resolve()
    run_dir.mkdir(parents=True, exist_ok=True)
    runs.claim_run_dir(run_dir)
    loggers = inst.instantiate_loggers(cfg.get("logger"), run_dir)
    pl.seed_everything(cfg.get("seed", 0), workers=True)
    trainer = inst.instantiate_trainer(cfg.trainer, logger=loggers, callbacks=[])
    start = time.time()
    trainer.test(task, datamodule=datamodule, verbose=False)
    metrics = runs.collect_metrics(trainer.callback_metrics, prefixes=("test/",))
    # report under the split's own name (val/... for the val split), as the papers' tables do
    metrics = {f"{cfg.split}/{k[5:]}": v for k, v in metrics.items()}
    record = {
        "status": "finished",
        "kind": "evaluation",
        "checkpoint": str(Path(cfg.ckpt_path).resolve()) if cfg.get("ckpt_path") else None,
        # the authors' file the weights come from (model.weights, or the file a converted checkpoint came from)
        "released_weights": released_of(task),
        "model": saved["model"].get("name"),
        "variant": saved["model"].get("variant"),
        "backbone": saved["model"].get("backbone"),
        "dataset": data_cfg.get("name"),
        "synthetic": bool(data_cfg.get("synthetic", False)),
        "split": data_cfg["test_split"],
        "metrics": metrics,
        "skipped_metrics": dict(task.skipped),
        "wall_time_s": round(time.time() - start, 2),
    }
    if trainer.is_global_zero:
        runs.write_metrics_json(run_dir, record)
        print(
            "\n"
            + runs.format_metrics_table(
                metrics,
                cfg.split,
                f"{cfg.split} metrics (%) — {record['model']} on "
                f"{record['dataset']} ({record['split']} split); written to {run_dir / runs.METRICS_JSON}",
            )
        )
        runs.print_skipped(record["skipped_metrics"])
    inst.finish_wandb(loggers)
    return metrics


@hydra.main(version_base="1.3", config_path="conf", config_name="eval")
@one_line_errors
def main(cfg: DictConfig) -> None:
    evaluate(cfg)


if __name__ == "__main__":
    sys.exit(run_main(main))
