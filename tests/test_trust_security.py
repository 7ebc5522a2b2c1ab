"""Issue 10, items 1-2: a checkpoint never runs code, a stored config never builds what it likes.

Each attack goes through the four ways a user hands a file to humanparse (predict, evaluate, train
``ckpt_path=``, train ``resume=``) and must leave no trace on disk."""

from __future__ import annotations

import json
import os
from pathlib import Path

import hydra
import pytest
import torch
from omegaconf import OmegaConf
from PIL import Image

from conftest import compose_cfg
from helpers.trust import (
    copy_run,
    inject_run_config,
    injected_checkpoint,
    injection,
    poisoned_checkpoint,
    tiny_trained_run,
)
from humanparse.utils.safety import CheckpointError, ConfigTargetError, check_config_targets, safe_torch_load

ENTRIES = ["predict", "evaluate", "train_ckpt_path", "train_resume"]


@pytest.fixture
def trained_run(cache_dir) -> Path:
    return tiny_trained_run(cache_dir)


def _attempt(entry: str, attack: str, run: Path, tmp_path: Path, cache_dir: Path, capsys) -> Path:
    """Hand the hostile file to ``entry``; returns the marker that must not exist afterwards."""
    from humanparse import predict
    from humanparse.evaluate import evaluate
    from humanparse.train import train

    marker = tmp_path / "PWNED"
    src = run / "checkpoints" / "last.ckpt"
    hostile = tmp_path / "hostile.ckpt"
    if entry == "train_resume":
        run = copy_run(run, tmp_path / "run")
        if attack == "pickle":
            poisoned_checkpoint(src, run / "checkpoints" / "last.ckpt", marker)
            (run / "metrics.json").unlink()  # a run that died: resume really loads last.ckpt
        else:
            inject_run_config(run, marker)
        with pytest.raises((CheckpointError, ConfigTargetError)) as err:
            train(compose_cfg("train", [f"resume={run}"], tmp_path / "ignored", cache_dir))
        assert str(run) in str(err.value)
        return marker
    (poisoned_checkpoint if attack == "pickle" else injected_checkpoint)(src, hostile, marker)
    if entry == "predict":
        img = tmp_path / "person.png"
        Image.new("RGB", (40, 56), (120, 80, 60)).save(img)
        code = predict.main(
            [f"ckpt_path={hostile}", f"input={img}", f"output={tmp_path / 'out'}", "progress=false"]
        )
        assert code == 2
        assert str(hostile) in capsys.readouterr().err
        assert not (tmp_path / "out").exists()
    elif entry == "evaluate":
        with pytest.raises((CheckpointError, ConfigTargetError), match=str(hostile)):
            evaluate(compose_cfg("eval", [f"ckpt_path={hostile}"], tmp_path / "eval", cache_dir))
    else:
        from conftest import tiny_overrides

        with pytest.raises((CheckpointError, ConfigTargetError), match=str(hostile)):
            train(
                compose_cfg(
                    "train",
                    tiny_overrides([f"ckpt_path={hostile}", "test=false"]),
                    tmp_path / "new",
                    cache_dir,
                )
            )
        assert not (tmp_path / "new" / "checkpoints").exists()
    return marker


def test_the_attacks_are_real(trained_run, tmp_path):
    """Without the guards, both payloads do write their marker (so the tests below can fail)."""
    marker = tmp_path / "PWNED"
    bad = poisoned_checkpoint(trained_run / "checkpoints" / "last.ckpt", tmp_path / "p.ckpt", marker)
    torch.load(bad, map_location="cpu", weights_only=False)
    assert marker.exists()
    marker.unlink()
    hydra.utils.instantiate(OmegaConf.create(injection(marker)))
    assert marker.read_text() == "pwned"


@pytest.mark.parametrize("attack", ["pickle", "config"])
@pytest.mark.parametrize("entry", ENTRIES)
def test_hostile_files_leave_no_trace(entry, attack, trained_run, tmp_path, cache_dir, capsys):
    marker = _attempt(entry, attack, trained_run, tmp_path, cache_dir, capsys)
    assert not marker.exists(), f"{entry}: the {attack} payload ran"


def test_pickle_refusal_names_the_file_and_the_global(trained_run, tmp_path):
    bad = poisoned_checkpoint(trained_run / "checkpoints" / "last.ckpt", tmp_path / "p.ckpt", tmp_path / "M")
    with pytest.raises(CheckpointError, match=r"p\.ckpt: refused.*(system|posix)"):
        safe_torch_load(bad)


