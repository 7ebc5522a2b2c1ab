"""Grapy-ML — Graph Pyramid Mutual Learning (He et al., AAAI 2020).

The Graph Pyramid Module (GPM, paper §3.2, Fig. 2) refines the DeepLab v3+ decoder feature f0 with the parser's
own prediction at three granularities: level 1 {background, person}, level 2 {background, head, torso, arms,
legs}, level 3 the dataset's labels. For each level l = 1, 2, 3 (input f_{l−1})::

    masks      argmax of the raw logits y (computed once, no gradient), remapped to the level's nodes
    GSA        per node: [masked average ⊕ masked max] of f_{l−1}            (paper Eqs. 2–3)   B×K×512
    GCR        Conv1d 512→512, 3 × [BN → self-attention (Q, K at 512/8) + residual → ReLU],
               Conv1d 512→256                                                (paper Eqs. 4–6)   B×256×K
    GSD        every pixel takes its node's vector, conv1x1 256→256, f_l = f_{l−1} + that  (paper Eq. 7)
    fusion     [f0 ⊕ f1 ⊕ f2 ⊕ f3] → conv1x1 1024→512 → conv1x1 512→256 → ReLU → classifier ŷ (Eq. 8)

The code (released ``networks/graph_pyramid.py``, ``networks/gcn.py``) adds to the paper's equations the
value projection of the attention, the BN/ReLU rounds and the in/out Conv1d; that form is built here. The
loss is CE(y) + λ·CE(ŷ) (paper Eq. 10, :class:`humanparse.models.grapy.loss.GrapyCriterion`).

Mutual learning (paper §3.3; released ``GrapyMutualLearning``): with several datasets the backbone, ASPP,
decoder, level-1/2 reasoning, the three distribution convs and the fusion are shared; each dataset has its own
raw classifier, level-3 reasoning and final classifier. Every batch comes from one dataset
(``forward(images, dataset_idx)``).

Project choices (ablations of paper Table 4 are options):

* masked max: the paper's Eq. 3 takes the max over the node's pixels; the code multiplies the features by
  the 0/1 mask first, so a node's negative maxima clip at 0. Default ``max_pool="masked"`` (the paper);
  ``"multiply"`` reproduces the code. An absent node gets 0 either way (both average and max).
* ``reasoning="gcn"`` (Table 4 "GCN"): the paper does not specify it; here 3 rounds of
  [BN → graph convolution on the level's fully connected, symmetric-normalised adjacency (self loops
  included) + residual → ReLU] with the same in/out Conv1d (Graphonomy-style graph convolution, unverified).
* not built: layers the released ``GrapyNet`` creates but never runs (``transform``, the inherited DeepLab
  classifier ``semantic``; ``semantic_aux_*`` in ``GrapyMutualLearning``): 70,932 parameters at C = 20.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from humanparse.models.grapy.deeplab import DeepLabV3PlusXception, as_list, dataset_index
from humanparse.models.grapy.released import load_weights

log = logging.getLogger(__name__)

POOLINGS = ("avg", "max", "avg+max")
REASONINGS = ("self_attention", "gcn")
MAX_POOL_MODES = ("masked", "multiply")
LEVELS = (1, 2, 3)


# --- hierarchy --------------------------------------------------------------------------------------
def hierarchy_tables(num_classes: int, level1: Sequence[int], level2: Sequence[int]) -> torch.Tensor:
    """(3, C) lookup: row l−1 maps a fine label to its level-l node (level 3 = the label itself)."""
    level1, level2 = [int(v) for v in level1], [int(v) for v in level2]
    if len(level1) != num_classes or len(level2) != num_classes:
        raise ValueError(
            f"hierarchy tables must have one entry per class ({num_classes}), got "
            f"{len(level1)} (level 1) and {len(level2)} (level 2)"
        )
    return torch.tensor([level1, level2, list(range(num_classes))], dtype=torch.long)


# --- graph semantics aggregation (paper Eqs. 2–3) --------------------------------------------------
class GraphSemanticAggregation(nn.Module):
    """Pools a feature map (B, C, H, W) into node vectors (B, K, D) under hard node labels (B, H, W).

    ``pooling``: ``avg`` (masked mean, D = C), ``max`` (masked max, D = C) or ``avg+max`` (concatenated,
    D = 2C). ``max_pool``: ``masked`` (max over the node's pixels) or ``multiply`` (max over the image of the
    features times the 0/1 mask, the released code). Absent nodes get 0.
    """

    def __init__(self, pooling: str = "avg+max", max_pool: str = "masked"):
        super().__init__()
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
        if max_pool not in MAX_POOL_MODES:
            raise ValueError(f"max_pool must be one of {MAX_POOL_MODES}, got {max_pool!r}")
        self.pooling = pooling
        self.max_pool = max_pool

    def width(self, channels: int) -> int:
        return 2 * channels if self.pooling == "avg+max" else channels

    def forward(self, features: torch.Tensor, nodes: torch.Tensor, num_nodes: int) -> torch.Tensor:
        b, c, h, w = features.shape
        flat = features.reshape(b, c, h * w)
        index = nodes.reshape(b, 1, h * w).expand(b, c, h * w)
        counts = torch.zeros(b, 1, num_nodes, device=features.device, dtype=features.dtype)
        counts.scatter_add_(2, index[:, :1], torch.ones_like(flat[:, :1]))
        out = []
        if self.pooling in ("avg", "avg+max"):
            sums = flat.new_zeros(b, c, num_nodes).scatter_add(2, index, flat)
            out.append(sums / counts.clamp(min=1))
        if self.pooling in ("max", "avg+max"):
            # scatter_reduce(amax) without the initial values: a node keeps 0 where it has no pixel
            mx = flat.new_zeros(b, c, num_nodes).scatter_reduce(
                2, index, flat, reduce="amax", include_self=False
            )
            if self.max_pool == "multiply":  # max(f·M): pixels outside the node contribute 0
                mx = torch.where(counts < h * w, mx.clamp(min=0), mx)
            out.append(mx)
        return torch.cat(out, dim=1).transpose(1, 2)  # (B, K, D)


# --- graph context reasoning (paper Eqs. 4–6) ------------------------------------------------------
class SelfAttention(nn.Module):
    """One reasoning round on node vectors x (B, D, K): A = softmax_j(q_iᵀ k_j) with q, k = Conv1d(D → D/8),
    out = v·Aᵀ + x with v = Conv1d(D → D) (no learnable γ; fully connected graph)."""

    def __init__(self, channels: int = 512, reduction: int = 8):
        super().__init__()
        self.query = nn.Conv1d(channels, channels // reduction, 1)
        self.key = nn.Conv1d(channels, channels // reduction, 1)
        self.value = nn.Conv1d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        attention = torch.softmax(torch.bmm(self.query(x).transpose(1, 2), self.key(x)), dim=-1)  # (B, K, K)
        return torch.bmm(self.value(x), attention.transpose(1, 2)) + x


class GraphConvolution(nn.Module):
    """Table 4's "GCN" reasoning round (paper unspecified; project choice): x + W·x·Â with Â the fully
    connected graph of the level's K nodes, self loops included and symmetric-normalised (= 1/K)."""

    def __init__(self, channels: int = 512):
        super().__init__()
        self.weight = nn.Conv1d(channels, channels, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k = x.shape[-1]
        adjacency = x.new_full((k, k), 1.0 / k)
        return self.weight(x) @ adjacency + x


class GraphContextReasoning(nn.Module):
    """Released ``LevelReasoning``: Conv1d(node_dim → D), ``rounds`` × [BN1d → round → ReLU], Conv1d(D → out).

    Input (B, K, node_dim), output (B, out, K).
    """

    def __init__(
        self,
        node_dim: int = 512,
        channels: int = 512,
        out_channels: int = 256,
        rounds: int = 3,
        reasoning: str = "self_attention",
    ):
        super().__init__()
        if reasoning not in REASONINGS:
            raise ValueError(f"reasoning must be one of {REASONINGS}, got {reasoning!r}")
        self.project_in = nn.Conv1d(node_dim, channels, 1)
        self.norms = nn.ModuleList(nn.BatchNorm1d(channels) for _ in range(rounds))
        make = SelfAttention if reasoning == "self_attention" else GraphConvolution
        self.rounds = nn.ModuleList(make(channels) for _ in range(rounds))
        self.project_out = nn.Conv1d(channels, out_channels, 1)

    def forward(self, nodes: torch.Tensor) -> torch.Tensor:
        x = self.project_in(nodes.transpose(1, 2))
        for norm, step in zip(self.norms, self.rounds):
            x = F.relu(step(norm(x)))
        return self.project_out(x)


# --- graph semantics distribution (paper Eq. 7) ----------------------------------------------------
def graph_semantic_distribution(nodes: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Paints node vectors (B, C, K) back to the pixels of their hard masks (B, H, W) → (B, C, H, W)."""
    b, c, _ = nodes.shape
    h, w = labels.shape[-2:]
    index = labels.reshape(b, 1, h * w).expand(b, c, h * w)
    return nodes.gather(2, index).reshape(b, c, h, w)


# --- the pyramid ------------------------------------------------------------------------------------
class GraphPyramid(nn.Module):
    """GPM on f0 (B, C, h, w) given the raw logits y of the same dataset.

    Args:
        num_classes: one C per dataset (level-3 nodes).
        hierarchy: per dataset, the (3, C) tables of :func:`hierarchy_tables`.
        channels: C of f0 and of every f_l (256).
        graph_channels: width of the reasoning (512).
        levels: levels built, in order (paper: 1, 2, 3; Table 4 "level 3 only": [3]).
        pooling / max_pool: see :class:`GraphSemanticAggregation`.
        reasoning / rounds: see :class:`GraphContextReasoning`.

    Level-1/2 reasoning is shared by every dataset, level-3 reasoning is per dataset; distribution convs
    (``distribute``) and ``fusion`` are shared. Returns the fused feature (B, C, h, w).
    """

    def __init__(
        self,
        num_classes: Sequence[int],
        hierarchy: Sequence[torch.Tensor],
        channels: int = 256,
        graph_channels: int = 512,
        levels: Sequence[int] = LEVELS,
        pooling: str = "avg+max",
        max_pool: str = "masked",
        reasoning: str = "self_attention",
        rounds: int = 3,
    ):
        super().__init__()
        self.levels = tuple(int(level) for level in levels)
        if (
            not self.levels
            or any(level not in LEVELS for level in self.levels)
            or len(set(self.levels)) != len(self.levels)
        ):
            raise ValueError(f"levels must be distinct values among {LEVELS}, got {list(levels)}")
        self.num_classes = [int(c) for c in num_classes]
        for d, (c, table) in enumerate(zip(self.num_classes, hierarchy)):
            if tuple(table.shape) != (3, c):
                raise ValueError(
                    f"dataset {d}: hierarchy table of shape {tuple(table.shape)}, expected (3, {c})"
                )
            self.register_buffer(f"hierarchy_{d}", table.clone(), persistent=False)
        # node counts of the shared levels: the same for every dataset
        self.shared_nodes = {}
        for level in (1, 2):
            counts = {int(t[level - 1].max()) + 1 for t in hierarchy}
            if len(counts) != 1:
                raise ValueError(
                    f"level {level} has {sorted(counts)} nodes across datasets; shared levels need one count"
                )
            self.shared_nodes[level] = counts.pop()
        self.aggregate = GraphSemanticAggregation(pooling, max_pool)
        node_dim = self.aggregate.width(channels)

        def reasoner() -> GraphContextReasoning:
            return GraphContextReasoning(node_dim, graph_channels, channels, rounds, reasoning)

        self.reason = nn.ModuleDict({str(level): reasoner() for level in self.levels if level != 3})
        self.reason_fine = (
            nn.ModuleList(reasoner() for _ in self.num_classes) if 3 in self.levels else nn.ModuleList()
        )
        self.distribute = nn.ModuleDict(
            {str(level): nn.Conv2d(channels, channels, 1) for level in self.levels}
        )
        self.fusion = nn.Sequential(
            nn.Conv2d(channels * (len(self.levels) + 1), 2 * channels, 1),
            nn.Conv2d(2 * channels, channels, 1),
            nn.ReLU(),
        )

    def forward(self, f0: torch.Tensor, raw_logits: torch.Tensor, dataset: int = 0) -> torch.Tensor:
        table = getattr(self, f"hierarchy_{dataset}")
        with torch.no_grad():
            fine = raw_logits.argmax(1)  # hard masks from the raw branch, no gradient
        feats, f = [f0], f0
        for level in self.levels:
            nodes = table[level - 1][fine]
            k = self.num_classes[dataset] if level == 3 else self.shared_nodes[level]
            reasoner = self.reason_fine[dataset] if level == 3 else self.reason[str(level)]
            vectors = reasoner(self.aggregate(f, nodes, k))  # (B, C, K)
            f = f + self.distribute[str(level)](graph_semantic_distribution(vectors, nodes))
            feats.append(f)
        return self.fusion(torch.cat(feats, dim=1))


class GrapyNet(nn.Module):
    """DeepLab v3+ (Xception-65) + Graph Pyramid Module; one dataset (GPM) or several (Grapy-ML).

    Args:
        num_classes: C, or one C per dataset (mutual learning).
        datasets: the datasets' names, in ``dataset_idx`` order (Grapy-ML: cihp, pascal_person_part, atr).
        hierarchy: ``{name: {"level1": [...], "level2": [...]}}``, fine label → node (model config data).
        backbone / pretrained / output_stride / atrous_rates / aspp_channels / decoder_channels /
            low_level_channels / bn_eps / block_cfg: the DeepLab v3+ trunk (:class:`DeepLabV3PlusXception`).
        graph_channels / levels / pooling / max_pool / reasoning / rounds: the GPM (:class:`GraphPyramid`).
        init_from: a checkpoint to start from (:func:`~humanparse.models.grapy.released.load_weights`): a
            DeepLab v3+ stage-1 checkpoint (trunk and raw classifiers; paper §4.1, two-stage training), a
            mutual-learning checkpoint (fine-tuning), or a released Grapy-ML ``.pth``.
        init_datasets: the checkpoint's datasets in head order (default: ``datasets``).

    ``forward(images, dataset_idx=0)`` returns ``{"seg": ŷ, "raw": y}``, logits at stride 4.
    """

    def __init__(
        self,
        num_classes: int | Sequence[int],
        datasets: str | Sequence[str],
        hierarchy: Mapping[str, Mapping[str, Sequence[int]]],
        backbone: str = "xception65",
        pretrained: str | None = None,
        output_stride: int = 16,
        atrous_rates: Sequence[int] = (6, 12, 18),
        aspp_channels: int = 256,
        decoder_channels: int = 256,
        low_level_channels: int = 48,
        bn_eps: float = 1e-5,
        block_cfg: Sequence[dict] | None = None,
        graph_channels: int = 512,
        levels: Sequence[int] = LEVELS,
        pooling: str = "avg+max",
        max_pool: str = "masked",
        reasoning: str = "self_attention",
        rounds: int = 3,
        init_from: str | None = None,
        init_datasets: Sequence[str] | None = None,
    ):
        super().__init__()
        self.num_classes = as_list(num_classes)
        self.datasets = [datasets] if isinstance(datasets, str) else [str(d) for d in datasets]
        if len(self.datasets) != len(self.num_classes):
            raise ValueError(
                f"{len(self.datasets)} dataset name(s) {self.datasets} for {len(self.num_classes)} class count(s)"
            )
        tables = []
        for name, c in zip(self.datasets, self.num_classes):
            if name not in hierarchy:
                raise ValueError(
                    f"no Grapy-ML hierarchy table for data={name} (the GPM's level-1/2 nodes need one; known: "
                    f"{', '.join(sorted(hierarchy))}): add model.hierarchy.{name}={{level1: [...], level2: [...]}} "
                    "(fine label -> node), or use model=deeplabv3plus_xception on it"
                )
            tables.append(hierarchy_tables(c, hierarchy[name]["level1"], hierarchy[name]["level2"]))
        self.deeplab = DeepLabV3PlusXception(
            self.num_classes,
            backbone,
            pretrained,
            output_stride,
            atrous_rates,
            aspp_channels,
            decoder_channels,
            low_level_channels,
            bn_eps,
            block_cfg,
        )
        self.gpm = GraphPyramid(
            self.num_classes,
            tables,
            decoder_channels,
            graph_channels,
            levels,
            pooling,
            max_pool,
            reasoning,
            rounds,
        )
        self.classifiers = nn.ModuleList(nn.Conv2d(decoder_channels, c, 1) for c in self.num_classes)
        if init_from is not None:
            load_weights(
                self, init_from, self.datasets, None if init_datasets is None else list(init_datasets)
            )

    def forward(self, images: torch.Tensor, dataset_idx: int | torch.Tensor = 0) -> dict[str, torch.Tensor]:
        d = dataset_index(dataset_idx, len(self.num_classes))
        f0 = self.deeplab.features(images)
        raw = self.deeplab.classifiers[d](f0)
        return {"seg": self.classifiers[d](self.gpm(f0, raw, d)), "raw": raw}

    def dataset_parameters(self, dataset: int) -> list[tuple[str, nn.Parameter]]:
        """The parameters that belong to one dataset only (raw classifier, level-3 reasoning, final classifier)."""
        prefixes = (
            f"deeplab.classifiers.{dataset}.",
            f"gpm.reason_fine.{dataset}.",
            f"classifiers.{dataset}.",
        )
        return [(n, p) for n, p in self.named_parameters() if n.startswith(prefixes)]
