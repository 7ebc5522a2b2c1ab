"""Building blocks shared by several papers (ASPP, non-local, ...)."""
