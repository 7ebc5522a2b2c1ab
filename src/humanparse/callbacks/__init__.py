"""Lightning callbacks of the suite."""

from humanparse.callbacks.finite import FiniteGuard, NonFiniteError
from humanparse.callbacks.seeding import EpochSeed

__all__ = ["EpochSeed", "FiniteGuard", "NonFiniteError"]