def test_own_checkpoints_load_with_weights_only(trained_run):
    """The types a humanparse checkpoint holds (OmegaConf containers in the hyper-parameters) are registered."""
    ckpt = torch.load(trained_run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert ckpt["humanparse"]["config"]["model"]["name"] == "deeplabv3plus"
    OmegaConf.create({"a": [1, 2.5, "x", True, None, {"b": 1}]})
    from io import BytesIO

    buf = BytesIO()
    torch.save({"hp": OmegaConf.create({"a": [1, 2.5, "x", True, None, {"b": 1}]})}, buf)
    buf.seek(0)
    assert OmegaConf.to_container(torch.load(buf, weights_only=True)["hp"]) == {
        "a": [1, 2.5, "x", True, None, {"b": 1}]
    }


@pytest.mark.parametrize(
    "target, ok",
    [
        ("humanparse.tasks.Task", True),
        ("humanparse.evaluation.evaluators.SemanticEvaluator", True),
        ("torch.optim.SGD", True),
        ("torch.nn.Conv2d", True),
        ("pytorch_lightning.Trainer", True),
        ("pytorch_lightning.callbacks.ModelCheckpoint", True),
        ("timm.create_model", True),
        ("pathlib.Path.write_text", False),
        ("builtins.exec", False),
        ("os.system", False),
        ("torch.save", False),
        ("torch.hub.load", False),
        ("torch.load", False),
        ("humanparse.utils.run.atomic_write_text", False),
        ("humanparse.data.io.write_label_png", False),
        ("torch.optim.does_not_exist", False),
    ],
)
def test_target_allowlist(target, ok):
    cfg = {
        "model": {
            "_target_": "humanparse.tasks.Task",
            "opt": {"_target_": "torch.optim.SGD", "_partial_": True},
            "extra": [{"x": 1}, {"deep": {"_target_": target, "_partial_": True}}],
        }
    }
    if ok:
        check_config_targets(cfg, "conf.yaml")
    else:
        with pytest.raises(
            ConfigTargetError,
            match=rf"conf\.yaml: refusing to build model\.extra\[1\]\.deep\._target_="
            rf"'{target}'",
        ):
            check_config_targets(cfg, "conf.yaml")


def test_trusted_prefixes_come_from_the_environment_only(monkeypatch):
    cfg = {"callbacks": {"kill": {"_target_": "helpers.killer.KillAtStep", "step": 3}}}
    monkeypatch.delenv("HUMANPARSE_TRUSTED_TARGETS", raising=False)
    with pytest.raises(ConfigTargetError, match="callbacks.kill._target_"):
        check_config_targets(cfg, "run_config.yaml")
    monkeypatch.setenv("HUMANPARSE_TRUSTED_TARGETS", "helpers.killer")
    check_config_targets(cfg, "run_config.yaml")


def test_lightning_loads_with_weights_only(trained_run, tmp_path, cache_dir):
    """train ckpt_path= passes weights_only=True to Lightning and still continues a real checkpoint."""
    from conftest import tiny_overrides
    from humanparse.train import train

    train(
        compose_cfg(
            "train",
            tiny_overrides(
                [
                    f"ckpt_path={trained_run / 'checkpoints' / 'last.ckpt'}",
                    "trainer.max_epochs=2",
                    "test=false",
                ]
            ),
            tmp_path / "cont",
            cache_dir,
        )
    )
    rec = json.loads((tmp_path / "cont" / "metrics.json").read_text())
    assert rec["status"] == "finished" and rec["epochs"] == 2
    assert os.path.getsize(tmp_path / "cont" / "checkpoints" / "last.ckpt") > 0


def test_classes_of_the_users_config_folder_are_trusted(tmp_path, monkeypatch):
    """A model from outside the package (its yaml in HUMANPARSE_CONFIG_DIR) evaluates from its checkpoint;
    nothing else is trusted by it."""
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "mine.yaml").write_text(
        "_target_: humanparse.tasks.Task\nnet:\n  _target_: mypkg.MyNet\n"
    )
    cfg = {"model": {"net": {"_target_": "mypkg.MyNet"}}}
    monkeypatch.delenv("HUMANPARSE_TRUSTED_TARGETS", raising=False)
    monkeypatch.delenv("HUMANPARSE_CONFIG_DIR", raising=False)
    with pytest.raises(ConfigTargetError, match="model.net._target_='mypkg.MyNet'"):
        check_config_targets(cfg, "x.ckpt")
    monkeypatch.setenv("HUMANPARSE_CONFIG_DIR", str(tmp_path))
    check_config_targets(cfg, "x.ckpt")
    with pytest.raises(ConfigTargetError, match="mypkg.Other"):
        check_config_targets({"model": {"net": {"_target_": "mypkg.Other"}}}, "x.ckpt")
