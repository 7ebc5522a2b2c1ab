"""The released CorrPM evaluation protocol end to end on synthetic LIP, from a converted full-size checkpoint
(the seeded ``LIP_best.pth`` stand-in of ``tests/helpers/released.py``).

``humanparse.evaluate ckpt_path=<converted>`` must give the label maps and the numbers of the released
evaluation path, re-implemented here independently with OpenCV and NumPy as ``ziwei-zh/CorrPM``
``evaluate.py`` / ``dataset/pose_edge_datasets.py`` / ``utils/miou.py`` do it: ``cv2.imread`` (BGR),
whole-image box (``_box2cs([0, 0, w − 1, h − 1])``) warped bilinearly with border 0, ``ToTensor`` +
``Normalize`` with the RGB ImageNet statistics on the BGR array, seg2 only (no flip, one scale),
``Upsample(align_corners=True)`` to the input size, argmax, nearest inverse warp with border 0, and the
confusion-matrix scores where absent classes count as 0. The input is 96² instead of the released 384² to keep
the test fast (the size is a config value; everything else is the preset). Centres stay float (the released
int32 truncation is a separate parity question).
"""

from __future__ import annotations

import json

import cv2
import hydra
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hydra.core.global_hydra import GlobalHydra
from omegaconf import OmegaConf

from conftest import compose_cfg
from helpers.released import released_keys, seeded_state_dict
from humanparse.convert import convert
from humanparse.evaluate import build_task_from_checkpoint, evaluate

SIZE = 96
DATA = [
    "data.synthetic=true",
    "data.synthetic_options.num_train=4",
    "data.synthetic_options.num_val=3",
    "data.synthetic_options.num_test=2",
    "data.synthetic_options.image_size=[60,84]",
    f"data.input_size=[{SIZE},{SIZE}]",
    "data.eval_batch_size=3",
    "data.num_workers=0",
]
MEAN = np.array([0.485, 0.456, 0.406], np.float32).reshape(3, 1, 1)
STD = np.array([0.229, 0.224, 0.225], np.float32).reshape(3, 1, 1)


def released_prediction(net, image_path: str) -> tuple[np.ndarray, np.ndarray]:
    """The released evaluation path for one image (module docstring): the network input and the label map
    at the image's size."""
    im = cv2.imread(image_path, cv2.IMREAD_COLOR)
    h, w = im.shape[:2]
    cx, cy, bw, bh = (w - 1) * 0.5, (h - 1) * 0.5, float(w - 1), float(h - 1)
    bw = bh = max(bw, bh)  # aspect ratio 1 (square input)
    s = SIZE / bw
    m = np.array([[s, 0, SIZE / 2 - s * cx], [0, s, SIZE / 2 - s * cy]], np.float64)
    inp = cv2.warpAffine(
        im, m, (SIZE, SIZE), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0)
    )
    x = (inp.transpose(2, 0, 1).astype(np.float32) / 255.0 - MEAN) / STD
    with torch.no_grad():
        seg2 = net(torch.from_numpy(x)[None])["seg2"]
    seg2 = F.interpolate(seg2, size=(SIZE, SIZE), mode="bilinear", align_corners=True)
    pred = seg2[0].argmax(0).numpy().astype(np.uint8)
    inv = cv2.invertAffineTransform(m)
    return x, cv2.warpAffine(
        pred, inv, (w, h), flags=cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT, borderValue=0
    )


def released_scores(confusion: np.ndarray) -> dict[str, float]:
    """``utils/miou.py::compute_mean_ioU`` (fractions instead of percent)."""
    pos, res, tp = confusion.sum(1), confusion.sum(0), np.diag(confusion)
    return {
        "pixel_acc": tp.sum() / pos.sum(),
        "mean_acc": (tp / np.maximum(1.0, pos)).mean(),
        "miou": (tp / np.maximum(1.0, pos + res - tp)).mean(),
    }


@pytest.fixture(scope="module")
def converted(tmp_path_factory, cache_dir):
    work = tmp_path_factory.mktemp("released_lip")
    path = work / "LIP_best.pth"
    torch.save(
        {"module." + k: v for k, v in seeded_state_dict(released_keys("corrpm", "lip"), seed=15).items()},
        path,
    )
    out = work / "corrpm_lip_released.ckpt"
    try:
        convert("corrpm", path, out, ["model=corrpm", *DATA, f"paths.cache_dir={cache_dir}"])
    finally:
        GlobalHydra.instance().clear()
    path.unlink()  # the checkpoint alone must suffice from here on
    return out


def test_evaluate_runs_the_released_protocol(converted, tmp_path, cache_dir):
    task, saved = build_task_from_checkpoint(converted)
    task.eval()
    assert task.released_weights["name"] == "LIP_best.pth"
    dm = hydra.utils.instantiate(
        OmegaConf.create({**saved["data"], "test_split": saved["data"]["val_split"]})
    )
    dm.adapt_to_model(task.data_requirements(), model="corrpm")
    dm.prepare_data()
    dm.setup("test")
    batch = next(iter(dm.test_dataloader()))
    assert len(batch["meta"]) == 3
    with torch.no_grad():
        ours = task.predict_step(batch, 0)
    confusion = np.zeros((20, 20))
    for image, pred, meta, gt in zip(batch["image"], ours, batch["meta"], batch["gt"]):
        pred, gt = pred["semantic"], gt["semantic"]
        x, theirs = released_prediction(task.net, meta["image_path"])
        # the network input: BGR normalised with the RGB statistics, whole-image box warp (one uint8 level)
        assert float(np.abs(image.numpy() - x).max()) < 1.01 / 255 / 0.224
        rgb = (x * STD + MEAN)[::-1]
        assert float(np.abs(image.numpy() - (rgb - MEAN) / STD).max()) > 0.2  # RGB input would be caught
        assert theirs.shape == tuple(pred.shape) == tuple(meta["orig_size"])
        assert len(np.unique(theirs)) >= 2
        agree = float((pred.cpu().numpy() == theirs).mean())
        assert agree == 1.0, agree
        gt = np.asarray(gt.cpu() if isinstance(gt, torch.Tensor) else gt)
        keep = gt != 255
        confusion += np.bincount(gt[keep].astype(np.int64) * 20 + theirs[keep], minlength=400).reshape(20, 20)

    try:
        cfg = compose_cfg("eval", [f"ckpt_path={converted}", "trainer=cpu"], tmp_path, cache_dir)
        metrics = evaluate(cfg)
    finally:
        GlobalHydra.instance().clear()
    expected = released_scores(confusion)
    for k, v in expected.items():
        assert metrics[f"val/{k}"] == pytest.approx(v, abs=1e-6), k
    rec = json.loads((tmp_path / "metrics.json").read_text())
    assert rec["released_weights"]["name"] == "LIP_best.pth" and rec["model"] == "corrpm"
