"""The paper-style comparison table: rows model × dataset × variant, columns the dataset's metrics.

Runs are grouped by configuration: two runs whose resolved configs are equal once the keys that do not
change the experiment are dropped (:data:`VOLATILE_KEYS`: paths, seed, logger, progress bar, ...) are
repeats of one configuration and give one row, the mean over the runs with the standard deviation
(``aggregate=mean``; ``aggregate=none`` keeps one row per run). Within one model × dataset × variant,
the config keys whose values differ between rows (a sweep's parameters) label the rows.

Each cell shows our value with the paper's number for the same metric and the difference, in percent
(points): ``52.10 (55.33, −3.23)``; a paper number reconstructed from a garbled table (``uncertain``) is
marked ``?``, a missing metric is ``–``. Failed and unfinished runs are not in the table; they are
listed with the reason.
"""

from __future__ import annotations

import json
import math
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import PurePath

import pandas as pd

from humanparse.compare.papers import PaperResults, PaperRow, RowRef, run_to_paper_metric, run_value_percent
from humanparse.compare.runs import RunRecord

# config keys (dotted prefixes) that do not make a different experiment
VOLATILE_KEYS = (
    "paths",
    "seed",
    "data.seed",
    "resume",
    "ckpt_path",
    "print_config",
    "tags",
    "task_name",
    "job_type",
    "logger",
    "callbacks",
    "hydra",
    "train",
    "test",
    "paper_ref",
    "optimized_metric",
    "data.root",
    "data.cache_dir",
    "data.num_workers",
    "data.pin_memory",
    "data.eval_batch_size",
    "trainer.default_root_dir",
    "trainer.log_every_n_steps",
    "trainer.enable_progress_bar",
)
# shown in their own columns, so never part of a row label
_IDENTITY_KEYS = (
    "model.name",
    "model.variant",
    "model.backbone",
    "data.name",
    "model.dataset",
    "data.synthetic",
    "model.net.encoder",
    "data.num_classes",
    "model.net.num_classes",
    "model.weights",
    "released",
)
# summary metric columns in this order; others follow alphabetically
CANONICAL_ORDER = (
    "pixel_acc",
    "mean_acc",
    "fg_acc",
    "precision",
    "recall",
    "f1",
    "miou",
    "fwiou",
    "app50",
    "app_vol",
    "pcp50",
    "apr50",
    "apr60",
    "apr70",
    "apr_vol",
    "bbox_map",
    "dp_ap",
    "dp_ap50",
    "dp_ap75",
    "dp_apm",
    "dp_apl",
    "dp_ar",
    "dp_ar50",
    "dp_ar75",
    "dp_arm",
    "dp_arl",
    "dp_gpsm_ap",
    "fps",
)
MINUS = "\u2212"


def flatten(cfg, prefix: str = "") -> dict[str, str]:
    """Nested config → ``{"model.optimizer.lr": "0.007", ...}`` (values JSON-encoded, lists kept whole)."""
    out: dict[str, str] = {}
    if isinstance(cfg, dict):
        for k, v in cfg.items():
            key = f"{prefix}.{k}" if prefix else str(k)
            if isinstance(v, dict) and v:
                out.update(flatten(v, key))
            else:
                out[key] = json.dumps(v, sort_keys=True, default=str)
    return out


def _volatile(key: str) -> bool:
    return any(key == v or key.startswith(v + ".") for v in VOLATILE_KEYS)


def experiment_config(cfg: dict) -> dict[str, str]:
    """The flattened config without :data:`VOLATILE_KEYS`: equal for repeats of one configuration."""
    return {k: v for k, v in flatten(cfg).items() if not _volatile(k)}


def fingerprint(cfg: dict) -> str:
    return json.dumps(experiment_config(cfg), sort_keys=True)


def _short_key(key: str) -> str:
    for p in ("model.net.", "model."):
        if key.startswith(p):
            return key[len(p) :]
    return key


def _short_value(v: str, key: str = "") -> str:
    try:
        x = json.loads(v)
    except (TypeError, ValueError):
        return v
    if key == "checkpoint" and isinstance(x, str):  # evaluation rows: <run folder>/<file>
        p = PurePath(x)
        return f"{p.parent.parent.name}/{p.name}"
    if isinstance(x, float):
        return f"{x:g}"
    if isinstance(x, list):
        return "[" + ",".join(str(i) for i in x) + "]"
    return str(x)


