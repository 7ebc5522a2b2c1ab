"""The one LightningModule that hosts every model (docs/task_contract.md).

A model is chosen entirely by configuration: which batch entries its net receives per phase
(``inputs``), its loss (a ``criterion`` over (outputs, batch), or the net's own loss dict in training, as
torchvision's detection models do), its ``postprocess`` (net outputs → per-image predictions in original
pixels), optional test-time augmentation (``tta``) and what it needs from the data (``requires``). The
dataset side supplies the evaluators (one set per validation dataset) and the original-size ground
truth they read (``batch["gt"]``). Nothing here names a model or a dataset: adding a model never edits
this file.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import pytorch_lightning as pl
import torch
from torch import nn

from humanparse.data.meta import get_info
from humanparse.tasks.loading import CheckpointLoadingMixin
from humanparse.tasks.postprocess import DenseSemantic, EvalContext, TestTimeAugmentation

log = logging.getLogger(__name__)

PHASES = ("train", "eval")
REQUIRE_KEYS = ("collate", "keypoints", "persons", "multi_dataset")


def _plain(value):
    from omegaconf import DictConfig, ListConfig, OmegaConf

    return (
        OmegaConf.to_container(value, resolve=True) if isinstance(value, (DictConfig, ListConfig)) else value
    )


def _check_inputs(inputs) -> dict:
    spec = {"train": {"images": "image"}, "eval": {"images": "image"}}
    spec.update({k: _plain(v) for k, v in dict(_plain(inputs) or {}).items()})
    for phase, value in spec.items():
        if phase not in PHASES:
            raise ValueError(f"model.inputs.{phase}: unknown phase; use {list(PHASES)}")
        if not isinstance(value, (list, tuple, Mapping)) or not value:
            raise ValueError(
                f"model.inputs.{phase} must be a list of batch keys (positional) or a mapping "
                f"argument -> batch key, got {value!r}"
            )
    return spec


class Task(CheckpointLoadingMixin, pl.LightningModule):
    """Training, evaluation and prediction of any model (see the module docstring).

    Args:
        net: the model, an ``nn.Module``.
        optimizer: partial optimiser (``params`` missing), e.g. ``torch.optim.SGD``.
        scheduler: partial schedule taking ``optimizer`` and ``total_steps``; stepped per iteration.
        criterion: ``criterion(outputs, batch) -> {'loss': total, '<term>': value}``; ``None``: the net
            returns its loss terms in training (weighted by ``loss_weights``, default 1).
        loss_weights: term -> weight for the net's own loss terms.
        postprocess: ``postprocess(outputs, batch, ctx) -> [prediction dict per image]``; default
            :class:`~humanparse.tasks.postprocess.DenseSemantic` on ``seg``.
        tta: :class:`~humanparse.tasks.postprocess.TestTimeAugmentation` options (scales, flip, outputs).
        inputs: per phase (``train``, ``eval``), the batch entries the net receives: a mapping
            argument -> batch key, or a list of batch keys passed positionally.
        requires: what the model needs from the data: ``collate`` (``dense`` | ``instance``),
            ``keypoints``, ``persons``, ``multi_dataset`` (checked before training, with a clear error).
        evaluator_options: evaluator name -> options the model's protocol sets (e.g. CorrPM's
            ``semantic: {absent_class: zero}``).
        name / variant / backbone / pretrained: recorded with the run and in checkpoints.
        weights: a released checkpoint of the model's authors, loaded into ``net`` after it is built.
        **knobs: further top-level values of the model config that ``net`` / ``criterion`` /
            ``postprocess`` interpolate (checked: a knob nothing uses is refused before instantiation).
    """

    def __init__(
        self,
        net: nn.Module,
        optimizer: Callable,
        scheduler: Callable | None = None,
        criterion: nn.Module | Callable | None = None,
        loss_weights: Mapping[str, float] | None = None,
        postprocess: Callable | None = None,
        tta: Mapping | None = None,
        inputs: Mapping | None = None,
        requires: Mapping | None = None,
        evaluator_options: Mapping[str, Mapping] | None = None,
        name: str = "model",
        variant: str | None = None,
        backbone: str | None = None,
        pretrained: str | None = None,
        weights: str | None = None,
        **knobs,
    ):
        super().__init__()
        self.net = net
        self.criterion = criterion
        self.loss_weights = {str(k): float(v) for k, v in dict(_plain(loss_weights) or {}).items()}
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.postprocess = postprocess if postprocess is not None else DenseSemantic()
        self.tta = TestTimeAugmentation(**dict(_plain(tta) or {}))
        self.inputs = _check_inputs(inputs)
        req = dict(_plain(requires) or {})
        bad = sorted(set(req) - set(REQUIRE_KEYS))
        if bad:
            raise ValueError(f"model.requires: unknown keys {bad}; known: {list(REQUIRE_KEYS)}")
        self.requires = req
        self.evaluator_options = {
            str(k): dict(v or {}) for k, v in dict(_plain(evaluator_options) or {}).items()
        }
        self.return_logits = False  # predict sets it for save_logits
        self.run_config: dict | None = None  # the resolved Hydra config, set by the entry point
        self.eval_sets: list = []  # EvalSets of the datamodule (name, info, evaluators)
        self.eval_names: list[str] = []
        self.evaluators = nn.ModuleDict()
        self.skipped: dict[str, str] = {}  # "<dataset>/<evaluator>" -> why it was skipped
        self._decided: set[tuple[str, int]] = set()
        if weights:
            from humanparse.models.released import load_released_weights

            load_released_weights(self.net, weights, name)
        self.save_hyperparameters(
            ignore=["net", "criterion", "optimizer", "scheduler", "postprocess"], logger=False
        )

    # -- what the model needs from the data ------------------------------------------------------
    def required_targets(self) -> list[str]:
        """Names of the derived targets the net or the criterion trains on (their ``required_targets``)."""
        names: list[str] = []
        for part in (self.net, self.criterion):
            req = getattr(part, "required_targets", ())
            for n in req() if callable(req) else req:
                if n not in names:
                    names.append(n)
        return names

    def data_requirements(self) -> dict:
        """Everything the datamodule checks or adapts before training (``adapt_to_model``): ``requires``
        of the model config, the derived ``targets``, and what the net declares (``data_requirements()``:
        e.g. the number of joints its pose branch predicts, with a hint for the error message)."""
        req = dict(self.requires)
        req["targets"] = self.required_targets()
        for part in (self.net, self.criterion):
            own = getattr(part, "data_requirements", None)
            if not callable(own):
                continue
            for k, v in dict(own() or {}).items():
                if k == "targets":
                    req["targets"] += [t for t in v if t not in req["targets"]]
                elif k == "hints":
                    req["hints"] = {**req.get("hints", {}), **v}
                else:
                    req[k] = v
        return req

    # -- the net -----------------------------------------------------------------------------------
    def call_net(self, batch: dict, phase: str, **replace):
        """``net`` on the batch entries of ``inputs[phase]`` (``replace`` overrides batch keys)."""
        spec = self.inputs[phase]
        get = lambda k: replace[k] if k in replace else batch[k]  # noqa: E731
        try:
            if isinstance(spec, Mapping):
                return self.net(**{arg: get(key) for arg, key in spec.items()})
            return self.net(*[get(k) for k in spec])
        except KeyError as e:
            if (
                e.args
                and e.args[0] in (spec.values() if isinstance(spec, Mapping) else spec)
                and e.args[0] not in batch
            ):
                raise KeyError(
                    f"model.inputs.{phase} reads batch[{e.args[0]!r}], which the data does not provide "
                    f"(batch keys: {sorted(batch)})"
                ) from None
            raise

    def forward(self, images: torch.Tensor, **kwargs):
        return self.net(images, **kwargs)

    def image_key(self, phase: str = "eval") -> str | None:
        spec = self.inputs[phase]
        keys = list(spec.values()) if isinstance(spec, Mapping) else list(spec)
        return "image" if "image" in keys else None

    # -- training ----------------------------------------------------------------------------------
    def compute_losses(self, batch: dict) -> dict[str, torch.Tensor]:
        outputs = self.call_net(batch, "train")
        if self.criterion is not None:
            return self.criterion(outputs, batch)
        if not isinstance(outputs, Mapping) or not outputs:
            raise TypeError(
                "model.criterion is null, so the net must return its loss terms in training (a dict "
                f"name -> scalar tensor); it returned {type(outputs).__name__}"
            )
        # torchvision names its terms loss_<x>: log them as train/loss_<x>, weight them by either name
        terms = {(k[5:] if k.startswith("loss_") else k): v for k, v in outputs.items()}
        unknown = sorted(k for k in self.loss_weights if k not in terms and k not in outputs)
        if unknown:
            raise KeyError(
                f"model.loss_weights names {unknown}, but the net's loss terms are {sorted(terms)}"
            )
        weight = {k: self.loss_weights.get(k, self.loss_weights.get(f"loss_{k}", 1.0)) for k in terms}
        total = sum(weight[k] * v for k, v in terms.items())
        return {"loss": total, **{k: v.detach() for k, v in terms.items()}}

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        losses = self.compute_losses(batch)
        bs = len(batch["image"]) if "image" in batch else 1
        self.log("train/loss", losses["loss"], prog_bar=True, on_step=True, on_epoch=True, batch_size=bs)
        for k, v in losses.items():
            if k != "loss":
                self.log(f"train/loss_{k}", v, on_step=False, on_epoch=True, batch_size=bs)
        return losses["loss"]

    def configure_optimizers(self):
        groups = (
            self.net.param_groups()
            if hasattr(self.net, "param_groups")
            else [p for p in self.parameters() if p.requires_grad]
        )
        opt = self.optimizer_factory(params=groups)
        if self.scheduler_factory is None:
            return opt
        sched = self.scheduler_factory(
            optimizer=opt, total_steps=int(self.trainer.estimated_stepping_batches)
        )
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step", "frequency": 1}}

    # -- evaluation sets ---------------------------------------------------------------------------
    def setup(self, stage: str) -> None:
        dm = self._trainer.datamodule if self._trainer is not None else None
        if dm is None or not hasattr(dm, "eval_sets"):
            return
        self.eval_sets = list(dm.eval_sets())
        self.eval_names = [s.name for s in self.eval_sets]
        for st in ("val", "test") if stage == "fit" else (("val",) if stage == "validate" else ("test",)):
            self.evaluators[st] = nn.ModuleList(nn.ModuleList(self._bind(s)) for s in self.eval_sets)
            self._decided = {d for d in self._decided if d[0] != st}

    def _bind(self, eval_set) -> list:
        out = []
        for ev in eval_set.evaluators:
            ev = copy.deepcopy(ev)
            opts = self.evaluator_options.get(ev.name)
            if opts:
                ev.configure(**opts)
            ev.bind(eval_set.info.num_classes, eval_set.info.class_keys)
            out.append(ev)
        return out

    def context(self, dataloader_idx: int = 0) -> EvalContext:
        if not self.eval_names:
            self.eval_names = self._default_names()
        if not self.eval_names:  # a bare task (no data, no checkpoint): no class names, no flip swap
            return EvalContext("unknown", 0, [], np.arange(256), dataloader_idx, self.return_logits)
        name = self.eval_names[min(dataloader_idx, len(self.eval_names) - 1)]
        info = get_info(name)
        ctx = EvalContext(
            name,
            info.num_classes,
            list(info.class_keys),
            info.flip_permutation(),
            dataloader_idx,
            self.return_logits,
        )
        return ctx

    def _default_names(self) -> list[str]:
        data = (self.run_config or {}).get("data") or {}
        if isinstance(data.get("datasets"), Mapping):
            return [str(v.get("name", k)) for k, v in data["datasets"].items()]
        if data.get("name"):
            return [str(data["name"])]
        return []

    # -- inference ---------------------------------------------------------------------------------
    def eval_outputs(self, batch: dict, ctx: EvalContext):
        """The net's evaluation outputs on the batch (test-time augmented when configured)."""
        key = self.image_key("eval")
        if key is None or key not in batch:
            return None
        return self.run_images(batch, batch[key], ctx)

    def run_images(self, batch: dict, images: torch.Tensor, ctx: EvalContext):
        def run(x):
            out = self.call_net(batch, "eval", image=x)
            return out if isinstance(out, Mapping) else {"detections": out}

        if self.tta.active:
            return self.tta(run, images, ctx.num_classes, ctx.flip_permutation)
        return run(images)

    def predict_batch(self, batch: dict, dataloader_idx: int = 0) -> list[dict]:
        """Per-image prediction dicts in original pixels (docs/task_contract.md)."""
        ctx = self.context(dataloader_idx)
        ctx.forward = lambda images: self.run_images(batch, images, ctx)
        return self.postprocess(self.eval_outputs(batch, ctx), batch, ctx)

    def input_logits(self, images: torch.Tensor) -> torch.Tensor:
        """Inference logits at the input resolution (dense models; used by ``predict save_logits``)."""
        if not callable(getattr(self.postprocess, "input_logits", None)):
            raise TypeError(f"{type(self.postprocess).__name__} gives no dense logits")
        ctx = self.context(0)
        out = self.run_images({"image": images}, images, ctx)
        return self.postprocess.input_logits(out, tuple(images.shape[-2:]))

    def predict_step(self, batch: dict, batch_idx: int, dataloader_idx: int = 0) -> list[dict]:
        return self.predict_batch(batch, dataloader_idx)

    # -- metrics -----------------------------------------------------------------------------------
    def _eval_step(self, batch: dict, stage: str, dataloader_idx: int) -> None:
        preds = self.predict_batch(batch, dataloader_idx)
        gts = batch.get("gt")
        if stage not in self.evaluators or gts is None:
            return
        evaluators = self.evaluators[stage][dataloader_idx]
        if (stage, dataloader_idx) not in self._decided:
            self._decide(stage, dataloader_idx, preds, gts)
        for ev in evaluators:
            if not getattr(ev, "skip", False):
                ev.process(preds, gts)

    def _decide(self, stage: str, idx: int, preds: list[dict], gts: list[dict]) -> None:
        """Skip, once per stage and dataset, the evaluators this model × dataset cannot feed (logged)."""
        self._decided.add((stage, idx))
        if not preds:
            return
        produces = getattr(self.postprocess, "produces", None)
        produces = set(produces) if produces is not None else None
        name = self.eval_names[idx] if idx < len(self.eval_names) else str(idx)
        for ev in self.evaluators[stage][idx]:
            why = ev.missing(preds[0], gts[0], produces)
            ev.skip = why is not None
            if why:
                key = f"{name}/{ev.name}"
                if key not in self.skipped:
                    log.warning("%s metrics skipped on %s: %s", ev.name, name, why)
                self.skipped[key] = why

    def validation_step(self, batch: dict, batch_idx: int, dataloader_idx: int = 0) -> None:
        self._eval_step(batch, "val", dataloader_idx)

    def test_step(self, batch: dict, batch_idx: int, dataloader_idx: int = 0) -> None:
        self._eval_step(batch, "test", dataloader_idx)

    def _log_stage(self, stage: str) -> None:
        if stage not in self.evaluators:
            return
        distributed = torch.distributed.is_available() and torch.distributed.is_initialized()
        multi = len(self.evaluators[stage]) > 1
        flat: dict[str, float] = {}
        per_set_main: list[float] = []
        for idx, evaluators in enumerate(self.evaluators[stage]):
            prefix = f"{stage}/{self.eval_names[idx]}" if multi else stage
            for ev in evaluators:
                if getattr(ev, "skip", False) or ev.metric is None:
                    ev.reset()
                    continue
                if not distributed and not ev.has_data():
                    ev.reset()
                    continue
                for k, v in ev.compute().items():
                    flat.setdefault(f"{prefix}/{k}", float(v))
                ev.reset()
            if multi and f"{prefix}/miou" in flat:
                per_set_main.append(flat[f"{prefix}/miou"])
        if multi and per_set_main:  # the mean over the datasets: what checkpoints and sweeps monitor
            flat[f"{stage}/miou"] = float(np.mean(per_set_main))
        main = f"{stage}/miou"
        # values are already reduced over processes by the metrics: no sync_dist needed
        self.log_dict({k: v for k, v in flat.items() if k != main}, sync_dist=False)
        if main in flat:
            self.log(main, flat[main], prog_bar=True, sync_dist=False)

    def on_validation_epoch_end(self) -> None:
        self._log_stage("val")

    def on_test_epoch_end(self) -> None:
        self._log_stage("test")

    # -- checkpoints -------------------------------------------------------------------------------
    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["humanparse"] = {
            "config": self.run_config,
            "hparams": dict(self.hparams),
            "eval_sets": list(self.eval_names),
        }

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        saved = checkpoint.get("humanparse") or {}
        if saved.get("eval_sets") and not self.eval_names:
            self.eval_names = list(saved["eval_sets"])
        if saved.get("config") and self.run_config is None:
            self.run_config = saved["config"]

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        # evaluator metrics hold no persistent state; tolerate their absence/presence either way
        state_dict = {k: v for k, v in state_dict.items() if not k.startswith("evaluators.")}
        own = {k for k in self.state_dict() if k.startswith("evaluators.")}
        result = super().load_state_dict(state_dict, strict=False, assign=assign)
        if strict:
            missing = [k for k in result.missing_keys if k not in own]
            if missing or result.unexpected_keys:
                raise RuntimeError(
                    f"checkpoint does not match the model: missing keys {missing[:10]}"
                    f"{' ...' if len(missing) > 10 else ''}, unexpected keys "
                    f"{result.unexpected_keys[:10]}{' ...' if len(result.unexpected_keys) > 10 else ''}"
                )
        return result


def evaluator_names(evaluators: Sequence) -> list[str]:
    return [e.name for e in evaluators]
