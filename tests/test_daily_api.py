"""Python API (Parser, Task.load_from_checkpoint) and the pictures predict writes (legend, side-by-side)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from PIL import Image

import humanparse.utils.resolvers  # noqa: F401
from humanparse.api import Parser
from humanparse.data.meta import get_info
from humanparse.predict import main as predict_main
from humanparse.synthetic import render_scene
from humanparse.tasks import Task
from humanparse.utils import visualize as viz

TINY_PRESET = [
    "model.backbone=tu-mobilenetv3_small_050",
    "model.net.decoder_channels=32",
    "data.input_size=[64,64]",
]


def _checkpoint(compose_train, tmp_path, target: str | None = None):
    import hydra

    cfg = compose_train()
    if target:
        cfg.model._target_ = target
    resolved = OmegaConf.to_container(
        OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"]), resolve=True
    )
    torch.manual_seed(0)
    task = hydra.utils.instantiate(cfg.model)
    for p in task.parameters():  # untrained nets predict one class; random weights give several
        torch.nn.init.normal_(p, std=0.5)
    path = tmp_path / "model.ckpt"
    torch.save({"state_dict": task.state_dict(), "humanparse": {"config": resolved, "hparams": {}}}, path)
    return path, task


def _image(tmp_path, h=40, w=56):
    img = render_scene(np.random.default_rng(0), h, w, 1).image
    Image.fromarray(img).save(tmp_path / "photo.png")
    return tmp_path / "photo.png", img


def test_parser_from_checkpoint_matches_predict(compose_train, tmp_path):
    ckpt, _ = _checkpoint(compose_train, tmp_path)
    path, img = _image(tmp_path)
    # the README example
    parser = Parser.from_checkpoint(ckpt, device="cpu")
    pred = parser(str(path))
    assert pred["semantic"].shape == (40, 56) and pred["semantic"].dtype == np.int64
    assert pred["logits"] is None and pred["instances"] is None
    for other in (img, Image.fromarray(img), path):
        assert np.array_equal(parser(other)["semantic"], pred["semantic"])
    with_logits = parser(img, logits=True)
    assert with_logits["logits"].shape == (20, 40, 56) and np.array_equal(
        with_logits["logits"].argmax(0), pred["semantic"]
    )
    # the same labels as the command line writes
    assert (
        predict_main([f"ckpt_path={ckpt}", f"input={path}", f"output={tmp_path / 'out'}", "device=cpu"]) == 0
    )
    assert np.array_equal(np.asarray(Image.open(tmp_path / "out" / "labels" / "photo.png")), pred["semantic"])
    with pytest.raises(ValueError, match="image array must be"):
        parser(np.zeros((4, 4, 5), np.uint8))
    with pytest.raises(TypeError, match="cannot parse"):
        parser(3)


def test_lightning_load_from_checkpoint(compose_train, tmp_path):
    ckpt, task = _checkpoint(compose_train, tmp_path)
    loaded = Task.load_from_checkpoint(ckpt)  # Lightning's own API (TypeError before: net not in hparams)
    assert type(loaded) is Task and not loaded.training
    for k, v in task.state_dict().items():
        assert torch.equal(loaded.state_dict()[k], v), k
    with pytest.raises(TypeError, match="not supported"):
        Task.load_from_checkpoint(ckpt, hparams_file="x.yaml")

    class OtherTask(Task):
        pass

    with pytest.raises(TypeError, match="holds a Task, not a OtherTask"):
        OtherTask.load_from_checkpoint(ckpt)


def test_parser_from_preset_with_a_weights_file(compose_train, tmp_path):
    ckpt, task = _checkpoint(compose_train, tmp_path)
    weights = tmp_path / "net.pth"
    torch.save(task.net.state_dict(), weights)  # the bare network's state dict
    path, _ = _image(tmp_path)
    preset = Parser.from_preset("demo", weights=weights, overrides=TINY_PRESET, device="cpu")
    assert np.array_equal(
        preset(path)["semantic"], Parser.from_checkpoint(ckpt, device="cpu")(path)["semantic"]
    )
    torch.save({"something": torch.zeros(3)}, tmp_path / "bad.pth")
    with pytest.raises(ValueError, match="bad.pth: does not fit"):
        Parser.from_preset("demo", weights=tmp_path / "bad.pth", overrides=TINY_PRESET, device="cpu")
    with pytest.raises(ValueError, match="preset 'nope'"):
        Parser.from_preset("nope")


def test_legend_names_the_classes_present():
    info = get_info("lip")
    label = np.zeros((30, 40), np.int64)
    label[5:15, 5:15] = 2  # hair
    label[20:25, 5:30] = 13  # face
    img = viz.add_legend(
        viz.overlay(np.full((30, 40, 3), 90, np.uint8), label, info.palette()),
        label,
        info.class_keys,
        info.palette(),
    )
    assert img.shape[1] > 40 and img.shape[0] >= 2 * 16
    strip = img[:, 40:].reshape(-1, 3)
    pal = info.palette()
    colours = {tuple(c) for c in strip}
    assert tuple(pal[2]) in colours and tuple(pal[13]) in colours and tuple(pal[5]) not in colours


def test_predict_writes_side_by_side_for_instance_models(compose_train, tmp_path):
    ckpt, _ = _checkpoint(compose_train, tmp_path, target="helpers.fake_tasks.ToyInstanceTask")
    path, _ = _image(tmp_path)
    out = tmp_path / "out"
    assert predict_main([f"ckpt_path={ckpt}", f"input={path}", f"output={out}", "device=cpu"]) == 0
    view = np.asarray(Image.open(out / "overlays" / "photo_side_by_side.jpg"))
    assert view.shape[1] > 3 * 56 and view.shape[0] >= 40  # image | parts (+ legend) | instances
