"""In-process training runs on synthetic LIP through the real configs and entry points."""

from __future__ import annotations

import json
import math

import pytest

from conftest import compose_cfg
from humanparse.evaluate import evaluate
from humanparse.train import train
from humanparse.utils.run import ResumeError
from humanparse.utils.safety import safe_torch_load


def test_fit_and_test_write_the_run_directory(compose_train, tmp_path):
    cfg = compose_train("trainer.max_epochs=2", "tags=[unit]")
    metrics = train(cfg)
    for k in (
        "val/miou",
        "val/pixel_acc",
        "val/mean_acc",
        "val/iou/background",
        "val/iou/right_shoe",
        "test/miou",
    ):
        assert k in metrics, k
    assert 0.0 <= metrics["val/pixel_acc"] <= 1.0
    rec = json.loads((tmp_path / "metrics.json").read_text())
    assert (
        rec["status"] == "finished"
        and rec["epochs"] == 2
        and rec["dataset"] == "lip"
        and rec["synthetic"] is True
    )
    assert rec["metrics"]["test/miou"] == pytest.approx(metrics["test/miou"])
    assert rec["best"]["metric"] == "val/miou" and rec["best"]["path"].endswith(".ckpt")
    assert (tmp_path / "checkpoints" / "last.ckpt").is_file()
    history = (tmp_path / "csv" / "version_0" / "metrics.csv").read_text().splitlines()
    header = history[0].split(",")
    assert "val/miou" in header and "train/loss_epoch" in header and len(history) >= 3
    assert (tmp_path / "run_config.yaml").is_file()
    ckpt = safe_torch_load(tmp_path / "checkpoints" / "last.ckpt")
    assert ckpt["humanparse"]["config"]["model"]["backbone"] == "tu-mobilenetv3_small_050"


def test_evaluate_reproduces_the_test_numbers(compose_train, tmp_path, cache_dir):
    cfg = compose_train(
        "trainer.max_epochs=1", "callbacks.model_checkpoint.save_top_k=0", run_dir=tmp_path / "train"
    )
    metrics = train(cfg)
    ckpt = tmp_path / "train" / "checkpoints" / "last.ckpt"
    ecfg = compose_cfg("eval", [f"ckpt_path={ckpt}", "split=val"], tmp_path / "eval", cache_dir)
    emetrics = evaluate(ecfg)
    assert emetrics["val/miou"] == pytest.approx(metrics["test/miou"], abs=1e-9)
    rec = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert rec["kind"] == "evaluation" and rec["metrics"]["val/miou"] == pytest.approx(emetrics["val/miou"])


def test_bf16_mixed_precision_on_cpu(compose_train):
    metrics = train(compose_train("trainer.precision=bf16-mixed", "test=false"))
    assert math.isfinite(metrics["val/pixel_acc"])


def test_resume_without_a_checkpoint_fails_loudly(compose_train, tmp_path):
    empty = tmp_path / "old_run"
    empty.mkdir()
    with pytest.raises(ResumeError, match="refusing to start the run over"):
        train(compose_train(f"resume={empty}"))


@pytest.mark.parametrize("debug", ["default", "fdr", "overfit"])
def test_debug_configs_run(compose_train, debug):
    extra = ["trainer.max_epochs=2"] if debug == "overfit" else []
    metrics = train(compose_train(f"debug={debug}", *extra, "test=false"))
    if debug != "fdr":
        assert "val/miou" in metrics


def test_atr_runs_report_the_five_atr_numbers(compose_train, tmp_path):
    metrics = train(compose_train("data=atr", "test=false"))
    for k in (
        "val/pixel_acc",
        "val/fg_acc",
        "val/precision",
        "val/recall",
        "val/f1",
        "val/miou",
        "val/f1/bag",
    ):
        assert k in metrics, k
    p, r = metrics["val/precision"], metrics["val/recall"]
    assert metrics["val/f1"] == pytest.approx(0.0 if p + r == 0 else 2 * p * r / (p + r))
    # the ATR options belong to the dataset's semantic evaluator (data.evaluators)
    with pytest.raises(Exception, match="atr_convention must be one of"):
        import hydra

        hydra.utils.instantiate(
            compose_train("data=atr", "+data.evaluators.0.atr_options.atr_convention=bogus").data
        )
    # a misspelled model knob is refused, naming the key and the closest valid one
    from humanparse.utils.instantiate import ConfigKeyError, instantiate_task

    with pytest.raises(ConfigKeyError, match="model.atr_option.*not an option"):
        instantiate_task(compose_train("data=atr", "+model.atr_option=1"))


def hydra_instantiate_task(cfg):
    import hydra

    return hydra.utils.instantiate(cfg.model)


def test_models_get_the_derived_targets_they_train_on(compose_train, tmp_path):
    """``model=corrpm data=lip`` (no experiment preset): the data module adds CorrPM's edge and heatmap
    targets, which the model's start-up check would otherwise refuse."""
    cfg = compose_train("model=corrpm", "test=false")
    assert not cfg.data.targets
    metrics = train(cfg)
    assert "val/miou" in metrics
    hist = (tmp_path / "csv" / "version_0" / "metrics.csv").read_text().splitlines()[0]
    assert "train/loss_edge" in hist and "train/loss_pose" in hist
