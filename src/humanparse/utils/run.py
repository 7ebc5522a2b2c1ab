"""Run directories: the saved config, resuming, ``metrics.json`` and the printed metrics table."""

from __future__ import annotations

import json
import logging
import math
import os
import secrets
import string
import time
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf, open_dict

log = logging.getLogger(__name__)

RUN_CONFIG = "run_config.yaml"  # the composed config of the run, written once at its start
WANDB_ID = "wandb_id.txt"
METRICS_JSON = "metrics.json"
LAST_CKPT = Path("checkpoints") / "last.ckpt"


def is_rank_zero() -> bool:
    return int(os.environ.get("RANK", os.environ.get("LOCAL_RANK", "0"))) == 0


def atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


class ResumeError(FileNotFoundError):
    pass


def prepare_resume(cfg: DictConfig, cli_overrides: list[str] | None = None) -> tuple[DictConfig, Path | None]:
    """When ``cfg.resume`` names a run directory, return that run's own config and its ``last.ckpt``.

    The saved config replaces the composed one so that the run continues exactly as it started;
    plain ``key=value`` overrides from the command line (e.g. ``trainer.max_epochs=200``) are applied on
    top. A run directory without ``checkpoints/last.ckpt`` is an error: a resume never starts over.
    """
    if not cfg.get("resume"):
        return cfg, None
    run_dir = Path(str(cfg.resume)).expanduser().resolve()
    ckpt = run_dir / LAST_CKPT
    saved = run_dir / RUN_CONFIG
    if not run_dir.is_dir():
        raise ResumeError(f"resume={cfg.resume}: run directory does not exist")
    if not ckpt.is_file():
        raise ResumeError(
            f"resume={cfg.resume}: no checkpoint {ckpt} to resume from (the run died before its first "
            "checkpoint, or this is not a run directory); refusing to start the run over"
        )
    if not saved.is_file():
        raise ResumeError(f"resume={cfg.resume}: {saved} is missing, cannot restore the run's configuration")
    new = OmegaConf.load(saved)
    overrides = [o for o in (cli_overrides or []) if "=" in o and not o.split("=", 1)[0].lstrip("+~").startswith(("resume", "hydra"))]
    for o in overrides:
        key, value = o.split("=", 1)
        key = key.lstrip("+")
        if isinstance(OmegaConf.select(cfg, key, default=None), DictConfig):
            raise ResumeError(f"resume: config-group override {o!r} cannot change a run being resumed")
        OmegaConf.update(new, key, OmegaConf.select(cfg, key), force_add=True)
    with open_dict(new):
        new.resume = str(run_dir)
        new.paths.output_dir = str(run_dir)
    if "hydra" in cfg:
        with open_dict(new):
            new.hydra = cfg.hydra
    return new, ckpt


def save_run_config(cfg: DictConfig, run_dir: Path) -> None:
    """Write the composed config (unresolved, without the ``hydra`` node) once, at the start of a run."""
    path = run_dir / RUN_CONFIG
    if path.exists() or not is_rank_zero():
        return
    c = OmegaConf.masked_copy(cfg, [k for k in cfg.keys() if k != "hydra"]) if "hydra" in cfg else cfg
    c = OmegaConf.to_container(c, resolve=False)
    # the output dir interpolates hydra's runtime dir, which a resumed process cannot resolve
    c.setdefault("paths", {})["output_dir"] = str(run_dir)
    atomic_write_text(path, OmegaConf.to_yaml(OmegaConf.create(c)))


def wandb_run_id(run_dir: Path, resuming: bool) -> str:
    """A stable wandb id per run dir: generated once, reused on resume."""
    path = run_dir / WANDB_ID
    if path.is_file():
        return path.read_text().strip()
    if resuming:
        log.warning("resume: %s not found; the resumed run gets a new wandb id", path)
    rid = "".join(secrets.choice(string.ascii_lowercase + string.digits) for _ in range(8))
    if is_rank_zero():
        atomic_write_text(path, rid)
    return rid


def _clean(v):
    if isinstance(v, torch.Tensor):
        v = v.item() if v.numel() == 1 else v.tolist()
    if isinstance(v, float) and (math.isnan(v) or math.isinf(v)):
        return None
    return v


def sanitize(obj):
    """JSON-safe copy: NaN/inf become null, tensors become numbers or lists."""
    if isinstance(obj, dict):
        return {str(k): sanitize(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [sanitize(v) for v in obj]
    return _clean(obj)


def collect_metrics(callback_metrics: dict, prefixes=("val/", "test/", "train/")) -> dict[str, float | None]:
    # logging order is kept: per-class entries stay in the dataset's class order
    return {k: _clean(v) for k, v in callback_metrics.items() if k.startswith(prefixes) and not k.endswith("_step")}


def write_metrics_json(run_dir: Path, record: dict) -> Path:
    """``metrics.json``: the run's final metrics (NaN written as null) plus what the compare tool needs."""
    path = run_dir / METRICS_JSON
    rec = dict(record)
    rec.setdefault("written", time.strftime("%Y-%m-%dT%H:%M:%S"))
    atomic_write_text(path, json.dumps(sanitize(rec), indent=2, sort_keys=False, default=str))
    return path


SUMMARY_KEYS = ("pixel_acc", "mean_acc", "miou", "fwiou")


def format_metrics_table(metrics: dict, prefix: str, title: str = "") -> str:
    """Plain-text table (percent) of the summary metrics and per-class IoU under ``prefix``."""
    p = f"{prefix}/"
    lines = [title or f"{prefix} metrics (%)"]
    summary = [(k, metrics.get(p + k)) for k in SUMMARY_KEYS if p + k in metrics]
    other = [(k[len(p):], v) for k, v in metrics.items() if k.startswith(p) and "/" not in k[len(p):] and k[len(p):] not in SUMMARY_KEYS]
    # several evaluation datasets (val/<dataset>/<metric>): their summary numbers too
    other += [(k[len(p):], v) for k, v in metrics.items() if k.startswith(p) and k[len(p):].count("/") == 1
              and k.rsplit("/", 1)[1] in SUMMARY_KEYS + ("app50", "app_vol", "pcp50", "apr50", "apr_vol", "dp_ap")]
    per_class = [(k[len(p) + 4:], v) for k, v in metrics.items() if k.startswith(p + "iou/")]

    def fmt(v):
        return "   n/a" if v is None else f"{100.0 * float(v):6.2f}"

    width = max([len(k) for k, _ in summary + other + per_class] + [10])
    for k, v in summary + other:
        lines.append(f"  {k:<{width}} {fmt(v)}")
    if per_class:
        lines.append("  per-class IoU:")
        for k, v in per_class:
            lines.append(f"    {k:<{width}} {fmt(v)}")
    return "\n".join(lines)


def print_skipped(skipped: dict) -> None:
    """One line naming the metrics of the dataset that this model cannot be scored with, and why."""
    if skipped:
        print("not computed: " + "; ".join(f"{k} ({why})" for k, why in sorted(skipped.items())))
