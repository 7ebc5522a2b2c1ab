"""The numbers the five papers print, as package data, and how run metrics join with them.

``resources/paper_results.yaml`` holds every number the papers print (one entry per printed
number, with the ``uncertain`` flag for reconstructed table cells and the paper's caveats in ``notes``).
``resources/paper_refs.yaml`` says which printed row a run of a given model/variant is compared with.

Metric names join by one rule: a run logs ``<stage>/<name>`` with the same lowercase
names as the paper file, except per-class IoU, which the paper file calls ``per_class_iou.<class>`` and
runs log as ``iou/<class>`` (:func:`paper_to_run_metric`, :func:`run_to_paper_metric`). Values are
compared in percent: run metrics are fractions (×100), paper entries printed as fractions
(``unit: fraction``) are converted too; ``fps`` stays frames per second.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import yaml

RESULTS_FILE = "paper_results.yaml"
REFS_FILE = "paper_refs.yaml"
PER_CLASS_PAPER = "per_class_iou."
PER_CLASS_RUN = "iou/"
# metrics that are not percentages (never scaled)
NON_PERCENT = ("fps",)


def paper_to_run_metric(name: str) -> str:
    """``per_class_iou.hat`` → ``iou/hat``; every other name is shared (``miou``, ``app50``, ``dp_ap``)."""
    return PER_CLASS_RUN + name[len(PER_CLASS_PAPER) :] if name.startswith(PER_CLASS_PAPER) else name


def run_to_paper_metric(name: str) -> str:
    """``iou/hat`` (or ``val/iou/hat``, ``test/iou/hat``) → ``per_class_iou.hat``; ``val/miou`` → ``miou``."""
    for stage in ("val/", "test/", "train/"):
        if name.startswith(stage):
            name = name[len(stage) :]
            break
    return PER_CLASS_PAPER + name[len(PER_CLASS_RUN) :] if name.startswith(PER_CLASS_RUN) else name


def run_value_percent(metric: str, value: float | None) -> float | None:
    """A run's metric value on the scale of the paper tables (fractions → percent)."""
    if value is None:
        return None
    return float(value) if run_to_paper_metric(metric) in NON_PERCENT else 100.0 * float(value)


@dataclass(frozen=True)
class PaperEntry:
    """One printed number (fields as in ``paper_results.yaml``)."""

    paper: str
    table: str
    method: str
    backbone: str
    dataset: str
    split: str
    metric: str
    value: float
    unit: str | None = None
    value_max: float | None = None
    alpha: float | None = None
    beta: float | None = None
    uncertain: bool = False
    notes: str = ""

    @property
    def percent(self) -> float:
        """The value on the percent scale of the tables (``unit: fraction`` entries ×100)."""
        return 100.0 * self.value if self.unit == "fraction" else float(self.value)

    @property
    def run_metric(self) -> str:
        """The metric name a run logs for this entry (without the ``val/``/``test/`` stage)."""
        return paper_to_run_metric(self.metric)

    @property
    def row(self) -> tuple[str, str, str, str]:
        return (self.paper, self.table, self.method, self.backbone)


@dataclass(frozen=True)
class RowRef:
    """A printed table row: ``paper``, ``table``, ``method`` and, where a table repeats a method with
    several backbones, ``backbone``."""

    paper: str
    table: str
    method: str
    backbone: str | None = None

    @classmethod
    def parse(cls, spec: str | Mapping | RowRef) -> RowRef:
        """From ``{paper, table, method[, backbone]}`` or ``"paper:table:method[:backbone]"``."""
        if isinstance(spec, RowRef):
            return spec
        if isinstance(spec, str):
            parts = spec.split(":", 3)
            if len(parts) < 3:
                raise ValueError(f"paper row {spec!r}: expected 'paper:table:method[:backbone]'")
            return cls(parts[0], parts[1], parts[2], parts[3] if len(parts) > 3 else None)
        try:
            return cls(
                str(spec["paper"]),
                str(spec["table"]),
                str(spec["method"]),
                str(spec["backbone"]) if spec.get("backbone") else None,
            )
        except KeyError as e:
            raise ValueError(
                f"paper row {dict(spec)!r} lacks {e.args[0]!r} (needs paper, table, method)"
            ) from None

    def label(self) -> str:
        b = f", {self.backbone}" if self.backbone else ""
        return f"{self.paper} T{self.table} '{self.method}'{b}"


@dataclass
class PaperRow:
    """The entries of one or more printed rows, merged by metric name (first row wins)."""

    refs: list[RowRef]
    entries: dict[str, PaperEntry] = field(default_factory=dict)  # run metric name -> entry

    def get(self, run_metric: str) -> PaperEntry | None:
        return self.entries.get(run_metric)

    @property
    def split(self) -> str | None:
        splits = {e.split for e in self.entries.values()}
        return splits.pop() if len(splits) == 1 else (", ".join(sorted(splits)) if splits else None)

    def label(self) -> str:
        return " + ".join(r.label() for r in self.refs)

    def notes(self) -> list[str]:
        """The distinct clauses of the entries' notes (the file repeats row-level notes per metric)."""
        seen: list[str] = []
        for e in self.entries.values():
            parts = [p.strip() for p in e.notes.split(";") if p.strip()]
            if e.uncertain:
                parts.append("uncertain: reconstructed from a garbled table")
            for p in parts:
                if p not in seen:
                    seen.append(p)
        return seen

    def __bool__(self) -> bool:
        return bool(self.entries)


