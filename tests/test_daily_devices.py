"""GPU by default: accelerator/devices/precision ``auto`` resolved per machine (CUDA mocked), CPU fallback."""

from __future__ import annotations

import pytest
import torch
from omegaconf import OmegaConf

from humanparse.utils import devices


def _mock_cuda(monkeypatch, available: bool, count: int = 0, bf16: bool = False) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: available)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: count)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: bf16)


@pytest.mark.parametrize(
    "available,count,bf16,acc,dev,prec",
    [
        (False, 0, False, "cpu", 1, "32"),
        (True, 1, True, "gpu", 1, "bf16-mixed"),
        (True, 4, False, "gpu", 4, "16-mixed"),
    ],
)
def test_auto_resolves_per_machine(monkeypatch, available, count, bf16, acc, dev, prec):
    _mock_cuda(monkeypatch, available, count, bf16)
    cfg = devices.resolve_trainer_config(
        OmegaConf.create(
            {
                "accelerator": "auto",
                "devices": "auto",
                "precision": "auto",
                "strategy": "ddp_if_many",
                "sync_batchnorm": True,
            }
        )
    )
    assert (cfg.accelerator, cfg.devices, cfg.precision) == (acc, dev, prec)
    # ddp only with more than one device
    assert cfg.strategy == ("ddp" if dev > 1 else "auto")
    assert cfg.sync_batchnorm == (dev > 1)


def test_explicit_values_are_kept_and_gpu_without_cuda_is_an_error(monkeypatch):
    _mock_cuda(monkeypatch, True, 2, True)
    cfg = devices.resolve_trainer_config(
        OmegaConf.create({"accelerator": "gpu", "devices": 1, "precision": "32"})
    )
    assert (cfg.accelerator, cfg.devices, cfg.precision) == ("gpu", 1, "32")
    _mock_cuda(monkeypatch, False)
    with pytest.raises(RuntimeError, match="no CUDA device"):
        devices.resolve_accelerator("gpu")


def test_default_and_ddp_all_configs(compose_train, monkeypatch):
    cfg = compose_train()
    assert cfg.trainer.accelerator == "auto" and cfg.trainer.precision == "auto"
    cfg = compose_train("trainer=ddp_all")
    assert cfg.trainer.devices == "auto" and cfg.trainer.strategy == "ddp_if_many"
    # on this machine (CUDA mocked away) the Trainer is a plain CPU one at 32-bit
    _mock_cuda(monkeypatch, False)
    from humanparse.utils.instantiate import instantiate_trainer

    trainer = instantiate_trainer(cfg.trainer, logger=False, enable_checkpointing=False, callbacks=[])
    rec = devices.device_record(trainer)
    assert rec["accelerator"] == "cpu" and rec["devices"] == 1 and rec["precision"] == "32-true"
