"""Compare finished runs with each other and with the numbers the papers print.

``python -m humanparse.compare [source=local roots=[logs]] [source=wandb project=... entity=...]``; see
:mod:`humanparse.compare.cli` for every option. Building blocks: :func:`load_paper_results` (the packaged
paper numbers), :func:`collect_local` / :func:`collect_wandb` (runs → :class:`RunRecord`),
:func:`build_comparison` (the table) and :func:`write_plots`.
"""

from humanparse.compare.papers import (
    PaperEntry,
    PaperResults,
    PaperRow,
    RowRef,
    load_paper_results,
    paper_to_run_metric,
    run_to_paper_metric,
)
from humanparse.compare.runs import RunRecord, collect_local, read_local_run
from humanparse.compare.table import Comparison, build_comparison, fingerprint
from humanparse.compare.wandb_source import OfflineApi, OfflineRun, collect_wandb, record_from_wandb_run

__all__ = [
    "Comparison",
    "OfflineApi",
    "OfflineRun",
    "PaperEntry",
    "PaperResults",
    "PaperRow",
    "RowRef",
    "RunRecord",
    "build_comparison",
    "collect_local",
    "collect_wandb",
    "fingerprint",
    "load_paper_results",
    "paper_to_run_metric",
    "read_local_run",
    "record_from_wandb_run",
    "run_to_paper_metric",
]
