"""Console output: a progress bar that moves on short epochs, a model summary without empty FLOPs."""

from __future__ import annotations

import math

from pytorch_lightning.callbacks import RichModelSummary, TQDMProgressBar


class ProgressBar(TQDMProgressBar):
    """``TQDMProgressBar`` whose refresh interval shrinks on short epochs: at most ``refresh_rate`` batches,
    at least ~20 updates per epoch (a 6-batch epoch with ``refresh_rate=10`` would otherwise show 0 % until
    it ends)."""

    def _should_update(self, current: int, total: int) -> bool:  # Lightning's hook for the update decision
        if not self.is_enabled:
            return False
        rate = self.refresh_rate
        if total and not math.isinf(total):
            rate = max(1, min(rate, int(total) // 20))
        return current % rate == 0 or current == total


class ModelSummary(RichModelSummary):
    """``RichModelSummary`` without the FLOPs column and the "Total FLOPs: 0" line when Lightning could not
    count FLOPs (it counts them only for modules with an ``example_input_array``)."""

    @staticmethod
    def summarize(
        summary_data,
        total_parameters,
        trainable_parameters,
        model_size,
        total_training_modes,
        total_flops,
        **summarize_kwargs,
    ) -> None:
        from pytorch_lightning.utilities.model_summary.model_summary import (
            get_formatted_model_size,
            get_human_readable_count,
        )
        from rich import get_console
        from rich.table import Table

        if total_flops:
            RichModelSummary.summarize(
                summary_data,
                total_parameters,
                trainable_parameters,
                model_size,
                total_training_modes,
                total_flops,
                **summarize_kwargs,
            )
            return
        data = [(name, col) for name, col in summary_data if name != "FLOPs"]
        table = Table(header_style=summarize_kwargs.get("header_style", "bold magenta"))
        table.add_column(" ", style="dim")
        for name, _ in data[1:]:
            table.add_column(
                name,
                justify="right"
                if name in ("Params", "Params per Device", "In sizes", "Out sizes")
                else "left",
            )
        for row in zip(*(col for _, col in data)):
            table.add_row(*row)
        console = get_console()
        console.print(table)
        grid = Table.grid(expand=True)
        grid.add_column()
        grid.add_row(f"[bold]Trainable params[/]: {get_human_readable_count(int(trainable_parameters))}")
        grid.add_row(
            f"[bold]Non-trainable params[/]: {get_human_readable_count(int(total_parameters - trainable_parameters))}"
        )
        grid.add_row(f"[bold]Total params[/]: {get_human_readable_count(int(total_parameters))}")
        grid.add_row(
            f"[bold]Total estimated model params size (MB)[/]: {get_formatted_model_size(model_size)}"
        )
        grid.add_row(f"[bold]Modules in train mode[/]: {total_training_modes['train']}")
        grid.add_row(f"[bold]Modules in eval mode[/]: {total_training_modes['eval']}")
        console.print(grid)
