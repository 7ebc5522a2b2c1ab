"""CorrPM (Zhang et al., CVPR 2020): model and ablation variants; its loss (``loss.py``)."""

from humanparse.models.corrpm.corrpm import (
    VARIANTS,
    ConcatFusion,
    CorrPM,
    EdgeEncoder,
    HeterogeneousNonLocal,
    ParsingEncoder,
    PoseEncoder,
    SelfNonLocal,
    Variant,
    count_parameters,
    effective_variant,
)

__all__ = [
    "VARIANTS",
    "ConcatFusion",
    "CorrPM",
    "EdgeEncoder",
    "HeterogeneousNonLocal",
    "ParsingEncoder",
    "PoseEncoder",
    "SelfNonLocal",
    "Variant",
    "count_parameters",
    "effective_variant",
]
