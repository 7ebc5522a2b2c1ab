"""Issue 10, items 6, 7, 8, 10, 11, 12: every bad input is named, never a silent wrong result, and every
entry point ends a user error in one line (exit status 2), the traceback only with HUMANPARSE_DEBUG=1."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import TINY_MODELS, TINY_TRAIN, compose_cfg, run_cli
from helpers.runs import fabricate_runs
from helpers.trust import tiny_trained_run
from humanparse.data.io import DataError, read_image, read_label
from humanparse.utils.safety import CheckpointError


@pytest.fixture
def trained_run(cache_dir) -> Path:
    return tiny_trained_run(cache_dir)


# -- 6. decoder failures -------------------------------------------------------------------------------------
def _png(path: Path, size=(40, 56), color=(120, 80, 60)) -> Path:
    Image.new("RGB", size, color).save(path)
    return path


def test_every_decoder_failure_is_a_named_data_error(tmp_path, monkeypatch):
    small = _png(tmp_path / "small.png", (40, 50))  # 2000 px
    warn = _png(tmp_path / "warn.png", (60, 50))  # 3000 px: above the limit, below twice the limit
    bomb = _png(tmp_path / "bomb.png", (100, 100))  # 10000 px: above twice the limit
    truncated = tmp_path / "truncated.png"
    noise = np.random.default_rng(0).integers(0, 256, (40, 40, 3), dtype=np.uint8)  # incompressible
    Image.fromarray(noise).save(tmp_path / "full.png")
    truncated.write_bytes((tmp_path / "full.png").read_bytes()[:2000])
    junk = tmp_path / "junk.jpg"
    junk.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 2500)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the reader must refuse the bomb warning even when warnings are off
        assert read_image(small).shape == (50, 40, 3)
        for path, what in (
            (warn, "too large"),
            (bomb, "too large"),
            (truncated, "corrupt"),
            (junk, "corrupt"),
        ):
            with pytest.raises(DataError, match=what) as err:
                read_image(path)
            assert err.value.path == str(path)
            with pytest.raises(DataError) as err:
                read_label(path)
            assert err.value.path == str(path)


def test_predict_skips_an_oversized_image_and_writes_the_rest(trained_run, tmp_path, monkeypatch, capsys):
    from humanparse import predict

    folder = tmp_path / "in"
    folder.mkdir()
    _png(folder / "a.png")
    _png(folder / "huge.png", (120, 120))
    _png(folder / "z.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 4000)
    code = predict.main(
        [
            f"ckpt_path={trained_run / 'checkpoints' / 'last.ckpt'}",
            f"input={folder}",
            f"output={tmp_path / 'out'}",
            "progress=false",
            "overlays=false",
        ]
    )
    assert code == 1
    summary = json.loads((tmp_path / "out" / "predictions.json").read_text())
    assert summary["written"] == 2 and summary["failed"] == 1
    bad = [o for o in summary["outputs"] if "error" in o]
    assert (
        bad[0]["name"] == "huge"
        and str(folder / "huge.png") in bad[0]["error"]
        and "too large" in bad[0]["error"]
    )
    assert (tmp_path / "out" / "labels" / "a.png").is_file() and (
        tmp_path / "out" / "labels" / "z.png"
    ).is_file()
    assert str(folder / "huge.png") in capsys.readouterr().err


# -- 8. 16-bit images ------------------------------------------------------------------------------------------
def test_16_bit_images_are_scaled_to_8_bit(tmp_path):
    ramp = np.tile(np.array([0, 257, 32896, 65535], dtype=np.uint16), (3, 1))  # 0, 1, 128, 255 in 8 bit
    path = tmp_path / "deep.png"
    Image.fromarray(ramp).save(path)
    assert Image.open(path).mode.startswith("I;16")
    img = read_image(path)
    assert img.dtype == np.uint8 and img.shape == (3, 4, 3)
    assert img[0, :, 0].tolist() == [0, 1, 128, 255]
    assert (img[..., 0] == img[..., 1]).all() and (img[..., 1] == img[..., 2]).all()
    f = tmp_path / "float.tif"
    Image.fromarray(np.ones((4, 4), np.float32)).save(f)
    with pytest.raises(DataError, match="floating-point"):
        read_image(f)


# -- 7. unknown keys ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "arg, near",
    [
        ("app_convnetion=mhp_official", "app_convention"),
        ("absent_clas=zero", "absent_class"),
        ("similarity=gpsm", None),
    ],
)
def test_evaluate_predictions_refuses_misspelt_options(tmp_path, capsys, arg, near):
    from humanparse.evaluate_predictions import main

    code = main(["metric=semantic", f"gt_dir={tmp_path}", f"pred_dir={tmp_path}", arg])
    err = capsys.readouterr().err
    assert code == 2 and f"unknown option {arg.split('=')[0]!r}" in err
    if near:
        assert f"did you mean {near}?" in err
    assert not list(tmp_path.glob("*.json"))


def test_predict_and_compare_name_the_closest_option(capsys):
    from humanparse.compare.cli import main as compare_main
    from humanparse.predict import PredictError, parse_args

    with pytest.raises(PredictError, match="unknown option 'bach_size'; did you mean batch_size"):
        parse_args(["ckpt_path=x", "input=y", "output=z", "bach_size=4"])
    assert compare_main(["per_clas=false"]) == 2
    assert "did you mean per_class" in capsys.readouterr().err


# -- 10. damaged checkpoints ---------------------------------------------------------------------------------
def _damaged(kind: str, src: Path, dst: Path) -> Path:
    data = src.read_bytes()
    if kind == "empty":
        dst.write_bytes(b"")
    elif kind == "truncated":
        dst.write_bytes(data[: len(data) // 2])
    elif kind == "corrupt":
        dst.write_bytes(bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8)))
    elif kind == "foreign":
        torch.save({"weights": torch.zeros(3)}, dst)
    elif kind == "not_humanparse":
        ck = torch.load(src, map_location="cpu", weights_only=True)
        ck.pop("humanparse")
        torch.save(ck, dst)
    elif kind == "architecture":
        ck = torch.load(src, map_location="cpu", weights_only=True)
        key = next(k for k, v in ck["state_dict"].items() if v.ndim == 4)
        ck["state_dict"][key] = torch.zeros(3, 3, 1, 1)
        ck["state_dict"].pop(next(iter(k for k in ck["state_dict"] if k.endswith("bias"))))
        torch.save(ck, dst)
    return dst


@pytest.mark.parametrize(
    "kind, problem",
    [
        ("missing", "no such checkpoint file"),
        ("empty", "empty file"),
        ("truncated", "corrupt or truncated"),
        ("corrupt", "corrupt"),
        ("foreign", "not a Lightning checkpoint"),
        ("not_humanparse", "not a humanparse checkpoint"),
        ("architecture", "do not fit the model's architecture"),
    ],
)
def test_damaged_checkpoints_are_named(trained_run, tmp_path, cache_dir, kind, problem):
    from humanparse.evaluate import evaluate

    bad = tmp_path / f"{kind}.ckpt"
    if kind != "missing":
        _damaged(kind, trained_run / "checkpoints" / "last.ckpt", bad)
    with pytest.raises(CheckpointError, match=problem) as err:
        evaluate(compose_cfg("eval", [f"ckpt_path={bad}"], tmp_path / "eval", cache_dir))
    assert err.value.path == str(bad)


# -- 11. compare with damaged folders -------------------------------------------------------------------------
def test_compare_lists_damaged_folders_as_unreadable(tmp_path, capsys):
    from humanparse.compare.cli import run

    fabricate_runs(tmp_path)
    half = tmp_path / "killed"
    (half / "csv" / "version_0").mkdir(parents=True)
    (half / "csv" / "version_0" / "hparams.yaml").write_text("model:\n  name: [unclosed\n  x: {")
    (half / "metrics.json").write_text(json.dumps({"status": "finished", "metrics": {"val/miou": 0.5}}))
    listed = tmp_path / "listed"
    listed.mkdir()
    (listed / "metrics.json").write_text("[1, 2, 3]")
    capsys.readouterr()
    comparison = run([f"root={tmp_path}", "output=none"])
    out = capsys.readouterr().out
    by_name = {r.name: r for r in comparison.records}
    assert comparison.rows  # the rest is compared
    assert by_name["killed"].status == "unreadable" and "config: " in by_name["killed"].error
    assert by_name["listed"].status == "unreadable"
    assert "- killed (local): unreadable" in out and "not a JSON object (a list)" in out


# -- 12. one line per error -----------------------------------------------------------------------------------
def _one_line(proc) -> str:
    """The error is one line, the last one; no traceback, no second report (Lightning's info lines may
    come before it)."""
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert "Traceback" not in proc.stderr and "Error executing job" not in proc.stderr, proc.stderr[-3000:]
    assert lines and lines[-1].startswith("error: "), proc.stderr[-3000:]
    assert sum(ln.startswith("error") for ln in lines) == 1, proc.stderr[-3000:]
    return lines[-1]


def test_entry_points_end_user_errors_in_one_line(trained_run, tmp_path, cache_dir):
    bad = _damaged("truncated", trained_run / "checkpoints" / "last.ckpt", tmp_path / "half.ckpt")
    proc = run_cli("humanparse.evaluate", f"ckpt_path={bad}", cwd=tmp_path, cache_dir=cache_dir, check=False)
    assert proc.returncode == 2
    assert str(bad) in _one_line(proc) and "truncated" in proc.stderr
    # train: a misspelt override (Hydra's own composition error)
    tiny = [*TINY_TRAIN, *TINY_MODELS["deeplabv3plus"]]
    proc = run_cli(
        "humanparse.train", *tiny, "trainer.max_epoch=3", cwd=tmp_path, cache_dir=cache_dir, check=False
    )
    assert proc.returncode == 2 and "trainer.max_epoch" in _one_line(proc)


def test_the_debug_switch_brings_the_traceback_back(monkeypatch, capsys):
    from humanparse.utils.errors import one_line_errors, run_main

    for var in ("HUMANPARSE_DEBUG", "HYDRA_FULL_ERROR", "_HUMANPARSE_SET_HYDRA_FULL_ERROR"):
        monkeypatch.delenv(var, raising=False)  # run_main sets the last two: restored after the test

    def failing():
        raise CheckpointError("x.ckpt", "corrupt")

    assert run_main(failing) == 2 and capsys.readouterr().err == "error: x.ckpt: corrupt\n"
    monkeypatch.setenv("HUMANPARSE_DEBUG", "1")
    with pytest.raises(CheckpointError):
        run_main(failing)
    with pytest.raises(CheckpointError):
        one_line_errors(failing)()
    monkeypatch.delenv("HUMANPARSE_DEBUG")
    with pytest.raises(SystemExit) as ex:
        one_line_errors(failing)()
    assert ex.value.code == 2
    # anything else is an internal error: exit status 1, and the line says how to see the traceback
    assert run_main(lambda: [][1]) == 1 and "HUMANPARSE_DEBUG=1" in capsys.readouterr().err


def test_the_task_function_wrapper_reports_one_line(compose_train, tmp_path, capsys):
    """What ``@one_line_errors`` does under ``train``'s ``@hydra.main``: a dataset that is not there ends the
    process with status 2 and one line naming the folder."""
    from humanparse.train import train
    from humanparse.utils.errors import one_line_errors

    cfg = compose_train("data.synthetic=false", f"data.root={tmp_path / 'nowhere'}", run_dir=tmp_path / "run")
    capsys.readouterr()
    with pytest.raises(SystemExit) as ex:
        one_line_errors(train)(cfg)
    assert ex.value.code == 2
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert len(err) == 1 and err[0].startswith("error: LIP root ") and str(tmp_path / "nowhere") in err[0]
