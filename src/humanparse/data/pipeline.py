"""One sample pipeline for every reader: a reader resolves its layout and loads one raw sample; the
:class:`SamplePipeline` makes the training or evaluation item from it.

Per item ``(index, epoch)`` (an index alone means epoch 0), in this order:

1. ``reader.load(index)``: the raw sample (numpy arrays at the original resolution, :mod:`humanparse.data.base`);
2. the kept ground truth: with ``keep_original`` (``True`` = the semantic map, or the list of keys the active
   evaluators read) the untouched original-size maps go to ``sample["gt"]``
   (:func:`~humanparse.data.base.original_gt`), before anything changes them;
3. the derived-target makers with ``stage = "pre"`` (computed on the original-size sample);
4. the transform, with an RNG seeded from ``(seed, epoch, index)``, so augmentations do not depend on the
   worker count, the process count or on a run having been resumed; the transform is bound to the reader's
   left/right tables (``reader.flip_tables``) and adapted by the reader (``reader.adapt_transform``:
   DensePose points, per-person crops);
5. the other derived-target makers (on the transformed sample, e.g. CorrPM's edges and heatmaps);
6. tensors (``reader.to_tensors``).

The pipeline is a ``torch`` ``Dataset`` of the reader's length; the reader's attributes (``ids``, ``info``,
``sample_files``, ``check_files``, ``pose_source``, ...) are reachable through it, and ``ids`` can be cut
(``pipeline.ids = pipeline.ids[:n]``) as on the reader.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from torch.utils.data import Dataset

from humanparse.data.base import Reader, gt_key_list, original_gt, to_tensors


class SamplePipeline(Dataset):
    """Transforms, derived targets, seeding and kept ground truth around any :class:`~humanparse.data.base.Reader`.

    Args:
        reader: the dataset reader (anything with ``info``, ``ids``, ``load(index)`` and ``flip_tables``).
        transform: ``transform(sample, rng) -> sample`` (e.g. :class:`~humanparse.data.transforms.Compose`
            of :class:`~humanparse.data.transforms.AffineTransform` and ``Normalize``); ``None``: no transform.
        targets: derived-target makers (:mod:`humanparse.data.targets`), applied in order.
        seed: base seed of the per-item RNG.
        keep_original: ``False`` (training), ``True`` (the semantic map) or the list of ground-truth keys
            (:data:`~humanparse.data.base.GT_KEYS`) to keep at the original size in ``sample["gt"]``.
    """

    def __init__(
        self,
        reader: Reader,
        transform: Callable | None = None,
        targets: Sequence[Callable] = (),
        seed: int = 0,
        keep_original: bool | Sequence[str] = False,
    ):
        self.reader = reader
        self.targets = list(targets)
        self.seed = int(seed)
        self.keep_gt = gt_key_list(keep_original)
        if transform is not None and hasattr(transform, "bind"):
            transform.bind(reader.flip_tables)
        self.transform = (
            reader.adapt_transform(transform) if hasattr(reader, "adapt_transform") else transform
        )

    # -- the reader through the pipeline ---------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.reader)

    @property
    def ids(self) -> list[str]:
        return self.reader.ids

    @ids.setter
    def ids(self, value: list[str]) -> None:
        self.reader.ids = value

    def __getattr__(self, name: str):
        # only called for names the pipeline itself lacks; never for ``reader`` (unpickling in workers)
        if name == "reader" or name.startswith("__"):
            raise AttributeError(name)
        return getattr(self.reader, name)

    def load(self, index: int) -> dict:
        """The raw sample ``index`` of the reader (no transform)."""
        return self.reader.load(index)

    # -- items ---------------------------------------------------------------------------------------
    def rng(self, index: int, epoch: int = 0) -> np.random.Generator:
        """The augmentation RNG of item ``(index, epoch)``."""
        return np.random.default_rng([self.seed, epoch, index])

    def __getitem__(self, key) -> dict:
        if isinstance(key, (tuple, list)):
            index, epoch = int(key[0]), int(key[1])
        else:
            index, epoch = int(key), 0
        sample = self.reader.load(index)
        if self.keep_gt:
            sample["gt"] = original_gt(sample, self.keep_gt, index)
        for make in self.targets:
            if getattr(make, "stage", "post") == "pre":
                sample = make(sample)
        if self.transform is not None:
            sample = self.transform(sample, self.rng(index, epoch))
        for make in self.targets:
            if getattr(make, "stage", "post") != "pre":
                sample = make(sample)
        return getattr(self.reader, "to_tensors", to_tensors)(sample)

    def __repr__(self) -> str:
        return (
            f"SamplePipeline({type(self.reader).__name__}, {len(self)} samples, transform={self.transform!r}, "
            f"targets={[type(t).__name__ for t in self.targets]}, seed={self.seed}, keep_gt={list(self.keep_gt)})"
        )
