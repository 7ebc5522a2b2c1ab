"""Grapy-ML multi-dataset loading: homogeneous batches, random interleaving, DDP-consistent schedules,
tagged batches and per-dataset validation loaders (dataloader_idx)."""

from __future__ import annotations

import math

import hydra
import pytest
import pytorch_lightning as pl
import torch

from humanparse.data.multi import HomogeneousBatchSampler, MultiDataModule, TaggedConcatDataset, tag_batch


def _dataset_of(i: int, sizes) -> int:
    return next(d for d in range(len(sizes)) if sum(sizes[:d]) <= i < sum(sizes[: d + 1]))


def test_batches_hold_one_dataset_cover_every_image_and_interleave():
    sizes = [5, 3, 7]
    s = HomogeneousBatchSampler(sizes, batch_size=2, seed=1, num_replicas=1, rank=0)
    batches = list(s)
    assert len(batches) == len(s) == 3 + 2 + 4
    owners = []
    for b in batches:
        assert len(b) == 2 and all(e == 0 for _, e in b)
        ds = {_dataset_of(i, sizes) for i, _ in b}
        assert len(ds) == 1
        owners.append(ds.pop())
    assert {i for b in batches for i, _ in b} == set(range(sum(sizes)))  # an epoch = every image
    assert owners != sorted(owners)  # the datasets' batches are interleaved, not one after the other
    s.set_epoch(1)
    again = list(s)
    assert again != batches and all(e == 1 for b in again for _, e in b)
    s.set_epoch(0)
    assert list(s) == batches
    dropped = HomogeneousBatchSampler(sizes, batch_size=2, drop_last=True, num_replicas=1, rank=0)
    assert len(list(dropped)) == 2 + 1 + 3


def test_ranks_share_the_schedule_and_split_each_global_batch():
    sizes = [6, 9]
    ranks = [HomogeneousBatchSampler(sizes, batch_size=2, seed=3, num_replicas=2, rank=r) for r in (0, 1)]
    assert len(ranks[0]) == len(ranks[1]) == math.ceil(6 / 4) + math.ceil(9 / 4)
    seen = set()
    for b0, b1 in zip(*ranks):
        i0, i1 = {i for i, _ in b0}, {i for i, _ in b1}
        assert not i0 & i1 or len(i0 | i1) < 4  # wrap-around padding may repeat an index
        assert len({_dataset_of(i, sizes) for i in i0 | i1}) == 1  # both ranks step on one dataset
        seen |= i0 | i1
    assert seen == set(range(15))


def test_tagged_concat_dataset_locates_indices():
    class _D(torch.utils.data.Dataset):
        def __init__(self, n, tag):
            self.n, self.tag = n, tag

        def __len__(self):
            return self.n

        def __getitem__(self, key):
            return {"meta": {"i": key[0], "epoch": key[1], "tag": self.tag}}

    ds = TaggedConcatDataset([_D(2, "a"), _D(0, "b"), _D(3, "c")], ["a", "b", "c"])
    assert len(ds) == 5 and ds.locate(2) == (2, 0)
    s = ds[(4, 7)]
    assert s["meta"] == {"i": 2, "epoch": 7, "tag": "c", "dataset_idx": 2, "dataset_name": "c"}
    with pytest.raises(IndexError):
        ds.locate(5)


class _Probe(pl.LightningModule):
    """Counts what it sees: training batches per dataset, validation batches per dataloader_idx."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))
        self.train_seen: list[tuple[str, int]] = []
        self.val_seen: list[tuple[int, int, int]] = []

    def training_step(self, batch, batch_idx):
        self.train_seen.append((batch["dataset"], batch["dataset_idx"]))
        return (self.w * batch["image"].mean()).sum() + self.w.sum() ** 2

    def validation_step(self, batch, batch_idx, dataloader_idx=0):
        self.val_seen.append((dataloader_idx, batch["dataset_idx"], int(batch["gt"][0]["semantic"].max())))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def test_grapy_ml_config_trains_one_dataset_per_step_and_validates_per_dataset(compose_train):
    cfg = compose_train(
        "data=grapy_ml",
        "data.synthetic=true",
        "data.synthetic_options.num_train=6",
        "data.synthetic_options.num_val=3",
        "data.batch_size=2",
    )
    dm = hydra.utils.instantiate(cfg.data)
    assert isinstance(dm, MultiDataModule)
    assert dm.names == ["cihp", "pascal_person_part", "atr"] and dm.num_classes == [20, 7, 18]
    dm.prepare_data()
    dm.setup("fit")
    assert dm.datasets["train"].sizes == [6, 6, 6]
    probe = _Probe()
    trainer = pl.Trainer(
        max_epochs=1,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        use_distributed_sampler=False,
    )
    trainer.fit(probe, datamodule=dm)
    assert len(probe.train_seen) == 9  # 3 datasets x 6 images / batch 2: an epoch covers all images
    names = dm.names
    assert all(names[i] == n for n, i in probe.train_seen)
    assert sorted({i for _, i in probe.train_seen}) == [0, 1, 2]
    assert {(k, i) for k, i, _ in probe.val_seen} == {(0, 0), (1, 1), (2, 2)}
    for k, _, top in probe.val_seen:  # each loader holds labels of its own class set
        assert top < dm.num_classes[k] or top == 255
    with pytest.raises(ValueError, match="must hold one dataset"):
        tag_batch({}, [{"meta": {"dataset_idx": 0}}, {"meta": {"dataset_idx": 1}}])
