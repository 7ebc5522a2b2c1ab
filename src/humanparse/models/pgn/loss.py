"""PGN training objective (Gong et al., ECCV 2018 §3; the released ``Engineering-Course/CIHP_PGN
train_pgn.py``, which the truncated paper text does not cover).

* **Parsing**, for ``parsing_fc`` and ``parsing_rf_fc``, at the logits' resolution (labels
  nearest-downsampled; labels above C−1, i.e. 255, ignored):
  L_p = CE_mean(all valid pixels) + CE_mean(valid pixels where sigmoid(``edge_rf_fc``) > 0.1), the second
  term with a hard, gradient-free mask (the "edge-gated" term).
* **Edge**, for each of the five edge outputs (``edge_fc``, ``edge_rf_fc``, ``edge_res3/4/5``), logits
  upsampled bilinearly to the label size, per-pixel sigmoid cross-entropy t and per image
  pos_w = N_neg/N, neg_w = N_pos/N:
  L = 2·pos_w·(Σ_edge t + Σ_{edge∧fg} t) + neg_w·(Σ_¬edge t + Σ_{¬edge∧fg} t) — pixel **sums**, foreground
  pixels counted twice; the mean over the images of the batch.
* **Total** = 50·(L_p1 + L_p2) + 0.005·Σ L_edge.

Project choices, each with a switch reproducing the released code:

* foreground of the edge loss = labels 1..C−1; the code's ``label > 0`` also counts the 255 crop
  padding (``fg_includes_padding``);
* the edge-gated term is 0 when no pixel passes the gate; the code's mean over an empty set is NaN
  (``empty_gate_nan``).

Edge-map pixels other than 0/1 (255, if a pipeline pads with it) are left out of both sums and of N
(the released pipeline pads edges with 0, which this project's data module does too).
Ablations: ``gated_weight=0`` drops the edge-gated term, missing outputs (no refinement, no side outputs,
no edge branch) drop their terms.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

IGNORE_INDEX = 255
PARSING_OUTPUTS = ("parsing_fc", "parsing_rf_fc")
EDGE_OUTPUTS = ("edge_fc", "edge_rf_fc", "edge_res3", "edge_res4", "edge_res5")


def downsample_labels(labels: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Nearest-neighbour resize of (B, H, W) labels (TF1 ``resize_nearest_neighbor``: source index
    floor(i·in/out), which is PyTorch's ``nearest``)."""
    if tuple(labels.shape[-2:]) == tuple(size):
        return labels
    return F.interpolate(labels[:, None].float(), size=size, mode="nearest")[:, 0].long()


def class_balanced_edge_loss(
    logits: torch.Tensor, edge: torch.Tensor, fg: torch.Tensor, pos_weight: float = 2.0
) -> torch.Tensor:
    """PGN's edge loss of one output: (B, 1, h, w) logits upsampled to the (B, H, W) edge map; mean over
    images of 2·pos_w·(Σ_pos t + Σ_{pos∧fg} t) + neg_w·(Σ_neg t + Σ_{neg∧fg} t)."""
    logits = logits.float()
    if tuple(logits.shape[-2:]) != tuple(edge.shape[-2:]):
        logits = F.interpolate(logits, size=edge.shape[-2:], mode="bilinear", align_corners=False)
    logits = logits[:, 0]
    pos = (edge == 1).float()
    neg = (edge == 0).float()
    t = F.binary_cross_entropy_with_logits(logits, pos, reduction="none")
    fgf = fg.float()
    n_pos = pos.sum((1, 2))
    n_neg = neg.sum((1, 2))
    n = (n_pos + n_neg).clamp(min=1.0)
    pos_w, neg_w = n_neg / n, n_pos / n
    lp = (t * pos).sum((1, 2)) + (t * pos * fgf).sum((1, 2))
    ln = (t * neg).sum((1, 2)) + (t * neg * fgf).sum((1, 2))
    return (pos_weight * pos_w * lp + neg_w * ln).mean()


