"""Grapy-ML (He et al., AAAI 2020): DeepLab v3+ on Xception-65, the Graph Pyramid Module, mutual learning."""

from humanparse.models.grapy.deeplab import (
    Decoder,
    DeepLabV3PlusXception,
    SeparableASPP,
    XceptionBackbone,
    dataset_index,
)
from humanparse.models.grapy.grapy import (
    GraphContextReasoning,
    GraphConvolution,
    GraphPyramid,
    GraphSemanticAggregation,
    GrapyNet,
    SelfAttention,
    graph_semantic_distribution,
    hierarchy_tables,
)
from humanparse.models.grapy.loss import GrapyCriterion

__all__ = [
    "Decoder",
    "DeepLabV3PlusXception",
    "GraphContextReasoning",
    "GraphConvolution",
    "GraphPyramid",
    "GraphSemanticAggregation",
    "GrapyCriterion",
    "GrapyNet",
    "SelfAttention",
    "SeparableASPP",
    "XceptionBackbone",
    "dataset_index",
    "graph_semantic_distribution",
    "hierarchy_tables",
]
