"""Baselines: DeepLab v3+ (Grapy-ML's stage-1 model)."""

from humanparse.models.baseline.deeplabv3plus import DeepLabV3Plus

__all__ = ["DeepLabV3Plus"]
