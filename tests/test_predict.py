"""humanparse.predict on a folder with a corrupt image, the logits option, and the instance protocol."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from PIL import Image

import humanparse.utils.resolvers  # noqa: F401  (the composed config uses ${hp.*})
from humanparse.predict import main as predict_main
from humanparse.predict import output_names
from humanparse.synthetic import render_scene


def _checkpoint(compose_train, tmp_path, target: str | None = None):
    """A checkpoint as train.py writes it (weights + the resolved run config), of a tiny model."""
    import hydra

    cfg = compose_train()
    if target:
        cfg.model._target_ = target
    resolved = OmegaConf.to_container(
        OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"]), resolve=True
    )
    task = hydra.utils.instantiate(cfg.model)
    path = tmp_path / "model.ckpt"
    torch.save({"state_dict": task.state_dict(), "humanparse": {"config": resolved, "hparams": {}}}, path)
    return path, cfg


def _images(folder, sizes=((40, 56), (64, 48), (33, 70))):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i, (h, w) in enumerate(sizes):
        Image.fromarray(render_scene(rng, h, w, 1).image).save(
            folder / f"img{i}.jpg" if i != 1 else folder / f"img{i}.png"
        )
    Image.fromarray(render_scene(rng, 30, 30, 1).image[..., 0]).save(folder / "gray.png")  # mode L is fine
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not a jpeg")
    (folder / "notes.txt").write_text("not an image, ignored")
    return folder


def test_predict_folder_with_a_corrupt_image(compose_train, tmp_path, capsys):
    ckpt, cfg = _checkpoint(compose_train, tmp_path)
    inp = _images(tmp_path / "in")
    out = tmp_path / "out"
    rc = predict_main(
        [
            f"ckpt_path={ckpt}",
            f"input={inp}",
            f"output={out}",
            "save_logits=true",
            "batch_size=2",
            "device=cpu",
        ]
    )
    assert rc == 1  # one image failed, the others were written
    err = capsys.readouterr().err
    assert "broken.jpg" in err and "corrupt or unreadable image" in err
    summary = json.loads((out / "predictions.json").read_text())
    assert summary["images"] == 5 and summary["written"] == 4 and summary["failed"] == 1
    failed = [o for o in summary["outputs"] if "error" in o]
    assert [o["name"] for o in failed] == ["broken"] and "broken.jpg" in failed[0]["error"]
    for name in ("img0", "img1", "img2", "gray"):
        src = next(inp.glob(f"{name}.*"))
        with Image.open(src) as im:
            w, h = im.size
        with Image.open(out / "labels" / f"{name}.png") as lab:
            assert lab.mode == "P" and lab.size == (w, h)  # index PNG with the palette, original size
            labels = np.asarray(lab)
            assert lab.getpalette()[3:6] == [128, 0, 0]  # LIP/VOC colour of class 1
        assert labels.max() < cfg.data.num_classes
        with Image.open(out / "overlays" / f"{name}.jpg") as ov:
            assert ov.size[0] > w and ov.size[1] >= h  # the image plus a legend strip on its right
        logits = np.load(out / "logits" / f"{name}.npy")
        assert logits.shape == (cfg.data.num_classes, h, w) and logits.dtype == np.float32
        assert np.array_equal(logits.argmax(0), labels)  # logits mode: argmax of the saved logits = labels


def test_predict_single_image_pt_logits_and_errors(compose_train, tmp_path, capsys):
    ckpt, cfg = _checkpoint(compose_train, tmp_path)
    inp = _images(tmp_path / "in", sizes=((40, 56),))
    out = tmp_path / "out"
    assert (
        predict_main(
            [
                f"ckpt_path={ckpt}",
                f"input={inp / 'img0.jpg'}",
                f"output={out}",
                "save_logits=true",
                "logits_format=pt",
                "overlays=false",
                "input_size=[32,32]",
            ]
        )
        == 0
    )
    saved = torch.load(out / "logits" / "img0.pt", weights_only=True)
    assert saved["logits"].shape == (cfg.data.num_classes, 40, 56) and saved["classes"][5] == "upper_clothes"
    assert not (out / "overlays").exists()
    assert predict_main([f"ckpt_path={tmp_path / 'nope.ckpt'}", f"input={inp}", f"output={out}"]) == 2
    assert "no such checkpoint" in capsys.readouterr().err
    assert predict_main([f"ckpt_path={ckpt}", f"input={tmp_path / 'empty'}", f"output={out}"]) == 2
    assert predict_main([f"ckpt_path={ckpt}", f"input={inp}"]) == 2  # output missing
    assert "output=... is required" in capsys.readouterr().err


def test_predict_instance_protocol(compose_train, tmp_path):
    ckpt, cfg = _checkpoint(compose_train, tmp_path, target="helpers.fake_tasks.ToyInstanceTask")
    inp = _images(tmp_path / "in", sizes=((40, 56),))
    (inp / "broken.jpg").unlink()
    out = tmp_path / "out"
    assert predict_main([f"ckpt_path={ckpt}", f"input={inp}", f"output={out}", "progress=false"]) == 0
    meta = json.loads((out / "instances" / "img0.json").read_text())
    assert [p["id"] for p in meta["instances"]] == [1, 2]
    assert (
        meta["instances"][0]["score"] == pytest.approx(0.9) and len(meta["instances"][1]["keypoints"]) == 16
    )
    with Image.open(out / "labels" / "img0.png") as lab:
        full = np.asarray(lab)
    left = np.asarray(Image.open(out / "instances" / "img0" / "person_1.png"))
    right = np.asarray(Image.open(out / "instances" / "img0" / "person_2.png"))
    assert np.array_equal(np.where(np.arange(56)[None, :] < 28, left, right), full)  # the parts add up
    assert (out / "overlays" / "img0_instances.jpg").is_file()


def test_output_names_keep_extensions_only_when_needed(tmp_path):
    files = [tmp_path / "a.jpg", tmp_path / "a.png", tmp_path / "sub" / "b.jpg"]
    assert output_names(tmp_path, files) == ["a.jpg", "a.png", "sub/b"]
