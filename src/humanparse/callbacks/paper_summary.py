"""The paper's numbers and our differences to them in the wandb run summary (``paper/<m>``, ``delta/<m>``)."""

from __future__ import annotations

import logging

import pytorch_lightning as pl
from pytorch_lightning.callbacks import Callback
from pytorch_lightning.loggers import WandbLogger

log = logging.getLogger(__name__)


def paper_deltas(
    metrics: dict, stage: str, model: str | None, variant: str | None, dataset: str | None, paper_ref=None
) -> dict[str, float]:
    """``{"paper/<m>": paper %, "delta/<m>": ours % − paper %}`` for every metric of the run's own paper row
    (the lookup of ``humanparse.compare``: ``paper_ref`` of the config, else ``paper_refs.yaml`` for the
    model[:variant] and dataset) that the run has under ``<stage>/``. Empty when no row is listed."""
    from humanparse.compare.papers import load_paper_results, run_value_percent

    try:
        row = load_paper_results().reference_for(model, variant, dataset, paper_ref)
    except KeyError as e:
        log.warning("paper numbers: %s", e.args[0])
        return {}
    out: dict[str, float] = {}
    if not row:
        return out
    for name, entry in row.entries.items():
        ours = metrics.get(f"{stage}/{name}")
        if ours is None:
            continue
        ours = float(ours.item() if hasattr(ours, "item") else ours)
        if ours != ours:  # NaN
            continue
        out[f"paper/{name}"] = entry.percent
        out[f"delta/{name}"] = run_value_percent(name, ours) - entry.percent
    if out:
        out["paper/row"] = row.label()
        out["paper/stage"] = stage
    return out


class PaperSummary(Callback):
    """After validation and after testing, writes the paper's row and the deltas into each wandb run's
    summary, so the wandb runs table shows ours-vs-paper (test numbers win when the run is tested)."""

    def _write(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        wandb_loggers = [lg for lg in trainer.loggers if isinstance(lg, WandbLogger)]
        if not wandb_loggers or not trainer.is_global_zero or trainer.sanity_checking:
            return
        cfg = getattr(pl_module, "run_config", None) or {}
        model_cfg, data_cfg = cfg.get("model") or {}, cfg.get("data") or {}
        net = getattr(pl_module, "net", None)
        variant = getattr(net, "variant", None) or model_cfg.get("variant")
        values = paper_deltas(
            {k: v for k, v in trainer.callback_metrics.items()},
            stage,
            model_cfg.get("name"),
            variant,
            data_cfg.get("name"),
            cfg.get("paper_ref"),
        )
        for lg in wandb_loggers:
            lg.experiment.summary.update(values)

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._write(trainer, pl_module, "val")

    def on_test_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._write(trainer, pl_module, "test")
