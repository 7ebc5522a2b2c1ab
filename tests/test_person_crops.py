"""Single-person crops of multi-person data and the merge of per-person predictions (CorrPM on CIHP)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from pycocotools import mask as mask_utils

from helpers.crowd import SyntheticCrowd
from humanparse.data import registry
from humanparse.data.io import DataError
from humanparse.data.meta import COCO_JOINT_FLIP_PAIRS
from humanparse.data.person_crops import PersonCropDataModule, PersonCropDataset, cut_person
from humanparse.data.pipeline import SamplePipeline
from humanparse.data.targets import PoseHeatmaps, SemanticEdges
from humanparse.data.transforms import AffineTransform, Compose, Normalize
from humanparse.models.corrpm import CorrPM
from humanparse.models.corrpm.loss import CorrPMCriterion
from humanparse.tasks import Task
from humanparse.tasks.postprocess import DenseSemantic, EvalContext
from humanparse.tasks.schedulers import PolyLR

TINY = dict(
    backbone="resnet50s",
    backbone_kwargs={"layers": (1, 1, 1, 1), "channels": (4, 8, 16, 32), "stem_width": 8},
    channels=16,
    aspp_channels=8,
    edge_channels=8,
    pose_channels=8,
    nl_channels=8,
)


def make_task(num_joints: int = 17) -> Task:
    return Task(
        CorrPM(20, num_joints, **TINY),
        criterion=CorrPMCriterion(),
        optimizer=lambda params: torch.optim.SGD(params, lr=0.01),
        scheduler=lambda optimizer, total_steps: PolyLR(optimizer, total_steps),
        postprocess=DenseSemantic("seg2", "labels", align_corners=True),
        evaluator_options={"semantic": {"absent_class": "zero"}},
    )


def merge(persons, size, logits):
    """The person-crop merge of the dense postprocess with the net's output replaced by ``logits``."""
    ctx = EvalContext(
        "cihp", 20, [str(c) for c in range(20)], np.arange(256), forward=lambda images: {"seg2": logits}
    )
    return DenseSemantic("seg2", "labels", align_corners=True).persons(persons, size, ctx)["semantic"]


def test_training_crops_cut_one_person_each():
    base = SyntheticCrowd(size=3)
    ds = PersonCropDataset(base, train=True)
    persons = [base.load(i)["persons"] for i in range(3)]
    assert len(ds) == sum(len(p) for p in persons) >= 6
    k = 0
    for i, plist in enumerate(persons):
        sample = base.load(i)
        for p in plist:
            crop = ds.load(k)
            x0, y0, x1, y1 = crop["meta"]["crop_box"]
            m = p["mask"][y0:y1, x0:x1]
            assert crop["meta"]["id"] == f"{base.ids[i]}_p{p['id']}" and crop["image"].shape[:2] == m.shape
            assert (crop["image"][~m] == 0).all()  # the image is masked to the person
            assert np.array_equal(crop["semantic"][m], sample["semantic"][y0:y1, x0:x1][m])
            assert (
                crop["semantic"][~m] == 0
            ).all()  # other persons and background inside the box: background
            kp, src = crop["keypoints"], p["keypoints"]
            on = src[:, 2] > 0
            assert np.allclose(kp[on, :2], src[on, :2] - [x0, y0]) and (kp[~on] == 0).all()
            k += 1


def test_training_crops_flip_coco_joints_and_get_targets():
    base = SyntheticCrowd(size=2)
    tf = Compose([AffineTransform((64, 64), rotation=0, scale=(1, 1), flip_prob=1.0), Normalize()])
    ds = SamplePipeline(
        PersonCropDataset(base, train=True), transform=tf, targets=[SemanticEdges(), PoseHeatmaps()]
    )
    perm = np.arange(17)
    for a, b in COCO_JOINT_FLIP_PAIRS:
        perm[a], perm[b] = b, a
    assert ds.num_joints == 17 and np.array_equal(ds.flip_tables.joint_perm, perm)
    assert ds.pose_source is not None
    item = ds[0]
    assert item["image"].shape == (3, 64, 64) and item["heatmaps"].shape == (17, 16, 16)
    assert item["semantic_edge"].shape == (64, 64) and item["keypoints"].shape == (17, 3)
    raw = ds.load(0)
    kp = raw["keypoints"]
    j = int(np.flatnonzero(kp[:, 2] > 0)[0])
    # flipped: joint j lands on perm[j], at its position under the sample's affine (which holds the mirror)
    m = item["meta"]["affine"]
    assert item["meta"]["flipped"] and m[0, 0] < 0
    moved = m[:2, :2] @ kp[j, :2] + m[:2, 2]
    assert item["keypoints"][perm[j], :2].numpy() == pytest.approx(moved, abs=1e-3)


