"""``humanparse.convert`` and ``model.weights``: a released-format file (here a tiny CorrPM written under the
released key names) becomes a checkpoint that evaluate and train accept, the in-place route gives the same
numbers, and metrics.json / compare say which released file a run started from."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from hydra.core.global_hydra import GlobalHydra
from torch import nn

from conftest import TINY_DATA, TINY_MODELS, compose_cfg, run_cli
from helpers.released import to_released
from humanparse.compare.cli import run as compare_run
from humanparse.convert import main as convert_main
from humanparse.evaluate import build_task_from_checkpoint, evaluate
from humanparse.models.corrpm import CorrPM
from humanparse.models.corrpm.released import FORMAT
from humanparse.models.released import file_sha256
from humanparse.train import train
from humanparse.utils.safety import safe_torch_load

TINY = TINY_DATA + TINY_MODELS["corrpm"]
TINY_NET = dict(
    backbone="resnet50s",
    backbone_kwargs={"layers": [1, 1, 1, 1], "channels": [4, 8, 16, 32], "stem_width": 8},
    channels=16,
    aspp_channels=8,
    edge_channels=8,
    pose_channels=8,
    nl_channels=8,
)


@pytest.fixture(scope="module")
def released(tmp_path_factory) -> tuple[Path, dict]:
    """A tiny CorrPM with non-trivial normalisation layers, saved in the released format."""
    torch.manual_seed(3)
    net = CorrPM(20, 16, **TINY_NET)
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.2, 0.2)
            m.running_mean.uniform_(-0.3, 0.3)
            m.running_var.uniform_(0.5, 2.0)
    ours = {k: v.clone() for k, v in net.state_dict().items()}
    dead = {
        "layer6.conv1.0.weight": [8, 16, 1, 1],
        "layer6.conv2.0.weight": [48, 8, 1, 1],
        "edge_layer.conv4.weight": [2, 8, 3, 3],
        "edge_layer.conv4.bias": [2],
    }
    path = tmp_path_factory.mktemp("released") / "LIP_tiny.pth"
    torch.save(to_released(ours, FORMAT, dead), path)
    return path, ours


@pytest.fixture(scope="module")
def converted(released, tmp_path_factory, cache_dir) -> Path:
    """``python -m humanparse.convert`` as a user runs it."""
    path, _ = released
    work = tmp_path_factory.mktemp("convert")
    out = work / "ckpt" / "corrpm_tiny.ckpt"
    proc = run_cli(
        "humanparse.convert",
        "model=corrpm",
        f"released={path}",
        f"output={out}",
        *TINY,
        cwd=work,
        cache_dir=cache_dir,
    )
    assert "wrote" in proc.stdout and "corrpm from LIP_tiny.pth" in proc.stdout
    return out


def _metrics(run_dir: Path) -> dict:
    return json.loads((run_dir / "metrics.json").read_text())


def test_converted_checkpoint_holds_the_released_weights_and_protocol(released, converted):
    path, ours = released
    ckpt = safe_torch_load(converted)
    meta = ckpt["humanparse"]
    assert meta["released"]["name"] == "LIP_tiny.pth" and meta["released"]["sha256"] == file_sha256(path)
    assert meta["released"]["dropped_dead"] == 8 * 16 + 48 * 8 + 2 * 8 * 9 + 2
    cfg = meta["config"]
    assert cfg["model"]["weights"] == str(path.resolve())
    # the released protocol preset (experiment=corrpm_released) was applied
    assert cfg["data"]["normalize"] == {
        "mean": [0.485, 0.456, 0.406],
        "std": [0.229, 0.224, 0.225],
        "bgr": True,
    }
    post = cfg["model"]["postprocess"]
    assert post["output"] == "seg2" and post["map_back"] == "labels" and post["align_corners"] is True
    assert cfg["model"]["tta"] == {"scales": [1.0], "flip": False, "outputs": ["seg2"], "align_corners": True}
    assert cfg["model"]["evaluator_options"] == {"semantic": {"absent_class": "zero"}}
    assert cfg["data"]["augment"]["box_geometry"] == "ce2p"
    task, _ = build_task_from_checkpoint(converted)
    assert task.released_weights["name"] == "LIP_tiny.pth"
    got = task.net.state_dict()
    for k, v in ours.items():
        if not k.endswith("num_batches_tracked"):
            torch.testing.assert_close(got[k], v, rtol=0, atol=1e-7, msg=k)


def test_evaluate_and_compare_say_which_released_file(released, converted, tmp_path, cache_dir):
    path, _ = released
    try:
        runs = tmp_path / "runs"
        cfg = compose_cfg("eval", [f"ckpt_path={converted}", "trainer=cpu"], runs / "converted", cache_dir)
        from_ckpt = evaluate(cfg)
        # the same file in place, with the released-protocol preset, gives the same numbers
        cfg = compose_cfg(
            "eval",
            ["experiment=corrpm_released", f"model.weights={path}", "trainer=cpu", *TINY],
            runs / "in_place",
            cache_dir,
        )
        in_place = evaluate(cfg)
    finally:
        GlobalHydra.instance().clear()
    assert from_ckpt and from_ckpt == pytest.approx(in_place, abs=1e-9)
    for name in ("converted", "in_place"):
        rec = _metrics(runs / name)
        assert rec["released_weights"]["name"] == "LIP_tiny.pth"
        assert rec["released_weights"]["sha256"] == file_sha256(path)
    comparison = compare_run([f"roots=[{runs}]", "output=null"])
    assert {r.released for r in comparison.rows} == {"LIP_tiny.pth"}
    assert "released LIP_tiny.pth" in comparison.to_markdown()


def test_train_fine_tunes_from_a_converted_checkpoint(released, converted, tmp_path, cache_dir):
    try:
        # test only: the converted weights are scored as they are (= evaluate ckpt_path=, same protocol)
        cfg = compose_cfg(
            "train",
            [
                "experiment=corrpm_released",
                *TINY,
                f"ckpt_path={converted}",
                "train=false",
                "print_config=false",
                "trainer=cpu",
            ],
            tmp_path / "test_only",
            cache_dir,
        )
        tested = train(cfg)
        cfg = compose_cfg(
            "eval", [f"ckpt_path={converted}", "trainer=cpu", "split=test"], tmp_path / "eval", cache_dir
        )
        evaluated = evaluate(cfg)
        # fit: starts at step 0 from the converted weights (no trainer state to resume)
        cfg = compose_cfg(
            "train",
            [
                "model=corrpm",
                *TINY,
                f"ckpt_path={converted}",
                "trainer.max_epochs=1",
                "test=false",
                "print_config=false",
                "trainer=cpu",
                "++callbacks.progress_bar.refresh_rate=0",
            ],
            tmp_path / "fit",
            cache_dir,
        )
        train(cfg)
    finally:
        GlobalHydra.instance().clear()
    assert tested["test/miou"] == pytest.approx(evaluated["test/miou"], abs=1e-9)
    rec = _metrics(tmp_path / "fit")
    assert rec["status"] == "finished" and rec["global_step"] == 24 // 4
    assert rec["released_weights"]["name"] == "LIP_tiny.pth"


def test_convert_refuses_a_file_of_another_dataset(released, tmp_path, capsys):
    path, _ = released
    code = convert_main(
        ["model=corrpm", f"released={path}", f"output={tmp_path / 'x.ckpt'}", "data=atr", *TINY]
    )
    err = capsys.readouterr().err
    assert code == 2 and not (tmp_path / "x.ckpt").exists()
    assert "the released file has num_classes=20 but the model is built with num_classes=18" in err
    assert convert_main(["model=corrpm", f"released={path}"]) == 2
    assert "output=... is required" in capsys.readouterr().err
    assert convert_main(["model=deeplabv3plus", f"released={path}", f"output={tmp_path / 'y.ckpt'}"]) == 2
    assert "model 'deeplabv3plus' has no released-checkpoint format" in capsys.readouterr().err
