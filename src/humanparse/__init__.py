"""humanparse: five human-analysis papers, six datasets, the papers' exact metrics, one codebase."""

__version__ = "0.1.0"
