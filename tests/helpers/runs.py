"""Fabricated run folders in exactly the layout ``humanparse.train`` writes (metrics.json, csv/version_N/
{hparams.yaml,metrics.csv}, run_config.yaml, .hydra/{config,hydra}.yaml), and the matching wandb runs."""

from __future__ import annotations

import copy
import csv
import json
from pathlib import Path

import yaml

from humanparse.data.meta import get_info


def base_config(
    model: str = "deeplabv3plus",
    dataset: str = "lip",
    variant: str = "deeplabv3plus_smp",
    backbone: str = "tu-resnet18d",
    lr: float = 0.007,
    seed: int = 1,
    job_type: str = "train",
    synthetic: bool = False,
    root: str = "/data",
) -> dict:
    """A resolved run config with the structure of ``conf/train.yaml`` (the parts compare reads)."""
    return {
        "task_name": "train",
        "tags": ["dev"],
        "job_type": job_type,
        "train": True,
        "test": True,
        "resume": None,
        "ckpt_path": None,
        "seed": seed,
        "optimized_metric": "val/miou",
        "print_config": False,
        "data": {
            "_target_": "humanparse.data.datamodule.ParsingDataModule",
            "name": dataset,
            "num_classes": get_info(dataset).num_classes,
            "root": f"{root}/{dataset}",
            "synthetic": synthetic,
            "batch_size": 10,
            "num_workers": 2,
            "input_size": [512, 512],
            "train_split": "train",
            "val_split": "val",
            "test_split": "val" if dataset == "lip" else "test",
            "seed": seed,
            "cache_dir": "/tmp/cache",
        },
        "model": {
            "_target_": "humanparse.tasks.parsing.SemanticParsingTask",
            "name": model,
            "variant": variant,
            "backbone": backbone,
            "pretrained": None,
            "dataset": dataset,
            "net": {"encoder": backbone, "num_classes": get_info(dataset).num_classes, "output_stride": 16},
            "optimizer": {"_target_": "torch.optim.SGD", "_partial_": True, "lr": lr, "momentum": 0.9},
        },
        "trainer": {
            "_target_": "pytorch_lightning.Trainer",
            "max_epochs": 3,
            "devices": 1,
            "accelerator": "cpu",
        },
        "logger": {
            "csv": {"_target_": "pytorch_lightning.loggers.CSVLogger", "save_dir": "x", "name": "csv"}
        },
        "paths": {"root_dir": "/somewhere", "output_dir": "/somewhere/run"},
    }


def per_class(dataset: str, value: float, stage: str = "val", skip: tuple[str, ...] = ()) -> dict:
    return {f"{stage}/iou/{c}": (None if c in skip else value) for c in get_info(dataset).class_keys}


