"""``Task.load_from_checkpoint(path)`` for tasks whose ``net`` / ``criterion`` are not hyper-parameters.

Lightning's ``load_from_checkpoint`` calls ``cls(**hparams)``; humanparse tasks keep ``net``, ``criterion``,
``optimizer`` and ``scheduler`` out of the hyper-parameters (they are modules and factories), so that call
raises ``TypeError``. Every humanparse checkpoint stores the run's resolved config
(``checkpoint["humanparse"]["config"]``); :class:`CheckpointLoadingMixin` rebuilds the task from its
``model`` node instead, for any task class, and loads the weights.
"""

from __future__ import annotations

from pathlib import Path

import torch


def build_task(checkpoint_path: str | Path, map_location=None):
    """(task, run config) from a humanparse checkpoint: the task the config describes, weights loaded
    strictly. The model config's ``pretrained`` entries are cleared (the weights come from the checkpoint:
    nothing is downloaded). The same function ``humanparse.evaluate`` and ``humanparse.predict`` use."""
    from humanparse.evaluate import build_task_from_checkpoint

    task, saved = build_task_from_checkpoint(checkpoint_path)
    if map_location is not None:
        task = task.to(torch.device(map_location) if isinstance(map_location, str) else map_location)
    return task, saved


class CheckpointLoadingMixin:
    """Mix into a LightningModule (before ``pl.LightningModule`` in the bases) so that
    ``TaskClass.load_from_checkpoint(path)`` rebuilds the task from the config stored in the checkpoint.

    The rebuilt task is the class the checkpoint's config names; asking a different class for it is an
    error (``SemanticParsingTask.load_from_checkpoint`` on a Parsing R-CNN checkpoint).
    """

    @classmethod
    def load_from_checkpoint(
        cls, checkpoint_path, map_location=None, hparams_file=None, strict: bool | None = None, **kwargs
    ):
        if hparams_file is not None or kwargs or strict is False:
            raise TypeError(
                "humanparse tasks are rebuilt from the config stored in the checkpoint and loaded "
                f"strictly; hparams_file, strict=False and keyword overrides ({sorted(kwargs)}) are "
                "not supported"
            )
        task, _ = build_task(checkpoint_path, map_location)
        if not isinstance(task, cls):
            raise TypeError(
                f"{checkpoint_path}: the checkpoint holds a {type(task).__name__}, not a {cls.__name__}"
            )
        task.eval()
        return task
