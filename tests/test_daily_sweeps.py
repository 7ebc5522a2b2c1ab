"""Sweeps you can read: wandb run names/tags carry the swept values, the summary carries paper/delta; compare
labels sweep rows by the swept keys, never subtracts another model's paper row, and draws readable plots."""

from __future__ import annotations

import json

import matplotlib
import pytest

from conftest import TINY_MODELS, TINY_TRAIN, run_cli
from helpers.runs import base_config, per_class, summary_metrics, write_run
from humanparse.compare.cli import run as compare_run
from humanparse.compare.wandb_source import OfflineRun
from humanparse.utils.hydra_utils import swept_keys

matplotlib.use("Agg")


def test_swept_keys_from_the_command_line():
    argv = [
        "-m",
        "model=corrpm",
        "model.optimizer.lr=0.01,0.02",
        "trainer.max_epochs=range(1,3)",
        "seed=1",
        "hydra/launcher=slurm",
    ]
    assert swept_keys(argv, {"model.edge_weight": "interval(0,2)"}) == [
        "model.optimizer.lr",
        "trainer.max_epochs",
        "model.edge_weight",
    ]


@pytest.mark.slow
def test_sweep_names_tags_and_paper_summary_in_wandb(tmp_path, cache_dir):
    run_cli(
        "humanparse.train",
        "-m",
        *TINY_TRAIN,
        *TINY_MODELS["deeplabv3plus"],
        "model.optimizer.lr=0.01,0.02",
        "logger=wandb",
        "logger.wandb.offline=true",
        "+paper_ref='corrpm:5:CorrPM'",
        "trainer.limit_train_batches=2",
        cwd=tmp_path,
        cache_dir=cache_dir,
    )
    runs = sorted(
        (OfflineRun(f) for f in (tmp_path / "logs").rglob("offline-run-*/run-*.wandb")), key=lambda r: r.name
    )
    assert [r.name for r in runs] == [
        "deeplabv3plus-lip-train optimizer.lr=0.01",
        "deeplabv3plus-lip-train optimizer.lr=0.02",
    ]
    assert "optimizer.lr=0.02" in runs[1].tags and any(t.startswith("multirun:") for t in runs[1].tags)
    s = runs[0].summary
    assert s["paper/row"] == "corrpm T5 'CorrPM'" and s["paper/stage"] == "test"
    assert s["paper/miou"] == pytest.approx(55.33)  # CorrPM Table 5, LIP val mIoU
    assert s["delta/miou"] == pytest.approx(100 * s["test/miou"] - 55.33, abs=1e-6)


def _fabricate(root):
    # a 3-job lr sweep of CorrPM on LIP, plus an unrelated CorrPM run in the same log root that differs in
    # many keys, plus a DeepLab run on LIP (whose per-class IoU must not be compared with CorrPM's row)
    sweep = root / "train" / "multiruns" / "2026-01-01_00-00-00"
    for job, lr in enumerate((0.001, 0.003, 0.01)):
        cfg = base_config(model="corrpm", variant="full", backbone="resnet101s", lr=lr)
        m = {**summary_metrics(0.40 + job / 100, stage="test"), **per_class("lip", 0.4, "test")}
        write_run(
            sweep / str(job),
            cfg,
            m,
            multirun=True,
            epochs=1,
            history=[{"epoch": 0, "val/miou": 0.3 + job / 100, "train/loss_epoch": 1.5 - job / 10}],
        )
    other = base_config(model="corrpm", variant="full", backbone="resnet101s", lr=0.5, seed=3)
    other["model"]["optimizer"]["momentum"] = 0.5
    other["data"]["input_size"] = [384, 384]
    other["data"]["batch_size"] = 3
    other["trainer"]["max_epochs"] = 150
    other["model"]["net"]["output_stride"] = 8
    write_run(root / "train" / "runs" / "other", other, {**summary_metrics(0.5, stage="test")})
    write_run(
        root / "train" / "runs" / "deeplab",
        base_config(),
        {**summary_metrics(0.3, stage="test"), **per_class("lip", 0.3, "test")},
    )


def test_compare_labels_sweep_rows_and_draws_readable_plots(tmp_path):
    from PIL import Image

    _fabricate(tmp_path / "logs")
    out = tmp_path / "cmp"
    comparison = compare_run([f"root={tmp_path / 'logs'}", f"output={out}"])
    labels = sorted(r.label for r in comparison.rows if r.model == "corrpm" and r.runs[0].sweep)
    assert labels == ["optimizer.lr=0.001", "optimizer.lr=0.003", "optimizer.lr=0.01"]
    md = (out / "compare.md").read_text()
    deeplab_line = next(
        line for line in md.splitlines() if line.startswith("| deeplabv3plus") and "(n=1)" in line
    )
    assert (
        "(+" not in deeplab_line and MINUS_OR_PLUS not in deeplab_line
    )  # no Δ against CorrPM's per-class row
    corrpm_line = next(
        line
        for line in md.splitlines()
        if line.startswith("| corrpm") and "lr=0.001" in line and "(n=1)" in line
    )
    assert "\u2212" in corrpm_line  # CorrPM rows do get their per-class Δ
    with Image.open(out / "per_class_iou_lip.png") as im:
        assert im.size[0] <= 14 * 110 + 10  # at most a screen's width (dpi 110)
    curves = list(out.glob("curves_*sweep*.png"))
    assert curves, sorted(p.name for p in out.iterdir())


MINUS_OR_PLUS = " (\u2212"


def test_curves_of_one_epoch_runs_include_the_loss_and_a_sane_axis(tmp_path):
    from humanparse.compare.cli import compare, parse_args
    from humanparse.compare.plots import sweep_curves_figure

    _fabricate(tmp_path / "logs")
    comparison = compare(parse_args([f"root={tmp_path / 'logs'}"]))
    block = next(r.block for r in comparison.rows if r.runs[0].sweep)
    fig = sweep_curves_figure(comparison, "val/miou", block)
    ax, ax_loss = fig.axes[:2]
    assert ax.get_xlim() == (-0.5, 0.5) and ax_loss.get_xlim() == (-0.5, 0.5)
    assert len(ax_loss.lines) == 3  # the training loss of every job
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert legend == ["optimizer.lr=0.001", "optimizer.lr=0.003", "optimizer.lr=0.01"]
    json.dumps(legend)
