"""PGN loss on small tensors against hand computation (released train_pgn.py arithmetic)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from humanparse.models.pgn.loss import PGNLoss, class_balanced_edge_loss, downsample_labels


def _ce(logits: np.ndarray, label: int) -> float:
    z = logits - logits.max()
    return float(-(z[label] - math.log(np.exp(z).sum())))


def _bce(x: float, y: float) -> float:
    return max(x, 0) - x * y + math.log1p(math.exp(-abs(x)))


def _batch():
    labels = torch.tensor([[[0, 1, 2, 2], [1, 1, 2, 255], [2, 0, 255, 1], [1, 1, 0, 0]]])
    edge = torch.tensor([[[0, 1, 0, 0], [1, 1, 0, 0], [0, 0, 0, 1], [0, 1, 1, 0]]])
    return {"semantic": labels, "instance_edge": edge}


def _outputs(seed=0):
    g = torch.Generator().manual_seed(seed)
    out = {
        "parsing_fc": torch.randn(1, 3, 2, 2, generator=g),
        "parsing_rf_fc": torch.randn(1, 3, 2, 2, generator=g),
    }
    for k in ("edge_fc", "edge_res3", "edge_res4", "edge_res5"):
        out[k] = torch.randn(1, 1, 4, 4, generator=g)
    out["edge_rf_fc"] = torch.tensor(
        [[[[3.0, -3.0], [0.0, -1.0]]]]
    )  # sigmoid: .95, .047, .5, .27 → gate 1,0,1,1
    return out


def test_nearest_downsampling_picks_the_top_left_of_each_cell():
    lab = _batch()["semantic"]
    assert downsample_labels(lab, (2, 2)).tolist() == [[[0, 2], [2, 255]]]


def test_parsing_terms_by_hand():
    out, batch = _outputs(), _batch()
    loss = PGNLoss(3, parsing_weight=1.0, edge_weight=0.0)(out, batch)
    low = [[0, 2], [2, 255]]
    gate = [[1, 0], [1, 1]]
    for name in ("parsing_fc", "parsing_rf_fc"):
        lg = out[name][0].numpy()
        ces = {(i, j): _ce(lg[:, i, j], low[i][j]) for i in range(2) for j in range(2) if low[i][j] != 255}
        plain = np.mean(list(ces.values()))
        gated = np.mean([v for (i, j), v in ces.items() if gate[i][j]])
        assert float(loss[name]) == pytest.approx(plain, rel=1e-5)
        assert float(loss[f"{name}_gated"]) == pytest.approx(gated, rel=1e-5)
    want = sum(float(loss[n]) + float(loss[f"{n}_gated"]) for n in ("parsing_fc", "parsing_rf_fc"))
    assert float(loss["parsing"]) == pytest.approx(want, rel=1e-6)
    assert float(loss["loss"]) == pytest.approx(want, rel=1e-6)


def _edge_by_hand(logits, edge, labels, c, fg_padding=False):
    x, e, lab = logits[0, 0].numpy(), edge[0].numpy(), labels[0].numpy()
    fg = (lab > 0) if fg_padding else ((lab >= 1) & (lab <= c - 1))
    n_pos, n = int((e == 1).sum()), e.size
    pos_w, neg_w = (n - n_pos) / n, n_pos / n
    lp = ln = 0.0
    for i in range(4):
        for j in range(4):
            t = _bce(float(x[i, j]), float(e[i, j] == 1))
            k = 2 if fg[i, j] else 1
            if e[i, j] == 1:
                lp += k * t
            else:
                ln += k * t
    return 2 * pos_w * lp + neg_w * ln


@pytest.mark.parametrize("fg_padding", [False, True])
def test_edge_terms_and_total_by_hand(fg_padding):
    out, batch = _outputs(1), _batch()
    crit = PGNLoss(3, fg_includes_padding=fg_padding)
    loss = crit(out, batch)
    edges = {}
    for name in ("edge_fc", "edge_rf_fc", "edge_res3", "edge_res4", "edge_res5"):
        if name == "edge_rf_fc":  # 2x2 logits: upsampled bilinearly to the 4x4 labels first
            logits = torch.nn.functional.interpolate(
                out[name], size=(4, 4), mode="bilinear", align_corners=False
            )
        else:
            logits = out[name]
        edges[name] = _edge_by_hand(logits, batch["instance_edge"], batch["semantic"], 3, fg_padding)
        assert float(loss[name]) == pytest.approx(edges[name], rel=1e-5)
    assert float(loss["edge"]) == pytest.approx(sum(edges.values()), rel=1e-5)
    assert float(loss["loss"]) == pytest.approx(
        50 * float(loss["parsing"]) + 0.005 * sum(edges.values()), rel=1e-5
    )
    other = PGNLoss(3, fg_includes_padding=not fg_padding)(out, batch)
    assert float(other["edge_fc"]) != pytest.approx(float(loss["edge_fc"]), rel=1e-4)  # the 255 pixels matter


def test_edge_loss_is_a_per_image_mean():
    g = torch.Generator().manual_seed(3)
    logits = torch.randn(2, 1, 4, 4, generator=g)
    b = _batch()
    edge = torch.cat([b["instance_edge"], 1 - b["instance_edge"]])
    labels = torch.cat([b["semantic"], b["semantic"]])
    fg = (labels >= 1) & (labels <= 2)
    both = class_balanced_edge_loss(logits, edge, fg)
    one = [class_balanced_edge_loss(logits[i : i + 1], edge[i : i + 1], fg[i : i + 1]) for i in range(2)]
    assert float(both) == pytest.approx((float(one[0]) + float(one[1])) / 2, rel=1e-6)


def test_empty_gate_is_zero_or_nan_with_parity():
    out, batch = _outputs(), _batch()
    out = {k: v.requires_grad_() for k, v in out.items()}
    out["edge_rf_fc"] = torch.full((1, 1, 2, 2), -10.0)  # sigmoid < 0.1 everywhere
    loss = PGNLoss(3)(out, batch)
    assert float(loss["parsing_fc_gated"]) == 0.0 and torch.isfinite(loss["loss"])
    loss["loss"].backward()  # still differentiable
    assert out["parsing_fc"].grad is not None
    parity = PGNLoss(3, empty_gate_nan=True)(_outputs(), batch)
    assert torch.isfinite(parity["loss"])  # a non-empty gate is finite either way
    out2 = _outputs()
    out2["edge_rf_fc"] = torch.full((1, 1, 2, 2), -10.0)
    assert math.isnan(float(PGNLoss(3, empty_gate_nan=True)(out2, batch)["loss"]))


def test_weights_and_ablations():
    out, batch = _outputs(), _batch()
    full = PGNLoss(3)(out, batch)
    no_gate = PGNLoss(3, gated_weight=0.0)(out, batch)
    assert "parsing_fc_gated" not in no_gate
    assert float(no_gate["parsing"]) == pytest.approx(
        float(full["parsing_fc"]) + float(full["parsing_rf_fc"])
    )
    no_side = PGNLoss(3, side_weight=0.0)(out, batch)
    assert float(no_side["edge"]) == pytest.approx(
        float(full["edge_fc"]) + float(full["edge_rf_fc"]), rel=1e-6
    )
    w = PGNLoss(3, parsing_weight=2.0, edge_weight=3.0)(out, batch)
    assert float(w["loss"]) == pytest.approx(2 * float(full["parsing"]) + 3 * float(full["edge"]), rel=1e-6)
    plain = {"parsing_fc": out["parsing_fc"]}  # edge_branch=false: no gate, no edge terms
    p = PGNLoss(3)(plain, {"semantic": batch["semantic"]})
    assert float(p["loss"]) == pytest.approx(50 * float(full["parsing_fc"]), rel=1e-6)
    with pytest.raises(KeyError, match="instance_edge"):
        PGNLoss(3)(out, {"semantic": batch["semantic"]})
