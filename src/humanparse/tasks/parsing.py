"""LightningModule for FCN human parsers (DeepLab baseline, CorrPM, PGN, Grapy-ML).

Models are plain ``nn.Module``s that return a dict of named outputs; this task owns everything else:
the criterion (a module returning named loss terms), optimiser and per-iteration schedule,
mapping predictions back to each image's original size, the dataset-level metrics and logging.
Region-based models (Parsing R-CNN, DensePose-RCNN) take per-image target dicts and have their own
task next to this one; they share :class:`BaseTask`.
"""

from __future__ import annotations

from collections.abc import Callable

import pytorch_lightning as pl
import torch
from torch import nn

from humanparse.data.meta import get_info
from humanparse.metrics.atr import atr_scores_from_confmat, flatten_atr
from humanparse.metrics.semantic import SemanticParsingMetric
from humanparse.models.released import load_released_weights
from humanparse.tasks.postprocess import MAP_BACK_MODES, map_back, upsample_to


class BaseTask(pl.LightningModule):
    """Optimiser/scheduler wiring, loss logging and run metadata shared by every task.

    Args:
        net: the model (``nn.Module``) returning named outputs.
        criterion: ``criterion(outputs, batch) -> {'loss': total, '<term>': value}``.
        optimizer: partial optimiser (``params`` missing), e.g. ``torch.optim.SGD``.
        scheduler: partial schedule taking ``optimizer`` and ``total_steps``; stepped per iteration.
        name / backbone / pretrained / variant: recorded with the run and in checkpoints.
        weights: a released checkpoint of the authors (``model.weights``), loaded into ``net`` in place by
            :func:`humanparse.models.released.load_released_weights` (the model's declared released format).
        **knobs: further top-level values of the model config that its ``net`` / ``criterion`` interpolate
            (e.g. CorrPM's ``num_joints`` and loss weights); recorded in the hyper-parameters.
    """

    def __init__(
        self,
        net: nn.Module,
        criterion: nn.Module,
        optimizer: Callable,
        scheduler: Callable | None = None,
        name: str = "model",
        backbone: str | None = None,
        pretrained: str | None = None,
        variant: str | None = None,
        weights: str | None = None,
        **knobs,
    ):
        super().__init__()
        self.net = net
        if weights:
            load_released_weights(self, weights, name)
        self.criterion = criterion
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.run_config: dict | None = None  # the resolved Hydra config, set by the entry point
        self.save_hyperparameters(ignore=["net", "criterion", "optimizer", "scheduler"], logger=False)

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.net(images)

    def required_targets(self) -> list[str]:
        """Names of the derived targets (:data:`humanparse.data.targets.TARGET_MAKERS`) that the net or
        the criterion trains on, from their ``required_targets`` attribute/method."""
        names: list[str] = []
        for part in (self.net, self.criterion):
            req = getattr(part, "required_targets", ())
            for n in (req() if callable(req) else req):
                if n not in names:
                    names.append(n)
        return names

    def setup(self, stage: str) -> None:
        """Before fitting, the net and the criterion may check that the data can supervise them
        (``check_data(datamodule)``, e.g. CorrPM's pose branch needs keypoints) and refuse early."""
        dm = self._trainer.datamodule if self._trainer is not None else None
        if stage == "fit" and dm is not None:
            for part in (self.net, self.criterion):
                check = getattr(part, "check_data", None)
                if callable(check):
                    check(dm)

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        outputs = self.net(batch["image"])
        losses = self.criterion(outputs, batch)
        bs = batch["image"].shape[0]
        self.log("train/loss", losses["loss"], prog_bar=True, on_step=True, on_epoch=True, batch_size=bs)
        for k, v in losses.items():
            if k != "loss":
                self.log(f"train/loss_{k}", v, on_step=False, on_epoch=True, batch_size=bs)
        return losses["loss"]

    def configure_optimizers(self):
        groups = self.net.param_groups() if hasattr(self.net, "param_groups") else [p for p in self.parameters() if p.requires_grad]
        opt = self.optimizer_factory(params=groups)
        if self.scheduler_factory is None:
            return opt
        sched = self.scheduler_factory(optimizer=opt, total_steps=int(self.trainer.estimated_stepping_batches))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step", "frequency": 1}}

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["humanparse"] = {"config": self.run_config, "hparams": dict(self.hparams)}


