"""Issue 10, items 3, 4, 5, 9: nothing written is lost.

A NaN stops the run (failed, with the step; the last good checkpoint kept; compare lists it as failed),
every run gets a folder of its own and never writes into another run's, a finished run is not
"resumed" into an empty record, and an empty split is an error."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from conftest import REPO, TINY_MODELS, TINY_TRAIN, compose_cfg, run_cli
from helpers.datasets import copy_of, tiny_root
from helpers.trust import copy_run, tiny_trained_run
from humanparse.callbacks import NonFiniteError
from humanparse.data.io import DataError
from humanparse.train import train
from humanparse.utils import run as runs


@pytest.fixture
def trained_run(cache_dir) -> Path:
    return tiny_trained_run(cache_dir)


def _finite(ckpt: Path) -> bool:
    state = torch.load(ckpt, map_location="cpu", weights_only=True)["state_dict"]
    return all(bool(torch.isfinite(v).all()) for v in state.values() if v.is_floating_point())


# -- 3. non-finite loss / weights ----------------------------------------------------------------------
@pytest.mark.parametrize("save_on_exception", [False, True])
def test_nan_stops_the_run_keeps_the_good_checkpoint_and_compare_lists_it_failed(
    compose_train, tmp_path, save_on_exception, capsys
):
    # 24 images / batch 4: 6 steps per epoch; the weights turn NaN in the 3rd step of the 2nd epoch
    cfg = compose_train(
        "trainer.max_epochs=3",
        "test=false",
        "+callbacks.poison._target_=helpers.trust.PoisonAtStep",
        "+callbacks.poison.step=8",
        f"++callbacks.last_checkpoint.save_on_exception={save_on_exception}",
        f"++callbacks.model_checkpoint.save_on_exception={save_on_exception}",
    )
    with pytest.raises(NonFiniteError, match="non-finite loss") as err:
        train(cfg)
    assert err.value.step == 9  # optimiser steps done, the last one on the NaN batch
    rec = json.loads((tmp_path / "metrics.json").read_text())
    assert rec["status"] == "failed" and rec["failed_step"] == 9 and "non-finite loss" in rec["error"]
    ckpts = sorted((tmp_path / "checkpoints").glob("*.ckpt"))
    assert [p.name for p in ckpts] == ["epoch_000.ckpt", "last.ckpt"]  # nothing written after the NaN
    for p in ckpts:
        assert _finite(p), p
    assert torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 6

    from humanparse.compare.cli import run

    capsys.readouterr()
    comparison = run([f"root={tmp_path}", "output=none", "include_synthetic=true"])
    out = capsys.readouterr().out
    assert not comparison.rows
    assert "failed" in out and "non-finite loss" in out


def test_non_finite_weights_are_caught_even_with_a_finite_loss():
    from humanparse.callbacks.finite import FiniteGuard

    net = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Linear(2, 1))
    assert FiniteGuard._bad_weights(net) is None
    with torch.no_grad():
        net[1].bias.fill_(float("inf"))
    assert "1.bias" in FiniteGuard._bad_weights(net)


def test_the_guard_is_in_the_default_callbacks(compose_train):
    cfg = compose_train()
    assert cfg.callbacks.finite_guard._target_ == "humanparse.callbacks.FiniteGuard"
    assert list(cfg.callbacks)[0] == "finite_guard"


# -- 4. run folders --------------------------------------------------------------------------------------
def test_runs_started_in_the_same_second_get_their_own_folders(monkeypatch):
    """The run and multirun folder names of ``conf/hydra/default.yaml``, with ``now`` frozen to one second,
    differ between two runs (a unique tag follows the time stamp) and are stable within one run."""
    from datetime import datetime

    hydra_yaml = REPO / "conf" / "hydra" / "default.yaml"
    OmegaConf.register_new_resolver(
        "now", lambda pattern: "2026-01-01_00-00-00", replace=True, use_cache=True
    )
    try:
        names = []
        for _ in range(2):  # two processes: two fresh configs
            cfg = OmegaConf.create(
                {
                    "hydra": OmegaConf.load(hydra_yaml),
                    "paths": {"log_dir": "/logs"},
                    "task_name": "train",
                    "resume": None,
                }
            )
            run_dir, sweep_dir = cfg.hydra.run.dir, cfg.hydra.sweep.dir
            assert (
                run_dir.startswith("/logs/train/runs/2026-01-01_00-00-00_") and run_dir == cfg.hydra.run.dir
            )
            assert sweep_dir.startswith("/logs/train/multiruns/2026-01-01_00-00-00_")
            names.append((run_dir, sweep_dir))
        assert names[0][0] != names[1][0] and names[0][1] != names[1][1]
        # a launcher that starts every process of one run (SLURM) gives them one folder
        monkeypatch.delenv("TORCHELASTIC_RUN_ID", raising=False)
        monkeypatch.delenv("SLURM_STEP_ID", raising=False)
        monkeypatch.setenv("SLURM_JOB_ID", "4242")
        assert runs.run_id() == runs.run_id() == "j4242"
    finally:
        OmegaConf.register_new_resolver(
            "now", lambda pattern: datetime.now().strftime(pattern), replace=True, use_cache=True
        )


def test_the_run_config_is_claimed_exclusively(tmp_path):
    cfg = OmegaConf.create({"paths": {"output_dir": str(tmp_path)}, "seed": 1})
    runs.save_run_config(cfg, tmp_path)
    with pytest.raises(runs.RunDirError, match="already holds a run"):
        runs.save_run_config(cfg, tmp_path)


def test_a_new_run_never_writes_into_another_runs_folder(trained_run, tmp_path, cache_dir):
    run = copy_run(trained_run, tmp_path / "old")
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    from conftest import tiny_overrides

    with pytest.raises(runs.RunDirError, match="already holds a run"):
        train(compose_cfg("train", tiny_overrides(["test=false"]), run, cache_dir))
    after = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    assert after == before
    # on the command line, before Hydra writes its .hydra/ files: one line, exit status 2
    proc = run_cli(
        "humanparse.train",
        *TINY_TRAIN,
        *TINY_MODELS["deeplabv3plus"],
        f"hydra.run.dir={run}",
        cwd=tmp_path,
        cache_dir=cache_dir,
        check=False,
    )
    assert proc.returncode == 2, proc.stderr[-3000:]
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "already holds a run" in lines[0], (
        proc.stderr
    )
    assert not (run / ".hydra").exists()
    assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file()} == before


# -- 5. resuming a finished run ----------------------------------------------------------------------------
def test_resume_of_a_finished_run_changes_nothing(trained_run, tmp_path, cache_dir, capsys):
    run = copy_run(trained_run, tmp_path / "run")
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    metrics = train(compose_cfg("train", [f"resume={run}"], tmp_path / "x", cache_dir))
    assert "already finished" in capsys.readouterr().out
    assert metrics == json.loads(before[run / "metrics.json"])["metrics"] and metrics
    assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file()} == before


def test_resume_refuses_overrides_it_cannot_apply(trained_run, tmp_path, cache_dir):
    run = copy_run(trained_run, tmp_path / "run")
    with pytest.raises(runs.ResumeError, match=r"model\.optimizer\.lr=0\.5 cannot apply"):
        train(
            compose_cfg(
                "train",
                [f"resume={run}", "++model.optimizer.lr=0.5", "trainer.max_epochs=2"],
                tmp_path / "x",
                cache_dir,
            )
        )


def test_resume_of_a_finished_run_continues_when_more_epochs_are_asked_for(trained_run, tmp_path, cache_dir):
    run = copy_run(trained_run, tmp_path / "run")
    train(compose_cfg("train", [f"resume={run}", "trainer.max_epochs=2"], tmp_path / "x", cache_dir))
    rec = json.loads((run / "metrics.json").read_text())
    assert rec["status"] == "finished" and rec["epochs"] == 2 and len(rec["metrics"]) > 20


# -- 9. empty splits ------------------------------------------------------------------------------------------
def test_an_empty_training_split_is_an_error(compose_train, cache_dir, tmp_path):
    with pytest.raises(DataError, match="train split .* has no samples after limit_train=0"):
        train(compose_train("data.limit_train=0", run_dir=tmp_path / "a"))
    root = copy_of(tiny_root(cache_dir, "lip"), tmp_path / "lip")
    (root / "TrainVal_images" / "train_id.txt").write_text("")
    with pytest.raises(DataError, match="train split .* has no samples"):
        train(compose_train("data.synthetic=false", f"data.root={root}", run_dir=tmp_path / "b"))
    assert not (tmp_path / "b" / "checkpoints").exists()

    from humanparse.tools.check_data import check_dataset

    rep = check_dataset("lip", root, {}, progress=False)
    assert not rep["ok"] and rep["errors"] >= 1
    problems = [i["problem"] for i in rep["splits"]["train"]["issues"]]
    assert any("has no ids" in p for p in problems), problems


def test_readme_documents_trust_and_the_debug_switch():
    text = (REPO / "README.md").read_text()
    assert "## Trust and safety" in text and "HUMANPARSE_DEBUG=1" in text
