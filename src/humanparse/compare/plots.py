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


def series_labels(rows: list[Row]) -> list[str]:
    """Legend entries that name what differs between the rows: the model and variant only when they differ,
    the config keys that differ (the row label), the block when that is all that differs; unique."""
    models = {r.model for r in rows}
    variants = {r.variant for r in rows}
    out = []
    for r in rows:
        parts = []
        if len(models) > 1:
            parts.append(r.model)
        if len(variants) > 1 and r.variant:
            parts.append(r.variant)
        if r.label:
            parts.append(r.label)
        out.append(" · ".join(parts))
    for i, r in enumerate(rows):
        if not out[i] or out.count(out[i]) > 1:
            extra = r.block if len({x.block for x in rows}) > 1 else (r.runs[0].name if r.runs else "")
            out[i] = " · ".join(p for p in (out[i], extra) if p) or r.model
    return [_short(f"{t} (n={r.n})", 90) for t, r in zip(out, rows)]


def per_class_figure(rows: list[Row], classes: list[str], paper: PaperRow | None, title: str = ""):
    """Per-class IoU of every row, the paper's per-class row as a grey dashed line; one figure at a screen's
    width whatever the number of rows (markers per row joined by thin lines, bars for up to two rows)."""
    names = [c[len("iou/") :] if c.startswith("iou/") else c for c in classes]
    labels = series_labels(rows)
    series = []
    for r, label in zip(rows, labels):
        vals = [
            (r.values.get(c).mean if r.values.get(c) and r.values.get(c).mean is not None else float("nan"))
            for c in classes
        ]
        series.append((label, vals))
    fig, ax = plt.subplots(figsize=(min(14.0, max(8.0, 0.45 * len(classes) + 2)), 5.0))
    xs = list(range(len(classes)))
    if len(series) <= 2:
        width = 0.8 / max(1, len(series))
        for i, (label, vals) in enumerate(series):
            ax.bar([x + (i - (len(series) - 1) / 2) * width for x in xs], vals, width=width, label=label)
    else:
        markers = "osD^v<>pPX*h"
        for i, (label, vals) in enumerate(series):
            ax.plot(xs, vals, marker=markers[i % len(markers)], ms=5, lw=0.8, label=label)
    if paper is not None:
        vals = [paper.get(c).percent if paper.get(c) else float("nan") for c in classes]
        ax.plot(
            xs,
            vals,
            color="0.35",
            ls="--",
            marker="_",
            ms=14,
            lw=1.2,
            label=_short("paper: " + paper.label(), 90),
        )
    ax.set_xticks(xs)
    ax.set_xticklabels(names, rotation=45, ha="right", fontsize=8)
    ax.set_xlim(-0.6, len(classes) - 0.4)
    ax.set_ylabel("IoU (%)")
    ax.set_ylim(0, 100)
    ax.set_title(title or "per-class IoU")
    ax.grid(axis="y", alpha=0.3)
    ncol = 1 if len(series) < 5 else 2
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.28), ncol=ncol, frameon=False)
    fig.tight_layout()
    return fig


