"""Evaluators: thin adapters from (per-image predictions, per-image ground truth) to the metrics.

Like detectron2's ``DatasetEvaluator``: each dataset config lists its papers' metrics under
``data.evaluators``; the task binds them to the dataset (class names, class count), feeds them
``process(preds, gts)`` during validation / test and logs ``compute()``. The metrics themselves are the
torchmetrics ``Metric`` s of :mod:`humanparse.metrics` (reduced over processes by torchmetrics), so an
evaluator holds one metric module and knows only how to pick its inputs.

* ``needs``: the prediction kinds the evaluator reads. A kind is a key of the prediction dict
  (``semantic``, ``edge``, ``part_instances``, ``instances``) or ``instances.<field>`` for a field every
  predicted instance carries (``instances.parts``, ``instances.mask``, ``instances.box``,
  ``instances.densepose``). A postprocess may declare what it can produce (``produces``); the task skips
  an evaluator whose kinds are not produced, with one log line.
* ``gt_keys``: the original-size ground truth the evaluator reads from ``batch["gt"][i]``
  (``semantic``, ``person_ids``, ``person_parts``, ``instance_map``, ``dp_persons``); the data side keeps
  exactly the union of these. An evaluator whose ground truth a dataset cannot provide (e.g. AP^r on
  PASCAL-Person-Part without the converted instance files) is skipped the same way.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

log = logging.getLogger(__name__)

GT_KEYS = ("semantic", "person_ids", "person_parts", "instance_map", "dp_persons")


def _np(x) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def _key(gt: dict) -> dict:
    """The identification part of a GT dict (image id, position in the split, size)."""
    return {k: gt[k] for k in ("image_id", "order", "height", "width") if k in gt}


class Evaluator(nn.Module):
    """Base class. Subclasses set ``name``, ``needs``, ``gt_keys``, build their metric in :meth:`bind`
    and implement :meth:`process` and :meth:`compute` (a flat dict of floats, keys without a prefix)."""

    name = "evaluator"
    needs: tuple[str, ...] = ()
    gt_keys: tuple[str, ...] = ()

    def __init__(self):
        super().__init__()
        self.metric: nn.Module | None = None
        self.seen = 0

    # -- wiring ------------------------------------------------------------------------------------
    def bind(self, num_classes: int, class_names: Sequence[str]) -> None:
        """Build the metric for a dataset with ``num_classes`` classes named ``class_names``."""
        self.num_classes = int(num_classes)
        self.class_names = list(class_names)

    def configure(self, **options) -> None:
        """Set options before :meth:`bind` (a model's evaluation protocol, ``model.evaluator_options``)."""
        import difflib

        known = dict(getattr(self, "options", {}))
        for k, v in options.items():
            if k in known:
                self.options[k] = v
            elif not k.startswith("_") and k in vars(self):
                setattr(self, k, v)
            else:
                names = sorted(
                    set(known)
                    | {n for n in vars(self) if not n.startswith("_")} - {"training", "seen", "metric"}
                )
                close = difflib.get_close_matches(k, names, n=1)
                raise ValueError(
                    f"evaluator {self.name!r} has no option {k!r}"
                    + (f"; did you mean {close[0]!r}?" if close else f"; options: {names}")
                )

    def missing(self, pred: dict, gt: dict, produces: set[str] | None) -> str | None:
        """Why this evaluator cannot score (prediction, ground truth), or None when it can."""
        for kind in self.needs_any():
            ok = [self._has(pred, k, produces) for k in kind]
            if not any(ok):
                return f"the model does not predict {' or '.join(kind)}"
        for k in self.gt_any():
            if not any(g in gt for g in k):
                return f"the dataset gives no {' or '.join(k)} ground truth"
        return None

    def needs_any(self) -> list[tuple[str, ...]]:
        """``needs`` as a list of alternatives (each entry: one of these kinds must be present)."""
        return [(n,) if isinstance(n, str) else tuple(n) for n in self.needs]

    def gt_any(self) -> list[tuple[str, ...]]:
        return [(n,) if isinstance(n, str) else tuple(n) for n in self.gt_requirements()]

    def gt_requirements(self) -> tuple:
        return self.gt_keys

    @staticmethod
    def _has(pred: dict, kind: str, produces: set[str] | None) -> bool:
        if produces is not None and kind not in produces:
            return False
        top, _, field = kind.partition(".")
        if top not in pred:
            return False
        if not field:
            return True
        inst = pred[top]
        # an image without instances says nothing: trust the postprocess's declaration then
        return all(field in d for d in inst) if inst else (produces is not None and kind in produces)

    # -- loop --------------------------------------------------------------------------------------
    def process(self, preds: Sequence[dict], gts: Sequence[dict]) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def has_data(self) -> bool:
        return self.seen > 0

    def compute(self) -> dict[str, float]:  # pragma: no cover - abstract
        raise NotImplementedError

    def reset(self) -> None:
        self.seen = 0
        if self.metric is not None:
            self.metric.reset()


class SemanticEvaluator(Evaluator):
    """mIoU, pixel accuracy, mean accuracy, fwIoU and per-class IoU from one confusion matrix
    (:class:`~humanparse.metrics.semantic.SemanticParsingMetric`); with ``atr`` also ATR's accuracy,
    foreground accuracy, precision, recall and F1 from the same matrix."""

    name = "semantic"
    needs = ("semantic",)
    gt_keys = ("semantic",)

    def __init__(self, absent_class: str = "nan", atr: bool = False, atr_options: dict | None = None):
        super().__init__()
        from humanparse.metrics.atr import atr_scores_from_confmat
        from humanparse.metrics.semantic import ABSENT_CONVENTIONS

        if absent_class not in ABSENT_CONVENTIONS:
            raise ValueError(f"absent_class must be one of {ABSENT_CONVENTIONS}, got {absent_class!r}")
        self.absent_class = absent_class
        self.atr = bool(atr)
        self.atr_options = dict(atr_options or {})
        atr_scores_from_confmat(torch.eye(2, dtype=torch.int64), **self.atr_options)  # validate now

    def bind(self, num_classes: int, class_names: Sequence[str]) -> None:
        from humanparse.metrics.semantic import SemanticParsingMetric

        super().bind(num_classes, class_names)
        self.metric = SemanticParsingMetric(
            self.num_classes, self.class_names, absent_class=self.absent_class
        )

    def process(self, preds, gts) -> None:
        for p, g in zip(preds, gts):
            gt = torch.as_tensor(g["semantic"])
            self.metric.update(torch.as_tensor(p["semantic"]).to(gt.device), gt)
            self.seen += 1

    def has_data(self) -> bool:
        return int(self.metric.confmat.sum()) > 0

    def compute(self) -> dict[str, float]:
        from humanparse.metrics.atr import atr_scores_from_confmat, flatten_atr

        scores = self.metric.compute()
        flat = self.metric.flat(scores)
        if self.atr:
            atr = flatten_atr(
                atr_scores_from_confmat(scores["confmat"], **self.atr_options), self.class_names, ""
            )
            flat.update({k.lstrip("/"): v for k, v in atr.items() if k.lstrip("/") not in flat})
        return flat


def _instance_arrays(
    instances: list[dict], field: str, shape: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """(D, H, W) maps of ``field`` and (D,) scores of a prediction's instances."""
    if not instances:
        return np.zeros((0, *shape), np.uint8), np.zeros(0, np.float64)
    maps = np.stack([_np(d[field]).astype(np.int64 if field == "parts" else np.uint8) for d in instances])
    scores = np.array([float(d["score"]) for d in instances], np.float64)
    return maps, scores


class InstanceParsingEvaluator(Evaluator):
    """AP^p (``app50``, ``app_vol``, ...) and PCP (``pcp50``, ...) of instance-level human parsing
    (Parsing R-CNN §4; MHP v2.0 with ``app_convention='mhp_official'`` and per-person ground truth).

    Ground truth: ``semantic`` + ``person_ids`` (CIHP: a person = the part labels under its id) or
    ``person_parts`` (MHP: one part map per annotated person). The semantic map of instance models is
    scored by :class:`SemanticEvaluator` on the postprocess's ``semantic`` output.
    """

    name = "instance_parsing"
    needs = ("instances.parts",)

    def __init__(
        self,
        app_convention: str = "prcnn",
        score_thresh: float | str | None = "default",
        gt_source: str = "person_ids",
        nan_score: str = "first",
        prcnn_skip_empty: bool = False,
    ):
        super().__init__()
        if gt_source not in ("person_ids", "person_parts"):
            raise ValueError(f"gt_source must be person_ids or person_parts, got {gt_source!r}")
        self.options = {
            "app_convention": app_convention,
            "score_thresh": score_thresh,
            "nan_score": nan_score,
            "prcnn_skip_empty": prcnn_skip_empty,
        }
        self.gt_source = gt_source

    def gt_requirements(self) -> tuple:
        return ("person_parts",) if self.gt_source == "person_parts" else ("semantic", "person_ids")

    @property
    def gt_keys(self) -> tuple[str, ...]:  # type: ignore[override]
        return tuple(self.gt_requirements())

    def bind(self, num_classes, class_names) -> None:
        from humanparse.metrics.instance import InstanceParsingMetric

        super().bind(num_classes, class_names)
        self.metric = InstanceParsingMetric(
            self.num_classes, self.class_names, compute_semantic=False, **self.options
        )

    def process(self, preds, gts) -> None:
        targets, outs = [], []
        for p, g in zip(preds, gts):
            t = _key(g)
            if self.gt_source == "person_parts":
                t["persons"] = [_np(m) for m in g["person_parts"]]
                if "semantic" in g:
                    t["semantic"] = _np(g["semantic"])
            else:
                t["semantic"], t["person_ids"] = _np(g["semantic"]), _np(g["person_ids"])
            shape = (int(g["height"]), int(g["width"]))
            maps, scores = _instance_arrays(p["instances"], "parts", shape)
            targets.append(t)
            outs.append({"parts": maps, "scores": scores})
        self.metric.update(outs, targets)
        self.seen += len(outs)

    def compute(self) -> dict[str, float]:
        out = {
            k: float(v)
            for k, v in self.metric.compute().items()
            if np.isscalar(v) or getattr(v, "ndim", 1) == 0
        }
        return {k: v for k, v in out.items() if k.startswith(("app", "pcp"))}


class PartInstanceEvaluator(Evaluator):
    """AP^r of part instances (PGN §4; ``apr50`` ... ``apr_vol``). Predictions: ``part_instances``
    (an instance id map with classes and scores, PGN's grouping) or instance-level part maps. Ground
    truth: the shipped part-instance table (``instance_map``) or ``semantic`` + ``person_ids``."""

    name = "part_instance_ap"
    needs = (("part_instances", "instances.parts"),)

    def __init__(self, matching: str = "pgn", nan_score: str = "first", gt_source: str = "person_ids"):
        super().__init__()
        self.options = {"matching": matching, "nan_score": nan_score}
        if gt_source not in ("person_ids", "instance_map"):
            raise ValueError(f"gt_source must be person_ids or instance_map, got {gt_source!r}")
        self.gt_source = gt_source

    def gt_requirements(self) -> tuple:
        return ("instance_map",) if self.gt_source == "instance_map" else ("semantic", "person_ids")

    @property
    def gt_keys(self) -> tuple[str, ...]:  # type: ignore[override]
        return tuple(self.gt_requirements())

    def bind(self, num_classes, class_names) -> None:
        from humanparse.metrics.apr import PartInstanceAPMetric

        super().bind(num_classes, class_names)
        self.metric = PartInstanceAPMetric(self.num_classes, self.class_names, **self.options)

    def process(self, preds, gts) -> None:
        targets, outs = [], []
        for p, g in zip(preds, gts):
            t = _key(g)
            if self.gt_source == "instance_map":
                t["instance_map"], t["classes"] = _np(g["instance_map"]), _np(g["instance_classes"])
            else:
                t["semantic"], t["person_ids"] = _np(g["semantic"]), _np(g["person_ids"])
            if "part_instances" in p:
                pi = p["part_instances"]
                outs.append(
                    {
                        "instance_map": _np(pi["instance_map"]),
                        "classes": _np(pi["classes"]),
                        "scores": _np(pi["scores"]),
                    }
                )
            else:
                maps, scores = _instance_arrays(p["instances"], "parts", (int(g["height"]), int(g["width"])))
                outs.append({"parts": maps, "scores": scores})
            targets.append(t)
        self.metric.update(outs, targets)
        self.seen += len(outs)

    def compute(self) -> dict[str, float]:
        return {k: float(v) for k, v in self.metric.compute().items() if k.startswith("apr")}


class EdgeEvaluator(Evaluator):
    """Pooled pixel precision / recall / F1 of person-instance edges (PGN): the predicted edge
    probability (``edge``) thresholded at ``edge_threshold`` against the Sobel edges of the person-id
    map (the PGN ground-truth rule)."""

    name = "edge"
    needs = ("edge",)
    gt_keys = ("person_ids",)

    def __init__(self, edge_threshold: float = 0.5):
        super().__init__()
        self.edge_threshold = float(edge_threshold)

    def bind(self, num_classes, class_names) -> None:
        from humanparse.metrics.edge import InstanceEdgeMetric

        super().bind(num_classes, class_names)
        self.metric = InstanceEdgeMetric(edge_threshold=self.edge_threshold, edge_input="probs")

    def process(self, preds, gts) -> None:
        from humanparse.data.targets import instance_edges

        for p, g in zip(preds, gts):
            gt = torch.from_numpy(instance_edges(_np(g["person_ids"])).astype(np.int64))
            self.metric.update(torch.as_tensor(p["edge"]).float().cpu(), gt)
            self.seen += 1

    def has_data(self) -> bool:
        return int(self.metric.gt_pos) > 0 or self.seen > 0

    def compute(self) -> dict[str, float]:
        return {
            f"edge_{k}" if not k.startswith("edge") else k: float(v) for k, v in self.metric.compute().items()
        }


class BoxEvaluator(Evaluator):
    """COCO box AP of the person detections (``bbox_map``, ``bbox_map50``, ...). Ground truth: DensePose-COCO
    person annotations, or the boxes of the person-id map."""

    name = "box"
    needs = ("instances.box",)

    def gt_requirements(self) -> tuple:
        return (("dp_persons", "person_ids"),)

    @property
    def gt_keys(self) -> tuple[str, ...]:  # type: ignore[override]
        return ("person_ids",)

    def bind(self, num_classes, class_names) -> None:
        from humanparse.metrics.detection import BoxMAP

        super().bind(num_classes, class_names)
        self.metric = BoxMAP()

    def process(self, preds, gts) -> None:
        from humanparse.metrics.detection import boxes_from_person_maps

        outs, targets = [], []
        for p, g in zip(preds, gts):
            t = {"image_id": _image_int(g), "height": int(g["height"]), "width": int(g["width"])}
            if "dp_persons" in g:
                t["persons"] = g["dp_persons"]
            else:
                t.update(boxes_from_person_maps(_np(g["person_ids"])))
            boxes = np.array([_np(d["box"]).astype(np.float64) for d in p["instances"]]).reshape(-1, 4)
            outs.append({"boxes": boxes, "scores": np.array([float(d["score"]) for d in p["instances"]])})
            targets.append(t)
        self.metric.update(outs, targets)
        self.seen += len(outs)

    def compute(self) -> dict[str, float]:
        return {k: float(v) for k, v in self.metric.compute().items()}


def _image_int(g: dict) -> int:
    """COCO-style integer image id: the id itself when numeric, else the position in the split."""
    try:
        return int(g["image_id"])
    except (KeyError, TypeError, ValueError):
        return int(g.get("order", 0))


class DensePoseEvaluator(Evaluator):
    """DensePose GPS and GPSm AP / AR (``dp_ap``, ``dp_gpsm_ap``, ...) of the predicted per-box IUV
    charts against the annotated points (DensePose §5; ``kappa='per_part'`` as detectron2, ``'fixed'``
    = 0.255 as the 2018 paper's Table 1)."""

    name = "densepose"
    needs = ("instances.densepose",)
    gt_keys = ("dp_persons",)

    def __init__(
        self,
        eval_data: str | None = None,
        kappa: str | float = "per_part",
        modes: Sequence[str] = ("gps", "gpsm"),
        min_threshold: float = 0.5,
        rcp: bool = False,
    ):
        super().__init__()
        self.options = {
            "eval_data": eval_data,
            "kappa": kappa,
            "modes": tuple(modes),
            "min_threshold": min_threshold,
            "rcp": rcp,
        }

    def bind(self, num_classes, class_names) -> None:
        from humanparse.metrics.densepose import DensePoseMetric

        super().bind(num_classes, class_names)
        self.metric = DensePoseMetric(**self.options)

    def process(self, preds, gts) -> None:
        outs, targets = [], []
        for p, g in zip(preds, gts):
            insts = p["instances"]
            boxes = np.array([_np(d["densepose"]["box"]).astype(np.float64) for d in insts]).reshape(-1, 4)
            outs.append(
                {
                    "bbox": boxes,
                    "scores": np.array([float(d["score"]) for d in insts]),
                    "iuv": [_np(d["densepose"]["iuv"]).astype(np.uint8) for d in insts],
                }
            )
            targets.append(
                {
                    "image_id": _image_int(g),
                    "height": int(g["height"]),
                    "width": int(g["width"]),
                    "persons": g["dp_persons"],
                }
            )
        self.metric.update(outs, targets)
        self.seen += len(outs)

    def compute(self) -> dict[str, float]:
        out = {}
        for k, v in self.metric.compute().items():
            if isinstance(v, (int, float)) or (hasattr(v, "ndim") and v.ndim == 0):
                out[k if k.startswith("dp") else f"dp_{k}"] = float(v)
        return out


def gt_keys_of(evaluators: Sequence[Evaluator]) -> list[str]:
    """The union of the evaluators' ground-truth keys, in :data:`GT_KEYS` order."""
    keys: set[str] = set()
    for ev in evaluators:
        for alt in ev.gt_any():
            keys.update(alt)
    return [k for k in GT_KEYS if k in keys]
