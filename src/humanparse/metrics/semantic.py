"""Pixel accuracy, mean accuracy, per-class IoU and mIoU from one dataset-level confusion matrix.

Definition: the official LIP evaluation script (one dataset-level confusion matrix).
``torchmetrics.segmentation.MeanIoU`` averages per image and per batch, which is not the papers' metric, so
the confusion matrix is accumulated here: a single C×C int64 state, sum-reduced across processes.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torchmetrics import Metric

ABSENT_CONVENTIONS = ("nan", "zero")


def confusion_matrix(
    pred: torch.Tensor, target: torch.Tensor, num_classes: int, ignore_index: int = 255
) -> torch.Tensor:
    """C×C int64 matrix (rows = GT, columns = prediction) over pixels with 0 ≤ GT < C.

    Raises ``ValueError`` on a shape mismatch, on GT values in ``[C, ignore_index)`` or above it, and on
    predictions outside ``[0, C)`` at valid pixels.
    """
    if pred.shape != target.shape:
        raise ValueError(
            f"prediction shape {tuple(pred.shape)} differs from ground-truth shape {tuple(target.shape)}; "
            "predictions must be mapped back to the GT's original size"
        )
    pred = pred.reshape(-1).long()
    target = target.reshape(-1).long()
    bad_gt = (target >= num_classes) & (target != ignore_index) | (target < 0)
    if bool(bad_gt.any()):
        raise ValueError(
            f"ground-truth values {torch.unique(target[bad_gt])[:10].tolist()} are neither classes "
            f"0..{num_classes - 1} nor the ignore value {ignore_index}"
        )
    valid = target != ignore_index
    p, t = pred[valid], target[valid]
    bad_pred = (p < 0) | (p >= num_classes)
    if bool(bad_pred.any()):
        raise ValueError(
            f"predicted labels {torch.unique(p[bad_pred])[:10].tolist()} outside 0..{num_classes - 1}"
        )
    return torch.bincount(t * num_classes + p, minlength=num_classes**2).reshape(num_classes, num_classes)


def scores_from_confmat(confmat: torch.Tensor, absent_class: str = "nan") -> dict[str, torch.Tensor]:
    """Semantic scores (fractions in [0, 1], float64).

    ``absent_class='nan'`` (official LIP script): 0/0 ratios are NaN and skipped by the means.
    ``absent_class='zero'`` (CE2P / SCHP / CorrPM): denominators clamped to 1, means over all classes.
    """
    if absent_class not in ABSENT_CONVENTIONS:
        raise ValueError(f"absent_class must be one of {ABSENT_CONVENTIONS}, got {absent_class!r}")
    m = confmat.to(torch.float64)
    tp = torch.diag(m)
    gt = m.sum(1)
    pr = m.sum(0)
    n = m.sum()
    union = gt + pr - tp
    pixel_acc = tp.sum() / n if n > 0 else torch.tensor(float("nan"), dtype=torch.float64)
    if absent_class == "nan":
        acc = torch.where(gt > 0, tp / gt.clamp(min=1), torch.full_like(tp, float("nan")))
        iou = torch.where(union > 0, tp / union.clamp(min=1), torch.full_like(tp, float("nan")))
        mean_acc = _nanmean(acc)
        miou = _nanmean(iou)
    else:
        acc = tp / gt.clamp(min=1)
        iou = tp / union.clamp(min=1)
        mean_acc = acc.mean()
        miou = iou.mean()
    present = gt > 0
    fw = (
        (gt[present] / n * torch.nan_to_num(iou[present])).sum()
        if n > 0
        else torch.tensor(float("nan"), dtype=torch.float64)
    )
    return {"pixel_acc": pixel_acc, "mean_acc": mean_acc, "miou": miou, "fwiou": fw, "iou": iou, "acc": acc}


def _nanmean(x: torch.Tensor) -> torch.Tensor:
    ok = ~torch.isnan(x)
    if not bool(ok.any()):
        return torch.tensor(float("nan"), dtype=torch.float64)
    return x[ok].mean()


class SemanticParsingMetric(Metric):
    """Dataset-level semantic parsing scores (LIP, ATR, CIHP, MHP v2.0, PASCAL-Person-Part).

    ``update(pred, target)`` takes integer label maps of identical shape (one image (H, W), or a batch
    (N, H, W) of equally sized maps). 255 in ``target`` is ignored. ``compute()`` returns
    ``pixel_acc``, ``mean_acc``, ``miou``, ``fwiou`` and the per-class vectors ``iou`` and ``acc``;
    :meth:`flat` turns that into ``{'<prefix>/miou': ..., '<prefix>/iou/<class>': ...}``, the names used by
    ``paper_results.yaml``.
    """

    full_state_update = False
    higher_is_better = True

    def __init__(
        self,
        num_classes: int,
        class_names: Sequence[str] | None = None,
        absent_class: str = "nan",
        ignore_index: int = 255,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if absent_class not in ABSENT_CONVENTIONS:
            raise ValueError(f"absent_class must be one of {ABSENT_CONVENTIONS}, got {absent_class!r}")
        self.num_classes = int(num_classes)
        self.class_names = (
            list(class_names) if class_names is not None else [str(i) for i in range(num_classes)]
        )
        if len(self.class_names) != self.num_classes:
            raise ValueError(f"{len(self.class_names)} class names for {num_classes} classes")
        self.absent_class = absent_class
        self.ignore_index = ignore_index
        self.add_state(
            "confmat", torch.zeros(num_classes, num_classes, dtype=torch.int64), dist_reduce_fx="sum"
        )

    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        cm = confusion_matrix(
            pred.to(self.confmat.device), target.to(self.confmat.device), self.num_classes, self.ignore_index
        )
        self.confmat += cm

    def compute(self) -> dict[str, torch.Tensor]:
        out = scores_from_confmat(self.confmat, self.absent_class)
        # the (process-summed) matrix itself, for metrics derived from it (ATR's five numbers)
        out["confmat"] = self.confmat.clone()
        return out

    def flat(self, scores: dict[str, torch.Tensor] | None = None, prefix: str = "") -> dict[str, float]:
        scores = self.compute() if scores is None else scores
        p = f"{prefix}/" if prefix else ""
        out = {f"{p}{k}": float(scores[k]) for k in ("pixel_acc", "mean_acc", "miou", "fwiou")}
        for name, v in zip(self.class_names, scores["iou"].tolist()):
            out[f"{p}iou/{name}"] = float(v)
        return out
