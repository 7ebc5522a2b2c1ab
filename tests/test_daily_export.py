"""humanparse.export: ONNX (checked with onnxruntime) and TorchScript match PyTorch; instance models refused."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

import humanparse.utils.resolvers  # noqa: F401
from humanparse.export import DenseLogits, main, run_exported
from humanparse.utils.safety import safe_torch_load

ATOL = 1e-3  # float32 logits; observed differences are ~1e-5


def _checkpoint(compose_train, tmp_path, *over):
    import hydra

    cfg = compose_train(*over)
    resolved = OmegaConf.to_container(
        OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"]), resolve=True
    )
    torch.manual_seed(0)
    task = hydra.utils.instantiate(cfg.model).eval()
    path = tmp_path / "model.ckpt"
    torch.save({"state_dict": task.state_dict(), "humanparse": {"config": resolved, "hparams": {}}}, path)
    return path, task, resolved


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_export_matches_pytorch(compose_train, tmp_path, capsys, fmt):
    if fmt == "onnx":
        pytest.importorskip("onnxruntime")
    ckpt, task, _ = _checkpoint(compose_train, tmp_path)
    out = tmp_path / f"m.{fmt}"
    assert main([f"ckpt_path={ckpt}", f"format={fmt}", f"output={out}", f"atol={ATOL}"]) == 0
    printed = capsys.readouterr().out
    assert "check against PyTorch" in printed
    info = json.loads((tmp_path / f"m.{fmt}.json").read_text())
    assert (
        info["check"]["ok"]
        and info["check"]["max_abs_diff"] <= ATOL
        and info["check"]["label_agreement"] > 0.99
    )
    assert len(info["output"]["classes"]) == 20 and info["input"]["mean"] == [0.485, 0.456, 0.406]
    # independently of the tool's own check: a new image size and batch size
    image = torch.randn(3, 3, 80, 48)
    with torch.no_grad():
        ref = DenseLogits(task.net, "seg").eval()(image).numpy()
    got = run_exported(out, fmt, image)
    assert got.shape == (3, 20, 80, 48) and np.abs(got - ref).max() <= ATOL


def test_corrpm_exports_with_its_non_local_block(compose_train, tmp_path, capsys):
    pytest.importorskip("onnxruntime")
    ckpt, _, _ = _checkpoint(compose_train, tmp_path, "model=corrpm", "model.pretrained=null")
    assert main([f"ckpt_path={ckpt}", "format=onnx", f"output={tmp_path / 'c.onnx'}", f"atol={ATOL}"]) == 0
    info = json.loads((tmp_path / "c.onnx.json").read_text())
    # checked against the model as it evaluates (the chunked CPU attention kernel) at two sizes and batches
    assert info["check"]["ok"] and info["check"]["sizes"][1][0] == 2 and info["model"] == "corrpm"


def test_instance_models_are_refused_with_the_reason(compose_train, tmp_path, capsys):
    ckpt, _, resolved = _checkpoint(compose_train, tmp_path)
    saved = safe_torch_load(ckpt)
    saved["humanparse"]["config"]["model"]["requires"] = {"collate": "instance"}  # as Parsing R-CNN declares
    torch.save(saved, ckpt)
    assert main([f"ckpt_path={ckpt}", "format=onnx", f"output={tmp_path / 'x.onnx'}"]) == 2
    err = capsys.readouterr().err
    assert "cannot be exported" in err and "region-based model" in err and "per-person detections" in err
    assert main([f"ckpt_path={ckpt}", "format=tflite"]) == 2
    assert "choose onnx or torchscript" in capsys.readouterr().err
