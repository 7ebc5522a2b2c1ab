"""The task class of humanparse 0.1 (``SemanticParsingTask``), kept so that its checkpoints and configs
load: it is :class:`humanparse.tasks.Task` with the old arguments translated (``eval_output`` /
``map_back`` / ``upsample_align_corners`` → a :class:`DenseSemantic` postprocess; ``absent_class`` /
``atr_metrics`` / ``atr_options`` → options of the semantic evaluator). New configs use ``Task``."""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from humanparse.tasks.postprocess import DenseSemantic
from humanparse.tasks.task import Task

BaseTask = Task


class SemanticParsingTask(Task):
    def __init__(
        self,
        net: nn.Module,
        criterion: nn.Module,
        optimizer: Callable,
        scheduler: Callable | None = None,
        dataset: str | None = None,
        eval_output: str = "seg",
        map_back: str = "logits",
        upsample_align_corners: bool = False,
        absent_class: str = "nan",
        atr_metrics: bool | None = None,
        atr_options: dict | None = None,
        name: str = "model",
        backbone: str | None = None,
        pretrained: str | None = None,
        variant: str | None = None,
        **knobs,
    ):
        semantic = {"absent_class": absent_class}
        if atr_metrics is not None:
            semantic["atr"] = bool(atr_metrics)
        if atr_options:
            semantic["atr_options"] = dict(atr_options)
        super().__init__(
            net,
            optimizer,
            scheduler,
            criterion=criterion,
            postprocess=DenseSemantic(eval_output, map_back, upsample_align_corners),
            evaluator_options={"semantic": semantic},
            name=name,
            variant=variant,
            backbone=backbone,
            pretrained=pretrained,
            **knobs,
        )
