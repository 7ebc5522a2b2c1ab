"""PGN — Part Grouping Network (Gong et al., ECCV 2018): network, loss, instance partition, postprocess."""

from humanparse.models.pgn.pgn import (
    PGN,
    EdgeDetectionBranch,
    EdgeSideOutput,
    PartGroupingNetwork,
    PartSegmentationBranch,
    PyramidPooling,
    RefinementBranch,
    ResNetTrunk,
    count_parameters,
)

__all__ = [
    "PGN",
    "EdgeDetectionBranch",
    "EdgeSideOutput",
    "PartGroupingNetwork",
    "PartSegmentationBranch",
    "PyramidPooling",
    "RefinementBranch",
    "ResNetTrunk",
    "count_parameters",
]