class SemanticParsingTask(BaseTask):
    """Single-dataset semantic parsing.

    Args:
        dataset: dataset key; gives the class names of the metric keys (``val/iou/<class>``).
        eval_output: the output used at inference (``seg``; CorrPM: ``seg2``).
        map_back: ``logits`` (bilinear logits at the original size, then argmax) or ``labels``
            (argmax in the input frame, nearest warp back), metrics.md §1.4.
        upsample_align_corners: how input-frame logits are upsampled from the model's stride.
        absent_class: ``nan`` (official LIP script) or ``zero`` (CE2P/CorrPM), metrics.md §1.2.
        atr_metrics: also report ATR's accuracy / foreground accuracy / precision / recall / F1
            (metrics.md §2) from the same confusion matrix; ``None`` = on for the ATR dataset.
        atr_options: ``atr_convention`` and ``atr_zero_division`` of
            :func:`humanparse.metrics.atr.atr_scores_from_confmat`.
        **knobs: see :class:`BaseTask`.
    """

    def __init__(
        self,
        net: nn.Module,
        criterion: nn.Module,
        optimizer: Callable,
        scheduler: Callable | None = None,
        dataset: str = "lip",
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
        super().__init__(net, criterion, optimizer, scheduler, name, backbone, pretrained, variant, **knobs)
        if map_back not in MAP_BACK_MODES:
            raise ValueError(f"map_back must be one of {MAP_BACK_MODES}, got {map_back!r}")
        self.info = get_info(dataset)
        self.eval_output = eval_output
        self.map_back_mode = map_back
        self.align_corners = upsample_align_corners
        keys = self.info.class_keys
        self.atr_metrics = (dataset == "atr") if atr_metrics is None else bool(atr_metrics)
        self.atr_options = dict(atr_options or {})
        atr_scores_from_confmat(torch.eye(2, dtype=torch.int64), **self.atr_options)  # validate the options now
        self.val_metric = SemanticParsingMetric(self.info.num_classes, keys, absent_class=absent_class)
        self.test_metric = SemanticParsingMetric(self.info.num_classes, keys, absent_class=absent_class)

    # -- inference --------------------------------------------------------------------------------
    def input_logits(self, images: torch.Tensor) -> torch.Tensor:
        """Inference logits at the input resolution (N, C, H_in, W_in)."""
        out = self.net(images)
        if self.eval_output not in out:
            raise KeyError(f"model output {self.eval_output!r} missing; the model returned {sorted(out)}")
        return upsample_to(out[self.eval_output].float(), tuple(images.shape[-2:]), self.align_corners)

    def predict_original(self, batch: dict) -> list[torch.Tensor]:
        """Per-sample label maps at each image's original size."""
        if "person_crops" in batch:
            return [self.predict_persons(p, tuple(m["orig_size"])) for p, m in zip(batch["person_crops"], batch["meta"])]
        logits = self.input_logits(batch["image"])
        return [
            map_back(logits[i], m["affine"], tuple(m["orig_size"]), self.map_back_mode)
            for i, m in enumerate(batch["meta"])
        ]

    def predict_persons(self, persons: list[dict], orig_size: tuple[int, int]) -> torch.Tensor:
        """One image's label map from its single-person crops (``humanparse.data.person_crops``).

        Each person's prediction is mapped back to the image with its own affine and pasted inside its
        mask, persons in ascending score order (later, higher-scoring ones win on overlaps); pixels of no
        person are background (models.md §3.7).
        """
        out = torch.zeros(orig_size, dtype=torch.long, device=self.device)
        if not persons:
            return out
        logits = self.input_logits(torch.stack([p["image"] for p in persons]).to(self.device))
        for i in sorted(range(len(persons)), key=lambda k: float(persons[k]["score"])):
            labels = map_back(logits[i], persons[i]["affine"], orig_size, self.map_back_mode)
            mask = torch.as_tensor(persons[i]["mask"], device=labels.device).bool()
            out[mask] = labels[mask]
        return out

    def _eval_step(self, batch: dict, metric: SemanticParsingMetric) -> None:
        if "gt_semantic" not in batch:
            return
        for pred, gt in zip(self.predict_original(batch), batch["gt_semantic"]):
            metric.update(pred, gt)

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        self._eval_step(batch, self.val_metric)

    def test_step(self, batch: dict, batch_idx: int) -> None:
        self._eval_step(batch, self.test_metric)

    def _log_metric(self, metric: SemanticParsingMetric, prefix: str) -> None:
        if int(metric.confmat.sum()) == 0 and not (torch.distributed.is_available() and torch.distributed.is_initialized()):
            metric.reset()
            return
        scores = metric.compute()
        flat = metric.flat(scores, prefix=prefix)
        if self.atr_metrics:
            atr = flatten_atr(atr_scores_from_confmat(scores["confmat"], **self.atr_options), metric.class_names, prefix)
            flat.update({k: v for k, v in atr.items() if k not in flat})
        metric.reset()
        main = f"{prefix}/miou"
        # values are already reduced over processes by the metric: no sync_dist needed
        self.log_dict({k: float(v) for k, v in flat.items() if k != main}, sync_dist=False)
        self.log(main, flat[main], prog_bar=True, sync_dist=False)

    def on_validation_epoch_end(self) -> None:
        self._log_metric(self.val_metric, "val")

    def on_test_epoch_end(self) -> None:
        self._log_metric(self.test_metric, "test")

    def predict_step(self, batch: dict, batch_idx: int) -> list[torch.Tensor]:
        return self.predict_original(batch)
