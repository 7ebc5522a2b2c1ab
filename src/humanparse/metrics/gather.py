"""Base for instance-level metrics: per-image records gathered to rank 0, scored there, broadcast.

The detectron2 evaluator pattern: list states of torchmetrics hang or fail on empty
or uneven lists across processes, so records live in a plain Python list, ``compute()`` gathers them
with ``all_gather_object``, de-duplicates by image id (first record wins), orders them by their
position in the split (so scores and tie order do not depend on the number of processes), scores on
rank 0 only and broadcasts the result so that every rank returns identical values.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist
from torchmetrics import Metric


def _world() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size(), dist.get_rank()
    return 1, 0


class GatheredMetric(Metric):
    """Subclasses call :meth:`add` in ``update`` and implement :meth:`score` (rank 0 only)."""

    full_state_update = False
    higher_is_better = True

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._records: list[tuple[int, str, Any]] = []
        self._seen = 0

    def add(self, order: int, image_id: str, record: Any) -> None:
        """Keep one image's compact record; ``order`` is the image's position in the evaluation list."""
        self._records.append((int(order), str(image_id), record))

    def reset(self) -> None:
        super().reset()
        self._records = []
        self._seen = 0  # images added so far: the default list position of the next one

    def flat(self, scores: dict[str, torch.Tensor] | None = None, prefix: str = "") -> dict[str, float]:
        """``{'<prefix>/<key>': value}``: the ``paper_results.yaml`` names under a ``val``/``test`` prefix."""
        scores = self.compute() if scores is None else scores
        p = f"{prefix}/" if prefix else ""
        return {f"{p}{k}": float(v) for k, v in scores.items()}

    def gathered_records(self) -> list[tuple[int, str, Any]]:
        """All processes' records, de-duplicated by image id and sorted by list position."""
        world, _ = _world()
        records = list(self._records)
        if world > 1:
            parts: list = [None] * world
            dist.all_gather_object(parts, records)
            records = [r for part in parts for r in part]
        seen: set[str] = set()
        unique = []
        for r in sorted(records, key=lambda r: r[0]):
            if r[1] in seen:
                continue
            seen.add(r[1])
            unique.append(r)
        return unique

    def score(self, records: list[tuple[int, str, Any]]) -> dict[str, float]:  # pragma: no cover - abstract
        raise NotImplementedError

    def compute(self) -> dict[str, torch.Tensor]:
        records = self.gathered_records()
        world, rank = _world()
        result = self.score(records) if rank == 0 else None
        if world > 1:
            box = [result]
            dist.broadcast_object_list(box, src=0)
            result = box[0]
        return {k: torch.as_tensor(v, dtype=torch.float64) for k, v in result.items()}

    # torchmetrics syncs registered states before compute; records are gathered in compute instead
    def _sync_dist(self, dist_sync_fn=None, process_group=None) -> None:
        return None
