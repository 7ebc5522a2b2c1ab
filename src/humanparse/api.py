"""Python API: load a model in one call and parse images.

.. code-block:: python

    from humanparse.api import Parser
    parser = Parser.from_checkpoint("logs/train/runs/<date>/checkpoints/last.ckpt")   # or device="cpu"
    pred = parser("photo.jpg")                  # also a numpy RGB array or a PIL image
    pred["semantic"]                            # (H, W) int64 class ids at the image's size
    parser.overlay("photo.jpg", pred)           # RGB picture with a class legend

``Parser.from_preset("corrpm_lip", weights="corrpm_lip.pth")`` builds an experiment preset and loads a
state dict (or a humanparse checkpoint) into it. A prediction is the dict ``humanparse.predict`` writes:
``semantic`` ((H, W) class ids), ``logits`` ((C, H, W) float32 at the original size, with
``logits=True``) and ``instances`` (per-person dicts of instance models, else ``None``).
The loading and preprocessing are ``humanparse.predict``'s own (transform from the saved data config,
predictions normalised by :func:`humanparse.predict.normalise_prediction`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from humanparse.data.base import collate_dense, to_tensors
from humanparse.data.io import read_image
from humanparse.data.meta import get_info
from humanparse.predict import build_transform, fallback_logits, normalise_prediction, resolve_device


def as_rgb(image) -> tuple[np.ndarray, str]:
    """(RGB uint8 (H, W, 3) array, description) from a path, a numpy array or a PIL image."""
    if isinstance(image, (str, Path)):
        return read_image(image), str(image)
    if isinstance(image, Image.Image):
        return np.asarray(image.convert("RGB")), "<PIL image>"
    if isinstance(image, np.ndarray):
        arr = image
        if arr.ndim == 2:
            arr = np.repeat(arr[..., None], 3, axis=2)
        if arr.ndim != 3 or arr.shape[2] not in (3, 4):
            raise ValueError(
                f"image array must be (H, W), (H, W, 3) or (H, W, 4) RGB(A), got shape {image.shape}"
            )
        if arr.dtype != np.uint8:
            if np.issubdtype(arr.dtype, np.floating) and arr.size and float(arr.max()) <= 1.0:
                arr = arr * 255.0
            arr = np.clip(arr, 0, 255).astype(np.uint8)
        return np.ascontiguousarray(arr[..., :3]), "<array>"
    raise TypeError(
        f"cannot parse a {type(image).__name__}: give a file path, a numpy RGB array or a PIL image"
    )


class Parser:
    """A trained humanparse model with its preprocessing; ``parser(image)`` → prediction dict."""

    def __init__(self, task, config: dict, device: str = "auto", input_size=None):
        self.device = resolve_device(str(device))
        self.task = task.to(self.device).eval()
        self.config = config
        self.info = getattr(task, "info", None) or get_info((config.get("data") or {}).get("name", ""))
        self.transform = build_transform(config, input_size)

    @property
    def class_names(self) -> list[str]:
        return list(self.info.class_keys)

    @classmethod
    def from_checkpoint(cls, path: str | Path, device: str = "auto", input_size=None) -> Parser:
        """The model and preprocessing stored in a humanparse checkpoint (``checkpoints/*.ckpt``)."""
        from humanparse.tasks.loading import build_task

        task, saved = build_task(path)
        return cls(task, saved, device, input_size)

    @classmethod
    def from_preset(
        cls,
        name: str,
        weights: str | Path | None = None,
        overrides: list[str] | tuple = (),
        device: str = "auto",
        input_size=None,
    ) -> Parser:
        """An experiment preset (``conf/experiment/<name>.yaml``, e.g. ``corrpm_lip``) with ``weights``:
        a state dict of the task (keys ``net.…``) or of the bare network, or a humanparse checkpoint; read
        with ``weights_only=True``. Without weights the network keeps its initialisation (tests, shapes)."""
        config = compose_preset(name, list(overrides))
        import hydra
        from omegaconf import OmegaConf

        model_cfg = dict(config["model"])
        model_cfg["pretrained"] = None
        if isinstance(model_cfg.get("net"), dict) and "pretrained" in model_cfg["net"]:
            model_cfg["net"] = {**model_cfg["net"], "pretrained": None}
        task = hydra.utils.instantiate(OmegaConf.create(model_cfg))
        if weights is not None:
            load_weights(task, weights)
        task.run_config = config
        return cls(task, config, device, input_size)

    @torch.inference_mode()
    def __call__(self, image, logits: bool = False) -> dict:
        """Parse one image (path, numpy RGB array or PIL image); returns ``semantic``, ``logits``, ``instances``."""
        rgb, desc = as_rgb(image)
        h, w = rgb.shape[:2]
        sample = {
            "image": rgb,
            "meta": {
                "id": Path(desc).stem,
                "dataset": self.info.name,
                "image_path": desc,
                "orig_size": (h, w),
                "split": "predict",
            },
        }
        batch = collate_dense([to_tensors(self.transform(sample, None))])
        batch["image"] = batch["image"].to(self.device)
        pred = normalise_prediction(self.task.predict_step(batch, 0)[0])
        if logits and pred["logits"] is None:
            extra = fallback_logits(self.task, batch)
            pred["logits"] = extra[0] if extra is not None else None
        if not logits:
            pred["logits"] = None
        return pred

    def overlay(self, image, pred: dict | None = None, alpha: float = 0.5, legend: bool = True) -> np.ndarray:
        """The colour overlay of a prediction (computed when not given), with a legend of the classes present."""
        from humanparse.utils import visualize as viz

        rgb, _ = as_rgb(image)
        pred = self(rgb) if pred is None else pred
        out = viz.overlay(rgb, pred["semantic"], self.info.palette(), alpha)
        return viz.add_legend(out, pred["semantic"], self.class_names, self.info.palette()) if legend else out


def compose_preset(name: str, overrides: list[str]) -> dict:
    """The resolved training config of ``experiment=<name>`` (plus ``overrides``), without Hydra's runtime."""
    from hydra import compose, initialize_config_module
    from hydra.core.global_hydra import GlobalHydra
    from omegaconf import OmegaConf, open_dict

    import humanparse.utils.resolvers  # noqa: F401  (the configs use ${hp.*})

    if GlobalHydra.instance().is_initialized():
        GlobalHydra.instance().clear()
    with initialize_config_module(config_module="humanparse.conf", version_base="1.3"):
        try:
            cfg = compose("train", overrides=[f"experiment={name}", *overrides])
        except Exception as e:  # hydra's MissingConfigException and override errors
            raise ValueError(f"preset {name!r}: {e}") from e
    with open_dict(cfg):
        cfg.paths.output_dir = "."
    return OmegaConf.to_container(cfg, resolve=True)


def load_weights(task, weights: str | Path) -> None:
    """Load a state dict (task keys ``net.…``, bare network keys, or a checkpoint's ``state_dict``)."""
    path = Path(weights)
    if not path.is_file():
        raise FileNotFoundError(f"weights={weights}: no such file")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - pickle errors of all kinds: one clear line
        raise ValueError(
            f"weights={weights}: not a PyTorch weights file readable with weights_only=True ({e})"
        ) from e
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not state:
        raise ValueError(f"weights={weights}: no state dict in this file")
    task_keys = set(task.state_dict())
    if len(task_keys & set(state)) < len({f"net.{k}" for k in state} & task_keys):  # the bare network's keys
        state = {f"net.{k}": v for k, v in state.items()}
    missing, unexpected = task.load_state_dict(state, strict=False)
    missing = [k for k in missing if k.startswith("net.")]
    if missing or unexpected:
        raise ValueError(
            f"weights={weights}: does not fit the preset's network ({len(missing)} missing keys, e.g. "
            f"{missing[:3]}; {len(unexpected)} unexpected, e.g. {unexpected[:3]})"
        )
