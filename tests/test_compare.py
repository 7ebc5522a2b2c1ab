"""humanparse.compare: the packaged paper numbers, fabricated local runs (repeats, a missing metric, a failed
and an unfinished run, a multirun), wandb offline run data and a fake wandb API giving the same table."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest
import yaml

from helpers.runs import base_config, fabricate_runs, summary_metrics
from humanparse.compare import (
    OfflineApi,
    RowRef,
    build_comparison,
    collect_local,
    collect_wandb,
    load_paper_results,
    paper_to_run_metric,
    run_to_paper_metric,
)
from humanparse.compare.cli import main as compare_main
from humanparse.compare.cli import parse_args
from humanparse.compare.cli import run as compare_run
from humanparse.compare.wandb_source import WandbDataError, read_wandb_records

SPEC = Path(__file__).resolve().parents[2] / "shared" / "spec" / "paper_results.yaml"


# --- the papers' numbers -----------------------------------------------------------------------------------
def test_paper_results_match_the_spec_counts():
    papers = load_paper_results()
    assert len(papers) == papers.counts["total"] == 778
    for paper, n in papers.counts.items():
        if paper != "total":
            assert len(papers.select(paper=paper)) == n, paper
    # flags and notes survive
    assert sum(e.uncertain for e in papers.entries) > 0
    assert all(e.uncertain for e in papers.select(paper="grapy_ml", table="4"))
    assert papers.select(paper="corrpm", table="2", method="CorrPM", metric="miou")[0].notes
    if SPEC.is_file():  # the packaged copy holds exactly the spec's entries
        spec = yaml.safe_load(SPEC.read_text())
        assert spec["counts"] == papers.counts
        assert len(spec["entries"]) == len(papers)
        for raw, e in zip(spec["entries"], papers.entries):
            assert (raw["paper"], str(raw["table"]), raw["method"], raw["metric"], raw["value"]) == (
                e.paper,
                e.table,
                e.method,
                e.metric,
                e.value,
            )
            assert bool(raw.get("uncertain", False)) == e.uncertain and raw.get("notes", "") == e.notes


def test_metric_names_and_units():
    assert paper_to_run_metric("per_class_iou.upper_clothes") == "iou/upper_clothes"
    assert paper_to_run_metric("app_vol") == "app_vol"
    assert run_to_paper_metric("test/iou/left_shoe") == "per_class_iou.left_shoe"
    assert run_to_paper_metric("val/miou") == "miou"
    papers = load_paper_results()
    frac = papers.select(paper="grapy_ml", table="2", method="DeepLab v3+", metric="mean_acc")[0]
    assert frac.unit == "fraction" and frac.percent == pytest.approx(84.07)
    assert set(papers.metrics_for("atr")) == {
        "pixel_acc",
        "fg_acc",
        "precision",
        "recall",
        "f1",
        "miou",
        "mean_acc",
    }


def test_reference_rows():
    papers = load_paper_results()
    ref = papers.reference_for("deeplabv3plus", "deeplabv3plus_smp", "atr")
    assert ref.get("miou").value == 76.52 and ref.get("mean_acc").percent == pytest.approx(84.07)
    # CorrPM on LIP: Table 2 (summary) completed by Table 5 (per class); a variant picks its own row
    full = papers.reference_for("corrpm", "full", "lip")
    assert full.get("pixel_acc").value == 87.68 and full.get("iou/hat").value == 66.2
    assert papers.reference_for("corrpm", "P", "lip").get("iou/hat").method == "P (parsing only)"
    assert papers.reference_for("a_model_added_later", None, "lip") is None
    assert papers.reference_for("deeplabv3plus", None, "lip") is None  # no paper prints it
    # a run config's own paper_ref wins; a row that does not exist is an error naming it
    own = papers.reference_for(
        "deeplabv3plus", None, "cihp", [{"paper": "grapy_ml", "table": "3", "method": "GPM"}]
    )
    assert own.get("miou").value == 60.36
    with pytest.raises(KeyError, match="no printed numbers"):
        papers.row(RowRef.parse("grapy_ml:3:NoSuchMethod"), "cihp")


# --- local runs --------------------------------------------------------------------------------------------
@pytest.fixture
def runs_root(tmp_path) -> Path:
    root = tmp_path / "logs"
    fabricate_runs(root)
    return root


def test_local_runs_table(runs_root):
    records = collect_local([runs_root])
    by = {
        Path(r.run_id).name if "multiruns" not in r.run_id else "lip_" + Path(r.run_id).name: r
        for r in records
    }
    assert by["atr_failed"].status == "failed" and "out of memory" in by["atr_failed"].error
    assert by["atr_incomplete"].status == "incomplete" and "metrics.json" in by["atr_incomplete"].error
    assert by["lip_0"].job_type == "sweep" and by["lip_0"].sweep == "2024-01-01_00-00-00"
    assert by["lip_0"].block == by["lip_1"].block == "deeplabv3plus-lip · sweep"

    comp = build_comparison(records, load_paper_results())
    atr = comp.rows_for("atr")
    assert [r.n for r in atr] == [2, 1]  # the two seeds of one config are one row
    rep, other = atr
    assert rep.stage == "test" and rep.split == "test"
    assert rep.values["miou"].mean == pytest.approx(71.0) and rep.values["miou"].std == pytest.approx(
        math.sqrt(2)
    )
    assert rep.delta("miou") == pytest.approx(71.0 - 76.52)
    assert rep.label == "optimizer.lr=0.007" and other.label == "optimizer.lr=0.01"
    assert "mean_acc" not in other.values  # the missing metric stays missing
    assert {r.name for r, _ in comp.skipped} == {"train/runs/atr_failed", "train/runs/atr_incomplete"}
    lip = comp.rows_for("lip")
    assert [r.values["miou"].mean for r in lip] == pytest.approx([40.0, 45.0])
    assert lip[0].values["iou/scarf"].mean is None  # NaN IoU of an absent class

    md = comp.to_markdown()
    assert (
        "| deeplabv3plus | deeplabv3plus_smp · optimizer.lr=0.007 | tu-resnet18d | deeplabv3plus-atr · train | 2 | test |"
        in md
    )
    assert "71.00±1.41 (76.52, \u22125.52)" in md  # ours±std (paper, delta)
    assert "| – (84.07, " not in md and "– (84.07)" in md  # missing mean_acc shown with the paper number only
    assert "grapy_ml T2 'DeepLab v3+'" in md
    assert "atr_failed (local): failed — RuntimeError: CUDA out of memory" in md
    assert "atr_incomplete (local): incomplete" in md
    assert "paper: corrpm T5 'CorrPM'" in md and "[synthetic]" in md  # per-class table vs CorrPM Table 5

    frame = comp.to_frame()
    row = frame[(frame.dataset == "atr") & (frame.n_runs == 2)].iloc[0]
    assert row["miou_paper"] == pytest.approx(76.52) and row["miou_delta"] == pytest.approx(-5.52)
    assert row["mean_acc_paper_uncertain"] is False or row["mean_acc_paper_uncertain"] == 0
    assert pd.isna(frame[(frame.dataset == "atr") & (frame.n_runs == 1)].iloc[0]["mean_acc"])
    # aggregate=none: one row per finished run
    assert len(build_comparison(records, load_paper_results(), aggregate="none").rows_for("atr")) == 3


def test_history_and_plots(runs_root, tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    from humanparse.compare.plots import write_plots

    comp = build_comparison(collect_local([runs_root]), load_paper_results())
    hist = comp.rows_for("lip")[1].runs[0].history(["val/miou"])
    assert list(hist["epoch"]) == [0, 1, 2] and hist["val/miou"].iloc[-1] == pytest.approx(0.45)
    files = write_plots(comp, tmp_path / "plots")
    names = sorted(p.name for p in files)
    assert names == [
        "curves_deeplabv3plus-atr_train.png",
        "curves_deeplabv3plus-lip_sweep.png",
        "per_class_iou_lip.png",
    ]
    assert all(p.read_bytes()[:4] == b"\x89PNG" for p in files)


def test_cli(runs_root, tmp_path, capsys):
    out = tmp_path / "report"
    assert compare_main([f"roots=[{runs_root}]", f"output={out}", "datasets=[atr]", "metrics=[miou]"]) == 0
    printed = capsys.readouterr().out
    assert "| miou | paper row |" in printed and "lip" not in printed.split("Not in the table")[0]
    assert {"compare.md", "compare.csv", "runs.csv"} <= {p.name for p in out.iterdir()}
    runs = pd.read_csv(out / "runs.csv")
    assert set(runs.status) == {"finished", "failed", "incomplete"}
    assert (
        compare_main(
            [
                f"roots=[{runs_root}]",
                "output=null",
                "format=csv",
                "reference=grapy_ml:3:GPM",
                "datasets=[atr]",
            ]
        )
        == 0
    )
    csv_text = capsys.readouterr().out
    assert (
        csv_text.startswith("dataset,model,variant") and "grapy_ml T3 'GPM'" not in csv_text
    )  # no GPM row on ATR
    assert compare_main([f"roots=[{runs_root}]", "no_such_option=1"]) == 2
    assert "unknown option" in capsys.readouterr().err
    assert compare_main(["source=wandb"]) == 2  # no project
    assert compare_main([f"root={tmp_path / 'missing'}"]) == 2


# --- wandb ------------------------------------------------------------------------------------------------
def _offline_run(
    tmp_path: Path,
    name: str,
    config: dict,
    metrics: dict,
    history: list[dict],
    group: str,
    job_type: str,
    exit_code: int = 0,
) -> None:
    wandb = pytest.importorskip("wandb")
    d = tmp_path / "wandb_runs" / name
    d.mkdir(parents=True)
    run = wandb.init(
        project="hp-test",
        dir=str(d),
        mode="offline",
        config=config,
        group=group,
        job_type=job_type,
        name=name,
        reinit="finish_previous",
        settings=wandb.Settings(console="off", silent=True, x_disable_stats=True, x_disable_meta=True),
    )
    for row in history:
        run.log(row)
    run.log(metrics)
    run.finish(exit_code=exit_code)


def test_wandb_offline_runs_give_the_local_table(tmp_path):
    """The same runs written as local folders and as wandb offline runs produce the same table."""
    local_root = tmp_path / "logs"
    runs = []
    for name, seed, lr, miou in (("a1", 1, 0.007, 0.70), ("a2", 2, 0.007, 0.72), ("b", 1, 0.01, 0.65)):
        cfg = base_config(dataset="atr", seed=seed, lr=lr)
        m = summary_metrics(miou, 0.95, None if name == "b" else 0.8, stage="test")
        hist = [{"epoch": e, "val/miou": miou * (e + 1) / 3} for e in range(3)]
        runs.append((name, cfg, m, hist))
    failed_cfg = base_config(dataset="atr", lr=0.1)
    from helpers.runs import write_run

    for name, cfg, m, hist in runs:
        write_run(local_root / name, cfg, m, history=hist)
        _offline_run(tmp_path, name, cfg, m, hist, "deeplabv3plus-atr", "train")
    write_run(local_root / "failed", failed_cfg, {}, status="failed", error="RuntimeError: boom")
    _offline_run(tmp_path, "failed", failed_cfg, {}, [], "deeplabv3plus-atr", "train", exit_code=1)

    wandb_files = sorted((tmp_path / "wandb_runs").rglob("run-*.wandb"))
    assert len(wandb_files) == 4
    papers = load_paper_results()
    local = build_comparison(collect_local([local_root]), papers)
    remote_records = collect_wandb(OfflineApi(tmp_path / "wandb_runs"), project="hp-test")
    assert sorted(r.status for r in remote_records) == ["failed", "finished", "finished", "finished"]
    remote = build_comparison(remote_records, papers)
    drop = ["runs"]
    pd.testing.assert_frame_equal(local.to_frame().drop(columns=drop), remote.to_frame().drop(columns=drop))
    assert (
        local.to_markdown().split("Not in the table")[0] == remote.to_markdown().split("Not in the table")[0]
    )
    # the history comes back from the wandb file too
    rec = next(r for r in remote_records if r.name == "a2")
    assert list(rec.history(["val/miou"])["val/miou"]) == pytest.approx([0.24, 0.48, 0.72])
    # the command line reads the same offline folder
    assert (
        len(compare_run(["source=wandb", f"offline_dir={tmp_path / 'wandb_runs'}", "output=null"]).rows) == 2
    )


def test_wandb_file_errors(tmp_path):
    bad = tmp_path / "run-x.wandb"
    bad.write_bytes(b"not a wandb file")
    with pytest.raises(WandbDataError, match="run-x.wandb"):
        list(read_wandb_records(bad))


class _Summary:
    """Like wandb's HTTPSummary: a mapping behind ``_json_dict``."""

    def __init__(self, d):
        self._json_dict = d


