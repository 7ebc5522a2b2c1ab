"""Figures of a comparison (matplotlib).

* :func:`per_class_figure` / :func:`per_class_bars` — per-class IoU of several rows next to the paper's
  per-class row (CorrPM Table 5 for LIP), one group of bars per class.
* :func:`sweep_curves_figure` / :func:`sweep_curves` — a metric against the epoch for every run of a block
  (a sweep or a group of runs), from the CSV histories of local runs or the wandb history.
* :func:`summary_figure` — a dataset's summary metrics per row, the paper's numbers as marks.

The ``*_figure`` functions return the figure (notebooks show it inline); the others write a PNG. The
command line selects the Agg backend before importing this module, so no display is needed.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from pathlib import Path

import matplotlib.pyplot as plt
from matplotlib.ticker import MaxNLocator

from humanparse.compare.papers import PaperRow, run_value_percent
from humanparse.compare.table import Comparison, Row


def _slug(text: str) -> str:
    return re.sub(r"[^0-9A-Za-z._-]+", "_", text).strip("_")[:80] or "plot"


def _short(text: str, n: int = 48) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def per_class_figure(rows: list[Row], classes: list[str], paper: PaperRow | None, title: str = ""):
    """Grouped bars: one group per class, one bar per row (ours), the paper row hatched in grey."""
    names = [c[len("iou/"):] if c.startswith("iou/") else c for c in classes]
    series: list[tuple[str, list[float], dict]] = []
    for r in rows:
        vals = [(r.values.get(c).mean if r.values.get(c) and r.values.get(c).mean is not None else float("nan")) for c in classes]
        name = f"{r.model} · {r.label}" if r.label else f"{r.model} {r.variant_label}"
        series.append((_short(f"{name} (n={r.n})", 60), vals, {}))
    if paper is not None:
        vals = [paper.get(c).percent if paper.get(c) else float("nan") for c in classes]
        series.append((_short("paper: " + paper.label(), 60), vals, {"color": "0.6", "hatch": "//", "edgecolor": "0.3"}))
    k = max(1, len(series))
    width = 0.8 / k
    fig, ax = plt.subplots(figsize=(max(8.0, 0.55 * len(classes) * max(1, k / 2)), 4.5))
    for i, (label, vals, style) in enumerate(series):
        xs = [j + (i - (k - 1) / 2) * width for j in range(len(classes))]
        ax.bar(xs, vals, width=width, label=label, **style)
    ax.set_xticks(range(len(classes)))
    ax.set_xticklabels(names, rotation=60, ha="right", fontsize=8)
    ax.set_ylabel("IoU (%)")
    ax.set_ylim(0, 100)
    ax.set_title(title or "per-class IoU")
    ax.legend(fontsize=7, loc="upper right")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return fig


def _save(fig, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def per_class_bars(rows: list[Row], classes: list[str], paper: PaperRow | None, path: str | Path,
                   title: str = "") -> Path:
    """:func:`per_class_figure` written to ``path`` (PNG)."""
    return _save(per_class_figure(rows, classes, paper, title), path)


def sweep_curves_figure(comparison: Comparison, metric: str, block: str, title: str = ""):
    """``metric`` (e.g. ``val/miou``) against the epoch for every run of ``block``; ``None`` without history."""
    label_of = {id(rec): row for row in comparison.rows for rec in row.runs}
    runs = [rec for rec in comparison.records if rec.block == block and rec.status == "finished"]
    fig, ax = plt.subplots(figsize=(7, 4.2))
    drawn = 0
    for rec in runs:
        hist = rec.history([metric])
        if hist.empty or metric not in hist:
            continue
        h = hist.dropna(subset=[metric])
        row = label_of.get(id(rec))
        cfg = row.label if row is not None and row.label else (rec.variant or rec.model or "")
        label = _short(f"{cfg} seed={rec.seed}" if rec.seed is not None else cfg, 60)
        ax.plot(h["epoch"], [run_value_percent(metric, v) for v in h[metric]], marker="o", ms=3, label=label)
        drawn += 1
    if not drawn:
        plt.close(fig)
        return None
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel(f"{metric} (%)" if run_value_percent(metric, 1.0) == 100.0 else metric)
    ax.set_title(title or block, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def sweep_curves(comparison: Comparison, metric: str, path: str | Path, block: str, title: str = "") -> Path | None:
    """:func:`sweep_curves_figure` written to ``path`` (PNG); ``None`` when no run of the block has history."""
    fig = sweep_curves_figure(comparison, metric, block, title)
    return None if fig is None else _save(fig, path)


def summary_figure(comparison: Comparison, dataset: str):
    """The summary metrics of every row of ``dataset`` as bars, the paper's number as a black mark."""
    rows = comparison.rows_for(dataset)
    metrics = [m for m in comparison.columns.get(dataset, []) if any(m in r.values for r in rows)]
    if not rows or not metrics:
        return None
    k = len(rows)
    width = 0.8 / k
    fig, ax = plt.subplots(figsize=(max(6.0, 1.3 * len(metrics) * max(1, k / 2)), 4.0))
    for i, r in enumerate(rows):
        xs = [j + (i - (k - 1) / 2) * width for j in range(len(metrics))]
        vals = [r.values[m].mean if m in r.values and r.values[m].mean is not None else float("nan") for m in metrics]
        errs = [r.values[m].std or 0.0 if m in r.values and r.values[m].std is not None else 0.0 for m in metrics]
        name = f"{r.model} · {r.label}" if r.label else f"{r.model} {r.variant_label}"
        ax.bar(xs, vals, width=width, yerr=errs, capsize=2, label=_short(f"{name} (n={r.n})", 60))
        if r.paper:
            px = [x for x, m in zip(xs, metrics) if r.paper.get(m)]
            py = [r.paper.get(m).percent for m in metrics if r.paper.get(m)]
            ax.scatter(px, py, marker="_", s=300, color="black", zorder=3,
                       label="paper" if i == 0 or not any(rr.paper for rr in rows[:i]) else None)
    ax.set_xticks(range(len(metrics)))
    ax.set_xticklabels(metrics)
    ax.set_ylabel("%")
    ax.set_title(f"{dataset}: ours (bars) vs paper (black marks)", fontsize=9)
    ax.legend(fontsize=7)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return fig


def write_plots(comparison: Comparison, out_dir: str | Path, curve_metric: str = "val/miou") -> list[Path]:
    """Every plot of a comparison into ``out_dir``: per-class bars per dataset, curves per block."""
    out_dir = Path(out_dir)
    written: list[Path] = []
    for ds in comparison.datasets():
        classes = comparison.class_columns.get(ds) or []
        rows = [r for r in comparison.rows_for(ds) if any(c in r.values for c in classes)]
        if classes and rows:
            written.append(per_class_bars(rows, classes, comparison.per_class_refs.get(ds),
                                          out_dir / f"per_class_iou_{_slug(ds)}.png", f"{ds}: per-class IoU"))
    blocks = OrderedDict.fromkeys(rec.block for row in comparison.rows for rec in row.runs)
    for block in blocks:
        p = sweep_curves(comparison, curve_metric, out_dir / f"curves_{_slug(block)}.png", block,
                         f"{curve_metric} — {block}")
        if p is not None:
            written.append(p)
    return written
