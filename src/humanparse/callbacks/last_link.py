"""``checkpoints/last.ckpt`` as a symbolic link to the newest epoch checkpoint (no second full copy)."""

from __future__ import annotations

import os

import pytorch_lightning as pl
from pytorch_lightning.callbacks import ModelCheckpoint


class LastCheckpointLink(ModelCheckpoint):
    """After every validation (or training epoch end), ``last.ckpt`` points at this epoch's checkpoint.

    When the best-checkpoint callback has just written this epoch (``epoch_NNN.ckpt``), ``last.ckpt`` links
    to that file; otherwise this callback writes ``epoch_NNN.ckpt`` itself and links to it, deleting the
    previous one it wrote (never a file another checkpoint callback keeps). Lightning's own
    ``save_last="link"`` links to the newest file *of its callback*, which for a best-only callback is the
    best epoch, not the newest: a resume from it would restart from an older epoch. Being a
    ``ModelCheckpoint``, Lightning runs it after the checkpoint callbacks listed before it.
    """

    LINK_NAME = "last.ckpt"

    def __init__(
        self,
        dirpath: str,
        filename: str = "epoch_{epoch:03d}",
        save_on_train_epoch_end: bool = False,
        save_on_exception: bool = False,
    ):
        super().__init__(
            dirpath=dirpath,
            filename=filename,
            monitor=None,
            save_top_k=1,
            save_last=False,
            auto_insert_metric_name=False,
            enable_version_counter=False,
            save_on_train_epoch_end=save_on_train_epoch_end,
            save_on_exception=save_on_exception,
        )
        self.own_path = ""  # the checkpoint this callback wrote and last.ckpt points to

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not self._should_skip_saving_checkpoint(trainer) and self._should_save_on_train_epoch_end(trainer):
            self._link_newest(trainer)

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not self._should_skip_saving_checkpoint(trainer) and not self._should_save_on_train_epoch_end(
            trainer
        ):
            self._link_newest(trainer)

    def _kept_by_others(self, trainer: pl.Trainer, path: str) -> bool:
        for cb in trainer.checkpoint_callbacks:
            if cb is not self and (
                path == getattr(cb, "best_model_path", "")
                or path in getattr(cb, "best_k_models", {})
                or path == getattr(cb, "last_model_path", "")
            ):
                return True
        return False

    def _link_newest(self, trainer: pl.Trainer) -> None:
        target = ""
        for cb in trainer.checkpoint_callbacks:
            if (
                cb is not self
                and getattr(cb, "_last_global_step_saved", -1) == trainer.global_step
                and getattr(cb, "_last_checkpoint_saved", "")
            ):
                target = cb._last_checkpoint_saved
        previous = self.own_path
        if target:
            self.own_path = ""
        else:
            target = self.format_checkpoint_name(self._monitor_candidates(trainer))
            self.own_path = target
            self._save_checkpoint(trainer, target)
        if previous and previous != target and not self._kept_by_others(trainer, previous):
            self._remove_checkpoint(trainer, previous)
        link = os.path.join(self.dirpath, self.LINK_NAME)
        self._link_checkpoint(trainer, target, link)
        self.last_model_path = link

    def state_dict(self) -> dict:
        return {**super().state_dict(), "own_path": self.own_path}

    def load_state_dict(self, state_dict: dict) -> None:
        super().load_state_dict(state_dict)
        self.own_path = state_dict.get("own_path", "")
