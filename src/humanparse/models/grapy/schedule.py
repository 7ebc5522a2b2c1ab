"""The released Grapy-ML learning-rate schedule (``exp/refine_on_datasets_SYN/train_gpm*.py``,
``exp/single_syn/train_dlab*.py``): the paper says "poly"; the code keeps the base rate and, at the last epoch of
every block of ``step_epochs`` epochs (epoch % 10 == 9), sets lr = base·(1 − epoch/epochs)^0.9 and re-creates
the SGD optimizer, which discards its momentum buffers.

Stepped per iteration like every schedule of the task; the epoch is ``step // steps_per_epoch`` with
``steps_per_epoch = total_steps / epochs``.
"""

from __future__ import annotations

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR


class ReleasedPolyLR(LambdaLR):
    """Poly applied every ``step_epochs`` epochs, with the optimizer's momentum reset at each change
    (``reset_momentum``), as the released training scripts do."""

    def __init__(
        self,
        optimizer: Optimizer,
        total_steps: int,
        epochs: int,
        step_epochs: int = 10,
        power: float = 0.9,
        reset_momentum: bool = True,
        last_epoch: int = -1,
    ):
        self.epochs = max(1, int(epochs))
        self.steps_per_epoch = max(1.0, int(total_steps) / self.epochs)
        self.step_epochs = int(step_epochs)
        self.power = power
        self.reset_momentum = reset_momentum
        self._block = None
        super().__init__(optimizer, self.factor, last_epoch=last_epoch)

    def epoch_of(self, step: int) -> int:
        return int(step // self.steps_per_epoch)

    def factor(self, step: int) -> float:
        epoch = self.epoch_of(step)
        # the last epoch e of a block with e % step_epochs == step_epochs - 1 at or before this one
        e = ((epoch + 1) // self.step_epochs) * self.step_epochs - 1
        if e < 0:
            return 1.0
        return max(0.0, 1.0 - e / self.epochs) ** self.power

    def step(self, epoch=None):  # noqa: D102 - LambdaLR.step plus the momentum reset
        super().step(epoch)
        block = self.factor(self.last_epoch)
        if self.reset_momentum and self._block is not None and block != self._block:
            self.optimizer.state.clear()  # the released code builds a new optimizer here
        self._block = block
