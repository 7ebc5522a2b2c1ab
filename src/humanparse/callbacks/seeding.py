"""Per-epoch re-seeding, so that a run resumed from an epoch-end checkpoint continues bit-identically."""

from __future__ import annotations

import pytorch_lightning as pl


class EpochSeed(pl.Callback):
    """Seed Python, NumPy and torch with ``seed + epoch`` at the start of every training epoch.

    Data augmentation already draws from per-sample generators seeded by (seed, epoch, index); this
    covers what remains on the global generators (dropout, random sampling inside models). Without it,
    a resumed run would continue from a fresh global RNG state and drift from an uninterrupted one.
    """

    def __init__(self, seed: int = 0):
        self.seed = int(seed)

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        pl.seed_everything(
            self.seed + trainer.current_epoch + 1000 * trainer.global_rank, workers=True, verbose=False
        )
