"""The task contract end to end: a model's predictions reach every evaluator of its dataset that it can
feed; the others are skipped with one line saying why; instance metrics from training and evaluate."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from conftest import compose_cfg
from humanparse.evaluate import evaluate
from humanparse.evaluation.evaluators import (
    BoxEvaluator,
    EdgeEvaluator,
    InstanceParsingEvaluator,
    PartInstanceEvaluator,
    SemanticEvaluator,
)
from humanparse.tasks.postprocess import TestTimeAugmentation
from humanparse.train import train

CIHP = [
    "data=cihp",
    "data.synthetic_options.image_size=[64,80]",
    "data.limit_val=4",
    "data.eval_batch_size=2",
    "trainer.max_epochs=1",
    "callbacks.model_checkpoint.save_top_k=0",
    "test=false",
]


def _evaluate(tmp_path, cache_dir, ckpt, capsys) -> tuple[dict, str]:
    ecfg = compose_cfg("eval", [f"ckpt_path={ckpt}", "split=val"], tmp_path / "eval", cache_dir)
    metrics = evaluate(ecfg)
    return metrics, capsys.readouterr().out


def test_corrpm_on_cihp_person_crops_reports_app_and_pcp(compose_train, tmp_path, cache_dir, capsys):
    cfg = compose_train(
        "model=corrpm",
        "experiment=corrpm_cihp",
        *CIHP,
        "model.pretrained=null",
        "trainer.check_val_every_n_epoch=1",
        "data.batch_size=4",
        "data.input_size=[64,64]",
        run_dir=tmp_path / "train",
    )
    assert cfg.data.person_crops.test_persons == "gt"  # synthetic sets have no detections file: GT persons
    metrics = train(cfg)
    assert "val/miou" in metrics and "val/app50" in metrics and "val/pcp50" in metrics
    emetrics, out = _evaluate(tmp_path, cache_dir, tmp_path / "train" / "checkpoints" / "last.ckpt", capsys)
    for k in ("val/miou", "val/app50", "val/app_vol", "val/pcp50", "val/apr50"):
        assert k in emetrics, k
    assert "miou" in out and "app50" in out and "pcp50" in out
    rec = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    # CorrPM predicts no person edges; the other instance metrics are computed
    assert set(rec["skipped_metrics"]) == {"cihp/edge"}


def test_deeplab_on_cihp_names_the_skipped_instance_metrics(compose_train, tmp_path, cache_dir, capsys):
    cfg = compose_train(*CIHP, run_dir=tmp_path / "train")
    metrics = train(cfg)
    assert "val/miou" in metrics and not any(k.startswith("val/app") for k in metrics)
    emetrics, out = _evaluate(tmp_path, cache_dir, tmp_path / "train" / "checkpoints" / "last.ckpt", capsys)
    assert "val/miou" in emetrics and not any("app" in k or "apr" in k or "bbox" in k for k in emetrics)
    line = next(ln for ln in out.splitlines() if ln.startswith("not computed:"))
    for name in ("instance_parsing", "part_instance_ap", "edge", "box"):
        assert f"cihp/{name}" in line
    assert "does not predict instances.parts" in line


def test_evaluators_skip_what_they_cannot_score():
    pred = {"semantic": torch.zeros(4, 4, dtype=torch.long)}
    gt = {"semantic": torch.zeros(4, 4, dtype=torch.long), "height": 4, "width": 4}
    assert SemanticEvaluator().missing(pred, gt, None) is None
    assert "instances.parts" in InstanceParsingEvaluator().missing(pred, gt, None)
    assert "person_ids" in EdgeEvaluator().missing({"edge": torch.zeros(4, 4)}, gt, {"edge"})
    inst = {"instances": [{"parts": np.zeros((4, 4)), "score": 0.5, "box": [0, 0, 1, 1]}]}
    assert PartInstanceEvaluator().missing(inst, {**gt, "person_ids": np.zeros((4, 4))}, None) is None
    # an image without instances: the postprocess's declaration decides
    assert BoxEvaluator().missing({"instances": []}, {**gt, "person_ids": 0}, {"instances.box"}) is None
    assert BoxEvaluator().missing({"instances": []}, {**gt, "person_ids": 0}, {"instances.parts"}) is not None
    with pytest.raises(ValueError, match="no option 'absent_clas'.*'absent_class'"):
        SemanticEvaluator().configure(absent_clas="zero")


def test_evaluators_reproduce_the_metrics_on_perfect_predictions():
    """Feeding the ground truth back as predictions gives the perfect score through every adapter."""
    sem = np.array([[0, 1, 1, 0], [0, 2, 2, 0], [0, 3, 3, 0], [0, 0, 0, 0]])
    pid = np.array([[0, 1, 1, 0], [0, 1, 2, 0], [0, 2, 2, 0], [0, 0, 0, 0]])
    gt = {
        "semantic": torch.from_numpy(sem),
        "person_ids": pid,
        "image_id": "a",
        "order": 0,
        "height": 4,
        "width": 4,
    }
    persons = [
        {
            "parts": np.where(pid == k, sem, 0),
            "mask": pid == k,
            "score": 1.0 - 0.1 * k,
            "box": [
                float(np.nonzero(pid == k)[1].min()),
                float(np.nonzero(pid == k)[0].min()),
                float(np.nonzero(pid == k)[1].max() + 1),
                float(np.nonzero(pid == k)[0].max() + 1),
            ],
        }
        for k in (1, 2)
    ]
    pred = {"semantic": torch.from_numpy(sem), "instances": persons}
    names = [str(i) for i in range(4)]
    for ev, key in (
        (SemanticEvaluator(), "miou"),
        (InstanceParsingEvaluator(), "app50"),
        (PartInstanceEvaluator(), "apr50"),
        (BoxEvaluator(), "bbox_map50"),
    ):
        ev.bind(4, names)
        ev.process([pred], [gt])
        assert ev.compute()[key] == pytest.approx(1.0), (ev.name, ev.compute())


def test_tta_flip_swaps_the_left_right_channels_back():
    """A mirror-consistent net (an object in the image's left half is class 1, "left arm"; in the right half
    class 2, "right arm"): after flipping back and the 1<->2 channel swap, the mirrored pass agrees with the
    plain one, so the average equals the plain pass; without the swap it does not."""

    def net(x):
        w = x.shape[-1]
        obj = (x[:, :1] > 0).float()
        left = (torch.arange(w) < w // 2).float().view(1, 1, 1, w)
        return {"seg": torch.cat([1 - obj, obj * left, obj * (1 - left)], 1)}

    x = torch.zeros(1, 3, 4, 6)
    x[..., :3] = 1.0
    perm = np.arange(256)
    perm[1], perm[2] = 2, 1
    tta = TestTimeAugmentation(scales=[1.0], flip=True, outputs=["seg"])
    out = tta(net, x, 3, perm)["seg"]
    assert torch.allclose(out, net(x)["seg"])  # mirrored input, flipped back, channels swapped
    swapped_wrong = TestTimeAugmentation(scales=[1.0], flip=True, outputs=["seg"])(net, x, 3, np.arange(256))[
        "seg"
    ]
    assert not torch.allclose(swapped_wrong, net(x)["seg"])
    multi = TestTimeAugmentation(scales=[0.5, 1.0, 2.0], flip=False, outputs=["seg"])(net, x, 3, perm)["seg"]
    assert multi.shape == (1, 3, 4, 6)