@dataclass
class Stat:
    mean: float | None
    std: float | None
    n: int

    @classmethod
    def of(cls, values: list[float | None]) -> Stat:
        vals = [v for v in values if v is not None]
        if not vals:
            return cls(None, None, 0)
        mean = sum(vals) / len(vals)
        std = math.sqrt(sum((v - mean) ** 2 for v in vals) / (len(vals) - 1)) if len(vals) > 1 else None
        return cls(mean, std, len(vals))


@dataclass
class Row:
    """One table row: a configuration (one or more runs) of a model on a dataset."""

    dataset: str
    model: str
    variant: str | None
    backbone: str | None
    label: str
    runs: list[RunRecord]
    stage: str  # "test" or "val": whose final metrics are shown
    split: str | None
    paper: PaperRow | None = None
    values: dict[str, Stat] = field(default_factory=dict)  # run metric name (no stage) -> percent stats

    @property
    def synthetic(self) -> bool:
        return any(r.synthetic for r in self.runs)

    @property
    def block(self) -> str:
        blocks = list(OrderedDict.fromkeys(r.block for r in self.runs))
        return blocks[0] if len(blocks) == 1 else " / ".join(blocks)

    @property
    def n(self) -> int:
        return len(self.runs)

    @property
    def released(self) -> str | None:
        """The authors' released checkpoint(s) the row's runs started from."""
        names = list(OrderedDict.fromkeys(r.released for r in self.runs if r.released))
        return " / ".join(names) if names else None

    @property
    def variant_label(self) -> str:
        parts = [self.variant or "–"]
        if self.label:
            parts.append(self.label)
        if self.released:
            parts.append(f"released {self.released}")
        text = " · ".join(parts)
        return text + (" [synthetic]" if self.synthetic else "")

    def delta(self, metric: str) -> float | None:
        ours = self.values.get(metric)
        ref = self.paper.get(metric) if self.paper else None
        if ours is None or ours.mean is None or ref is None:
            return None
        return ours.mean - ref.percent


@dataclass
class Comparison:
    """The comparison of a set of runs with the papers; render with :meth:`to_markdown` / :meth:`to_frame`."""

    rows: list[Row]
    skipped: list[tuple[RunRecord, str]]
    problems: list[str]
    columns: dict[str, list[str]]  # dataset -> summary metric columns
    class_columns: dict[str, list[str]]  # dataset -> per-class metric columns (``iou/<class>``)
    per_class_refs: dict[str, PaperRow]
    records: list[RunRecord]

    def datasets(self) -> list[str]:
        return list(OrderedDict.fromkeys(r.dataset for r in self.rows))

    def rows_for(self, dataset: str) -> list[Row]:
        return [r for r in self.rows if r.dataset == dataset]

    # -- rendering --------------------------------------------------------------------------------
    def to_markdown(self, per_class: bool = True) -> str:
        out: list[str] = []
        for ds in self.datasets():
            rows = self.rows_for(ds)
            out.append(_markdown_block(ds, rows, self.columns[ds]))
            if per_class and self.class_columns.get(ds):
                out.append(_markdown_per_class(ds, rows, self.class_columns[ds], self.per_class_refs.get(ds)))
        refs = _paper_footnotes(self.rows, self.per_class_refs if per_class else {})
        if refs:
            out.append("Paper rows:\n" + "\n".join(refs))
        if self.skipped:
            out.append(
                "Not in the table:\n"
                + "\n".join(f"- {r.name} ({r.source}): {r.status} — {why}" for r, why in self.skipped)
            )
        if self.problems:
            out.append("Problems:\n" + "\n".join(f"- {p}" for p in self.problems))
        if not self.rows:
            out.insert(0, "No finished runs to compare.")
        return "\n\n".join(out) + "\n"

    def to_frame(self) -> pd.DataFrame:
        """One line per row: identity columns, then per metric ``<m>``, ``<m>_std``, ``<m>_paper``,
        ``<m>_delta``, ``<m>_paper_uncertain`` (percent)."""
        lines = []
        for r in self.rows:
            d = {
                "dataset": r.dataset,
                "model": r.model,
                "variant": r.variant,
                "config": r.label,
                "backbone": r.backbone,
                "synthetic": r.synthetic,
                "block": r.block,
                "released": r.released,
                "group": r.runs[0].group,
                "job_type": r.runs[0].job_type,
                "sweep": r.runs[0].sweep,
                "n_runs": r.n,
                "runs": ";".join(x.name for x in r.runs),
                "stage": r.stage,
                "split": r.split,
                "paper_row": r.paper.label() if r.paper else None,
                "paper_split": r.paper.split if r.paper else None,
            }
            metrics = list(self.columns.get(r.dataset, [])) + list(self.class_columns.get(r.dataset, []))
            for m in metrics:
                s = r.values.get(m)
                ref = r.paper.get(m) if r.paper else None
                d[m] = s.mean if s else None
                d[f"{m}_std"] = s.std if s else None
                d[f"{m}_paper"] = ref.percent if ref else None
                d[f"{m}_delta"] = r.delta(m)
                d[f"{m}_paper_uncertain"] = ref.uncertain if ref else None
            lines.append(d)
        return pd.DataFrame(lines)

    def runs_frame(self) -> pd.DataFrame:
        """Every collected run, one line each (status, error, metrics as fractions)."""
        lines = []
        for rec in self.records:
            d = {
                "name": rec.name,
                "source": rec.source,
                "run_id": rec.run_id,
                "status": rec.status,
                "model": rec.model,
                "variant": rec.variant,
                "backbone": rec.backbone,
                "dataset": rec.dataset,
                "synthetic": rec.synthetic,
                "seed": rec.seed,
                "group": rec.group,
                "job_type": rec.job_type,
                "sweep": rec.sweep,
                "epochs": rec.epochs,
                "error": rec.error,
            }
            d.update(rec.metrics)
            lines.append(d)
        return pd.DataFrame(lines)


