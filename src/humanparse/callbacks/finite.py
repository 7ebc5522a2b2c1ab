"""Stop a training whose loss or weights stop being finite, before a NaN state reaches a checkpoint."""

from __future__ import annotations

import math

import pytorch_lightning as pl
import torch


class NonFiniteError(RuntimeError):
    """Training produced a non-finite loss or non-finite weights. The run is marked ``failed``."""

    exit_code = 1

    def __init__(self, message: str, step: int, epoch: int, what: str):
        super().__init__(message)
        self.step, self.epoch, self.what = step, epoch, what

    @property
    def record(self) -> dict:
        """What the run's ``metrics.json`` records about the failure."""
        return {"failed_step": self.step, "failed_epoch": self.epoch, "failure": self.what}


def _loss_of(outputs) -> torch.Tensor | None:
    if isinstance(outputs, torch.Tensor):
        return outputs
    if isinstance(outputs, dict) and isinstance(outputs.get("loss"), torch.Tensor):
        return outputs["loss"]
    return None


class FiniteGuard(pl.Callback):
    """After every training step: the loss, and (every ``weights_every_n_steps``) the weights, must be finite.

    On a NaN/inf it raises :class:`NonFiniteError` naming the step. Checkpoints are written at validation
    end, after this check, so the last checkpoint on disk stays the last good state; the checkpoint
    callbacks' ``save_on_exception`` is switched off before raising so that Lightning's exception handler
    cannot write the broken state either. Across processes the decision is shared (one rank's NaN stops
    every rank instead of leaving the others waiting in a collective).

    Args:
        check_loss: check the training step's loss.
        weights_every_n_steps: check the parameters every N optimiser steps (0 = never).
    """

    def __init__(self, check_loss: bool = True, weights_every_n_steps: int = 1):
        self.check_loss = bool(check_loss)
        self.weights_every = int(weights_every_n_steps)

    @staticmethod
    def _bad_weights(pl_module: pl.LightningModule) -> str | None:
        params = [p.detach() for p in pl_module.parameters() if p.numel()]
        if not params:
            return None
        # one reduction per tensor (max |w|), one synchronisation: cheap next to a training step
        peaks = torch.stack([t.float() for t in torch._foreach_norm(params, ord=math.inf)])
        if bool(torch.isfinite(peaks).all()):
            return None
        names = [n for n, p in pl_module.named_parameters() if p.numel()]
        bad = [names[i] for i in torch.nonzero(~torch.isfinite(peaks)).flatten().tolist()]
        return f"non-finite weights in {len(bad)} parameter tensors (e.g. {bad[0]})"

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs, batch, batch_idx: int
    ) -> None:
        problem = None
        if self.check_loss:
            loss = _loss_of(outputs)
            if loss is not None and not bool(torch.isfinite(loss.detach()).all()):
                problem = f"non-finite loss ({float(loss.detach().float().reshape(-1)[0])})"
        if problem is None and self.weights_every > 0 and trainer.global_step % self.weights_every == 0:
            problem = self._bad_weights(pl_module)
        if not trainer.strategy.reduce_boolean_decision(problem is not None, all=False):
            return
        problem = problem or "non-finite values on another process"
        for cb in trainer.checkpoint_callbacks:
            if hasattr(cb, "save_on_exception"):
                cb.save_on_exception = False
        step, epoch = int(trainer.global_step), int(trainer.current_epoch)
        raise NonFiniteError(
            f"training stopped at step {step} (epoch {epoch}, batch {batch_idx}): {problem}; the checkpoints on "
            "disk keep the last good state (lower the learning rate, or check the data and the loss)",
            step=step,
            epoch=epoch,
            what=problem,
        )