class PaperResults:
    """All printed numbers with lookups by row, dataset and metric."""

    def __init__(
        self, entries: list[PaperEntry], counts: dict[str, int], refs: dict | None = None, source: str = ""
    ):
        self.entries = entries
        self.counts = counts
        self.refs = refs or {"models": {}, "per_class": {}}
        self.source = source

    def __len__(self) -> int:
        return len(self.entries)

    def select(self, **conditions) -> list[PaperEntry]:
        """Entries whose fields equal every given value (``None`` values are ignored)."""
        conds = {k: v for k, v in conditions.items() if v is not None}
        return [e for e in self.entries if all(str(getattr(e, k)) == str(v) for k, v in conds.items())]

    def row(self, refs: RowRef | Iterable[RowRef | str | Mapping], dataset: str | None = None) -> PaperRow:
        """Merge the entries of the given rows (on ``dataset`` if given); a row that matches no entry is
        an error naming it, so a typo in a preset does not silently drop the paper numbers."""
        if isinstance(refs, (RowRef, str, Mapping)):
            refs = [refs]
        parsed = [RowRef.parse(r) for r in refs]
        out = PaperRow(parsed)
        for ref in parsed:
            found = self.select(
                paper=ref.paper, table=ref.table, method=ref.method, backbone=ref.backbone, dataset=dataset
            )
            if not found:
                where = f" on {dataset}" if dataset else ""
                raise KeyError(
                    f"no printed numbers for {ref.label()}{where} in {self.source or RESULTS_FILE}"
                )
            for e in found:
                out.entries.setdefault(e.run_metric, e)
        return out

    def metrics_for(self, dataset: str) -> list[str]:
        """Run metric names the papers print for ``dataset`` (summary metrics, without per-class IoU)."""
        names: list[str] = []
        for e in self.entries:
            if (
                e.dataset == dataset
                and not e.metric.startswith(PER_CLASS_PAPER)
                and e.run_metric not in names
            ):
                names.append(e.run_metric)
        return names

    def reference_for(
        self, model: str | None, variant: str | None, dataset: str | None, run_refs=None
    ) -> PaperRow | None:
        """The paper row a run is compared with (lookup order in ``paper_refs.yaml``); ``None`` if none."""
        if not dataset:
            return None
        spec = _refs_for_dataset(run_refs, dataset)
        if spec is None and model:
            models = self.refs.get("models", {})
            keys = {str(k).lower(): v for k, v in models.items()}
            for key in ([f"{model}:{variant}".lower()] if variant else []) + [str(model).lower()]:
                if key in keys and dataset in (keys[key] or {}):
                    spec = keys[key][dataset]
                    break
        if not spec:
            return None
        return self.row(spec, dataset)

    def per_class_reference(self, dataset: str) -> PaperRow | None:
        spec = (self.refs.get("per_class") or {}).get(dataset)
        return self.row(spec, dataset) if spec else None


def _refs_for_dataset(run_refs, dataset: str):
    """A run config's ``paper_ref``: a list of rows (for its own dataset) or a dict ``dataset -> rows``."""
    if not run_refs:
        return None
    if isinstance(run_refs, Mapping) and not {"paper", "table", "method"} <= set(run_refs):
        return run_refs.get(dataset)
    return run_refs


def _resource_text(name: str) -> tuple[str, str]:
    path = resources.files("humanparse") / "resources" / name
    return path.read_text(encoding="utf-8"), str(path)


@functools.lru_cache(maxsize=4)
def load_paper_results(path: str | None = None, refs_path: str | None = None) -> PaperResults:
    """Load the packaged paper numbers (or ``path``), and the run→row table (or ``refs_path``)."""
    if path is None:
        text, source = _resource_text(RESULTS_FILE)
    else:
        source = str(path)
        text = Path(path).read_text(encoding="utf-8")
    data = yaml.safe_load(text)
    if not isinstance(data, dict) or "entries" not in data:
        raise ValueError(f"{source}: not a paper-results file (no 'entries')")
    entries = []
    allowed = set(PaperEntry.__dataclass_fields__)
    for i, raw in enumerate(data["entries"]):
        unknown = set(raw) - allowed
        if unknown:
            raise ValueError(f"{source}: entry {i} has unknown field(s) {sorted(unknown)}")
        raw = dict(raw)
        raw["table"] = str(raw["table"])
        raw["uncertain"] = bool(raw.get("uncertain", False))
        raw.setdefault("notes", "")
        entries.append(PaperEntry(**raw))
    refs_text = Path(refs_path).read_text(encoding="utf-8") if refs_path else _resource_text(REFS_FILE)[0]
    refs = yaml.safe_load(refs_text) or {}
    return PaperResults(entries, dict(data.get("counts") or {}), refs, source)