def test_detections_file_filters_sorts_and_matches_numeric_ids(tmp_path):
    base = SyntheticCrowd(size=1, split="val")
    sample = base.load(0)
    masks = [p["mask"] for p in sample["persons"]]
    rle = [mask_utils.encode(np.asfortranarray(m.astype(np.uint8))) for m in masks]
    for r in rle:
        r["counts"] = r["counts"].decode()
    results = [
        {"image_id": 1, "category_id": 1, "segmentation": rle[0], "score": 0.9},
        {"image_id": 1, "category_id": 1, "segmentation": rle[1], "score": 0.6},
        {"image_id": 1, "category_id": 1, "segmentation": rle[1], "score": 0.2},  # below the threshold
        {"image_id": 1, "category_id": 3, "segmentation": rle[0], "score": 0.99},  # not a person
    ]
    path = tmp_path / "val.json"
    path.write_text(json.dumps(results))
    tf = Compose([AffineTransform((64, 64), train=False), Normalize()])
    ds = SamplePipeline(
        PersonCropDataset(base, train=False, test_persons="detections", detections=path),
        transform=tf,
        keep_original=True,
    )
    item = ds[0]
    crops = item["person_crops"]
    assert [c["score"] for c in crops] == [0.6, 0.9]  # ascending: the best is pasted last
    assert np.array_equal(crops[1]["mask"].numpy(), masks[0]) and crops[0]["image"].shape == (3, 64, 64)
    assert (
        item["gt"]["semantic"].shape == sample["semantic"].shape
        and item["meta"]["test_persons"] == "detections"
    )
    with pytest.raises(DataError, match="test_persons=gt"):
        PersonCropDataset(base, train=False, test_persons="detections", detections=tmp_path / "missing.json")
    with pytest.raises(ValueError, match="upper bound"):
        PersonCropDataset(base, train=False, test_persons="detections")


def test_merge_pastes_persons_in_ascending_score_order():
    h, w = 8, 10
    m1 = np.zeros((h, w), bool)
    m1[1:6, 1:6] = True
    m2 = np.zeros((h, w), bool)
    m2[3:8, 4:9] = True
    eye = np.eye(3)  # input frame = image frame
    persons = [
        {"image": torch.zeros(3, h, w), "affine": eye, "mask": torch.from_numpy(m), "score": s}
        for m, s in ((m1, 0.9), (m2, 0.3))
    ]
    logits = torch.zeros(2, 20, h, w)
    logits[0, 5] = 1.0  # person 1 (score 0.9) → class 5
    logits[1, 9] = 1.0  # person 2 (score 0.3) → class 9
    out = merge(persons, (h, w), logits)
    assert (out[torch.from_numpy(m1)] == 5).all()  # the higher score wins the overlap
    assert (out[torch.from_numpy(m2 & ~m1)] == 9).all() and (out[torch.from_numpy(~(m1 | m2))] == 0).all()
    persons[0]["score"] = 0.1
    out = merge(persons, (h, w), logits)
    assert (out[torch.from_numpy(m1 & m2)] == 9).all()
    assert (merge([], (h, w), logits) == 0).all()


def test_perfect_person_predictions_merge_back_to_the_ground_truth():
    base = SyntheticCrowd(size=2, split="val")
    tf = Compose([AffineTransform((96, 96), train=False), Normalize()])
    ds = SamplePipeline(
        PersonCropDataset(base, train=False, test_persons="gt"), transform=tf, keep_original=True
    )
    eval_tf = AffineTransform((96, 96), train=False)
    for i in range(2):
        item, sample = ds[i], base.load(i)
        oracle = []
        for c in item["person_crops"]:
            crop = cut_person(sample, c["mask"].numpy(), None)
            label = torch.from_numpy(eval_tf(crop)["semantic"].astype(np.int64)).clamp(max=19)
            oracle.append(F.one_hot(label, 20).permute(2, 0, 1).float())
        pred = merge(item["person_crops"], tuple(item["meta"]["orig_size"]), torch.stack(oracle))
        gt = item["gt"]["semantic"]
        person = sample["person_ids"] > 0
        agree = (pred == gt)[torch.from_numpy(person)].float().mean()
        assert agree > 0.9, agree
        assert (pred[torch.from_numpy(~person)] == 0).all()


def test_person_crop_datamodule_trains_and_evaluates_corrpm(tmp_path, monkeypatch):
    monkeypatch.setitem(registry.READERS, "cihp", "helpers.crowd:SyntheticCrowd")
    dm = PersonCropDataModule(
        name="cihp",
        root=str(tmp_path),
        batch_size=2,
        num_workers=0,
        input_size=(64, 64),
        cache_dir=str(tmp_path / "cache"),
        augment={"rotation": 30, "flip_prob": 0.5},
        targets=[SemanticEdges(), PoseHeatmaps()],
        reader_options={"size": 2},
        person_crops={"test_persons": "gt"},
    )
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    assert batch["image"].shape == (2, 3, 64, 64) and batch["heatmaps"].shape == (2, 17, 16, 16)
    val = next(iter(dm.val_dataloader()))
    assert (
        "person_crops" in val
        and len(val["person_crops"][0]) >= 2
        and "gt" in val
        and "semantic" in val["gt"][0]
    )
    assert list((tmp_path / "cache" / "person_index").glob("persons-*.json"))  # the person index is cached
    assert dm.describe()["person_crops"]["test"].endswith("(upper bound)")

    with pytest.raises(ValueError, match="model.num_joints=17"):
        dm.adapt_to_model(make_task(num_joints=16).data_requirements(), "corrpm")
        dm.check_requirements()
    task = make_task()
    dm.adapt_to_model(task.data_requirements(), "corrpm")
    trainer = pl.Trainer(
        accelerator="cpu",
        max_epochs=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        use_distributed_sampler=False,
    )
    trainer.fit(task, datamodule=dm)
    assert 0.0 <= float(trainer.callback_metrics["val/miou"]) <= 1.0
