"""LightningDataModule shared by every single-dataset setup (LIP, ATR, PASCAL-Person-Part, CIHP, MHP v2.0, ...);
:mod:`humanparse.data.multi` combines several of them for cross-dataset training."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytorch_lightning as pl
from omegaconf import DictConfig, ListConfig, OmegaConf
from torch.utils.data import DataLoader

from humanparse.data import registry
from humanparse.data.base import collate_dense, collate_instances
from humanparse.data.meta import DatasetInfo, get_info
from humanparse.data.pipeline import SamplePipeline
from humanparse.data.samplers import EpochShuffleSampler, InferenceSampler, dist_info
from humanparse.data.targets import build_target
from humanparse.data.transforms import AffineTransform, Compose, Normalize
from humanparse.evaluation.evaluators import gt_keys_of

COLLATES = {"dense": collate_dense, "instance": collate_instances}


class DataRequirementError(ValueError):
    """The data cannot supervise or feed the model (the message says why and what to use instead)."""


@dataclass
class EvalSet:
    """One validation / test dataset: its name, label space and evaluators."""

    name: str
    info: DatasetInfo
    evaluators: list


def build_evaluators(spec) -> list:
    """Evaluator instances from ``data.evaluators`` (instances, or ``_target_`` configs); default: semantic."""
    from humanparse.evaluation.evaluators import Evaluator, SemanticEvaluator

    if spec is None:
        return [SemanticEvaluator()]
    out = []
    for item in spec:
        if isinstance(item, (Mapping, DictConfig)):
            import hydra

            item = hydra.utils.instantiate(item)
        if not isinstance(item, Evaluator):
            raise TypeError(
                f"data.evaluators entries must be humanparse evaluators, got {type(item).__name__}"
            )
        out.append(item)
    return out


def keypoint_source(dataset) -> tuple[str | None, int | None]:
    """Where a dataset's keypoints come from and how many joints they have: ``(None, None)`` without any.

    Readers may declare ``pose_source`` (``None`` = no keypoints) and ``num_joints``; otherwise a
    non-empty ``keypoints`` table (LIP's pose CSV/JSON; empty when the file is missing) counts, and
    as a last resort the first sample is loaded and looked at.
    """
    if hasattr(dataset, "pose_source"):
        return dataset.pose_source, getattr(dataset, "num_joints", None)
    table = getattr(dataset, "keypoints", None)
    if isinstance(table, dict):
        if not table:
            return None, None
        return "keypoints", int(len(next(iter(table.values()))))
    if len(dataset) == 0:
        return None, None
    kp = dataset.load(0).get("keypoints")
    return ("keypoints", int(len(kp))) if kp is not None else (None, None)


log = logging.getLogger(__name__)


def plain(value):
    """OmegaConf containers → plain Python (for hashing, JSON and keyword arguments)."""
    if isinstance(value, (DictConfig, ListConfig)):
        return OmegaConf.to_container(value, resolve=True)
    return value


@contextlib.contextmanager
def file_lock(path: Path):
    """Exclusive inter-process lock (parallel multirun jobs may ask for the same synthetic set)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def synthetic_root(cache_dir: str | Path, name: str, options: dict) -> Path:
    """Cache folder of a synthetic set: one folder per (dataset, generator options)."""
    key = hashlib.sha1(json.dumps({"dataset": name, **options}, sort_keys=True).encode()).hexdigest()[:10]
    return Path(cache_dir) / "synthetic" / f"{name}-{key}"


def ensure_synthetic(cache_dir: str | Path, name: str, options: dict) -> Path:
    """Generate the synthetic dataset into the cache on first use; later calls reuse it."""
    root = synthetic_root(cache_dir, name, options)
    if (root / "synthetic.json").is_file():
        return root
    with file_lock(root.with_name(root.name + ".lock")):
        if (root / "synthetic.json").is_file():
            return root
        if root.exists():
            # an interrupted generation never renames its temporary folder, so this is foreign content
            raise FileExistsError(
                f"{root} exists but holds no synthetic.json manifest; remove it to regenerate"
            )
        log.info("generating synthetic %s dataset into %s", name, root)
        registry.generator(name)(root, **options)
    return root


class ParsingDataModule(pl.LightningDataModule):
    """One dataset, its splits, the paper augmentations and the loaders.

    Args:
        name: dataset key (``lip``, ...), see :mod:`humanparse.data.registry`.
        root: dataset root for real data.
        layout: on-disk layout understood by the reader.
        synthetic: generate (once, into ``cache_dir``) and read a synthetic set in the official layout.
        synthetic_options: generator arguments (counts, image size, seed).
        batch_size: **global** batch size; each process gets ``batch_size // world_size``.
        eval_batch_size: global batch size for validation/test (default: ``batch_size``).
        input_size: (H, W) network input.
        augment: :class:`~humanparse.data.transforms.AffineTransform` arguments for training.
        normalize: :class:`~humanparse.data.transforms.Normalize` arguments.
        targets: derived targets: a list of makers (``_target_`` configs) and/or names of
            :data:`humanparse.data.targets.TARGET_MAKERS` (``semantic_edge``, ``instance_edge``,
            ``pose_heatmaps``, ``hierarchy``), or a mapping name -> ``null`` (off) / ``true`` / options.
        target_options: name -> keyword arguments for targets given by name.
        collate: ``dense`` (FCN models: stacked maps) or ``instance`` (region-based models: plus one
            torchvision-style target dict per image, :func:`~humanparse.data.base.collate_instances`).
        reader_options: extra keyword arguments of the reader class. For a synthetic set, the
            generator's manifest may add reader options describing the set (e.g. ATR's ``val_count``).
        train_split / val_split / test_split: split names (LIP's test labels are not public, so the
            test stage evaluates ``val`` by default, as the papers report).
        limit_train / limit_val: use only the first N samples (debugging).
        evaluators: the dataset's metrics (:mod:`humanparse.evaluation.evaluators`, ``_target_`` configs
            or instances); evaluation samples keep exactly the original-size ground truth they read in
            ``batch["gt"]``. Default: the semantic-parsing metrics.
        num_joints: joints of the dataset's keypoints (``null`` = none), checked against the model.
    """

    def __init__(
        self,
        name: str,
        root: str | None = None,
        layout: str | None = None,
        synthetic: bool = False,
        synthetic_options: dict | None = None,
        cache_dir: str = ".cache/humanparse",
        batch_size: int = 8,
        eval_batch_size: int | None = None,
        num_workers: int = 2,
        pin_memory: bool = False,
        input_size: Sequence[int] = (384, 384),
        augment: dict | None = None,
        normalize: dict | None = None,
        targets: Sequence | Mapping = (),
        target_options: dict | None = None,
        collate: str = "dense",
        reader_options: dict | None = None,
        train_split: str = "train",
        val_split: str = "val",
        test_split: str = "val",
        seed: int = 0,
        limit_train: int | None = None,
        limit_val: int | None = None,
        num_classes: int | None = None,
        num_joints: int | None = None,
        evaluators: Sequence | None = None,
    ):
        super().__init__()
        self.name = name
        self.info = get_info(name)
        if num_classes is not None and num_classes != self.info.num_classes:
            raise ValueError(
                f"data.num_classes={num_classes} but dataset {name!r} has {self.info.num_classes} classes"
            )
        self.root = root
        self.layout = layout
        self.synthetic = synthetic
        self.synthetic_options = dict(plain(synthetic_options) or {})
        self.cache_dir = cache_dir
        self.batch_size = int(batch_size)
        self.eval_batch_size = int(eval_batch_size or batch_size)
        self.num_workers = int(num_workers)
        self.pin_memory = pin_memory
        self.input_size = (int(input_size[0]), int(input_size[1]))
        self.augment = dict(plain(augment) or {})
        self.normalize = dict(plain(normalize) or {})
        self.target_options = dict(plain(target_options) or {})
        self.targets = self.build_targets(targets)
        if collate not in COLLATES:
            raise ValueError(f"data.collate must be one of {sorted(COLLATES)}, got {collate!r}")
        self.collate = collate
        self.reader_options = dict(plain(reader_options) or {})
        self.splits = {"train": train_split, "val": val_split, "test": test_split}
        self.seed = int(seed)
        self.limit_train = limit_train
        self.limit_val = limit_val
        self.num_joints = num_joints
        self.evaluators = build_evaluators(evaluators)
        self.requirements: dict = {}
        self.datasets: dict = {}

    # -- what a model needs from the data ------------------------------------------------------
    def eval_sets(self) -> list[EvalSet]:
        """One :class:`EvalSet` per validation / test loader (here: one)."""
        return [EvalSet(self.name, self.info, self.evaluators)]

    def adapt_to_model(self, requirements: Mapping, model: str = "model") -> None:
        """Apply what a model declares it needs (``Task.data_requirements()``) before the datasets are
        built, or refuse with a message saying why and what to use instead:

        * ``targets``: derived targets it trains on (added, :meth:`require_targets`);
        * ``collate``: ``instance`` for region-based models (one target dict per image);
        * ``multi_dataset``: a model with per-dataset heads needs a multi-dataset ``data`` config;
        * ``keypoints``: the number of joints its pose branch predicts; checked against the training
          split once it is built (:meth:`setup`), with the model's ``hints['keypoints']`` in the error.
        """
        req = dict(requirements or {})
        if req.get("multi_dataset"):
            raise DataRequirementError(
                f"model={model} has per-dataset heads and trains on several datasets at once; data={self.name} is a "
                "single dataset. Use a multi-dataset data config (data=grapy_ml) or the model's single-dataset preset"
            )
        if req.get("semantic") and not self.info.extra.get("semantic", True):
            raise DataRequirementError(
                f"model={model} trains on image-level part-label maps, which data={self.name} does not have (it "
                "annotates sparse dense-pose points and box-frame coarse masks per person); use a region-based "
                "model (model=densepose_rcnn) on it, or a parsing dataset (data=cihp, data=lip, ...) for this model"
            )
        if "instance_edge" in (req.get("targets") or []) and not self.info.multi_person:
            raise DataRequirementError(
                f"model={model} trains on person-instance edges (the Sobel edges of the person-id map), which "
                f"data={self.name} does not have (one person per image, no person ids); use a multi-person dataset "
                "(data=cihp, data=pascal_person_part, data=mhp_v2)"
            )
        if req.get("densepose") and not self.info.extra.get("densepose", False):
            raise DataRequirementError(
                f"model={model} trains on DensePose points (dp_x, dp_y, dp_I, dp_U, dp_V per person), which data="
                f"{self.name} does not have; use data=densepose_coco for it, or an instance parsing model "
                "(model=parsing_rcnn) on this dataset"
            )
        collate = req.get("collate")
        if collate and collate != self.collate:
            if collate not in COLLATES:
                raise DataRequirementError(
                    f"model={model} asks for data.collate={collate!r}; known: {sorted(COLLATES)}"
                )
            log.info("data=%s: collate %s -> %s (model=%s)", self.name, self.collate, collate, model)
            self.collate = collate
        if req.get("persons") and not self.info.multi_person and self.name != "densepose_coco":
            log.info(
                "data=%s: single-person dataset; model=%s trains on its one person per image",
                self.name,
                model,
            )
        self.require_targets(req.get("targets") or [])
        self.requirements = {"model": model, **req}

    def check_requirements(self) -> None:
        """The checks of :meth:`adapt_to_model` that need the built training split (keypoints)."""
        joints = self.requirements.get("keypoints")
        train = self.datasets.get("train")
        if not joints or train is None:
            return
        model = self.requirements.get("model", "model")
        hint = (self.requirements.get("hints") or {}).get("keypoints", "")
        source, have = keypoint_source(train)
        if source is None:
            raise DataRequirementError(
                f"model={model} trains on keypoints ({joints} joints), but the {self.name} training split has none "
                f"(LIP: lip_train_set.csv; ATR/CIHP: the pseudo-pose file <root>/pseudo_pose/train.json, COCO-17)"
                + (f"; {hint}" if hint else "")
            )
        if have is not None and int(have) != int(joints):
            raise DataRequirementError(
                f"model={model} predicts {joints} joints but the {self.name} keypoints ({source}) "
                f"have {have}: set model.num_joints={have}"
            )

    def gt_keys(self) -> list[str]:
        """Original-size ground truth the evaluation samples keep (what the evaluators read)."""
        return gt_keys_of(self.evaluators)

    def require_targets(self, names) -> list[str]:
        """Add the derived targets a model needs (``task.required_targets()``) unless ``data.targets``
        already has them, with their ``target_options``; returns the names added. Called by the entry
        points before the datasets are built, so ``model=corrpm data=lip`` works without a preset."""
        from humanparse.data.targets import TARGET_MAKERS

        added = []
        for name in names:
            if name not in TARGET_MAKERS:
                raise KeyError(
                    f"model requires unknown derived target {name!r}; known: {sorted(TARGET_MAKERS)}"
                )
            if any(isinstance(t, TARGET_MAKERS[name]) for t in self.targets):
                continue
            self.targets.append(build_target(name, self.name, self.target_options.get(name), self.cache_dir))
            added.append(name)
        if added:
            log.info("data=%s: added the derived targets %s that the model trains on", self.name, added)
        return added

    def build_targets(self, spec) -> list[Callable]:
        """Derived-target makers from ``data.targets`` (see the class docstring)."""
        spec = plain(spec) if isinstance(spec, (DictConfig, ListConfig)) else spec
        if spec is None:
            return []
        items = list(spec.items()) if isinstance(spec, Mapping) else [(None, v) for v in spec]
        makers: list[Callable] = []
        for key, val in items:
            if val is None or val is False:
                continue
            if isinstance(val, str):
                makers.append(build_target(val, self.name, self.target_options.get(val), self.cache_dir))
            elif key is not None and (val is True or isinstance(val, Mapping)):
                opts = {**self.target_options.get(key, {}), **(val if isinstance(val, Mapping) else {})}
                makers.append(build_target(key, self.name, opts, self.cache_dir))
            elif callable(val):
                makers.append(val)
            else:
                raise ValueError(f"data.targets entry {val!r} is neither a maker nor a target name")
        return makers

    # -- locations ------------------------------------------------------------------------------
    def data_root(self) -> Path:
        if self.synthetic:
            return synthetic_root(self.cache_dir, self.name, self.synthetic_options)
        if not self.root:
            raise ValueError(f"data.root is not set for dataset {self.name!r} (or use data.synthetic=true)")
        return Path(self.root)

    def prepare_data(self) -> None:
        if self.synthetic:
            ensure_synthetic(self.cache_dir, self.name, self.synthetic_options)

    # -- datasets -------------------------------------------------------------------------------
    def build_transform(self, train: bool):
        affine = AffineTransform(self.input_size, train=train, **self.augment)
        return Compose([affine, Normalize(**self.normalize)])

    def synthetic_reader_options(self) -> dict:
        """Reader options recorded by the generator in ``synthetic.json`` (how the set is split)."""
        if not self.synthetic:
            return {}
        manifest = self.data_root() / "synthetic.json"
        if not manifest.is_file():
            return {}
        return dict(json.loads(manifest.read_text()).get("reader_options", {}))

    def reader_kwargs(self) -> dict:
        kwargs = dict(self.reader_options)
        kwargs.update(self.synthetic_reader_options())
        if self.layout is not None:
            kwargs.setdefault("layout", self.layout)
        return kwargs

    def build_reader(self, stage_split: str, train: bool):
        """The reader of a stage's split (``limit_train`` / ``limit_val`` applied), without any pipeline."""
        cls = registry.reader_class(self.name)
        reader = cls(self.data_root(), split=self.splits[stage_split], **self.reader_kwargs())
        limit = self.limit_train if train else self.limit_val
        if limit is not None:
            reader.ids = reader.ids[: int(limit)]
        return reader

    def pipeline(self, reader, train: bool, targets: Sequence[Callable] | None = None) -> SamplePipeline:
        """``reader`` wrapped in the stage's :class:`~humanparse.data.pipeline.SamplePipeline`: training
        augmentation and the derived targets, or the evaluation transform and the original-size ground truth
        the evaluators read."""
        return SamplePipeline(
            reader,
            transform=self.build_transform(train),
            targets=self.targets if targets is None else targets,
            seed=self.seed,
            keep_original=False if train else self.gt_keys(),
        )

    def build_dataset(self, stage_split: str, train: bool):
        ds = self.pipeline(self.build_reader(stage_split, train), train)
        if len(ds) == 0:  # an empty split would "train" without a step, or score nothing, and exit 0
            from humanparse.data.io import DataError

            limit = self.limit_train if train else self.limit_val
            why = f" after limit_{'train' if train else 'val'}={limit}" if limit is not None else ""
            raise DataError(
                self.data_root(),
                f"the {stage_split} split ({self.splits[stage_split]!r}) of {self.name} "
                f"has no samples{why}; an empty split is an error",
            )
        return ds

    def setup(self, stage: str | None = None) -> None:
        if self.synthetic:  # prepare_data ran on local rank 0 only; other ranks just read
            ensure_synthetic(self.cache_dir, self.name, self.synthetic_options)
        if stage in (None, "fit"):
            self.datasets["train"] = self.build_dataset("train", train=True)
            if len(self.datasets["train"]) == 0:
                raise DataRequirementError(
                    f"data={self.name}: the training split {self.splits['train']!r} is empty"
                )
            self.check_requirements()
        if stage in (None, "fit", "validate"):
            self.datasets["val"] = self.build_dataset("val", train=False)
        if stage in (None, "test"):
            self.datasets["test"] = self.build_dataset("test", train=False)

    # -- loaders --------------------------------------------------------------------------------
    def per_device(self, global_batch: int) -> int:
        world, _ = dist_info()
        if global_batch % world:
            raise ValueError(f"global batch size {global_batch} is not divisible by the world size {world}")
        return global_batch // world

    def _loader(self, ds, batch: int, sampler, drop_last: bool) -> DataLoader:
        return DataLoader(
            ds,
            batch_size=batch,
            sampler=sampler,
            num_workers=self.num_workers,
            collate_fn=COLLATES[self.collate],
            pin_memory=self.pin_memory,
            drop_last=drop_last,
            persistent_workers=self.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        ds = self.datasets["train"]
        bs = self.per_device(self.batch_size)
        sampler = EpochShuffleSampler(len(ds), shuffle=True, seed=self.seed)
        return self._loader(ds, bs, sampler, drop_last=len(ds) // max(1, sampler.num_replicas) > bs)

    def val_dataloader(self) -> DataLoader:
        ds = self.datasets["val"]
        return self._loader(ds, self.per_device(self.eval_batch_size), InferenceSampler(len(ds)), False)

    def test_dataloader(self) -> DataLoader:
        ds = self.datasets["test"]
        return self._loader(ds, self.per_device(self.eval_batch_size), InferenceSampler(len(ds)), False)

    def state_dict(self) -> dict:
        return {"name": self.name, "seed": self.seed}

    def describe(self) -> dict:
        """What a run records about its data (which split, real or synthetic)."""
        return {
            "dataset": self.name,
            "root": str(self.data_root()),
            "synthetic": bool(self.synthetic),
            "layout": self.layout,
            "splits": dict(self.splits),
            "reader_options": self.reader_kwargs(),
            "input_size": list(self.input_size),
            "global_batch_size": self.batch_size,
        }
