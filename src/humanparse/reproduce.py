"""One command per paper table: ``python -m humanparse.reproduce table=corrpm:5``.

Trains every row of a paper table that this project can build, as one Hydra multirun (locally, or on SLURM
with ``launcher=slurm``), then writes the ``humanparse.compare`` table of exactly those runs against the
paper's rows. ``list=true`` lists every table with printed numbers and, per row, whether it is buildable
today; rows that need a model that is not built yet are listed as such, never dropped silently.

====================  =======================================================================================
``table``             ``<paper>:<table>`` as in ``resources/paper_results.yaml`` (``corrpm:5``, ``grapy_ml:1``)
``list``              list the tables and their rows' status instead (``list=true``; with ``table=`` only that one)
``rows``              only these rows (method names as printed, or their variant, e.g. ``rows=[P,PB,CorrPM]``)
``overrides``         extra Hydra overrides for every job (``overrides=[data.root=/data/LIP,trainer=ddp_all]``)
``launcher``          ``local`` (default) or ``slurm`` (``hydra/launcher=slurm``; add its settings to overrides)
``output``            the multirun folder (default ``$HUMANPARSE_LOGS/reproduce/<paper>_T<table>_<date_time>``)
``dry_run``           print the command and write the generated configs, train nothing (default false)
``compare``           write the compare table after training (default true)
====================  =======================================================================================

A row is *buildable* when the model it needs has a ``conf/model/<name>.yaml``; which model a printed row
needs comes from ``resources/paper_refs.yaml`` (``<model>[:<variant>]`` per dataset), so rows become
buildable as models are added. Each row becomes a generated experiment config (the model's preset for that
dataset when there is one, ``experiment=<model>_<dataset>``, plus the row's variant and its ``paper_ref``),
written to ``<output>/configs/experiment/`` and swept with ``experiment=...``. The compare output goes to
``<output>/compare/``.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import yaml
from omegaconf import OmegaConf

from humanparse.utils.cli import parse_key_values

DEFAULTS = {
    "table": None,
    "list": False,
    "rows": None,
    "overrides": [],
    "launcher": "local",
    "output": None,
    "dry_run": False,
    "compare": True,
}


class ReproduceError(ValueError):
    """Bad arguments (exit status 2)."""


# Rows whose settings are loss weights rather than a named variant (CorrPM Table 6: α = edge, β = pose weight).
WEIGHT_COLUMNS = {"alpha": "model.edge_weight", "beta": "model.pose_weight"}
# Rows that are a model with changed settings rather than a variant listed in paper_refs.yaml:
# (paper, table, method) -> (model, variant, {config key: value})
ROW_SETTINGS = {
    # CorrPM Table 2 "Ours†": the first parsing loss L_p removed (its weight 0)
    ("corrpm", "2", "CorrPM without L_p (seg1 loss removed)"): ("corrpm", None, {"model.seg1_weight": 0}),
    # Grapy-ML Table 4's first row is its stage-1 DeepLab v3+ (the same model as Tables 1-3)
    ("grapy_ml", "4", "DeepLab v3+ baseline"): ("deeplabv3plus", None, {}),
}


@dataclass
class TableRow:
    """One printed row of a table on one dataset and what it takes to train it here."""

    paper: str
    table: str
    method: str
    backbone: str
    dataset: str
    model: str | None = None  # the suite's model name (conf/model/<model>.yaml), None: another paper's method
    variant: str | None = None
    overrides: dict = field(default_factory=dict)  # extra config values (Table 6 loss weights)
    built: bool = False

    @property
    def status(self) -> str:
        if self.model is None:
            return "no model configuration of this suite maps to this row (see resources/paper_refs.yaml)"
        if not self.built:
            return f"needs model {self.model!r} (conf/model/{self.model}.yaml is not built yet)"
        return "buildable"

    @property
    def ref(self) -> dict:
        ref = {"paper": self.paper, "table": self.table, "method": self.method}
        return ref

    @property
    def slug(self) -> str:
        return (
            re.sub(r"[^0-9A-Za-z]+", "_", f"{self.paper}_{self.table}_{self.dataset}_{self.method}")
            .strip("_")
            .lower()
        )


def _conf_dir() -> Path:
    return Path(str(resources.files("humanparse") / "conf"))


def built_models() -> set[str]:
    """Model names with a config: the yaml file names and their ``name:`` values."""
    names: set[str] = set()
    for p in (_conf_dir() / "model").glob("*.yaml"):
        names.add(p.stem)
        try:
            data = yaml.safe_load(p.read_text()) or {}
        except yaml.YAMLError:
            continue
        if isinstance(data, dict) and data.get("name"):
            names.add(str(data["name"]))
    return names


def model_file(model: str) -> str | None:
    """The ``conf/model`` option that builds ``model`` (file name, or the file whose ``name:`` it is)."""
    folder = _conf_dir() / "model"
    if (folder / f"{model}.yaml").is_file():
        return model
    for p in sorted(folder.glob("*.yaml")):
        data = yaml.safe_load(p.read_text()) or {}
        if isinstance(data, dict) and str(data.get("name")) == model:
            return p.stem
    return None


def _row_models(papers) -> dict[tuple, tuple[str, str | None]]:
    """(paper, table, method, dataset) → (model, variant) from ``paper_refs.yaml``; a key with a variant wins
    over the plain model key for the same row."""
    out: dict[tuple, tuple[str, str | None]] = {}
    for key, by_ds in (papers.refs.get("models") or {}).items():
        model, _, variant = str(key).partition(":")
        for ds, refs in (by_ds or {}).items():
            for r in refs if isinstance(refs, list) else [refs]:
                k = (str(r["paper"]), str(r["table"]), str(r["method"]), ds)
                if k not in out or (variant and out[k][1] is None):
                    out[k] = (model, variant or None)
    return out


def table_rows(papers, paper: str, table: str) -> list[TableRow]:
    """The rows of one printed table (one per method × dataset, in the file's order)."""
    mapping = _row_models(papers)
    built = built_models()
    rows: dict[tuple, TableRow] = {}
    for e in papers.entries:
        if e.paper != paper or str(e.table) != str(table):
            continue
        key = (e.method, e.dataset)
        if key in rows:
            continue
        row = TableRow(e.paper, str(e.table), e.method, e.backbone, e.dataset)
        found = mapping.get((e.paper, str(e.table), e.method, e.dataset))
        weights = {WEIGHT_COLUMNS[c]: getattr(e, c) for c in WEIGHT_COLUMNS if getattr(e, c) is not None}
        if found is None and weights:
            # a loss-weight grid row of the paper's own model (CorrPM Table 6)
            found = (paper, None)
        settings = ROW_SETTINGS.get((e.paper, str(e.table), e.method))
        if settings is not None:
            found, weights = settings[:2], {**weights, **settings[2]}
        if found is not None:
            row.model, row.variant = found
            row.overrides = weights
            row.built = row.model in built
        rows[key] = row
    return list(rows.values())


def all_tables(papers) -> list[tuple[str, str]]:
    seen: list[tuple[str, str]] = []
    for e in papers.entries:
        if (e.paper, str(e.table)) not in seen:
            seen.append((e.paper, str(e.table)))
    return seen


def format_listing(papers, only: tuple[str, str] | None = None) -> str:
    lines = []
    for paper, table in all_tables(papers):
        if only and (paper, table) != only:
            continue
        rows = table_rows(papers, paper, table)
        ok = [r for r in rows if r.status == "buildable"]
        datasets = ", ".join(dict.fromkeys(r.dataset for r in rows))
        tag = f"{len(ok)} of {len(rows)} rows buildable" if ok else "nothing buildable yet"
        lines.append(f"{paper}:{table}  ({datasets}; {tag})")
        for r in rows:
            what = (
                f"{r.model}"
                + (f" variant={r.variant}" if r.variant else "")
                + "".join(f" {k}={v:g}" for k, v in r.overrides.items())
                if r.model
                else ""
            )
            mark = "✓" if r.status == "buildable" else ("…" if r.model else "–")
            lines.append(
                f"  {mark} {r.method} [{r.dataset}]"
                + (f" → {what}" if what and r.built else "")
                + ("" if r.status == "buildable" else f": {r.status}")
            )
    return "\n".join(lines)


def experiment_config(row: TableRow) -> dict:
    """A self-contained experiment config for one row: the model's preset for the dataset when there is one
    (its content, defaults included), else ``model=<m> data=<dataset>``; plus the row's variant, overrides,
    ``paper_ref`` and tags."""
    option = model_file(row.model)
    preset = _conf_dir() / "experiment" / f"{row.model}_{row.dataset}.yaml"
    if preset.is_file():
        cfg = yaml.safe_load(preset.read_text()) or {}
    else:
        cfg = {"defaults": [{"override /data": row.dataset}, {"override /model": option}]}
    model = cfg.setdefault("model", {})
    if row.variant:
        model["variant"] = row.variant
    for dotted, value in row.overrides.items():
        node = cfg
        *parents, last = dotted.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[last] = value
    cfg["paper_ref"] = [row.ref]
    cfg["tags"] = list(dict.fromkeys([*(cfg.get("tags") or []), "reproduce", f"{row.paper}:{row.table}"]))
    return cfg


def write_configs(rows: list[TableRow], folder: Path) -> list[str]:
    """Write one experiment config per row into ``folder/experiment``; returns their option names."""
    exp = folder / "experiment"
    exp.mkdir(parents=True, exist_ok=True)
    names = []
    for r in rows:
        name = f"reproduce_{r.slug}"
        text = (
            "# @package _global_\n# generated by humanparse.reproduce for "
            + f"{r.paper} table {r.table}, row {r.method!r} on {r.dataset}\n"
            + yaml.safe_dump(experiment_config(r), sort_keys=False)
        )
        (exp / f"{name}.yaml").write_text(text)
        names.append(name)
    return names


def select_rows(rows: list[TableRow], wanted) -> list[TableRow]:
    if not wanted:
        return rows
    wanted = [str(w) for w in wanted]
    out = [
        r
        for r in rows
        if r.method in wanted
        or (r.variant and r.variant in wanted)
        or any(r.method.split(" (")[0] == w for w in wanted)
    ]
    missing = [w for w in wanted if not any(w in (r.method, r.variant, r.method.split(" (")[0]) for r in out)]
    if missing:
        raise ReproduceError(f"rows={missing}: not rows of this table (rows: {[r.method for r in rows]})")
    return out


def train_command(
    rows: list[TableRow],
    names: list[str],
    config_dir: Path,
    sweep_dir: Path,
    launcher: str,
    overrides: list[str],
) -> list[str]:
    cmd = [sys.executable, "-m", "humanparse.train", "-m", f"hydra.searchpath=[file://{config_dir}]"]
    # Hydra composes a multirun's base config without the swept experiment=...: with the rows' model and
    # data selected there too, overrides of model-specific keys (model.net.channels=...) compose. (With
    # several models in one table, such overrides need the ++ prefix.)
    models = {model_file(r.model) for r in rows}
    datasets = {r.dataset for r in rows}
    if len(models) == 1:
        cmd.append(f"model={models.pop()}")
    if len(datasets) == 1:
        cmd.append(f"data={datasets.pop()}")
    cmd += [
        f"experiment={','.join(names)}",
        f"hydra.sweep.dir={sweep_dir}",
        "hydra.sweep.subdir=${hydra.job.num}",
    ]
    if launcher == "slurm":
        cmd.append("hydra/launcher=slurm")
    elif launcher != "local":
        raise ReproduceError(f"launcher={launcher!r}: choose local or slurm")
    return cmd + list(overrides)


def reproduce(cfg) -> dict:
    from humanparse.compare.papers import load_paper_results

    papers = load_paper_results()
    if cfg.list:
        only = tuple(str(cfg.table).split(":", 1)) if cfg.table else None
        text = format_listing(papers, only)
        if not text:
            raise ReproduceError(f"table={cfg.table}: no printed numbers for this table")
        print(text)
        return {"listed": True}
    if not cfg.table or ":" not in str(cfg.table):
        raise ReproduceError(
            "table=<paper>:<table> is required, e.g. table=corrpm:5 (list=true shows the tables)"
        )
    paper, table = str(cfg.table).split(":", 1)
    rows = table_rows(papers, paper, table)
    if not rows:
        raise ReproduceError(
            f"table={cfg.table}: no printed numbers for this table (list=true shows the tables)"
        )
    rows = select_rows(rows, OmegaConf.to_container(cfg.rows) if OmegaConf.is_config(cfg.rows) else cfg.rows)
    buildable = [r for r in rows if r.status == "buildable"]
    print(f"{paper} table {table}: {len(buildable)} of {len(rows)} rows buildable")
    for r in rows:
        if r.status != "buildable":
            print(f"  skipped {r.method} [{r.dataset}]: {r.status}")
    if not buildable:
        raise ReproduceError(f"table={cfg.table}: no row of this table can be built yet")
    stamp = time.strftime("%Y-%m-%d_%H-%M-%S")
    logs = Path(os.environ.get("HUMANPARSE_LOGS", "logs"))
    sweep_dir = Path(cfg.output) if cfg.output else logs / "reproduce" / f"{paper}_T{table}_{stamp}"
    sweep_dir = sweep_dir.expanduser().resolve()
    config_dir = sweep_dir / "configs"
    names = write_configs(buildable, config_dir)
    overrides = [
        str(o)
        for o in (
            OmegaConf.to_container(cfg.overrides)
            if OmegaConf.is_config(cfg.overrides)
            else cfg.overrides or []
        )
    ]
    cmd = train_command(buildable, names, config_dir, sweep_dir, str(cfg.launcher), overrides)
    print("training command:\n  " + " ".join(shlex.quote(c) for c in cmd), flush=True)
    for i, (r, n) in enumerate(zip(buildable, names)):
        print(f"  job {i}: {r.method} [{r.dataset}] — experiment={n}")
    result = {"sweep_dir": str(sweep_dir), "command": cmd, "rows": [r.method for r in buildable]}
    if cfg.dry_run:
        return result
    proc = subprocess.run(cmd)
    result["returncode"] = proc.returncode
    if proc.returncode != 0:
        print(
            f"training ended with exit status {proc.returncode}; comparing the runs that finished",
            file=sys.stderr,
        )
    if cfg.compare:
        from humanparse.compare.cli import run as compare_run

        out = sweep_dir / "compare"
        compare_run([f"roots=[{sweep_dir}]", f"output={out}"])
        result["compare"] = str(out)
    return result


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0
    try:
        cfg = parse_key_values(argv, DEFAULTS, ReproduceError)
        result = reproduce(cfg)
    except ReproduceError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 1 if result.get("returncode") else 0


if __name__ == "__main__":
    sys.exit(main())
