"""The data layer's split: readers load raw samples with no pipeline arguments; one SamplePipeline (seeding,
kept ground truth, transforms, derived targets, tensors) wraps any of the six readers, and the datamodule
builds exactly that pipeline."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from helpers.datasets import TINY, tiny_root
from humanparse.data import registry
from humanparse.data.base import GT_KEYS, Reader, original_gt, to_tensors
from humanparse.data.datamodule import ParsingDataModule
from humanparse.data.densepose_coco import person_to_tensors
from humanparse.data.densepose_transforms import DensePoseTransform
from humanparse.data.pipeline import SamplePipeline
from humanparse.data.targets import SemanticEdges
from humanparse.data.transforms import AffineTransform, Compose, Normalize

DATASETS = ["lip", "atr", "pascal_person_part", "cihp", "mhp_v2", "densepose_coco"]
# the generators' own minimum image sizes
OPTIONS = {"densepose_coco": {"image_size": [48, 64]}}
SPLIT_OPTIONS = {"atr": {"val_count": TINY["num_val"]}}


def _reader(cache_dir, name: str, split: str) -> Reader:
    root = tiny_root(cache_dir, name, **OPTIONS.get(name, {}))
    return registry.reader_class(name)(root, split=split, **SPLIT_OPTIONS.get(name, {}))


def _same(a, b, where: str = "") -> None:
    """Recursive equality of two items (tensors and arrays by value, dtype and shape)."""
    if isinstance(a, dict):
        assert isinstance(b, dict) and set(a) == set(b), f"{where}: keys {sorted(a)} != {sorted(b)}"
        for k in a:
            _same(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, (list, tuple)):
        assert isinstance(b, (list, tuple)) and len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            _same(x, y, f"{where}[{i}]")
    elif isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b), where
    elif isinstance(a, np.ndarray):
        assert isinstance(b, np.ndarray) and a.dtype == b.dtype and np.array_equal(a, b), where
    else:
        assert a == b, where


@pytest.mark.parametrize("name", DATASETS)
def test_a_reader_without_pipeline_arguments_loads_raw_samples(cache_dir, name):
    reader = _reader(cache_dir, name, "train")
    assert isinstance(reader, Reader) and len(reader) == len(reader.ids) > 0
    s = reader[1]
    _same(s, reader.load(1))
    _same(reader[(1, 7)], s)  # no epoch dependence: nothing random happens in a reader
    img = s["image"]
    assert isinstance(img, np.ndarray) and img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == 3
    assert tuple(s["meta"]["orig_size"]) == img.shape[:2] and "gt" not in s and "affine" not in s["meta"]
    if "semantic" in s:
        assert s["semantic"].dtype == np.uint8 and s["semantic"].shape == img.shape[:2]
    for gone in ("transform", "targets", "keep_gt"):
        assert not hasattr(reader, gone)
    with pytest.raises(TypeError):
        registry.reader_class(name)(reader.root, split="train", transform=None)


@pytest.mark.parametrize("name", DATASETS)
@pytest.mark.parametrize("train", [True, False])
def test_the_pipeline_is_the_manual_composition_for_every_reader(cache_dir, name, train):
    split = "train" if train else "val"
    reader = _reader(cache_dir, name, split)
    flip = 0.0 if name == "densepose_coco" and reader.uv_symmetry is None else 0.5
    augment = {"rotation": 30, "flip_prob": flip, "train": train}
    targets = [] if name == "densepose_coco" else [SemanticEdges()]
    keep = [] if train else list(GT_KEYS)
    pipe = SamplePipeline(
        reader,
        Compose([AffineTransform((48, 40), **augment), Normalize()]),
        targets,
        seed=3,
        keep_original=keep,
    )
    assert len(pipe) == len(reader) and pipe.ids is reader.ids and pipe.info is reader.info

    # the same steps written out: kept GT from the raw sample, transform bound to the reader's flip tables
    # (and extended to dense points), RNG from (seed, epoch, index), derived targets, tensors
    manual_tf = Compose([AffineTransform((48, 40), **augment), Normalize()])
    manual_tf.bind(reader.flip_tables)
    if name == "densepose_coco":
        manual_tf = DensePoseTransform(manual_tf, reader.uv_symmetry)
    for index, epoch in ((1, 2), (0, 0)):
        raw = reader.load(index)
        gt = original_gt(raw, keep, index) if keep else None
        s = manual_tf(raw, np.random.default_rng([3, epoch, index]))
        for make in targets:
            s = make(s)
        if gt is not None:
            s["gt"] = gt
        expected = to_tensors(s)
        if name == "densepose_coco":
            expected["persons"] = [person_to_tensors(p) for p in expected["persons"]]
        item = pipe[(index, epoch)]
        _same(item, expected, f"{name}[{index}, {epoch}]")
        _same(pipe[(index, epoch)], item)  # deterministic
    assert pipe[1]["meta"]["affine"].tolist() == pipe[(1, 0)]["meta"]["affine"].tolist()
    if train:  # another epoch draws another augmentation
        assert any(
            not np.allclose(pipe[(1, e)]["meta"]["affine"], pipe[(1, 0)]["meta"]["affine"]) for e in (1, 2, 3)
        )
    else:
        assert set(item["gt"]) >= {"image_id", "order", "height", "width"}


@pytest.mark.parametrize("name", ["lip", "cihp"])
def test_the_datamodule_builds_pipeline_of_reader(cache_dir, name):
    dm = ParsingDataModule(
        name,
        synthetic=True,
        synthetic_options=dict(TINY),
        cache_dir=str(cache_dir),
        input_size=(48, 40),
        augment={"rotation": 30},
        targets=["semantic_edge"],
        seed=3,
        num_workers=0,
        limit_val=3,
    )
    dm.prepare_data()
    train, val = dm.build_dataset("train", True), dm.build_dataset("val", False)
    assert isinstance(train, SamplePipeline) and isinstance(val, SamplePipeline)
    assert len(val) == 3 and val.keep_gt == tuple(dm.gt_keys()) and train.keep_gt == ()
    by_hand = SamplePipeline(dm.build_reader("train", True), dm.build_transform(True), dm.targets, seed=3)
    _same(train[(2, 1)], by_hand[(2, 1)])
    # the reader's attributes through the pipeline, cutting ids, and a pickled copy for loader workers
    assert (
        val.sample_files(0)["image"].is_file()
        and val.split == "val"
        and val.load(0)["image"].dtype == np.uint8
    )
    val.ids = val.ids[:2]
    assert len(val) == len(val.reader) == 2
    _same(pickle.loads(pickle.dumps(train))[(0, 4)], train[(0, 4)])
