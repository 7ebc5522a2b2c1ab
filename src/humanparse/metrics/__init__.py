"""The papers' metrics as torchmetrics ``Metric``s."""

from humanparse.metrics.densepose import DensePoseMetric
from humanparse.metrics.detection import BoxMAP
from humanparse.metrics.semantic import SemanticParsingMetric, confusion_matrix, scores_from_confmat

__all__ = ["BoxMAP", "DensePoseMetric", "SemanticParsingMetric", "confusion_matrix", "scores_from_confmat"]
