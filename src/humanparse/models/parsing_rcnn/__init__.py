"""Parsing R-CNN (Yang et al., CVPR 2019) on the human R-CNN family."""

from humanparse.models.parsing_rcnn.parsing_rcnn import (
    GCE,
    NonLocal2d,
    ParsingBranch,
    ParsingHead,
    ParsingOutput,
    ParsingRCNN,
    parsing_targets,
)
from humanparse.models.parsing_rcnn.postprocess import (
    ParsingRCNNPostprocess,
    boxes_to_original,
    expand_boxes,
    merge_flipped,
    paste_parsing,
    semantic_map,
)

__all__ = [
    "GCE",
    "NonLocal2d",
    "ParsingBranch",
    "ParsingHead",
    "ParsingOutput",
    "ParsingRCNN",
    "ParsingRCNNPostprocess",
    "boxes_to_original",
    "expand_boxes",
    "merge_flipped",
    "parsing_targets",
    "paste_parsing",
    "semantic_map",
]
