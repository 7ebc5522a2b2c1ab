"""PGN inference: the released multi-scale + flip test (channel swap of the mirrored half), the part score
map, and the per-image prediction dict of the task contract."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from humanparse.models.pgn import partition as P
from humanparse.models.pgn.postprocess import PGNPostprocess, multiscale_flip
from humanparse.tasks.postprocess import EvalContext

C = 20
# CIHP's left/right swap: 14<->15, 16<->17, 18<->19 (released test_pgn.py tail_list_rev)
PERM = np.array(list(range(14)) + [15, 14, 17, 16, 19, 18])


class Recorder:
    """A fake net: fixed random logits per input size, recording every input it sees."""

    def __init__(self):
        self.seen = []
        self.g = torch.Generator().manual_seed(0)

    def __call__(self, x):
        self.seen.append(x.clone())
        b, _, h, w = x.shape
        # outputs depend on the image content, so the mirrored half differs from the direct one
        base = x.mean(1, keepdim=True)
        par = torch.cat([base * (k + 1) + k for k in range(C)], 1)
        return {"parsing_fc": par, "parsing_rf_fc": 2 * par, "edge_rf_fc": base - 0.5}


def test_multiscale_flip_swaps_the_mirrored_half_and_averages():
    rec = Recorder()
    img = torch.rand(1, 3, 16, 24)
    scales, edge_scales = [0.5, 1.0, 1.5], [1.0, 1.5]
    par, edge = multiscale_flip(
        rec, img, ["parsing_fc", "parsing_rf_fc"], "edge_rf_fc", scales, edge_scales, True, PERM
    )
    # every scale ran once on [image, mirror] as a batch of 2, at int(h·s) x int(w·s)
    assert [tuple(x.shape) for x in rec.seen] == [(2, 3, 8, 12), (2, 3, 16, 24), (2, 3, 24, 36)]
    assert all(torch.equal(x[1], x[0].flip(-1)) for x in rec.seen)
    # by hand: per scale upsample, mean of initial and refined, mean over scales; mirror: swap, flip back
    ups = []
    for x in rec.seen:
        o = rec.__class__()(x)
        p = (
            torch.nn.functional.interpolate(
                o["parsing_fc"], size=(16, 24), mode="bilinear", align_corners=False
            )
            + torch.nn.functional.interpolate(
                o["parsing_rf_fc"], size=(16, 24), mode="bilinear", align_corners=False
            )
        ) / 2
        ups.append(p)
    avg = sum(ups) / 3
    want = (avg[:1] + avg[1:, PERM].flip(-1)) / 2
    assert torch.allclose(par, want, atol=1e-5)
    # without the swap the result differs (channels 14..19 are not symmetric)
    assert not torch.allclose(par, (avg[:1] + avg[1:].flip(-1)) / 2, atol=1e-3)
    # edges: scales 1 and 1.5 only
    e = [
        torch.nn.functional.interpolate(
            rec.__class__()(x)["edge_rf_fc"], size=(16, 24), mode="bilinear", align_corners=False
        )
        for x in rec.seen[1:]
    ]
    ea = (e[0] + e[1]) / 2
    assert torch.allclose(edge, (ea[:1] + ea[1:].flip(-1)) / 2, atol=1e-5)


def test_flip_of_a_mirror_symmetric_net_swaps_left_and_right():
    """A net that sees a left arm (class 14) on the left half of any image: its mirrored pass reports a
    left arm on the (mirrored) left, i.e. a right arm in the original — the swap turns it back."""

    def net(x):
        b, _, h, w = x.shape
        out = torch.zeros(b, C, h, w)
        out[:, 14, :, : w // 2] = 5.0  # "left arm" wherever the image's left half is
        return {"parsing_fc": out}

    par, _ = multiscale_flip(net, torch.rand(1, 3, 8, 8), ["parsing_fc"], None, [1.0], [1.0], True, PERM)
    # direct: class 14 on the left half; mirrored pass: class 14 on its left = the original's right half,
    # swapped to class 15: both halves now score 2.5 on their own class
    assert torch.allclose(par[0, 14, :, :4], torch.full((8, 4), 2.5))
    assert torch.allclose(par[0, 15, :, 4:], torch.full((8, 4), 2.5))
    assert float(par[0, 14, :, 4:].abs().max()) == 0.0


def _scene():
    h, w = 40, 48
    sem = np.zeros((h, w), np.int64)
    sem[5:35, 4:20] = 13
    sem[5:12, 4:20] = 2
    sem[5:35, 26:44] = 13
    sem[5:12, 26:44] = 2
    edge = np.zeros((h, w), np.float32)
    edge[4:36, 22:25] = 1.0
    return sem, edge


def _batch_outputs(sem, edge, scale=1.0):
    h, w = sem.shape
    logits = torch.full((1, C, h, w), -2.0)
    logits[0].scatter_(0, torch.from_numpy(sem)[None], 3.0 * scale)
    e = torch.from_numpy(np.where(edge > 0, 4.0, -4.0).astype(np.float32))[None, None]
    outputs = {"parsing_fc": logits, "parsing_rf_fc": logits, "edge_rf_fc": e}
    batch = {"image": torch.zeros(1, 3, h, w), "meta": [{"orig_size": (h, w), "affine": np.eye(3)}]}
    return outputs, batch


def test_postprocess_gives_the_task_contract_prediction():
    sem, edge = _scene()
    outputs, batch = _batch_outputs(sem, edge)
    ctx = EvalContext("cihp", C, [str(i) for i in range(C)], PERM)
    pp = PGNPostprocess(scales=[1.0], edge_scales=[1.0], flip=False)
    (pred,) = pp(outputs, batch, ctx)
    assert torch.equal(pred["semantic"], torch.from_numpy(sem))
    assert pred["edge"].shape == sem.shape and float(pred["edge"].max()) > 0.9
    # the partition on the same maps (u8 = round(255 p), score = max over classes of the logits)
    u8 = np.round(255 * torch.sigmoid(torch.where(torch.from_numpy(edge) > 0, 4.0, -4.0)).numpy()).astype(
        np.uint8
    )
    score = np.where(sem >= 0, 3.0, 0).astype(np.float32)
    res = P.partition(sem.astype(np.uint8), u8, score)
    pi = pred["part_instances"]
    assert torch.equal(pi["instance_map"], torch.from_numpy(res.parts.instance_map))
    assert pi["classes"].tolist() == res.parts.classes.tolist()
    assert np.allclose(pi["scores"].numpy(), np.nan_to_num(res.parts.scores.astype(np.float64)))
    persons = pred["instances"]
    assert len(persons) == len(res.person_areas) >= 2
    big = sorted(persons, key=lambda d: -d["score"])[:2]
    assert all(d["label"] == 1 and d["mask"].dtype == torch.bool for d in big)
    for d in big:  # a person's part map: its own pixels' classes, 0 elsewhere
        parts, mask = d["parts"].numpy(), d["mask"].numpy()
        assert set(np.unique(parts[mask]).tolist()) <= {0, 2, 13} and not parts[~mask].any()
    x1, y1, x2, y2 = big[0]["box"]
    assert x2 > x1 and y2 > y1


def test_nan_scores_switch():
    sem = np.full((20, 20), 5, np.int64)  # one class, no edges: part instances without any edge pixel
    edge = np.zeros((20, 20), np.float32)
    outputs, batch = _batch_outputs(sem, edge)
    outputs["edge_rf_fc"] = torch.full((1, 1, 20, 20), -20.0)  # p ≈ 0 → u8 = 0
    ctx = EvalContext("cihp", C, [str(i) for i in range(C)], PERM)
    (pred,) = PGNPostprocess(scales=[1.0], edge_scales=[1.0], flip=False)(outputs, batch, ctx)
    (parity,) = PGNPostprocess(scales=[1.0], edge_scales=[1.0], flip=False, nan_scores=True)(
        outputs, batch, ctx
    )
    assert pred["part_instances"]["scores"].tolist() == [0.0]
    assert np.isnan(parity["part_instances"]["scores"].numpy()).all()


def test_multiscale_needs_ctx_forward_and_uses_it():
    sem, edge = _scene()
    outputs, batch = _batch_outputs(sem, edge)
    ctx = EvalContext("cihp", C, [str(i) for i in range(C)], PERM)
    pp = PGNPostprocess()  # released: 6 scales, 4 edge scales, flip
    with pytest.raises(RuntimeError, match="ctx.forward"):
        pp(outputs, batch, ctx)
    calls = []

    def forward(x):
        calls.append(tuple(x.shape))
        return {
            k: torch.nn.functional.interpolate(
                v, size=x.shape[-2:], mode="bilinear", align_corners=False
            ).repeat(x.shape[0], 1, 1, 1)
            for k, v in outputs.items()
        }

    ctx.forward = forward
    (pred,) = pp(outputs, batch, ctx)
    assert len(calls) == 6 and all(c[0] == 2 for c in calls)  # six scales, image + mirror each
    assert {"semantic", "edge", "instances", "part_instances"} <= set(pred)
