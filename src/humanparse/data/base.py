"""The one sample structure every reader produces and every model consumes.

A raw sample (``Dataset.load``) is a dict of numpy arrays at the original resolution:

=================  ===========================================================================
``image``          RGB uint8 (H, W, 3)
``semantic``       uint8 (H, W) class ids, 255 = ignore (absent for image-only splits)
``semantic_edge``  uint8 (H, W) CorrPM part-boundary map (derived, :mod:`humanparse.data.targets`)
``instance_edge``  uint8 (H, W) PGN person-boundary map (derived)
``heatmaps``       float32 (J, H/4, W/4) joint heatmaps (derived)
``keypoints``      float32 (J, 3): x (column), y (row), present (1/0); absent joints are (0, 0, 0)
``person_ids``     uint8/uint16 (H, W) person index map, 0 = background (multi-person datasets)
``instance_ids``   uint8/uint16 (H, W) part-instance ids (CIHP)
``persons``        list of per-person dicts for region-based models (boxes, masks, part maps, ...)
``meta``           ``id``, ``dataset``, ``split``, ``image_path``, ``orig_size`` (H, W), ...
=================  ===========================================================================

After the transforms, images become normalised float CHW tensors at the input size and label maps
int64 tensors; ``meta['affine']`` maps original pixels to input pixels. Evaluation samples also keep
``gt_semantic``, the untouched original-size label, because metrics are computed at the GT's own
size (metrics.md §1).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from humanparse.data.meta import DatasetInfo
from humanparse.data.transforms import FlipTables


class DatasetNotFoundError(FileNotFoundError):
    """The dataset root does not hold the expected layout."""


# keys turned into int64 tensors (label-like maps)
_LONG_KEYS = ("semantic", "semantic_edge", "instance_edge", "person_ids", "instance_ids", "level1", "level2",
              "gt_semantic")


def to_tensors(sample: dict) -> dict:
    out: dict = {}
    for k, v in sample.items():
        if k == "image":
            out[k] = torch.from_numpy(np.ascontiguousarray(v))
        elif k in _LONG_KEYS:
            out[k] = torch.from_numpy(np.ascontiguousarray(v).astype(np.int64))
        elif isinstance(v, np.ndarray) and k != "meta":
            out[k] = torch.from_numpy(np.ascontiguousarray(v))
        else:
            out[k] = v
    return out


class ParsingDataset(Dataset):
    """Base reader: subclasses implement :meth:`load` (and set ``info``); this class draws a per-sample
    RNG, applies transforms and derived-target makers, and converts to tensors.

    ``__getitem__`` accepts an index or an ``(index, epoch)`` pair (from
    :class:`~humanparse.data.samplers.EpochShuffleSampler`). The augmentation RNG is seeded from
    ``(seed, epoch, index)``, so augmentations do not depend on worker count, process count or on a
    run having been resumed.
    """

    info: DatasetInfo

    def __init__(
        self,
        transform: Callable | None = None,
        targets: Sequence[Callable] = (),
        seed: int = 0,
        keep_original: bool = False,
        joint_flip_pairs: Sequence[Sequence[int]] | None = None,
    ):
        self.transform = transform
        self.targets = list(targets)
        self.seed = int(seed)
        self.keep_original = keep_original
        pairs = tuple(tuple(p) for p in joint_flip_pairs) if joint_flip_pairs is not None else None
        self.flip_tables = FlipTables.from_info(self.info, pairs)
        if self.transform is not None and hasattr(self.transform, "bind"):
            self.transform.bind(self.flip_tables)
        self.ids: list[str] = []

    def __len__(self) -> int:
        return len(self.ids)

    def load(self, index: int) -> dict:  # pragma: no cover - abstract
        raise NotImplementedError

    def __getitem__(self, key) -> dict:
        if isinstance(key, (tuple, list)):
            index, epoch = int(key[0]), int(key[1])
        else:
            index, epoch = int(key), 0
        sample = self.load(index)
        if self.keep_original and sample.get("semantic") is not None:
            sample["gt_semantic"] = sample["semantic"].copy()
        for make in self.targets:
            if getattr(make, "stage", "post") == "pre":
                sample = make(sample)
        rng = np.random.default_rng([self.seed, epoch, index])
        if self.transform is not None:
            sample = self.transform(sample, rng)
        for make in self.targets:
            if getattr(make, "stage", "post") != "pre":
                sample = make(sample)
        return to_tensors(sample)


# keys never stacked: variable-size or structured per-sample entries
_NO_STACK = {"meta", "gt_semantic", "persons"}


def collate_dense(batch: list[dict]) -> dict:
    """Collate for FCN models: stacks equally-shaped tensors, keeps the rest as per-sample lists."""
    out: dict = {}
    keys = batch[0].keys()
    for k in keys:
        vals = [b[k] for b in batch]
        if k not in _NO_STACK and all(isinstance(v, torch.Tensor) for v in vals) and len({tuple(v.shape) for v in vals}) == 1:
            out[k] = torch.stack(vals)
        else:
            out[k] = vals
    return out
