"""Several datasets in one run: Grapy-ML mutual learning (its "GPM-based Mutual Learning" section).

Grapy-ML trains one network with a shared trunk and per-dataset heads on CIHP, PASCAL-Person-Part
and ATR (dataset ids 0, 1, 2 in that order). Its sampler makes every batch hold a single dataset,
interleaves the datasets' batches at random, takes one SGD step per batch, and an epoch covers all
images of all datasets. :class:`HomogeneousBatchSampler` does that (rather than Lightning's
``CombinedLoader``, which would put every dataset into each step); :class:`MultiDataModule` wraps one
:class:`~humanparse.data.datamodule.ParsingDataModule` per dataset (each with its own reader, class
set, augmentation and derived targets) and produces tagged batches::

    batch["dataset"]      "cihp" | "pascal_person_part" | "atr"   (one dataset per batch)
    batch["dataset_idx"]  0 | 1 | 2                                (position in ``datasets``)
    batch["image"], batch["semantic"], ...                         (as ParsingDataModule's batches)

Validation and test return one loader per dataset, in ``datasets`` order, so Lightning passes
``dataloader_idx`` = the dataset id and each dataset is scored with its own classes (Grapy-ML's
released code validates ATR through the PASCAL head; the project does not).

DDP: every rank builds the same batch schedule from ``seed + epoch``; each global batch is one
dataset and is split evenly across the ranks, so all ranks step on the same dataset at the same
time (the global batch is homogeneous, as Grapy-ML's DataParallel batch was).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from humanparse.data.base import collate_dense, collate_instances
from humanparse.data.datamodule import DataRequirementError, ParsingDataModule, plain
from humanparse.data.meta import DatasetInfo
from humanparse.data.samplers import InferenceSampler, dist_info


class TaggedConcatDataset(Dataset):
    """Datasets side by side under global indices; samples get ``meta['dataset_idx']``.

    ``__getitem__`` takes a global index or a ``(global index, epoch)`` pair (the epoch reaches the
    member dataset, which seeds its augmentation with it).
    """

    def __init__(self, datasets: Sequence[Dataset], names: Sequence[str]):
        if len(datasets) != len(names):
            raise ValueError("one name per dataset")
        self.datasets = list(datasets)
        self.names = list(names)
        self.sizes = [len(d) for d in self.datasets]
        self.offsets = [0]
        for n in self.sizes:
            self.offsets.append(self.offsets[-1] + n)

    def __len__(self) -> int:
        return self.offsets[-1]

    def locate(self, index: int) -> tuple[int, int]:
        """Global index -> (dataset position, local index)."""
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} samples")
        d = max(i for i in range(len(self.sizes)) if self.offsets[i] <= index and self.sizes[i] > 0)
        return d, index - self.offsets[d]

    def __getitem__(self, key) -> dict:
        index, epoch = (int(key[0]), int(key[1])) if isinstance(key, (tuple, list)) else (int(key), 0)
        d, local = self.locate(index)
        sample = self.datasets[d][(local, epoch)]
        sample["meta"] = {**sample.get("meta", {}), "dataset_idx": d, "dataset_name": self.names[d]}
        return sample


class HomogeneousBatchSampler(Sampler):
    """Batches of global indices into a :class:`TaggedConcatDataset`, one dataset per batch.

    Per epoch (generator seeded with ``seed + epoch``, identical on every rank): each dataset's indices
    are shuffled and cut into global batches of ``batch_size × num_replicas``; an incomplete last
    batch is dropped (``drop_last``) or filled by wrapping around the dataset's permutation, so every
    image appears at least once per epoch. The global batches of all datasets are then shuffled
    together. Each rank yields its ``batch_size`` slice of every global batch as ``(index, epoch)``
    pairs. Lightning calls ``set_epoch`` through ``batch_sampler.sampler``, which is this object.
    """

    def __init__(
        self,
        sizes: Sequence[int],
        batch_size: int,
        shuffle: bool = True,
        seed: int = 0,
        drop_last: bool = False,
        num_replicas: int | None = None,
        rank: int | None = None,
    ):
        ws, rk = dist_info()
        self.sizes = [int(s) for s in sizes]
        self.offsets = [sum(self.sizes[:i]) for i in range(len(self.sizes))]
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        self.seed = int(seed)
        self.drop_last = drop_last
        self.num_replicas = num_replicas if num_replicas is not None else ws
        self.rank = rank if rank is not None else rk
        self.epoch = 0
        self.sampler = self

    @property
    def global_batch(self) -> int:
        return self.batch_size * self.num_replicas

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def batches_per_dataset(self) -> list[int]:
        gb = self.global_batch
        return [(n // gb if self.drop_last else math.ceil(n / gb)) for n in self.sizes]

    def __len__(self) -> int:
        return sum(self.batches_per_dataset())

    def schedule(self) -> list[tuple[int, list[int]]]:
        """This epoch's global batches: (dataset position, global indices), in step order."""
        g = torch.Generator()
        g.manual_seed(self.seed + self.epoch)
        gb = self.global_batch
        batches: list[tuple[int, list[int]]] = []
        for d, (n, nb) in enumerate(zip(self.sizes, self.batches_per_dataset())):
            if nb == 0:
                continue
            order = torch.randperm(n, generator=g).tolist() if self.shuffle else list(range(n))
            need = nb * gb
            order = (order * math.ceil(need / n))[:need]
            for b in range(nb):
                batches.append((d, [self.offsets[d] + i for i in order[b * gb : (b + 1) * gb]]))
        if self.shuffle:
            perm = torch.randperm(len(batches), generator=g).tolist()
            batches = [batches[i] for i in perm]
        return batches

    def __iter__(self):
        lo, hi = self.rank * self.batch_size, (self.rank + 1) * self.batch_size
        for _, idx in self.schedule():
            yield [(i, self.epoch) for i in idx[lo:hi]]


