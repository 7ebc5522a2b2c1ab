"""The generic LightningModule (:class:`Task`) and the pieces models plug into it: losses, postprocess,
test-time augmentation, schedules (docs/task_contract.md)."""

from humanparse.tasks.task import Task

__all__ = ["Task"]
