"""CorrPM training objective (Zhang et al., CVPR 2020, §3.5 Eq. 4) and its terms."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from humanparse.tasks.losses import SegmentationCrossEntropy
from humanparse.tasks.postprocess import upsample_to

IGNORE_INDEX = 255


class ClassBalancedEdgeLoss(nn.Module):
    """CE2P / CorrPM semantic-edge loss (CorrPM §3.5; released ``utils/criterion.py``).

    2-way cross-entropy of the edge logits, upsampled bilinearly to the label size, against the {0, 1}
    edge map, with class weights from the current (per-process) batch: w_pos = N_neg/N and
    w_neg = N_pos/N, N = N_pos + N_neg. As PyTorch's weighted mean, the sum is divided by the sum of the
    pixels' weights; a batch whose edge map is all one class contributes 0.
    """

    def __init__(self, align_corners: bool = True, ignore_index: int = IGNORE_INDEX):
        super().__init__()
        self.align_corners = align_corners
        self.ignore_index = ignore_index

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        logits = upsample_to(logits, tuple(target.shape[-2:]), self.align_corners).float()
        pos = (target == 1).sum().float()
        neg = (target == 0).sum().float()
        n = (pos + neg).clamp(min=1.0)
        weight = torch.stack([pos / n, neg / n])  # [w_neg, w_pos]
        total = F.cross_entropy(
            logits, target, weight=weight, ignore_index=self.ignore_index, reduction="sum"
        )
        denom = weight[0] * neg + weight[1] * pos  # 0 only when every weighted term is 0 as well
        return total / denom.clamp(min=1e-12)


class HeatmapMSE(nn.Module):
    """CorrPM pose loss (§3.5): mean squared error over B·J·h·w between the predicted heatmaps
    (resized bilinearly, ``align_corners``, to the target grid when they differ) and Gaussian targets.
    Missing joints have all-zero target maps; no visibility weights."""

    def __init__(self, align_corners: bool = True):
        super().__init__()
        self.align_corners = align_corners

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if pred.shape[1] != target.shape[1]:
            raise ValueError(
                f"the model predicts {pred.shape[1]} joint heatmaps but the targets have {target.shape[1]}; "
                "set model.num_joints to the dataset's joint count"
            )
        return F.mse_loss(
            upsample_to(pred, tuple(target.shape[-2:]), self.align_corners).float(), target.float()
        )


class CorrPMCriterion(nn.Module):
    """CorrPM training objective, paper §3.5 Eq. 4:

        L = seg2_weight·CE(seg2) + seg1_weight·CE(seg1) + α·L_edge + β·L_pose,   α = 2, β = 70

    CE: logits upsampled bilinearly (``align_corners=True``, as the released code) to the label size,
    255 ignored. L_edge: :class:`ClassBalancedEdgeLoss` against ``batch['semantic_edge']``. L_pose:
    :class:`HeatmapMSE` against ``batch['heatmaps']`` (σ = 7 at 1/4, from ``data.targets``).

    A term is computed when its weight is non-zero and the model produced its output: ablation variants
    without an edge or pose encoder (and variant P, which has a single parsing classifier ``seg2``) have
    fewer terms. ``seg1_weight=0`` is the paper's "Ours†" row (Table 2, L_p removed). Returns the total
    as ``loss`` and each unweighted term under its output's name.
    """

    def __init__(
        self,
        seg1_weight: float = 1.0,
        seg2_weight: float = 1.0,
        edge_weight: float = 2.0,
        pose_weight: float = 70.0,
        align_corners: bool = True,
        ignore_index: int = IGNORE_INDEX,
    ):
        super().__init__()
        self.weights = {
            "seg2": float(seg2_weight),
            "seg1": float(seg1_weight),
            "edge": float(edge_weight),
            "pose": float(pose_weight),
        }
        self.seg = nn.ModuleDict(
            {
                k: SegmentationCrossEntropy(k, ignore_index=ignore_index, align_corners=align_corners)
                for k in ("seg1", "seg2")
            }
        )
        self.edge = ClassBalancedEdgeLoss(align_corners, ignore_index)
        self.pose = HeatmapMSE(align_corners)

    def data_requirements(self) -> dict:
        """Trains on image-level part-label maps (``batch['semantic']``)."""
        return {"semantic": True}

    def term(self, name: str, outputs: dict[str, torch.Tensor], batch: dict) -> torch.Tensor:
        if name in self.seg:
            return self.seg[name](outputs, batch)["loss"]  # weight 1: the plain CE
        key = "semantic_edge" if name == "edge" else "heatmaps"
        if key not in batch:
            maker = "SemanticEdges" if name == "edge" else "PoseHeatmaps"
            raise KeyError(
                f"CorrPM's {name} loss needs batch[{key!r}]: add humanparse.data.targets.{maker} to "
                f"data.targets (as experiment=corrpm_lip does), or set its loss weight to 0"
            )
        return (self.edge if name == "edge" else self.pose)(outputs[name], batch[key])

    def forward(self, outputs: dict[str, torch.Tensor], batch: dict) -> dict[str, torch.Tensor]:
        total = None
        terms: dict[str, torch.Tensor] = {}
        for name, w in self.weights.items():
            if w == 0 or name not in outputs:
                continue
            value = self.term(name, outputs, batch)
            terms[name] = value.detach()
            total = w * value if total is None else total + w * value
        if total is None:
            raise ValueError(
                f"no CorrPM loss term applies to the model outputs {sorted(outputs)} with weights {self.weights}"
            )
        return {"loss": total, **terms}
