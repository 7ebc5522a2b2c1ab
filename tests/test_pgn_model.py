"""PGN network: the released parameter counts, the wiring, pyramid pooling modes, ablations, frozen BN."""

from __future__ import annotations

import pytest
import torch

from humanparse.models.pgn import PGN, PyramidPooling, count_parameters
from humanparse.models.pgn.pgn import same_avg_pool

TINY = {
    "backbone": "resnet10t",
    "head_width": 1 / 32,
    "backbone_kwargs": {"channels": (16, 32, 64, 128), "stem_width": 8},
}


@pytest.mark.parametrize("kernel, expected", [(3, 164_839_673), (1, 164_839_673 - 172_032)])
def test_parameter_count_matches_the_released_network(kernel, expected):
    with torch.device("meta"):  # random weights, nothing allocated, no download
        net = PGN(20, classifier_kernel=kernel)
    assert count_parameters(net) == expected
    if kernel == 3:  # component by component, as counted from the released model_pgn.py
        assert count_parameters(net.trunk) == 42_500_160
        assert count_parameters(net.parsing) == 44_923_412
        assert count_parameters(net.edge) == 25_405_200
        assert count_parameters(net.edge.sides) == 15 * 2_305
        assert count_parameters(net.refine) == 52_010_901


def test_outputs_at_stride_8_and_wiring():
    torch.manual_seed(0)
    net = PGN(20, **TINY).eval()
    out = net(torch.randn(2, 3, 64, 48))
    assert set(out) == {
        "parsing_fc",
        "parsing_rf_fc",
        "edge_fc",
        "edge_rf_fc",
        "edge_res3",
        "edge_res4",
        "edge_res5",
    }
    assert out["parsing_fc"].shape == (2, 20, 8, 6) and out["edge_rf_fc"].shape == (2, 1, 8, 6)
    assert net.refine.parsing_remap[0].in_channels == 20 and net.refine.edge_remap[0].in_channels == 1
    assert [len(s.convs) for s in net.edge.sides] == [5, 5, 5]
    assert [c.dilation[0] for c in net.edge.sides[0].convs] == [1, 2, 4, 8, 16]
    # the refined edges see [ef, er, pf, pr], the refined parts [pf, pr, ef, er]: different first convs
    assert not torch.equal(net.refine.parsing_rf[0].weight, net.refine.edge_rf[0].weight)


def test_head_init_is_truncated_normal_and_zero_bias():
    net = PGN(20, **TINY)
    w = net.parsing.fuse[0].weight
    assert w.abs().max() <= 0.02 + 1e-7 and 0.005 < w.std() < 0.012
    assert all(
        float(m.bias.detach().abs().max()) == 0
        for m in net.parsing.modules()
        if isinstance(m, torch.nn.Conv2d)
    )


def test_ablation_switches():
    x = torch.randn(1, 3, 32, 32)
    assert set(PGN(20, refinement=False, **TINY).eval()(x)) == {
        "parsing_fc",
        "edge_fc",
        "edge_res3",
        "edge_res4",
        "edge_res5",
    }
    assert set(PGN(20, side_outputs=False, **TINY).eval()(x)) == {
        "parsing_fc",
        "parsing_rf_fc",
        "edge_fc",
        "edge_rf_fc",
    }
    assert set(PGN(20, edge_branch=False, refinement=False, **TINY).eval()(x)) == {"parsing_fc"}
    no_ppm = PGN(20, ppm=False, **TINY)
    assert no_ppm.parsing.head.ppm is None and no_ppm.eval()(x)["parsing_rf_fc"].shape == (1, 20, 4, 4)
    with pytest.raises(ValueError, match="edge branch"):
        PGN(20, edge_branch=False, **TINY)
    with pytest.raises(ValueError, match="classifier_kernel"):
        PGN(20, classifier_kernel=5, **TINY)


def test_same_avg_pool_matches_tensorflow_same_padding():
    x = torch.arange(2 * 7 * 5, dtype=torch.float32).reshape(1, 2, 7, 5)
    p = same_avg_pool(x, 3)
    assert p.shape == (1, 2, 3, 2)  # ceil(7/3), ceil(5/3)
    # rows: total pad 2 → 1 before, 1 after; columns: total pad 1 → 0 before, 1 after (the odd pixel at the end)
    assert torch.isclose(
        p[0, 0, 0, 0], x[0, 0, 0:2, 0:3].mean()
    )  # first row window holds padding + rows 0, 1
    assert torch.isclose(
        p[0, 0, 2, 1], x[0, 0, 5:7, 3:5].mean()
    )  # the last window: rows 5, 6 and columns 3, 4 valid only
    big = same_avg_pool(x, 60)  # one window larger than the map: the mean of every pixel
    assert big.shape == (1, 2, 1, 1) and torch.allclose(big[0, :, 0, 0], x.mean((2, 3)))


def test_pyramid_pooling_modes():
    x = torch.randn(1, 8, 64, 64)
    bins = PyramidPooling(8, 4, mode="bins")
    win = PyramidPooling(8, 4, mode="windows")
    assert bins.sizes == (1, 2, 3, 6) and win.sizes == (60, 30, 20, 10)
    assert bins(x).shape == win(x).shape == (1, 8 + 16, 64, 64)
    win.load_state_dict(bins.state_dict())
    assert torch.allclose(bins(x)[:, :8], win(x)[:, :8])  # the input passes through
    assert not torch.allclose(bins(x), win(x))  # 2x2/3x3/4x4/7x7 cells on 64x64 differ from 1/2/3/6 bins
    with pytest.raises(ValueError, match="ppm_mode"):
        PyramidPooling(8, 4, mode="pyramid")


def test_trunk_batchnorm_statistics_frozen_affine_trains():
    net = PGN(20, **TINY).train()
    bn = next(m for m in net.trunk.modules() if isinstance(m, torch.nn.BatchNorm2d))
    assert not bn.training and bn.weight.requires_grad
    before = bn.running_mean.clone()
    out = net(torch.randn(2, 3, 32, 32) * 3 + 1)
    assert torch.equal(before, bn.running_mean)
    out["parsing_fc"].sum().backward()
    assert bn.weight.grad is not None
    assert PGN(20, freeze_bn=False, **TINY).train().trunk.timm_body.training
    assert PGN.required_targets == ["instance_edge"]
