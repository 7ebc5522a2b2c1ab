"""PGN instance-edge precision, recall and F1 (released CIHP_PGN ``test_pgn.py``).

Prediction e = 1[sigmoid(edge logit) > ``edge_threshold``] (default 0.5) at the original resolution; GT = the
instance-edge map of :func:`humanparse.data.targets.instance_edges` (non-zero = positive, no ignore region).
Counts are pooled over the dataset — TP = Σ e ∧ gt, Σ e, Σ gt — in three int64 states that are sum-reduced
across processes, so the result does not depend on how images are sharded (as long as the evaluation sampler
neither pads nor repeats images). The match is pixel-exact, with no distance tolerance (unlike BSDS ODS/OIS).
Reference: ``Engineering-Course/CIHP_PGN test_pgn.py`` (``tf.contrib.metrics.streaming_precision/recall``).

Edge cases: Σ e = 0 → P = 0 (TF ``streaming_precision``); Σ gt = 0 → R = 0; P + R = 0 → F1 = 0 (the
reference would print NaN).
"""

from __future__ import annotations

import torch
from torchmetrics import Metric

EDGE_INPUTS = ("logits", "probs", "binary")


def edge_scores(tp: torch.Tensor, pred_pos: torch.Tensor, gt_pos: torch.Tensor) -> dict[str, torch.Tensor]:
    """``edge_precision``, ``edge_recall``, ``edge_f1`` (float64) from pooled counts."""
    tp, pp, gp = (torch.as_tensor(x, dtype=torch.float64) for x in (tp, pred_pos, gt_pos))
    zero = torch.tensor(0.0, dtype=torch.float64)
    p = tp / pp if pp > 0 else zero
    r = tp / gp if gp > 0 else zero
    f1 = 2 * p * r / (p + r) if (p + r) > 0 else zero
    return {"edge_precision": p, "edge_recall": r, "edge_f1": f1}


def binarize_edges(
    pred: torch.Tensor, edge_input: str = "logits", edge_threshold: float = 0.5
) -> torch.Tensor:
    """Boolean edge map: sigmoid(logit) > t, prob > t, or non-zero (``binary``)."""
    if edge_input == "logits":
        return torch.sigmoid(pred.float()) > edge_threshold
    if edge_input == "probs":
        return pred.float() > edge_threshold
    if edge_input == "binary":
        return pred != 0
    raise ValueError(f"edge_input must be one of {EDGE_INPUTS}, got {edge_input!r}")


class InstanceEdgeMetric(Metric):
    """Pooled pixel precision / recall / F1 of PGN instance edges.

    ``update(pred, target)``: ``pred`` are edge logits (default), probabilities (``edge_input='probs'``)
    or binary maps (``'binary'``), shape (H, W) or (N, H, W) (a singleton channel dimension is
    squeezed); ``target`` the GT edge maps of the same shape (non-zero = edge).
    """

    full_state_update = False
    higher_is_better = True

    def __init__(self, edge_threshold: float = 0.5, edge_input: str = "logits", **kwargs):
        super().__init__(**kwargs)
        if edge_input not in EDGE_INPUTS:
            raise ValueError(f"edge_input must be one of {EDGE_INPUTS}, got {edge_input!r}")
        self.edge_threshold = float(edge_threshold)
        self.edge_input = edge_input
        for name in ("tp", "pred_pos", "gt_pos"):
            self.add_state(name, torch.tensor(0, dtype=torch.int64), dist_reduce_fx="sum")

    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        if pred.dim() == target.dim() + 1 and pred.shape[-3] == 1:
            pred = pred.squeeze(-3)
        if pred.shape != target.shape:
            raise ValueError(
                f"edge prediction shape {tuple(pred.shape)} differs from the GT's {tuple(target.shape)}; "
                "edges are scored at the original resolution"
            )
        e = binarize_edges(pred, self.edge_input, self.edge_threshold)
        g = target != 0
        self.tp += (e & g).sum().to(torch.int64)
        self.pred_pos += e.sum().to(torch.int64)
        self.gt_pos += g.sum().to(torch.int64)

    def compute(self) -> dict[str, torch.Tensor]:
        return edge_scores(self.tp, self.pred_pos, self.gt_pos)
