"""Baselines: DeepLab v3+ (models.md §6)."""

from humanparse.models.baseline.deeplabv3plus import DeepLabV3Plus

__all__ = ["DeepLabV3Plus"]
