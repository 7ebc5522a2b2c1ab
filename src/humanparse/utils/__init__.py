"""Small helpers of the entry points (config printing, instantiation, run records)."""
