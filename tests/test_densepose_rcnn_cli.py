"""experiment=densepose_demo through the real command lines, tiny: train (validation reports GPS / GPSm AP and
box AP), then predict writes the per-person IUV charts and the chart overlay."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from conftest import run_cli

pytestmark = pytest.mark.slow

TINY_DEMO = [
    "experiment=densepose_demo",
    "data.synthetic_options.num_train=8",
    "data.synthetic_options.num_val=4",
    "data.synthetic_options.image_size=[56,72]",
    "data.input_size=[64,64]",
    "data.num_workers=0",
    "data.batch_size=4",
    "trainer.max_epochs=1",
    "print_config=false",
    "logger=csv",
    "++callbacks.progress_bar.refresh_rate=0",
    # keep every detection (an untrained detector scores low): the charts are then always written
    "++model.net.box_score_thresh=0.0",
]


def test_densepose_demo_trains_and_predicts(tmp_path, cache_dir):
    run_cli("humanparse.train", *TINY_DEMO, cwd=tmp_path, cache_dir=cache_dir)
    (run,) = sorted(p.parent for p in (tmp_path / "logs").rglob("metrics.json"))
    rec = json.loads((run / "metrics.json").read_text())
    assert rec["status"] == "finished"
    for key in ("val/dp_ap", "val/dp_gpsm_ap", "val/bbox_map", "test/dp_ap"):
        assert key in rec["metrics"], sorted(rec["metrics"])
    images = sorted((cache_dir / "synthetic").rglob("val2014/*.jpg"))[:2]
    assert images
    inp = tmp_path / "images"
    inp.mkdir()
    for im in images:
        (inp / im.name).write_bytes(im.read_bytes())
    out = tmp_path / "pred"
    ckpt = next((run / "checkpoints").glob("*.ckpt"))
    run_cli(
        "humanparse.predict",
        f"ckpt_path={ckpt}",
        f"input={inp}",
        f"output={out}",
        "progress=false",
        cwd=tmp_path,
        cache_dir=cache_dir,
    )
    for im in images:
        rec = json.loads((out / "instances" / f"{im.stem}.json").read_text())
        assert 0 < len(rec["instances"]) <= 20
        for inst in rec["instances"]:
            x, y, w, h = inst["densepose"]["box"]
            iuv = np.asarray(Image.open(out / inst["densepose"]["file"]))
            assert iuv.shape == (h, w, 3) and iuv[..., 0].max() <= 24
        assert (out / "overlays" / f"{im.stem}_densepose.jpg").is_file()