# --- building ------------------------------------------------------------------------------------------
def _stage(runs: list[RunRecord], prefix: str) -> str:
    if prefix in ("val", "test"):
        return prefix
    return "test" if any(k.startswith("test/") for r in runs for k in r.metrics) else "val"


def _ordered(names) -> list[str]:
    names = list(OrderedDict.fromkeys(names))
    known = [m for m in CANONICAL_ORDER if m in names]
    return known + sorted(m for m in names if m not in CANONICAL_ORDER)


def _class_order(dataset: str, names: list[str]) -> list[str]:
    try:
        from humanparse.data.meta import get_info

        keys = [f"iou/{k}" for k in get_info(dataset).class_keys]
    except KeyError:
        keys = []
    return [k for k in keys if k in names] + [k for k in names if k not in keys]


def _differing(flats: dict[tuple, dict[str, str]]) -> list[str]:
    keys = sorted(set().union(*flats.values())) if flats else []
    return [
        c for c in keys if c not in _IDENTITY_KEYS and len({f.get(c, "<unset>") for f in flats.values()}) > 1
    ]


def _labels(groups: dict[tuple, list[RunRecord]]) -> dict[tuple, str]:
    """Per group, the config keys whose values differ from the other groups of the same model/dataset/variant.

    The groups of one sweep (one multirun folder / wandb sweep) are told apart by the keys that differ
    *within that sweep* (its swept parameters), even when other runs of the same model share the log root;
    groups outside any sweep by the keys that differ among themselves.
    """
    by_family: dict[tuple, list[tuple]] = {}
    for key in groups:
        by_family.setdefault(key[:4], []).append(key)
    labels: dict[tuple, str] = {}
    for _family, keys in by_family.items():
        flats = {k: experiment_config(groups[k][0].config) for k in keys}
        by_sweep: dict[str | None, list[tuple]] = {}
        for k in keys:
            sweeps = {r.sweep for r in groups[k]}
            by_sweep.setdefault(sweeps.pop() if len(sweeps) == 1 else None, []).append(k)
        loose = list(by_sweep.pop(None, []))
        for members in list(by_sweep.values()):
            if len(members) < 2:  # a one-job sweep has nothing swept: compare it with the loose runs
                loose += members
                continue
            differing = _differing({k: flats[k] for k in members})
            for k in members:
                labels[k] = _label_text(differing, flats[k])
        differing = _differing({k: flats[k] for k in loose})
        for k in loose:
            labels[k] = _label_text(differing, flats[k])
    return labels


def _label_text(differing: list[str], flat: dict[str, str], limit: int = 6) -> str:
    parts = [f"{_short_key(c)}={_short_value(flat.get(c, 'unset'), c)}" for c in differing]
    return ", ".join(parts[:limit]) + (f" (+{len(parts) - limit} more)" if len(parts) > limit else "")