def write_run(
    run_dir: Path,
    config: dict,
    metrics: dict,
    status: str = "finished",
    history: list[dict] | None = None,
    multirun: bool = False,
    error: str | None = None,
    epochs: int = 3,
) -> Path:
    """One run folder. ``history``: rows of ``csv/version_0/metrics.csv`` (``epoch`` + metric columns)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    record = {
        "status": status,
        "model": config["model"]["name"],
        "variant": config["model"]["variant"],
        "backbone": config["model"]["backbone"],
        "dataset": config["data"]["name"],
        "synthetic": config["data"]["synthetic"],
        "splits": {s: config["data"][f"{s}_split"] for s in ("train", "val", "test")},
        "task_name": "train",
        "tags": ["dev"],
        "seed": config["seed"],
        "run_dir": str(run_dir),
        "resumed_from": None,
        "optimized_metric": "val/miou",
        "wandb_id": None,
        "wall_time_s": 12.5,
        "metrics": metrics,
    }
    if status == "finished":
        record.update(
            epochs=epochs,
            global_step=30,
            best={"metric": "val/miou", "value": metrics.get("val/miou"), "path": None},
        )
    if error:
        record["error"] = error
    (run_dir / "metrics.json").write_text(json.dumps(record, indent=2))
    write_config_files(run_dir, config, multirun)
    if history:
        v = run_dir / "csv" / "version_0"
        v.mkdir(parents=True, exist_ok=True)
        cols = ["epoch", "step"] + sorted({k for row in history for k in row if k not in ("epoch", "step")})
        with open(v / "metrics.csv", "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=cols)
            w.writeheader()
            for i, row in enumerate(history):
                w.writerow({"step": i, **row})
    return run_dir


def write_config_files(run_dir: Path, config: dict, multirun: bool = False) -> None:
    v = run_dir / "csv" / "version_0"
    v.mkdir(parents=True, exist_ok=True)
    resolved = copy.deepcopy(config)
    if multirun and resolved.get("job_type") == "train":
        resolved["job_type"] = "sweep"  # as train.py logs it inside a multirun
    (v / "hparams.yaml").write_text(yaml.safe_dump(resolved, sort_keys=False))
    (run_dir / "run_config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    hydra_dir = run_dir / ".hydra"
    hydra_dir.mkdir(exist_ok=True)
    (hydra_dir / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    (hydra_dir / "hydra.yaml").write_text(
        yaml.safe_dump({"hydra": {"mode": "MULTIRUN" if multirun else "RUN", "job": {"name": "train"}}})
    )


def summary_metrics(
    miou: float, pixel_acc: float | None = 0.9, mean_acc: float | None = 0.6, stage: str = "val"
) -> dict:
    out = {f"{stage}/miou": miou, f"{stage}/fwiou": 0.8}
    if pixel_acc is not None:
        out[f"{stage}/pixel_acc"] = pixel_acc
    if mean_acc is not None:
        out[f"{stage}/mean_acc"] = mean_acc
    return out


def fabricate_runs(root: Path) -> dict[str, Path]:
    """A small set covering what compare must handle:

    * ``atr_a1``, ``atr_a2`` — two runs of one config (seeds 1, 2) on ATR: one row, n = 2;
    * ``atr_b`` — another learning rate, without ``mean_acc`` (a missing metric);
    * ``atr_failed`` — status ``failed`` with an error; ``atr_incomplete`` — no metrics.json yet;
    * ``lip_sweep/0,1`` — a two-job multirun on LIP with per-class IoU and a 3-epoch history.
    """
    paths: dict[str, Path] = {}
    atr = dict(dataset="atr")
    for name, seed, miou in (("atr_a1", 1, 0.70), ("atr_a2", 2, 0.72)):
        m = {
            **summary_metrics(miou, 0.95, 0.80 + 0.02 * (seed - 1), stage="test"),
            **summary_metrics(miou - 0.01),
        }
        paths[name] = write_run(
            root / "train" / "runs" / name,
            base_config(seed=seed, **atr),
            m,
            history=[{"epoch": e, "val/miou": miou * (e + 1) / 3} for e in range(3)],
        )
    paths["atr_b"] = write_run(
        root / "train" / "runs" / "atr_b",
        base_config(lr=0.01, **atr),
        summary_metrics(0.65, 0.94, None, stage="test"),
    )
    paths["atr_failed"] = write_run(
        root / "train" / "runs" / "atr_failed",
        base_config(lr=0.1, **atr),
        {},
        status="failed",
        error="RuntimeError: CUDA out of memory",
    )
    inc = root / "train" / "runs" / "atr_incomplete"
    write_config_files(inc, base_config(lr=0.2, **atr))
    paths["atr_incomplete"] = inc
    sweep = root / "train" / "multiruns" / "2024-01-01_00-00-00"
    for job, lr in ((0, 0.007), (1, 0.014)):
        miou = 0.40 + job * 0.05
        m = {
            **summary_metrics(miou, stage="val"),
            **summary_metrics(miou, stage="test"),
            **per_class("lip", miou, "test", skip=("scarf",)),
            **per_class("lip", miou, "val"),
        }
        hist = [{"epoch": e, "val/miou": miou * (e + 1) / 3, "val/pixel_acc": 0.9} for e in range(3)]
        paths[f"lip_{job}"] = write_run(
            sweep / str(job), base_config(lr=lr, synthetic=True), m, history=hist, multirun=True
        )
    (sweep / "multirun.yaml").write_text("hydra: {}\n")
    return paths
