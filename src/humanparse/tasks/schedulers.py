"""Learning-rate schedules of the five papers, stepped per iteration.

Built on ``torch.optim.lr_scheduler.LambdaLR``; the task passes ``total_steps`` (Lightning's
``estimated_stepping_batches``) to the partial from the config.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR


def _warmup(step: int, warmup_steps: int, warmup_factor: float) -> float:
    if warmup_steps <= 0 or step >= warmup_steps:
        return 1.0
    alpha = step / warmup_steps
    return warmup_factor * (1 - alpha) + alpha


class PolyLR(LambdaLR):
    """lr = base · (1 − it/total)^power (CorrPM, Grapy-ML, PGN, DeepLab), optional linear warm-up."""

    def __init__(
        self,
        optimizer: Optimizer,
        total_steps: int,
        power: float = 0.9,
        warmup_steps: int = 0,
        warmup_factor: float = 0.001,
        min_lr_factor: float = 0.0,
        last_epoch: int = -1,
    ):
        total = max(1, int(total_steps))

        def f(step: int) -> float:
            poly = max(0.0, 1.0 - min(step, total) / total) ** power
            return max(min_lr_factor, poly) * _warmup(step, warmup_steps, warmup_factor)

        super().__init__(optimizer, f, last_epoch=last_epoch)


class WarmupMultiStepLR(LambdaLR):
    """Detectron's schedule (Parsing R-CNN, DensePose): linear warm-up, then ÷``gamma`` at milestones.

    ``milestones`` are iterations; with ``fractions=True`` they are fractions of ``total_steps``
    (so a 1x schedule keeps its shape when the iteration budget is scaled).
    """

    def __init__(
        self,
        optimizer: Optimizer,
        total_steps: int,
        milestones: Sequence[float],
        gamma: float = 0.1,
        warmup_steps: int = 500,
        warmup_factor: float = 1.0 / 3,
        fractions: bool = False,
        last_epoch: int = -1,
    ):
        ms = sorted(int(m * total_steps) if fractions else int(m) for m in milestones)

        def f(step: int) -> float:
            k = sum(1 for m in ms if step >= m)
            return (gamma**k) * _warmup(step, warmup_steps, warmup_factor)

        super().__init__(optimizer, f, last_epoch=last_epoch)