def build_comparison(
    records: list[RunRecord],
    papers: PaperResults,
    prefix: str = "auto",
    aggregate: str = "mean",
    metrics: list[str] | None = None,
    reference: str | list | None = None,
    datasets: list[str] | None = None,
    models: list[str] | None = None,
    include_synthetic: bool = True,
) -> Comparison:
    """Group, aggregate and join with the paper numbers (see the module docstring)."""
    if aggregate not in ("mean", "none"):
        raise ValueError(f"aggregate={aggregate!r}: choose mean or none")
    if prefix not in ("auto", "val", "test"):
        raise ValueError(f"prefix={prefix!r}: choose auto, val or test")
    skipped: list[tuple[RunRecord, str]] = []
    problems: list[str] = []
    groups: dict[tuple, list[RunRecord]] = OrderedDict()
    for rec in records:
        if datasets and rec.dataset not in datasets:
            continue
        if models and rec.model not in models:
            continue
        if rec.status != "finished":
            skipped.append((rec, rec.error or "not finished"))
            continue
        if not rec.model or not rec.dataset:
            skipped.append((rec, "no model/dataset recorded"))
            continue
        if rec.synthetic and not include_synthetic:
            skipped.append((rec, "synthetic data (include_synthetic=false)"))
            continue
        if not any(k.startswith(("val/", "test/")) for k in rec.metrics):
            skipped.append((rec, "finished without val/test metrics"))
            continue
        ident = rec.run_id if aggregate == "none" else fingerprint(rec.config)
        # (dataset, model, variant, kind) is the family whose rows are told apart by their config labels
        key = (rec.dataset, rec.model, rec.variant, rec.kind, rec.backbone, rec.synthetic, ident)
        groups.setdefault(key, []).append(rec)
    labels = _labels(groups)
    forced = None
    if reference:
        forced = reference if isinstance(reference, (list, tuple)) else [reference]
        forced = [RowRef.parse(r) for r in forced]

    rows: list[Row] = []
    for key, runs in groups.items():
        dataset, model, variant, _kind, backbone = key[:5]
        stage = _stage(runs, prefix)
        paper = None
        try:
            if forced:
                paper = papers.row(forced, dataset)
            else:
                paper = papers.reference_for(model, variant, dataset, runs[0].config.get("paper_ref"))
        except KeyError as e:
            problems.append(f"{runs[0].name}: {e.args[0]}")
        row = Row(
            dataset,
            model,
            variant,
            backbone,
            labels.get(key, ""),
            runs,
            stage,
            runs[0].splits.get(stage),
            paper,
        )
        names = OrderedDict.fromkeys(
            k[len(stage) + 1 :] for r in runs for k in r.metrics if k.startswith(stage + "/")
        )
        for m in names:
            row.values[m] = Stat.of([run_value_percent(m, r.metrics.get(f"{stage}/{m}")) for r in runs])
        rows.append(row)
    rows.sort(key=lambda r: (r.dataset, r.model, r.block, r.variant or "", r.label))

    columns: dict[str, list[str]] = {}
    class_columns: dict[str, list[str]] = {}
    per_class_refs: dict[str, PaperRow] = {}
    for ds in OrderedDict.fromkeys(r.dataset for r in rows):
        ds_rows = [r for r in rows if r.dataset == ds]
        present = [m for r in ds_rows for m in r.values] + [
            m for r in ds_rows if r.paper for m in r.paper.entries
        ]
        summary = [m for m in present if "/" not in m]
        if metrics:
            columns[ds] = [run_to_paper_metric(m) for m in metrics]
        else:
            columns[ds] = _ordered(summary)
        class_columns[ds] = _class_order(
            ds, list(OrderedDict.fromkeys(m for m in present if m.startswith("iou/")))
        )
        ref = next(
            (r.paper for r in ds_rows if r.paper and any(m.startswith("iou/") for m in r.paper.entries)), None
        )
        try:
            ref = ref or papers.per_class_reference(ds)
        except KeyError as e:
            problems.append(str(e.args[0]))
        if ref is not None:
            per_class_refs[ds] = ref
            if class_columns[ds]:
                class_columns[ds] = _class_order(
                    ds,
                    list(
                        OrderedDict.fromkeys(
                            class_columns[ds] + [m for m in ref.entries if m.startswith("iou/")]
                        )
                    ),
                )
    return Comparison(rows, skipped, problems, columns, class_columns, per_class_refs, list(records))


