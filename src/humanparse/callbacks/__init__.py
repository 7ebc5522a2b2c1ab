"""Lightning callbacks of the suite."""

from humanparse.callbacks.seeding import EpochSeed

__all__ = ["EpochSeed"]
