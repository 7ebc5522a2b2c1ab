"""ATR's five numbers: accuracy, foreground accuracy, precision, recall, F1 (as in CorrPM Table 3).

All five come from the dataset-level confusion matrix M of :mod:`humanparse.metrics.semantic` (rows = GT,
columns = prediction, 255 ignored), accumulated exactly as for mIoU
(:func:`humanparse.metrics.semantic.confusion_matrix`) in one C×C int64 state that is sum-reduced across
processes. With tp_c = M[c,c], gt_c = Σ_j M[c,j], pr_c = Σ_i M[i,c], N = Σ M:

* ``pixel_acc`` = Σ tp / N; ``fg_acc`` = Σ_{c≥1} tp_c / Σ_{c≥1} gt_c.
* ``atr_convention='hhp_macro'`` (default, ``hlzhu09/Hierarchical-Human-Parsing val/f1_eval_atr.py``,
  the only public code that computes all five): recall R = mean_c tp_c / max(1, gt_c) (background
  included), precision P = mean_c tp_c / pr_c, F1 = 2PR / (P + R) from the two averages.
* ``macro_f1``: P and R as above, F1 = mean of the per-class F1_c.
* ``fg_macro``: the ``hhp_macro`` formulas over classes 1..C-1 only.
* ``fg_pooled``: P = Σ_{c≥1} tp / Σ_{c≥1} pr, R = ``fg_acc``, F1 their harmonic mean.

Per class: F1_c = 2 a_c p_c / (a_c + p_c) with a_c = tp_c / max(1, gt_c) and p_c = tp_c / pr_c.

**Naming trap.** HHP prints R (tp / GT pixels, the mean accuracy) as "meanPrecision" and P
(tp / predicted pixels) as "meanRecall". F1 is symmetric and unaffected. This module names them
mathematically: ``precision`` = tp / predicted, ``recall`` = tp / GT. When comparing with HHP's
printout, swap its two labels.

Zero divisions: a class never predicted (pr_c = 0) gives p_c = 0 under
``atr_zero_division='zero'`` (default) and NaN under ``'nan'`` (HHP: P and F1 become NaN). F1_c with
a_c + p_c = 0 is 0 and F1 with P + R = 0 is 0 under ``zero`` (NaN under ``nan``, as HHP). gt_c = 0
gives a_c = 0 through the max(1, ·) guard in both (HHP behaviour). The two settings agree whenever
every class is predicted at least once.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torchmetrics import Metric

from humanparse.metrics.semantic import confusion_matrix, scores_from_confmat

ATR_CONVENTIONS = ("hhp_macro", "macro_f1", "fg_macro", "fg_pooled")
ZERO_DIVISION = ("zero", "nan")


def _div(num: torch.Tensor, den: torch.Tensor, zero_division: str) -> torch.Tensor:
    """num / den with 0 (``zero``) or NaN (``nan``) where den = 0."""
    out = num / den.clamp(min=1e-300)
    fill = 0.0 if zero_division == "zero" else float("nan")
    return torch.where(den > 0, out, torch.full_like(out, fill))


def atr_scores_from_confmat(
    confmat: torch.Tensor, atr_convention: str = "hhp_macro", atr_zero_division: str = "zero"
) -> dict[str, torch.Tensor]:
    """The five ATR numbers (float64 fractions) from a C×C confusion matrix.

    Returns ``pixel_acc``, ``fg_acc``, ``precision``, ``recall``, ``f1`` and the per-class vectors
    ``class_precision`` (p_c), ``class_recall`` (a_c) and ``class_f1``.
    """
    if atr_convention not in ATR_CONVENTIONS:
        raise ValueError(f"atr_convention must be one of {ATR_CONVENTIONS}, got {atr_convention!r}")
    if atr_zero_division not in ZERO_DIVISION:
        raise ValueError(f"atr_zero_division must be one of {ZERO_DIVISION}, got {atr_zero_division!r}")
    zd = atr_zero_division
    m = confmat.to(torch.float64)
    tp, gt, pr = torch.diag(m), m.sum(1), m.sum(0)
    n = m.sum()
    nan = torch.tensor(float("nan"), dtype=torch.float64)
    pixel_acc = tp.sum() / n if n > 0 else nan
    fg_gt = gt[1:].sum()
    fg_acc = tp[1:].sum() / fg_gt if fg_gt > 0 else nan
    a = tp / gt.clamp(min=1)  # HHP's max(1, gt) guard: absent GT class gives 0, in both settings
    p = _div(tp, pr, zd)
    f1_c = _div(2 * a * p, a + p, zd)
    if atr_convention == "fg_pooled":
        fg_pr = pr[1:].sum()
        precision = _div(tp[1:].sum(), fg_pr, zd)
        recall = _div(tp[1:].sum(), fg_gt, zd)  # = fg_acc when there is foreground GT
    else:
        sel = slice(1, None) if atr_convention == "fg_macro" else slice(None)
        precision, recall = p[sel].mean(), a[sel].mean()
    if atr_convention == "macro_f1":
        f1 = f1_c.mean()
    else:
        f1 = _div(2 * precision * recall, precision + recall, zd)
    return {
        "pixel_acc": pixel_acc,
        "fg_acc": fg_acc,
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "class_precision": p,
        "class_recall": a,
        "class_f1": f1_c,
    }


class ATRMetric(Metric):
    """ATR accuracy / foreground accuracy / precision / recall / F1 (see the module docstring).

    ``update(pred, target)`` takes integer label maps of identical shape ((H, W) or (N, H, W)); 255 in
    ``target`` is ignored. ``compute()`` returns the dict of :func:`atr_scores_from_confmat` plus the
    the semantic ``miou`` and ``mean_acc`` of the same matrix; :meth:`flat` gives ``{'<prefix>/f1': …,
    '<prefix>/f1/<class>': …}`` with the ``paper_results.yaml`` names (``pixel_acc``, ``fg_acc``,
    ``precision``, ``recall``, ``f1``).
    """

    full_state_update = False
    higher_is_better = True

    def __init__(
        self,
        num_classes: int = 18,
        class_names: Sequence[str] | None = None,
        atr_convention: str = "hhp_macro",
        atr_zero_division: str = "zero",
        ignore_index: int = 255,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if atr_convention not in ATR_CONVENTIONS:
            raise ValueError(f"atr_convention must be one of {ATR_CONVENTIONS}, got {atr_convention!r}")
        if atr_zero_division not in ZERO_DIVISION:
            raise ValueError(f"atr_zero_division must be one of {ZERO_DIVISION}, got {atr_zero_division!r}")
        self.num_classes = int(num_classes)
        self.class_names = (
            list(class_names) if class_names is not None else [str(i) for i in range(num_classes)]
        )
        if len(self.class_names) != self.num_classes:
            raise ValueError(f"{len(self.class_names)} class names for {num_classes} classes")
        self.atr_convention = atr_convention
        self.atr_zero_division = atr_zero_division
        self.ignore_index = ignore_index
        self.add_state(
            "confmat", torch.zeros(num_classes, num_classes, dtype=torch.int64), dist_reduce_fx="sum"
        )

    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        self.confmat += confusion_matrix(
            pred.to(self.confmat.device), target.to(self.confmat.device), self.num_classes, self.ignore_index
        )

    def compute(self) -> dict[str, torch.Tensor]:
        out = atr_scores_from_confmat(self.confmat, self.atr_convention, self.atr_zero_division)
        sem = scores_from_confmat(self.confmat, "nan")
        out["miou"], out["mean_acc"] = sem["miou"], sem["mean_acc"]
        return out

    def flat(self, scores: dict[str, torch.Tensor] | None = None, prefix: str = "") -> dict[str, float]:
        scores = self.compute() if scores is None else scores
        return flatten_atr(scores, self.class_names, prefix)


def flatten_atr(
    scores: dict[str, torch.Tensor], class_names: Sequence[str], prefix: str = ""
) -> dict[str, float]:
    p = f"{prefix}/" if prefix else ""
    out = {
        f"{p}{k}": float(scores[k])
        for k in ("pixel_acc", "fg_acc", "precision", "recall", "f1", "miou", "mean_acc")
        if k in scores
    }
    for name, f, pc, rc in zip(
        class_names,
        scores["class_f1"].tolist(),
        scores["class_precision"].tolist(),
        scores["class_recall"].tolist(),
    ):
        out[f"{p}f1/{name}"] = float(f)
        out[f"{p}precision/{name}"] = float(pc)
        out[f"{p}recall/{name}"] = float(rc)
    return out