# --- markdown -----------------------------------------------------------------------------------------
def _fmt(v: float | None, digits: int = 2) -> str:
    return "–" if v is None else f"{v:.{digits}f}"


def _signed(v: float) -> str:
    s = f"{abs(v):.2f}"
    return ("+" if v >= 0 else MINUS) + s


def format_cell(stat: Stat | None, ref, with_paper: bool = True) -> str:
    ours = (
        "–"
        if stat is None or stat.mean is None
        else _fmt(stat.mean) + (f"±{stat.std:.2f}" if stat.std is not None else "")
    )
    if not with_paper or ref is None:
        return ours
    paper = _fmt(ref.percent) + ("?" if ref.uncertain else "")
    if stat is None or stat.mean is None:
        return f"{ours} ({paper})"
    return f"{ours} ({paper}, {_signed(stat.mean - ref.percent)})"


def _row_split(r: Row) -> str:
    split = r.split or "?"
    if r.paper and r.paper.split and r.split and r.paper.split != r.split:
        return f"{split}† (paper: {r.paper.split})"
    return split


def _markdown_block(dataset: str, rows: list[Row], columns: list[str]) -> str:
    stages = sorted({r.stage for r in rows})
    head = (
        f"### {dataset} — final {'/'.join(stages)} metrics (%): ours (paper, Δ = ours − paper); "
        "mean±std over repeated runs of one config"
    )
    cols = [
        "model",
        "variant · config",
        "backbone",
        "block (group · job_type)",
        "n",
        "split",
        *columns,
        "paper row",
    ]
    lines = [head, "", "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        cells = [r.model, r.variant_label, r.backbone or "–", r.block, str(r.n), _row_split(r)]
        cells += [format_cell(r.values.get(m), r.paper.get(m) if r.paper else None) for m in columns]
        cells.append(r.paper.label() if r.paper else "–")
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines)


def _markdown_per_class(
    dataset: str, rows: list[Row], classes: list[str], default_ref: PaperRow | None
) -> str:
    names = [c[len("iou/") :] for c in classes]
    lines = [
        f"### {dataset} — per-class IoU (%): ours (Δ to the row's own paper row, listed below)",
        "",
        "| row | " + " | ".join(names) + " |",
        "|" + "---|" * (len(names) + 1),
    ]
    for r in rows:
        # deltas only against the row's own paper row (or the one forced with reference=): another model's
        # per-class row is printed below for the eye, never subtracted
        ref = r.paper if (r.paper and any(c in r.paper.entries for c in classes)) else None
        cells = []
        for c in classes:
            s = r.values.get(c)
            e = ref.get(c) if ref else None
            if s is None or s.mean is None:
                cells.append("–")
            elif e is None:
                cells.append(_fmt(s.mean))
            else:
                cells.append(f"{_fmt(s.mean)} ({_signed(s.mean - e.percent)})")
        lines.append(f"| {r.model} {r.variant_label} (n={r.n}) | " + " | ".join(cells) + " |")
    shown = []
    for r in rows:
        if (
            r.paper
            and any(c in r.paper.entries for c in classes)
            and r.paper.label() not in [p.label() for p in shown]
        ):
            shown.append(r.paper)
    if default_ref is not None and default_ref.label() not in [p.label() for p in shown]:
        shown.append(default_ref)
    for p in shown:
        cells = [
            (_fmt(p.get(c).percent) + ("?" if p.get(c).uncertain else "")) if p.get(c) else "–"
            for c in classes
        ]
        lines.append(f"| paper: {p.label()} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _paper_footnotes(rows: list[Row], per_class_refs: dict[str, PaperRow]) -> list[str]:
    out: list[str] = []
    seen: set[str] = set()
    for p in [r.paper for r in rows if r.paper] + list(per_class_refs.values()):
        if p.label() in seen:
            continue
        seen.add(p.label())
        notes = "; ".join(p.notes())
        backbones = ", ".join(sorted({e.backbone for e in p.entries.values()}))
        out.append(f"- {p.label()}: split {p.split}, backbone {backbones}" + (f" — {notes}" if notes else ""))
    return out
