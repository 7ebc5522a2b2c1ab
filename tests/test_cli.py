"""The real command lines in subprocesses: 2-process DDP (gloo), multiruns (also with DDP), wandb offline
records, and resuming a SIGKILLed run to the same final weights as an uninterrupted run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from conftest import TINY_MODELS, TINY_TRAIN, run_cli
from humanparse.utils.safety import safe_torch_load

pytestmark = pytest.mark.slow

TINY = TINY_TRAIN + TINY_MODELS["deeplabv3plus"]


def _run_dirs(root: Path) -> list[Path]:
    return sorted(p.parent for p in root.rglob("metrics.json"))


def _weights(ckpt: Path) -> dict[str, torch.Tensor]:
    return safe_torch_load(ckpt)["state_dict"]


def test_ddp_two_processes_match_single_process_evaluation(tmp_path, cache_dir):
    run_cli(
        "humanparse.train",
        *TINY,
        "trainer=ddp",
        "trainer.accelerator=cpu",
        "trainer.devices=2",
        "data.batch_size=4",
        "trainer.max_epochs=1",
        "test=false",
        cwd=tmp_path,
        cache_dir=cache_dir,
    )
    dirs = _run_dirs(tmp_path / "logs")
    assert len(dirs) == 1, dirs  # the re-launched rank-1 process wrote into the same run dir
    rec = json.loads((dirs[0] / "metrics.json").read_text())
    assert rec["status"] == "finished"
    # 24 images, global batch 4 over 2 processes: 6 optimiser steps
    assert rec["global_step"] == 6
    # the 2-process validation (unpadded shards, summed confusion matrices) equals a 1-process evaluation
    (tmp_path / "eval").mkdir()
    out = run_cli(
        "humanparse.evaluate",
        f"ckpt_path={dirs[0] / 'checkpoints' / 'last.ckpt'}",
        "split=val",
        cwd=tmp_path / "eval",
        cache_dir=cache_dir,
    )
    assert "miou" in out.stdout
    ev = json.loads(next((tmp_path / "eval" / "logs").rglob("metrics.json")).read_text())
    assert ev["metrics"]["val/miou"] == pytest.approx(rec["metrics"]["val/miou"], abs=1e-6)
    assert ev["metrics"]["val/pixel_acc"] == pytest.approx(rec["metrics"]["val/pixel_acc"], abs=1e-6)


def test_multirun_two_jobs_with_wandb_offline(tmp_path, cache_dir):
    proc = run_cli(
        "humanparse.train",
        "-m",
        *TINY,
        "trainer.max_epochs=1,2",
        "logger=wandb",
        "logger.wandb.offline=true",
        "test=false",
        cwd=tmp_path,
        cache_dir=cache_dir,
    )
    dirs = _run_dirs(tmp_path / "logs")
    assert [d.name for d in dirs] == ["0", "1"]
    epochs = sorted(json.loads((d / "metrics.json").read_text())["epochs"] for d in dirs)
    assert epochs == [1, 2]
    ids = set()
    for d in dirs:
        runs = list((d / "wandb").glob("offline-run-*"))
        assert len(runs) == 1, runs  # wandb.finish() closed the previous job's run
        ids.add(runs[0].name.rsplit("-", 1)[1])
        meta = json.loads((d / "metrics.json").read_text())
        assert meta["wandb_id"] == runs[0].name.rsplit("-", 1)[1]
        cfg = (d / "csv" / "version_0" / "hparams.yaml").read_text()
        assert "job_type: sweep" in cfg
    assert len(ids) == 2
    assert "val/miou" in proc.stdout or proc.returncode == 0


def test_multirun_with_ddp_runs_as_spawn(tmp_path, cache_dir):
    proc = run_cli(
        "humanparse.train",
        "-m",
        *TINY,
        "trainer=ddp",
        "trainer.accelerator=cpu",
        "trainer.devices=2",
        "trainer.max_epochs=1",
        "test=false",
        "seed=7",
        cwd=tmp_path,
        cache_dir=cache_dir,
    )
    dirs = _run_dirs(tmp_path / "logs")
    assert len(dirs) == 1 and json.loads((dirs[0] / "metrics.json").read_text())["status"] == "finished"
    assert "ddp_spawn" in proc.stdout + proc.stderr


def test_resume_after_kill_reaches_the_same_weights(tmp_path, cache_dir):
    common = [
        *TINY,
        "trainer.max_epochs=3",
        "trainer.deterministic=true",
        "test=false",
        "seed=11",
        "logger=wandb",
        "logger.wandb.offline=true",
    ]
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    run_cli(
        "humanparse.train",
        *common,
        "hydra.run.dir=" + str(tmp_path / "a" / "run"),
        cwd=tmp_path / "a",
        cache_dir=cache_dir,
    )
    ref = _weights(tmp_path / "a" / "run" / "checkpoints" / "last.ckpt")

    run_b = tmp_path / "b" / "run"
    # 24 images / batch 4 = 6 steps per epoch: die in the middle of epoch 3
    killed = run_cli(
        "humanparse.train",
        *common,
        "hydra.run.dir=" + str(run_b),
        "+callbacks.kill._target_=helpers.killer.KillAtStep",
        "+callbacks.kill.step=15",
        cwd=tmp_path / "b",
        cache_dir=cache_dir,
        check=False,
    )
    assert killed.returncode != 0
    assert (run_b / "checkpoints" / "last.ckpt").is_file()
    half = safe_torch_load(run_b / "checkpoints" / "last.ckpt")
    assert half["epoch"] == 1  # last completed epoch was the second (0-based 1)
    wandb_id = (run_b / "wandb_id.txt").read_text().strip()

    # the killer is part of the saved config; a plain key=value override on resume disarms it
    run_cli(
        "humanparse.train",
        f"resume={run_b}",
        "++callbacks.kill.step=1000000",
        cwd=tmp_path / "b",
        cache_dir=cache_dir,
    )
    got = _weights(run_b / "checkpoints" / "last.ckpt")
    assert got.keys() == ref.keys()
    for k in ref:
        assert torch.equal(ref[k], got[k]), k
    rec = json.loads((run_b / "metrics.json").read_text())
    assert rec["status"] == "finished" and rec["epochs"] == 3 and rec["resumed_from"].endswith("last.ckpt")
    assert (run_b / ".hydra" / "config.yaml").is_file() and (run_b / ".hydra_resume").is_dir()
    offline = sorted(p.name for p in (run_b / "wandb").glob("offline-run-*"))
    assert len(offline) == 2 and all(name.endswith(wandb_id) for name in offline)
    # the CSV history of the first attempt is kept next to the resumed one
    assert (run_b / "csv" / "version_0" / "metrics.csv").is_file() and (run_b / "csv" / "version_1").is_dir()
