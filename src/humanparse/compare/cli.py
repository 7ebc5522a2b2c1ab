"""Compare runs with each other and with the papers' tables.

``python -m humanparse.compare [key=value ...]`` — arguments are ``key=value`` pairs (OmegaConf syntax, as
``humanparse.evaluate_predictions``); the tool only reads runs, so it creates no Hydra run folder.

Where the runs come from
    ``source=local`` (default): ``roots=[logs]`` (or ``root=<dir>``): Hydra output folders — ``logs/``,
    ``logs/train/runs/<date>``, a multirun folder ``logs/train/multiruns/<date>``, or single run folders;
    default ``$HUMANPARSE_LOGS`` or ``./logs``.
    ``source=wandb project=<name> [entity=<team>] [filters={...}]``: the wandb public API (needs
    ``wandb login``); ``source=wandb offline_dir=<dir>`` reads offline runs (``wandb/offline-run-*``) below
    ``<dir>`` instead, without the network. Both give the same table as the local folders.

Which runs and metrics
    ``datasets=[lip,atr]``, ``models=[corrpm]``, ``group=<model>-<data>``, ``job_type=sweep``,
    ``include_synthetic=true|false``; ``prefix=auto|val|test`` (auto: the test stage's metrics when the
    run has them, else val); ``aggregate=mean|none`` (repeats of one config: mean±std, or one row per
    run); ``metrics=[miou,pixel_acc]`` (columns; default: what the runs and their paper rows report);
    ``reference=corrpm:2:CorrPM`` (compare every row with this printed row instead of the model's own,
    see ``resources/paper_refs.yaml``); ``paper_results=<file.yaml>`` (another paper-numbers file).

Output
    The Markdown table goes to stdout (``format=csv`` prints the CSV instead). ``output=<dir>`` (default
    ``<first root>/compare/<date_time>``, or ``./compare/<date_time>`` for wandb; ``output=null`` writes
    nothing) receives ``compare.md``, ``compare.csv`` (one line per row: value, std, paper, delta per metric),
    ``runs.csv`` (every run with status and error) and, with ``plots=true`` (default), per-class IoU bars
    (``per_class_iou_<dataset>.png``) and metric-vs-epoch curves per block (``curves_<block>.png``,
    ``curve_metric=val/miou``). Exit status 0, or 2 for bad arguments.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from humanparse.compare.papers import load_paper_results
from humanparse.compare.runs import RunRecord, collect_local
from humanparse.compare.table import Comparison, build_comparison
from humanparse.compare.wandb_source import OfflineApi, collect_wandb, default_api
from humanparse.utils.cli import parse_key_values

DEFAULTS = {
    "source": "local",
    "roots": None,
    "root": None,
    "project": None,
    "entity": None,
    "offline_dir": None,
    "filters": None,
    "group": None,
    "job_type": None,
    "datasets": None,
    "models": None,
    "include_synthetic": True,
    "prefix": "auto",
    "aggregate": "mean",
    "metrics": None,
    "reference": None,
    "paper_results": None,
    "per_class": True,
    "plots": True,
    "curve_metric": "val/miou",
    "output": "auto",
    "format": "markdown",
}


def _as_list(v) -> list | None:
    if v is None:
        return None
    if isinstance(v, (list, tuple)):
        return list(v)
    return [v]


def parse_args(argv: list[str]) -> DictConfig:
    cfg = parse_key_values(argv, DEFAULTS)
    if cfg.source not in ("local", "wandb"):
        raise ValueError(f"source={cfg.source!r}: choose local or wandb")
    if cfg.format not in ("markdown", "csv"):
        raise ValueError(f"format={cfg.format!r}: choose markdown or csv")
    return cfg


def collect(cfg: DictConfig, api=None) -> list[RunRecord]:
    """The records of the chosen source, filtered by ``group`` / ``job_type``."""
    if cfg.source == "local":
        roots = _as_list(OmegaConf.to_container(cfg.roots) if cfg.roots is not None else None) or _as_list(
            cfg.root
        )
        roots = roots or [os.environ.get("HUMANPARSE_LOGS", "logs")]
        records = collect_local(roots)
    else:
        if api is None:
            if cfg.offline_dir:
                api = OfflineApi(cfg.offline_dir)
            elif not cfg.project:
                raise ValueError(
                    "source=wandb needs project=<name> (and entity=<team> unless it is your default), "
                    "or offline_dir=<folder with wandb/offline-run-*>"
                )
            else:
                api = default_api()
        filters = OmegaConf.to_container(cfg.filters) if cfg.filters is not None else None
        records = collect_wandb(api, cfg.project, cfg.entity, filters)
    if cfg.group:
        records = [r for r in records if r.group == cfg.group]
    if cfg.job_type:
        records = [r for r in records if r.job_type == cfg.job_type]
    return records


def compare(cfg: DictConfig, api=None) -> Comparison:
    papers = load_paper_results(cfg.paper_results)
    records = collect(cfg, api)
    reference = OmegaConf.to_container(cfg.reference) if OmegaConf.is_config(cfg.reference) else cfg.reference
    metrics = _as_list(
        OmegaConf.to_container(cfg.metrics) if OmegaConf.is_config(cfg.metrics) else cfg.metrics
    )
    return build_comparison(
        records,
        papers,
        prefix=cfg.prefix,
        aggregate=cfg.aggregate,
        metrics=metrics,
        reference=reference,
        datasets=_as_list(
            OmegaConf.to_container(cfg.datasets) if OmegaConf.is_config(cfg.datasets) else cfg.datasets
        ),
        models=_as_list(
            OmegaConf.to_container(cfg.models) if OmegaConf.is_config(cfg.models) else cfg.models
        ),
        include_synthetic=bool(cfg.include_synthetic),
    )


def output_dir(cfg: DictConfig) -> Path | None:
    if cfg.output in (None, "", "none", "null", False):
        return None
    if cfg.output != "auto":
        return Path(cfg.output)
    stamp = time.strftime("%Y-%m-%d_%H-%M-%S")
    if cfg.source == "local":
        roots = _as_list(OmegaConf.to_container(cfg.roots) if cfg.roots is not None else None) or _as_list(
            cfg.root
        )
        base = Path((roots or [os.environ.get("HUMANPARSE_LOGS", "logs")])[0])
        if (base / "metrics.json").is_file():  # a single run folder: write next to it
            base = base.parent
        return base / "compare" / stamp
    return Path("compare") / stamp


def write_outputs(comparison: Comparison, out: Path, cfg: DictConfig) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    written = [out / "compare.md", out / "compare.csv", out / "runs.csv"]
    written[0].write_text(comparison.to_markdown(per_class=bool(cfg.per_class)))
    comparison.to_frame().to_csv(written[1], index=False)
    comparison.runs_frame().to_csv(written[2], index=False)
    if cfg.plots:
        import matplotlib

        matplotlib.use("Agg")  # files only: no display needed
        from humanparse.compare.plots import write_plots

        written += write_plots(comparison, out, cfg.curve_metric)
    return written


def run(argv: list[str], api=None) -> Comparison:
    cfg = parse_args(argv)
    comparison = compare(cfg, api)
    if cfg.format == "csv":
        print(comparison.to_frame().to_csv(index=False), end="")
    else:
        print(comparison.to_markdown(per_class=bool(cfg.per_class)), end="")
    out = output_dir(cfg)
    if out is not None:
        files = write_outputs(comparison, out, cfg)
        print(f"\nwritten to {out}: " + ", ".join(p.name for p in files), file=sys.stderr)
    return comparison


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0
    try:
        run(argv)
    except (ValueError, FileNotFoundError, KeyError) as e:
        print(f"error: {e.args[0] if e.args else e}", file=sys.stderr)
        return 2
    return 0
