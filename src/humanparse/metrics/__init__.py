"""The papers' metrics as torchmetrics ``Metric``s."""

from humanparse.metrics.semantic import SemanticParsingMetric, confusion_matrix, scores_from_confmat

__all__ = ["SemanticParsingMetric", "confusion_matrix", "scores_from_confmat"]
