"""Finished runs as one record type, whichever source they come from.

A :class:`RunRecord` holds what the comparison needs: the run's identity (model, variant, backbone,
dataset, splits, seed), its status, its final metrics (``val/...``, ``test/...`` fractions, as in
``metrics.json``), its resolved config (for telling the configs of a sweep apart and for spotting repeated
runs of one config), its wandb-style block (``group`` = ``<model>-<data>``, ``job_type``) and a loader for its
per-epoch history. :func:`collect_local` reads Hydra output folders; :mod:`.wandb_source` builds the same
records from the wandb API.

Local run folder (written by ``humanparse.train`` / ``humanparse.evaluate``, README "Runs")::

    <run>/metrics.json                  status, model, variant, backbone, dataset, splits, seed, metrics, error
    <run>/csv/version_N/hparams.yaml    the resolved config (also what the wandb run holds)
    <run>/csv/version_N/metrics.csv     per-epoch history (one version per (re)start)
    <run>/run_config.yaml, .hydra/      the composed config; .hydra/hydra.yaml says single run or multirun
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import yaml

log = logging.getLogger(__name__)

METRICS_JSON = "metrics.json"
RUN_CONFIG = "run_config.yaml"
STAGES = ("val/", "test/", "train/")
# folders never searched for runs (they hold no run of their own)
_SKIP_DIRS = {"wandb", "checkpoints", ".hydra", ".hydra_resume", "csv", "__pycache__"}


@dataclass
class RunRecord:
    """One run, normalised. ``metrics`` are fractions keyed ``<stage>/<name>`` (``None`` = NaN/absent)."""

    source: str  # "local" | "wandb"
    run_id: str  # run folder, or wandb "entity/project/id"
    name: str
    status: str  # finished | failed | incomplete | unreadable (a damaged file; ``error`` says which)
    model: str | None = None
    variant: str | None = None
    backbone: str | None = None
    dataset: str | None = None
    synthetic: bool = False
    splits: dict = field(default_factory=dict)
    seed: int | None = None
    metrics: dict[str, float | None] = field(default_factory=dict)
    config: dict = field(default_factory=dict)
    group: str | None = None
    job_type: str | None = None
    sweep: str | None = None  # the multirun folder / wandb sweep id shared by the jobs of one sweep
    epochs: int | None = None
    error: str | None = None
    kind: str = "train"  # train | evaluation
    released: str | None = None  # the authors' released checkpoint the weights started from (file name)
    history_loader: Callable[[list[str] | None], pd.DataFrame] | None = field(default=None, repr=False)

    @property
    def block(self) -> str:
        """The wandb-style block a run belongs to: ``<group> · <job_type>`` (the jobs of a sweep share it).
        The multirun folder / wandb sweep id stays in :attr:`sweep` so local and wandb runs give one table."""
        return f"{self.group or '?'} · {self.job_type or '?'}"

    def history(self, keys: list[str] | None = None) -> pd.DataFrame:
        """Per-epoch history (``epoch`` column plus the requested metric columns); empty if none."""
        if self.history_loader is None:
            return pd.DataFrame()
        try:
            return self.history_loader(keys)
        except Exception as e:  # noqa: BLE001 - a broken history must not stop the table
            log.warning("%s: could not read the history (%s)", self.run_id, e)
            return pd.DataFrame()


def clean_number(v) -> float | None:
    """JSON/CSV/wandb value → float, NaN/inf/None/non-numbers → None."""
    if v is None or isinstance(v, bool):
        return None
    if isinstance(v, str):
        try:
            v = float(v)
        except ValueError:
            return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(f) or math.isinf(f) else f


def select_metrics(values: dict) -> dict[str, float | None]:
    """Stage-prefixed metrics, without Lightning's per-step duplicates: the rule ``metrics.json`` is written
    with (:func:`humanparse.utils.run.collect_metrics`), applied to a wandb summary too."""
    from humanparse.utils.run import collect_metrics

    return {
        k: clean_number(v)
        for k, v in collect_metrics({k: v for k, v in values.items() if isinstance(k, str)}, STAGES).items()
    }


def get_path(cfg: dict, dotted: str, default=None):
    node = cfg
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return default
        node = node[part]
    return node


def record_from_config(
    source: str, run_id: str, name: str, status: str, config: dict, metrics: dict, **extra
) -> RunRecord:
    """A record whose identity comes from the resolved run config (``model.name``, ``data.name``, ...)."""
    model = get_path(config, "model.name")
    dataset = get_path(config, "data.name")
    rec = RunRecord(
        source=source,
        run_id=run_id,
        name=name,
        status=status,
        model=model,
        variant=get_path(config, "model.variant"),
        backbone=get_path(config, "model.backbone"),
        dataset=dataset,
        synthetic=bool(get_path(config, "data.synthetic", False)),
        splits={s: get_path(config, f"data.{s}_split") for s in ("train", "val", "test")},
        seed=get_path(config, "seed"),
        metrics=select_metrics(metrics),
        config=config,
        group=get_path(config, "logger.wandb.group") or (f"{model}-{dataset}" if model and dataset else None),
        job_type=get_path(config, "job_type"),
        released=Path(str(get_path(config, "model.weights"))).name
        if get_path(config, "model.weights")
        else None,
    )
    for k, v in extra.items():
        setattr(rec, k, v)
    return rec


# --- local Hydra output folders ----------------------------------------------------------------------
def _version_dirs(run_dir: Path) -> list[Path]:
    found = []
    for p in (run_dir / "csv").glob("version_*"):
        m = re.fullmatch(r"version_(\d+)", p.name)
        if m and p.is_dir():
            found.append((int(m.group(1)), p))
    return [p for _, p in sorted(found)]


def load_local_config(run_dir: Path) -> dict:
    """The run's resolved config: the CSV logger's ``hparams.yaml`` (the resolved config the run logged, the
    same the wandb run holds), else ``run_config.yaml`` / ``.hydra/config.yaml`` resolved where possible."""
    for v in reversed(_version_dirs(run_dir)):
        hp = v / "hparams.yaml"
        if hp.is_file():
            data = yaml.safe_load(hp.read_text()) or {}
            if isinstance(data, dict) and data:
                return data
    for candidate in (run_dir / RUN_CONFIG, run_dir / ".hydra" / "config.yaml"):
        if candidate.is_file():
            from omegaconf import OmegaConf

            import humanparse.utils.resolvers  # noqa: F401  (the configs use ${hp.*})

            cfg = OmegaConf.load(candidate)
            try:
                return OmegaConf.to_container(cfg, resolve=True)
            except Exception:  # noqa: BLE001 - ${hydra:...} and friends cannot resolve outside the job
                return OmegaConf.to_container(cfg, resolve=False)
    return {}


def _hydra_mode(run_dir: Path) -> tuple[bool, str | None]:
    """(ran inside a multirun, the multirun folder name) from ``.hydra/hydra.yaml``."""
    path = run_dir / ".hydra" / "hydra.yaml"
    if not path.is_file():
        return False, None
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except Exception:  # noqa: BLE001 - a damaged hydra.yaml: treat as a single run
        return False, None
    if not isinstance(data, dict) or not isinstance(data.get("hydra") or {}, dict):
        return False, None
    multirun = str((data.get("hydra") or {}).get("mode", "")).upper().endswith("MULTIRUN")
    return multirun, (run_dir.parent.name if multirun else None)


def load_local_history(run_dir: Path, keys: list[str] | None = None) -> pd.DataFrame:
    """``csv/version_*/metrics.csv`` of a run concatenated in version order (a resumed run continues in
    a new version), one row per (epoch, logged group); later versions win for the same epoch and key."""
    frames = []
    for v in _version_dirs(run_dir):
        f = v / "metrics.csv"
        if f.is_file() and f.stat().st_size:
            df = pd.read_csv(f)
            df["_version"] = int(v.name.split("_")[1])
            frames.append(df)
    if not frames:
        return pd.DataFrame()
    df = pd.concat(frames, ignore_index=True)
    if "epoch" not in df:
        return pd.DataFrame()
    cols = [c for c in (keys or [c for c in df.columns if c.startswith(STAGES)]) if c in df.columns]
    df = (
        df[["epoch", "_version", *cols]].dropna(subset=cols, how="all")
        if cols
        else df[["epoch", "_version"]].iloc[:0]
    )
    # one row per epoch: the last non-null value of each column, the latest version winning
    out = df.sort_values(["epoch", "_version"], kind="stable").groupby("epoch", as_index=False).last()
    return out.drop(columns="_version").reset_index(drop=True)


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def read_local_run(run_dir: Path, root: Path | None = None) -> RunRecord:
    """One local run folder → record (an unreadable or missing ``metrics.json`` gives status ``incomplete``
    with the reason in ``error``)."""
    run_dir = Path(run_dir)
    name = (
        str(run_dir.relative_to(root)) if root is not None and run_dir.is_relative_to(root) else str(run_dir)
    )
    unreadable: list[
        str
    ] = []  # a damaged file makes the run "unreadable" (listed with the reason), never a crash
    try:
        config = load_local_config(run_dir)
    except Exception as e:  # noqa: BLE001 - malformed YAML, binary junk, a half-written file of a killed run
        config = {}
        unreadable.append(f"config: {type(e).__name__}: {_first_line(e)}")
    if not isinstance(config, dict):
        unreadable.append(f"config is a {type(config).__name__}, not a mapping")
        config = {}
    multirun, sweep = _hydra_mode(run_dir)
    mpath = run_dir / METRICS_JSON
    record: dict = {}
    error = None
    if mpath.is_file():
        try:
            record = json.loads(mpath.read_text())
        except (ValueError, OSError) as e:
            unreadable.append(f"{mpath}: unreadable metrics.json ({_first_line(e)})")
            record = {}
        if not isinstance(record, dict):
            unreadable.append(f"{mpath}: not a JSON object (a {type(record).__name__})")
            record = {}
        if not isinstance(record.get("metrics", {}), dict):
            unreadable.append(f"{mpath}: 'metrics' is a {type(record['metrics']).__name__}, not an object")
            record = {k: v for k, v in record.items() if k != "metrics"}
    else:
        error = f"{mpath}: missing (the run is still going, or died before writing it)"
    status = str(record.get("status") or "incomplete")
    if status not in ("finished", "failed"):
        status = "incomplete"
        error = error or f"{mpath}: status {record.get('status')!r}"
    if unreadable:
        status, error = "unreadable", "; ".join(unreadable)
    rec = record_from_config("local", str(run_dir), name, status, config, record.get("metrics") or {})
    # metrics.json is the authority on the run's identity (it also covers evaluation folders)
    for key in ("model", "variant", "backbone", "dataset"):
        if record.get(key) is not None:
            setattr(rec, key, record[key])
    if "synthetic" in record:
        rec.synthetic = bool(record["synthetic"])
    if isinstance(record.get("splits"), dict):
        rec.splits = dict(record["splits"])
    if record.get("seed") is not None:
        rec.seed = record["seed"]
    rec.epochs = record.get("epochs")
    if isinstance(record.get("released_weights"), dict):
        rec.released = record["released_weights"].get("name") or rec.released
    rec.error = error if unreadable else (record.get("error") or error)
    if record.get("kind") == "evaluation":
        rec.kind = "evaluation"
        rec.job_type = "eval"
        split = record.get("split")
        rec.splits = {"val": split, "test": split}
        # an evaluation is identified by the checkpoint it scored and the split
        rec.config = {"checkpoint": record.get("checkpoint"), "split": split, "released": rec.released}
    if rec.group is None and rec.model and rec.dataset:
        rec.group = f"{rec.model}-{rec.dataset}"
    if multirun:
        rec.sweep = sweep
        if rec.job_type in (None, "train"):
            rec.job_type = "sweep"
    rec.job_type = rec.job_type or "train"
    rec.history_loader = lambda keys, d=run_dir: load_local_history(d, keys)
    return rec


def find_run_dirs(root: Path) -> list[Path]:
    """Every folder under ``root`` (or ``root`` itself) holding a run: a ``metrics.json``, or the
    ``run_config.yaml`` / ``.hydra/`` of a run that has not written one yet."""
    root = Path(root)
    if not root.exists():
        raise FileNotFoundError(f"{root}: no such folder of runs")
    found: list[Path] = []

    def visit(d: Path) -> None:
        if (
            (d / METRICS_JSON).is_file()
            or (d / RUN_CONFIG).is_file()
            or (d / ".hydra" / "config.yaml").is_file()
        ):
            found.append(d)
        try:
            children = sorted(p for p in d.iterdir() if p.is_dir() and p.name not in _SKIP_DIRS)
        except OSError:
            return
        for c in children:
            visit(c)

    visit(root)
    return found


def collect_local(roots: Iterable[str | Path]) -> list[RunRecord]:
    """Every run under the given Hydra output folders (``logs/``, a ``runs/`` or ``multiruns/<date>/`` folder,
    or one run folder)."""
    records: list[RunRecord] = []
    for root in roots:
        root = Path(root).expanduser().resolve()
        for d in find_run_dirs(root):
            records.append(read_local_run(d, root))
    return records
