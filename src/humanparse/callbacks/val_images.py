"""A few fixed validation images per epoch as image | ground truth | prediction, to wandb and a PNG grid."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch
from PIL import Image
from pytorch_lightning.callbacks import Callback

from humanparse.utils import visualize as viz

log = logging.getLogger(__name__)


def _numpy(x) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def prediction_map(pred) -> np.ndarray | None:
    """The (H, W) class map of one ``predict_step`` entry: a label tensor, or a dict with ``semantic`` (else the
    parts of its ``instances`` pasted in ascending score order)."""
    if isinstance(pred, (torch.Tensor, np.ndarray)):
        return _numpy(pred).astype(np.int64)
    if not isinstance(pred, dict):
        return None
    if pred.get("semantic") is not None:
        return _numpy(pred["semantic"]).astype(np.int64)
    insts = [i for i in (pred.get("instances") or []) if i.get("parts") is not None]
    if not insts:
        return None
    out = np.zeros(_numpy(insts[0]["parts"]).shape, dtype=np.int64)
    for inst in sorted(insts, key=lambda i: float(i.get("score", 0.0))):
        parts = _numpy(inst["parts"]).astype(np.int64)
        out[parts > 0] = parts[parts > 0]
    return out


def ground_truth_maps(batch: dict) -> list[np.ndarray | None]:
    """Per-image original-size semantic GT: ``batch["gt_semantic"]`` or ``batch["gt"][i]["semantic"]``."""
    n = len(batch.get("meta") or [])
    if batch.get("gt_semantic") is not None:
        return [_numpy(g).astype(np.int64) for g in batch["gt_semantic"]]
    if batch.get("gt") is not None:
        return [
            (_numpy(g["semantic"]).astype(np.int64) if g.get("semantic") is not None else None)
            for g in batch["gt"]
        ]
    return [None] * n


def original_image(meta: dict, normalised: torch.Tensor | None = None) -> np.ndarray:
    """The image at its original size: read from ``meta["image_path"]``, else the network input
    de-normalised (ImageNet statistics) and warped back with the inverse of ``meta["affine"]``."""
    path = meta.get("image_path")
    if path and Path(str(path)).is_file():
        from humanparse.data.io import read_image

        return read_image(path)
    import cv2

    from humanparse.data.transforms import IMAGENET_MEAN, IMAGENET_STD

    x = _numpy(normalised).astype(np.float32).transpose(1, 2, 0)
    x = (x * np.asarray(IMAGENET_STD, np.float32) + np.asarray(IMAGENET_MEAN, np.float32)) * 255.0
    x = np.clip(x, 0, 255).astype(np.uint8)
    h, w = (int(v) for v in meta["orig_size"])
    inv = np.linalg.inv(np.asarray(meta["affine"], dtype=np.float64))[:2]
    return cv2.warpAffine(x, inv, (w, h), flags=cv2.INTER_LINEAR)


def _fit(image: np.ndarray, max_side: int, min_side: int = 160) -> np.ndarray:
    """Scaled (nearest) so that the long side lies in [min_side, max_side]: small images stay readable."""
    h, w = image.shape[:2]
    s = min(1.0, max_side / max(h, w)) if max(h, w) > min_side else min_side / max(h, w)
    if s == 1.0:
        return image
    import cv2

    return cv2.resize(image, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_NEAREST)


class ValidationImages(Callback):
    """Every ``every_n_epochs`` epochs, the first ``num_images`` images of the validation set (the same ones
    every epoch) as rows image | ground truth | prediction, with a legend of the classes in GT and prediction.

    Written to ``<run_dir>/<folder>/epoch_NNN.png`` and, with a wandb logger, logged as ``val/images``.
    Predictions come from the task's ``predict_step(batch, 0)`` (one label map or prediction dict per image,
    in original pixels); the GT from ``batch["gt_semantic"]`` or ``batch["gt"][i]["semantic"]``.
    """

    def __init__(
        self,
        num_images: int = 4,
        every_n_epochs: int = 1,
        folder: str = "val_images",
        alpha: float = 0.6,
        max_side: int = 256,
        dataloader_idx: int = 0,
    ):
        self.num_images, self.every_n_epochs, self.folder = (
            int(num_images),
            max(1, int(every_n_epochs)),
            folder,
        )
        self.alpha, self.max_side, self.dataloader_idx = float(alpha), int(max_side), int(dataloader_idx)
        self.rows: list[np.ndarray] = []
        self.last_path: Path | None = None

    def _active(self, trainer: pl.Trainer) -> bool:
        return (
            self.num_images > 0
            and not trainer.sanity_checking
            and trainer.is_global_zero
            and (trainer.current_epoch + 1) % self.every_n_epochs == 0
        )

    def on_validation_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.rows = []

    def on_validation_batch_end(
        self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx: int = 0
    ) -> None:
        if (
            dataloader_idx != self.dataloader_idx
            or len(self.rows) >= self.num_images
            or not self._active(trainer)
        ):
            return
        info = getattr(pl_module, "info", None) or getattr(trainer.datamodule, "info", None)
        if info is None:
            return
        gts = ground_truth_maps(batch)
        try:
            with torch.no_grad():
                preds = pl_module.predict_step(batch, 0)
        except Exception as e:  # noqa: BLE001 - pictures must never stop a training run; said once, then off
            log.warning(
                "val_images: %s.predict_step failed (%s: %s); no validation images this run",
                type(pl_module).__name__,
                type(e).__name__,
                e,
            )
            self.num_images = 0
            return
        palette, names = info.palette(), list(info.class_keys)
        for i, (meta, pred, gt) in enumerate(zip(batch["meta"], preds, gts)):
            if len(self.rows) >= self.num_images:
                break
            pmap = prediction_map(pred)
            if pmap is None:
                continue
            img = original_image(meta, batch["image"][i] if "image" in batch else None)
            both = np.concatenate([pmap.ravel(), gt.ravel()]) if gt is not None else pmap.ravel()
            panels = [viz.titled(_fit(img, self.max_side), str(meta.get("id", i))[:40])]
            if gt is not None:
                g = np.where(gt == viz.IGNORE_INDEX, 0, gt)
                panels.append(
                    viz.titled(_fit(viz.overlay(img, g, palette, self.alpha), self.max_side), "ground truth")
                )
            panels.append(
                viz.titled(_fit(viz.overlay(img, pmap, palette, self.alpha), self.max_side), "prediction")
            )
            row = viz.hstack(panels)
            self.rows.append(viz.add_legend(row, both, names, palette))

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not self.rows or not self._active(trainer):
            return
        grid = viz.vstack(self.rows)
        folder = Path(trainer.default_root_dir) / self.folder
        folder.mkdir(parents=True, exist_ok=True)
        self.last_path = folder / f"epoch_{trainer.current_epoch:03d}.png"
        Image.fromarray(grid).save(self.last_path)
        from pytorch_lightning.loggers import WandbLogger

        for lg in trainer.loggers:
            if isinstance(lg, WandbLogger):
                lg.log_image(
                    key="val/images",
                    images=[grid],
                    step=trainer.global_step,
                    caption=[f"epoch {trainer.current_epoch}: image | ground truth | prediction"],
                )
        self.rows = []
