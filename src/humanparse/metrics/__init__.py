"""The papers' metrics as torchmetrics ``Metric``s."""

from humanparse.metrics.apr import PartInstanceAPMetric
from humanparse.metrics.atr import ATRMetric
from humanparse.metrics.densepose import DensePoseMetric
from humanparse.metrics.detection import BoxMAP
from humanparse.metrics.edge import InstanceEdgeMetric
from humanparse.metrics.instance import InstanceParsingMetric
from humanparse.metrics.semantic import SemanticParsingMetric, confusion_matrix, scores_from_confmat

__all__ = [
    "ATRMetric",
    "BoxMAP",
    "DensePoseMetric",
    "InstanceEdgeMetric",
    "InstanceParsingMetric",
    "PartInstanceAPMetric",
    "SemanticParsingMetric",
    "confusion_matrix",
    "scores_from_confmat",
]