class _Sweep:
    id = "swp123"


class _FakeRun:
    def __init__(self, rid, config, summary, state, group, job_type, history=(), sweep=None):
        self.id, self.name, self.config, self.summary = rid, rid, config, _Summary(summary)
        self.state, self.group, self.job_type, self.sweep = state, group, job_type, sweep
        self.path = ["team", "proj", rid]
        self._history = list(history)

    def scan_history(self, keys=None, page_size=1000):
        for row in self._history:
            if keys is None or all(k in row for k in keys):
                yield {k: row[k] for k in (keys or row)}


class _FakeApi:
    def __init__(self, runs):
        self._runs = runs
        self.calls = []

    def runs(self, path, filters=None, **kw):
        self.calls.append((path, filters))
        return self._runs


def test_fake_wandb_api_grouping_and_states():
    cfg_a = {**base_config(dataset="cihp", lr=0.007), "_wandb": {"x": 1}}
    cfg_b = base_config(dataset="cihp", lr=0.014)
    runs = [
        _FakeRun(
            "r1",
            cfg_a,
            {"val/miou": 0.5, "val/mean_acc": 0.6, "epoch": 2, "train/loss_step": 1.0},
            "finished",
            "deeplabv3plus-cihp",
            "sweep",
            [{"epoch": 0, "val/miou": 0.3}, {"epoch": 1, "val/miou": 0.5}],
            _Sweep(),
        ),
        _FakeRun(
            "r2", cfg_b, {"val/miou": float("nan")}, "finished", "deeplabv3plus-cihp", "sweep", sweep=_Sweep()
        ),
        _FakeRun("r3", cfg_b, {}, "crashed", "deeplabv3plus-cihp", "sweep"),
        _FakeRun("r4", cfg_a, {"val/miou": 0.1}, "running", "deeplabv3plus-cihp", "train"),
        _FakeRun("r5", {"foo": 1}, {"val/miou": 0.1}, "finished", None, None),
    ]
    api = _FakeApi(runs)
    comp = compare_run(
        ["source=wandb", "project=proj", "entity=team", "output=null", "job_type=sweep"], api=api
    )
    assert api.calls == [("team/proj", None)]
    assert {r.block for row in comp.rows for r in row.runs} == {"deeplabv3plus-cihp · sweep"}
    row = next(r for r in comp.rows if r.values.get("miou") and r.values["miou"].mean == pytest.approx(50.0))
    assert row.runs[0].sweep == "swp123" and row.runs[0].epochs == 2
    assert row.delta("miou") == pytest.approx(50.0 - 58.95)  # Grapy-ML Table 3 DeepLab v3+
    assert "train/loss_step" not in row.runs[0].metrics and "_wandb" not in row.runs[0].config
    nan_row = next(r for r in comp.rows if r is not row)
    assert nan_row.values["miou"].mean is None  # NaN summary value → missing
    assert [(r.name, r.status) for r, _ in comp.skipped] == [("r3", "failed")]
    assert list(row.runs[0].history(["val/miou"])["val/miou"]) == [0.3, 0.5]
    everything = compare_run(["source=wandb", "project=proj", "output=null"], api=_FakeApi(runs))
    reasons = {r.name: why for r, why in everything.skipped}
    assert "not finished" in reasons["r4"] and "not a humanparse run" in reasons["r5"]


def test_parse_args_rejects_bad_values():
    with pytest.raises(ValueError, match="source"):
        parse_args(["source=s3"])
    with pytest.raises(ValueError, match="key=value"):
        parse_args(["logs"])


def test_cell_format_marks_uncertain_paper_numbers():
    from humanparse.compare.table import Stat, format_cell

    papers = load_paper_results()
    shaky = papers.row("grapy_ml:4:DeepLab v3+ baseline", "cihp").get("miou")  # garbled table, reconstructed
    assert shaky.uncertain
    assert format_cell(Stat(57.0, None, 1), shaky) == "57.00 (58.95?, \u22121.95)"
    assert (
        format_cell(Stat(60.0, 0.5, 2), papers.row("grapy_ml:3:DeepLab v3+", "cihp").get("miou"))
        == "60.00±0.50 (58.95, +1.05)"
    )
    assert format_cell(None, shaky) == "– (58.95?)" and format_cell(Stat(None, None, 0), None) == "–"