def _save(fig, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def per_class_bars(
    rows: list[Row], classes: list[str], paper: PaperRow | None, path: str | Path, title: str = ""
) -> Path:
    """:func:`per_class_figure` written to ``path`` (PNG)."""
    return _save(per_class_figure(rows, classes, paper, title), path)


LOSS_KEYS = ("train/loss_epoch", "train/loss")


def sweep_curves_figure(comparison: Comparison, metric: str, block: str, title: str = ""):
    """``metric`` (e.g. ``val/miou``) and the training loss against the epoch for every run of ``block``;
    ``None`` without history. Legends name what differs between the runs (their row labels, the seed)."""
    row_of = {id(rec): row for row in comparison.rows for rec in row.runs}
    runs = [rec for rec in comparison.records if rec.block == block and rec.status == "finished"]
    rows = list(OrderedDict((id(row_of[id(r)]), row_of[id(r)]) for r in runs if id(r) in row_of).values())
    names = dict(zip((id(r) for r in rows), series_labels(rows))) if rows else {}
    fig, (ax, ax_loss) = plt.subplots(1, 2, figsize=(12, 4.6))
    drawn, max_epoch, loss_drawn = 0, 0, 0
    for rec in runs:
        hist = rec.history([metric, *LOSS_KEYS])
        if hist.empty:
            continue
        row = row_of.get(id(rec))
        base = (
            names.get(id(row), rec.variant or rec.model or "")
            if row is not None
            else (rec.variant or rec.model or "")
        )
        base = base.rsplit(" (n=", 1)[0]
        label = _short(
            f"{base}, seed={rec.seed}" if rec.seed is not None and row is not None and row.n > 1 else base, 80
        )
        if metric in hist:
            h = hist.dropna(subset=[metric])
            if len(h):
                line = ax.plot(
                    h["epoch"],
                    [run_value_percent(metric, v) for v in h[metric]],
                    marker="o",
                    ms=3,
                    label=label,
                )
                drawn += 1
                max_epoch = max(max_epoch, int(h["epoch"].max()))
                colour = line[0].get_color()
            else:
                colour = None
        else:
            colour = None
        loss_key = next((k for k in LOSS_KEYS if k in hist and hist[k].notna().any()), None)
        if loss_key:
            h = hist.dropna(subset=[loss_key])
            ax_loss.plot(h["epoch"], h[loss_key], marker="o", ms=3, label=label, color=colour)
            loss_drawn += 1
            max_epoch = max(max_epoch, int(h["epoch"].max()))
    if not drawn and not loss_drawn:
        plt.close(fig)
        return None
    for a in (ax, ax_loss):
        a.set_xlabel("epoch")
        if max_epoch <= 20:
            a.set_xticks(range(max_epoch + 1))
        else:
            a.xaxis.set_major_locator(MaxNLocator(integer=True))
        a.set_xlim(-0.5, max_epoch + 0.5)  # a one-epoch run is one point at epoch 0, not a ±0.045 axis
        a.grid(alpha=0.3)
    ax.set_ylabel(f"{metric} (%)" if run_value_percent(metric, 1.0) == 100.0 else metric)
    ax.set_title(f"{metric}", fontsize=9)
    ax_loss.set_ylabel("training loss (epoch mean)")
    ax_loss.set_title("training loss" if loss_drawn else "training loss (not logged)", fontsize=9)
    handles, labels = (ax if drawn else ax_loss).get_legend_handles_labels()
    fig.suptitle(title or block, fontsize=10)
    fig.legend(handles, labels, fontsize=7, loc="center right", frameon=False)
    fig.tight_layout()
    width = max((len(t) for t in labels), default=10) * 0.055 + 0.5  # inches the legend needs on the right
    fig.set_size_inches(12 + width, 4.6)
    fig.subplots_adjust(right=12 / (12 + width) - 0.01)
    return fig


def sweep_curves(
    comparison: Comparison, metric: str, path: str | Path, block: str, title: str = ""
) -> Path | None:
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
    fig, ax = plt.subplots(figsize=(min(14.0, max(6.0, 1.3 * len(metrics) * max(1, k / 3))), 4.0))
    for i, (r, label) in enumerate(zip(rows, series_labels(rows))):
        xs = [j + (i - (k - 1) / 2) * width for j in range(len(metrics))]
        vals = [
            r.values[m].mean if m in r.values and r.values[m].mean is not None else float("nan")
            for m in metrics
        ]
        errs = [
            r.values[m].std or 0.0 if m in r.values and r.values[m].std is not None else 0.0 for m in metrics
        ]
        ax.bar(xs, vals, width=width, yerr=errs, capsize=2, label=label)
        if r.paper:
            px = [x for x, m in zip(xs, metrics) if r.paper.get(m)]
            py = [r.paper.get(m).percent for m in metrics if r.paper.get(m)]
            ax.scatter(
                px,
                py,
                marker="_",
                s=300,
                color="black",
                zorder=3,
                label="paper" if i == 0 or not any(rr.paper for rr in rows[:i]) else None,
            )
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
            written.append(
                per_class_bars(
                    rows,
                    classes,
                    comparison.per_class_refs.get(ds),
                    out_dir / f"per_class_iou_{_slug(ds)}.png",
                    f"{ds}: per-class IoU",
                )
            )
    blocks = OrderedDict.fromkeys(rec.block for row in comparison.rows for rec in row.runs)
    for block in blocks:
        p = sweep_curves(
            comparison,
            curve_metric,
            out_dir / f"curves_{_slug(block)}.png",
            block,
            f"{curve_metric} — {block}",
        )
        if p is not None:
            written.append(p)
    return written