def tag_batch(out: dict, batch: list[dict]) -> dict:
    """Add ``dataset`` / ``dataset_idx`` to a collated batch; refuses a batch mixing datasets."""
    idx = {b["meta"]["dataset_idx"] for b in batch}
    if len(idx) != 1:
        raise ValueError(f"a multi-dataset batch must hold one dataset, got dataset ids {sorted(idx)}")
    out["dataset_idx"] = idx.pop()
    out["dataset"] = batch[0]["meta"]["dataset_name"]
    return out


def collate_tagged_dense(batch: list[dict]) -> dict:
    return tag_batch(collate_dense(batch), batch)


def collate_tagged_instances(batch: list[dict]) -> dict:
    return tag_batch(collate_instances(batch), batch)


class _Tagged(Dataset):
    """One member dataset with the tags of :class:`TaggedConcatDataset` (validation/test loaders)."""

    def __init__(self, dataset: Dataset, idx: int, name: str):
        self.dataset, self.idx, self.name = dataset, idx, name

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key) -> dict:
        sample = self.dataset[key]
        sample["meta"] = {**sample.get("meta", {}), "dataset_idx": self.idx, "dataset_name": self.name}
        return sample


class MultiDataModule(pl.LightningDataModule):
    """Cross-dataset training with homogeneous batches and per-dataset validation.

    Args:
        datasets: name -> :class:`ParsingDataModule` (Hydra instantiates them from
            ``conf/data/<name>.yaml``); the order gives ``dataset_idx``.
        batch_size / eval_batch_size: global batch sizes (each rank gets ``/ world_size``).
        num_workers, pin_memory: loader settings for every loader.
        drop_last: drop each dataset's incomplete last global batch instead of wrapping around.
        collate: ``dense`` or ``instance`` (see :data:`humanparse.data.datamodule.COLLATES`).
        seed: seed of the batch schedule.
        name: the run's data name (``grapy_ml``).
        synthetic, synthetic_options, input_size, augment, normalize: settings shared by the members;
            ``conf/data/grapy_ml.yaml`` interpolates them into every member config (so one override,
            e.g. ``data.synthetic=true``, reaches all datasets). Here they are only recorded.
        num_classes: optional check of the members' class counts, in order.
    """

    def __init__(
        self,
        datasets: Mapping[str, ParsingDataModule],
        batch_size: int = 10,
        eval_batch_size: int | None = None,
        num_workers: int = 2,
        pin_memory: bool = False,
        drop_last: bool = False,
        collate: str = "dense",
        seed: int = 0,
        name: str = "multi",
        synthetic: bool = False,
        synthetic_options: Mapping | None = None,
        input_size: Sequence[int] | None = None,
        augment: Mapping | None = None,
        normalize: Mapping | None = None,
        num_classes: Sequence[int] | None = None,
        num_joints: int | None = None,
    ):
        super().__init__()
        self.shared = {
            "synthetic": bool(synthetic),
            "synthetic_options": plain(synthetic_options),
            "input_size": plain(input_size),
            "augment": plain(augment),
            "normalize": plain(normalize),
        }
        if not datasets:
            raise ValueError("MultiDataModule needs at least one dataset")
        for key, dm in datasets.items():
            if not isinstance(dm, ParsingDataModule):
                raise TypeError(
                    f"datasets.{key} must be a ParsingDataModule (a conf/data/<name>.yaml), got {type(dm)}"
                )
        self.members: dict[str, ParsingDataModule] = dict(datasets)
        self.name = name
        self.batch_size = int(batch_size)
        self.eval_batch_size = int(eval_batch_size or batch_size)
        self.num_workers = int(num_workers)
        self.pin_memory = pin_memory
        self.drop_last = drop_last
        if collate not in ("dense", "instance"):
            raise ValueError(f"collate must be 'dense' or 'instance', got {collate!r}")
        self.collate_fn = collate_tagged_dense if collate == "dense" else collate_tagged_instances
        self.seed = int(seed)
        self.datasets: dict = {}
        if num_classes is not None and list(num_classes) != self.num_classes:
            raise ValueError(
                f"data.num_classes={list(num_classes)} but the datasets {self.names} have "
                f"{self.num_classes} classes"
            )

    # -- what the model needs to know -------------------------------------------------------------
    @property
    def names(self) -> list[str]:
        return list(self.members)

    @property
    def infos(self) -> list[DatasetInfo]:
        """Per-dataset label spaces, in ``dataset_idx`` order."""
        return [dm.info for dm in self.members.values()]

    @property
    def num_classes(self) -> list[int]:
        return [i.num_classes for i in self.infos]

    # -- data -------------------------------------------------------------------------------------
    def prepare_data(self) -> None:
        for dm in self.members.values():
            dm.prepare_data()

    def eval_sets(self) -> list:
        """One evaluation set per member, in ``dataset_idx`` order (the validation loaders' order)."""
        return [s for dm in self.members.values() for s in dm.eval_sets()]

    def adapt_to_model(self, requirements: Mapping, model: str = "model") -> None:
        """:meth:`ParsingDataModule.adapt_to_model` for every member; a model with a single head is refused:
        it would mix the datasets' label spaces."""
        req = dict(requirements or {})
        if not req.get("multi_dataset"):
            raise DataRequirementError(
                f"data={self.name} trains on {', '.join(self.names)} at once, with their different label spaces "
                f"({self.num_classes} classes); model={model} has a single head. Use a model with per-dataset heads "
                f"(model=grapy_ml, as experiment=grapy_ml selects), or train on one dataset (data={self.names[0]})"
            )
        for member in self.members.values():
            member.adapt_to_model({k: v for k, v in req.items() if k != "multi_dataset"}, model)
        if req.get("collate"):
            self.collate_fn = collate_tagged_dense if req["collate"] == "dense" else collate_tagged_instances

    def require_targets(self, names) -> list[str]:
        """:meth:`ParsingDataModule.require_targets` on every member dataset."""
        added: list[str] = []
        for member in self.members.values():
            added += [n for n in member.require_targets(names) if n not in added]
        return added

    def setup(self, stage: str | None = None) -> None:
        for dm in self.members.values():
            dm.setup(stage)
        if stage in (None, "fit"):
            self.datasets["train"] = TaggedConcatDataset(
                [dm.datasets["train"] for dm in self.members.values()], self.names
            )
        for key in ("val", "test"):
            if all(key in dm.datasets for dm in self.members.values()):
                self.datasets[key] = [
                    _Tagged(dm.datasets[key], i, n) for i, (n, dm) in enumerate(self.members.items())
                ]

    def _per_device(self, global_batch: int) -> int:
        world, _ = dist_info()
        if global_batch % world:
            raise ValueError(f"global batch size {global_batch} is not divisible by the world size {world}")
        return global_batch // world

    def train_dataloader(self) -> DataLoader:
        ds = self.datasets["train"]
        sampler = HomogeneousBatchSampler(
            ds.sizes,
            self._per_device(self.batch_size),
            shuffle=True,
            seed=self.seed,
            drop_last=self.drop_last,
        )
        return DataLoader(
            ds,
            batch_sampler=sampler,
            num_workers=self.num_workers,
            collate_fn=self.collate_fn,
            pin_memory=self.pin_memory,
            persistent_workers=self.num_workers > 0,
        )

    def _eval_loaders(self, key: str) -> list[DataLoader]:
        bs = self._per_device(self.eval_batch_size)
        return [
            DataLoader(
                ds,
                batch_size=bs,
                sampler=InferenceSampler(len(ds)),
                num_workers=self.num_workers,
                collate_fn=self.collate_fn,
                pin_memory=self.pin_memory,
                persistent_workers=self.num_workers > 0,
            )
            for ds in self.datasets[key]
        ]

    def val_dataloader(self) -> list[DataLoader]:
        return self._eval_loaders("val")

    def test_dataloader(self) -> list[DataLoader]:
        return self._eval_loaders("test")

    def describe(self) -> dict:
        return {
            "dataset": self.name,
            "members": {n: dm.describe() for n, dm in self.members.items()},
            "global_batch_size": self.batch_size,
            **self.shared,
        }
