"""Lightning callbacks of the suite."""

from humanparse.callbacks.console import ModelSummary, ProgressBar
from humanparse.callbacks.finite import FiniteGuard, NonFiniteError
from humanparse.callbacks.last_link import LastCheckpointLink
from humanparse.callbacks.paper_summary import PaperSummary
from humanparse.callbacks.seeding import EpochSeed
from humanparse.callbacks.val_images import ValidationImages

__all__ = [
    "EpochSeed",
    "FiniteGuard",
    "LastCheckpointLink",
    "ModelSummary",
    "NonFiniteError",
    "PaperSummary",
    "ProgressBar",
    "ValidationImages",
]