class PGNLoss(nn.Module):
    """``criterion(outputs, batch) -> {"loss", "parsing", "edge", "<output>": ..., "<output>_gated": ...}``.

    Args:
        num_classes: C; labels above C−1 are ignored.
        parsing_weight / edge_weight: 50 and 0.005 (released).
        gated_weight: weight of the edge-gated CE term inside each L_p (1 released; 0 = ablation).
        gate_threshold: sigmoid(``edge_rf_fc``) above which a pixel is in the gated term (0.1).
        edge_pos_weight: the extra factor on edge pixels (2, ``Edge_Pos_W``).
        side_weight: weight of the three side outputs' edge losses (1 released).
        fg_includes_padding / empty_gate_nan: reproduce the released code (see the module docstring).
    """

    def __init__(
        self,
        num_classes: int,
        parsing_weight: float = 50.0,
        edge_weight: float = 0.005,
        gated_weight: float = 1.0,
        gate_threshold: float = 0.1,
        edge_pos_weight: float = 2.0,
        side_weight: float = 1.0,
        fg_includes_padding: bool = False,
        empty_gate_nan: bool = False,
        ignore_index: int = IGNORE_INDEX,
    ):
        super().__init__()
        self.num_classes = int(num_classes)
        self.parsing_weight = float(parsing_weight)
        self.edge_weight = float(edge_weight)
        self.gated_weight = float(gated_weight)
        self.gate_threshold = float(gate_threshold)
        self.edge_pos_weight = float(edge_pos_weight)
        self.side_weight = float(side_weight)
        self.fg_includes_padding = bool(fg_includes_padding)
        self.empty_gate_nan = bool(empty_gate_nan)
        self.ignore_index = ignore_index

    required_targets = ["instance_edge"]

    def data_requirements(self) -> dict:
        """Trains on image-level part-label maps (``batch['semantic']``) and person-instance edges."""
        return {"semantic": True}

    def _ce(
        self, logits: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor, nan_if_empty: bool
    ) -> torch.Tensor:
        """Mean CE over the pixels of ``mask``: 0 for an empty mask (NaN with ``nan_if_empty``)."""
        target = torch.where(mask, labels, torch.full_like(labels, -100))
        if not bool(mask.any()):
            z = logits.sum() * 0.0
            return z + float("nan") if nan_if_empty else z
        return F.cross_entropy(logits.float(), target, ignore_index=-100)

    def forward(self, outputs: dict[str, torch.Tensor], batch: dict) -> dict[str, torch.Tensor]:
        labels = batch["semantic"]
        c = self.num_classes
        terms: dict[str, torch.Tensor] = {}
        parsing = labels.new_zeros((), dtype=torch.float32)
        gate_src = outputs.get("edge_rf_fc", outputs.get("edge_fc"))
        for name in PARSING_OUTPUTS:
            if name not in outputs:
                continue
            logits = outputs[name]
            lab = downsample_labels(labels, tuple(logits.shape[-2:]))
            valid = (lab >= 0) & (lab <= c - 1)
            lp = self._ce(logits, lab, valid, nan_if_empty=False)
            terms[name] = lp.detach()
            if self.gated_weight and gate_src is not None:
                with torch.no_grad():
                    g = gate_src
                    if tuple(g.shape[-2:]) != tuple(logits.shape[-2:]):
                        g = F.interpolate(
                            g.float(), size=logits.shape[-2:], mode="bilinear", align_corners=False
                        )
                    gate = (torch.sigmoid(g[:, 0].float()) > self.gate_threshold) & valid
                lg = self._ce(logits, lab, gate, nan_if_empty=self.empty_gate_nan)
                terms[f"{name}_gated"] = lg.detach()
                lp = lp + self.gated_weight * lg
            parsing = parsing + lp
        edge_total = labels.new_zeros((), dtype=torch.float32)
        if "instance_edge" in batch and any(k in outputs for k in EDGE_OUTPUTS):
            edge = batch["instance_edge"]
            fg = (labels > 0) if self.fg_includes_padding else ((labels >= 1) & (labels <= c - 1))
            for name in EDGE_OUTPUTS:
                if name not in outputs:
                    continue
                le = class_balanced_edge_loss(outputs[name], edge, fg, self.edge_pos_weight)
                terms[name] = le.detach()
                w = self.side_weight if name.startswith("edge_res") else 1.0
                edge_total = edge_total + w * le
        elif any(k in outputs for k in EDGE_OUTPUTS):
            raise KeyError("PGN's edge outputs need batch['instance_edge'] (data.targets=[instance_edge])")
        total = self.parsing_weight * parsing + self.edge_weight * edge_total
        return {"loss": total, "parsing": parsing.detach(), "edge": edge_total.detach(), **terms}
