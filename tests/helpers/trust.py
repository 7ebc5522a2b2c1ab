"""A tiny finished run for the trust tests, and hostile variants of its files: a checkpoint whose
unpickling runs a shell command, and stored configs whose instantiation writes a file."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytorch_lightning as pl
import torch
import yaml

from conftest import compose_cfg, tiny_overrides
from humanparse.utils import safety  # noqa: F401  (registers the checkpoint types for torch.load)


def tiny_trained_run(cache_dir: Path) -> Path:
    """One finished 1-epoch run of the tiny DeepLab on synthetic LIP (checkpoints/last.ckpt, run_config.yaml,
    metrics.json), trained once per test session (shared by the test files and xdist workers, file-locked).
    Tests copy it before changing anything (:func:`copy_run`)."""
    from humanparse.data.datamodule import file_lock
    from humanparse.train import train

    root = cache_dir.parent / "trust-run"
    run = root / "run"
    with file_lock(cache_dir.parent / "trust-run.lock"):
        if not (run / "metrics.json").is_file():
            shutil.rmtree(root, ignore_errors=True)
            train(compose_cfg("train", tiny_overrides(["test=false"]), run, cache_dir))
    assert (run / "checkpoints" / "last.ckpt").is_file()
    return run


def copy_run(run: Path, dst: Path) -> Path:
    shutil.copytree(run, dst)
    return dst


class ShellPayload:
    """Pickled as a call to ``os.system(cmd)``: what a hostile checkpoint carries."""

    def __init__(self, cmd: str):
        self.cmd = cmd

    def __reduce__(self):
        return (os.system, (self.cmd,))


def poisoned_checkpoint(src: Path, dst: Path, marker: Path) -> Path:
    """``src`` plus an entry whose unpickling creates ``marker``."""
    ckpt = torch.load(src, map_location="cpu", weights_only=True)
    ckpt["payload"] = ShellPayload(f"touch {marker}")
    torch.save(ckpt, dst)
    return dst


def injection(marker: Path) -> dict:
    """A config node that writes ``marker`` when Hydra instantiates it (Hydra does not block this one)."""
    return {
        "_target_": "pathlib.Path.write_text",
        "self": {"_target_": "pathlib.Path", "_args_": [str(marker)]},
        "data": "pwned",
    }


def injected_checkpoint(src: Path, dst: Path, marker: Path) -> Path:
    """``src`` with the injection in the stored run config, beside the model's knobs (``model.pwn``)."""
    ckpt = torch.load(src, map_location="cpu", weights_only=True)
    ckpt["humanparse"]["config"]["model"]["pwn"] = injection(marker)
    torch.save(ckpt, dst)
    return dst


def inject_run_config(run: Path, marker: Path) -> None:
    path = run / "run_config.yaml"
    cfg = yaml.safe_load(path.read_text())
    cfg["model"]["pwn"] = injection(marker)
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))


class PoisonAtStep(pl.Callback):
    """Turns the first weight tensor into NaN before global step ``step``: what a diverging learning rate
    does, at a known step."""

    def __init__(self, step: int):
        self.step = int(step)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.global_step == self.step:
            with torch.no_grad():
                next(pl_module.parameters()).fill_(float("nan"))
