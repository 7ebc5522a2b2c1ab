"""CorrPM model: backbone dilation, parameter count, shapes, HNL identity at init, SDPA = explicit, variants."""

from __future__ import annotations

import pytest
import timm
import torch
from torch import nn

from humanparse.data.targets import pose_heatmaps, semantic_edges
from humanparse.models.blocks import DilatedResNet, NonLocal2d, ce2p_to_timm, dot_product_attention
from humanparse.models.corrpm import (
    VARIANTS,
    ConcatFusion,
    CorrPM,
    HeterogeneousNonLocal,
    SelfNonLocal,
    count_parameters,
    effective_variant,
)
from humanparse.tasks.losses import CorrPMCriterion

TINY_BACKBONE = {"layers": (1, 2, 1, 2), "channels": (4, 8, 16, 32), "stem_width": 8}
TINY = dict(
    backbone="resnet50s",
    backbone_kwargs=TINY_BACKBONE,
    channels=16,
    aspp_channels=8,
    edge_channels=8,
    pose_channels=8,
    nl_channels=8,
)


def tiny(variant: str = "full", **kw) -> CorrPM:
    return CorrPM(20, 16, variant=variant, **{**TINY, **kw})


def batch(n: int = 2, size: int = 64, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    labels = (
        torch.randint(0, 20, (n, size // 8, size // 8), generator=g)
        .repeat_interleave(8, 1)
        .repeat_interleave(8, 2)
    )
    kp = torch.cat([torch.rand(n, 16, 2, generator=g) * size, torch.ones(n, 16, 1)], 2).numpy()
    return {
        "image": torch.randn(n, 3, size, size, generator=g),
        "semantic": labels,
        "semantic_edge": torch.stack(
            [torch.from_numpy(semantic_edges(lab.numpy().astype("uint8"))).long() for lab in labels]
        ),
        "heatmaps": torch.stack([torch.from_numpy(pose_heatmaps(k, (size, size))) for k in kp]),
    }


def dilations(stage: nn.Module) -> list[tuple[int, int]]:
    return [m.dilation for m in stage.modules() if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3)]


# --- backbone ------------------------------------------------------------------------------------
def test_every_layer4_block_is_dilated_unlike_timm():
    plain = timm.create_model("resnet50s", output_stride=16, num_classes=0, **TINY_BACKBONE)
    assert dilations(plain.layer4)[0] == (1, 1)  # timm's first dilated block keeps dilation 1 ...
    net = DilatedResNet("resnet50s", 16, **TINY_BACKBONE)
    assert dilations(net.body.layer4) == [(2, 2)] * 2  # ... the released code runs every block at 2
    assert set(dilations(net.body.layer3)) == {(1, 1)}
    for stage in ("layer4",):
        conv = getattr(net.body, stage)[0].conv2
        assert conv.padding == (2, 2) and conv.stride == (1, 1)
    feats = net(torch.randn(1, 3, 64, 96))
    assert [tuple(f.shape[-2:]) for f in feats] == [(16, 24), (8, 12), (4, 6), (4, 6)]
    assert net.channels == [16, 32, 64, 128] and net.reductions == [4, 8, 16, 16]
    os8 = DilatedResNet("resnet50s", 8, **TINY_BACKBONE)
    assert dilations(os8.body.layer3) == [(2, 2)] and dilations(os8.body.layer4) == [(4, 4)] * 2
    assert tuple(os8(torch.randn(1, 3, 64, 64))[-1].shape[-2:]) == (8, 8)


def test_deep_stem_resnet101_and_ce2p_weights(tmp_path):
    with torch.device("meta"):
        r101 = DilatedResNet("resnet101s", 16)
    stem = [m.out_channels for m in r101.body.conv1 if isinstance(m, nn.Conv2d)]
    assert stem == [64, 64, 128] and [len(getattr(r101.body, f"layer{i}")) for i in range(1, 5)] == [
        3,
        4,
        23,
        3,
    ]
    # a CE2P-style checkpoint (conv1/bn1/conv2/bn2/conv3/bn3 stem, fc) loads through the key map
    src = DilatedResNet("resnet50s", 16, **TINY_BACKBONE)
    to_ce2p = {
        "conv1.0.": "conv1.",
        "conv1.1.": "bn1.",
        "conv1.3.": "conv2.",
        "conv1.4.": "bn2.",
        "conv1.6.": "conv3.",
        "bn1.": "bn3.",
    }
    state = {}
    for k, v in src.body.state_dict().items():
        for new, old in to_ce2p.items():
            if k.startswith(new):
                k = old + k[len(new) :]
                break
        state[k] = v
    state["fc.weight"] = torch.zeros(10, 128)
    assert "conv1.0.weight" in ce2p_to_timm(state) and "fc.weight" not in ce2p_to_timm(state)
    path = tmp_path / "resnet-imagenet.pth"
    torch.save(state, path)
    dst = DilatedResNet("resnet50s", 16, pretrained=str(path), **TINY_BACKBONE)
    for k, v in src.body.state_dict().items():
        assert torch.equal(v, dst.body.state_dict()[k]), k


# --- the full model ---------------------------------------------------------------------------------
def test_parameter_count_matches_the_released_model():
    with torch.device("meta"):
        model = CorrPM(20, 16)
    n = count_parameters(model)
    # the released model has 71.71 M, of which 148,578 are dead (edge conv4, decoder conv1/conv2), not built here
    assert n == 71_566_074
    assert abs(n / 71.71e6 - 1) < 0.01
    assert abs((n + 148_578) / 71.71e6 - 1) < 5e-4


def test_output_shapes_train_and_eval():
    m = tiny()
    out = m(torch.randn(2, 3, 64, 48))
    assert {k: tuple(v.shape) for k, v in out.items()} == {
        "seg1": (2, 20, 16, 12),
        "seg2": (2, 20, 16, 12),
        "edge": (2, 2, 16, 12),
        "pose": (2, 16, 16, 12),
    }
    m.eval()
    with torch.no_grad():
        out = m(torch.randn(1, 3, 72, 56))  # not a multiple of 16: fk is resized onto fp
        assert set(out) == {"seg2"} and out["seg2"].shape == (1, 20, 18, 14)
        assert set(m(torch.randn(1, 3, 64, 64), all_heads=True)) == {"seg1", "seg2", "edge", "pose"}


def test_hnl_is_the_identity_at_initialisation():
    hnl = HeterogeneousNonLocal(channels=16, num_factors=2, inter_channels=8)
    fp, fb, fk = (torch.randn(2, 16, 12, 10) for _ in range(3))
    assert torch.equal(hnl(fp, [fb, fk]), fp)  # Wb's BN starts at γ = β = 0
    hnl.eval()
    assert torch.equal(hnl(fp, [fb, fk]), fp)
    with torch.no_grad():
        hnl.non_local.W[1].weight.fill_(1.0)
    assert not torch.allclose(hnl(fp, [fb, fk]), fp)
    # and in the model, seg2 at initialisation is the classifier applied to fp itself
    m = tiny().eval()
    feats = {}
    m.parsing_encoder.register_forward_hook(lambda mod, i, o: feats.setdefault("fp", o))
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        seg2 = m(x)["seg2"]
        assert torch.allclose(seg2, m.classifier(feats["fp"]))


@pytest.mark.parametrize("impl", ["sdpa", "chunked"])
def test_attention_kernels_match_the_explicit_affinity(impl, monkeypatch):
    from humanparse.models.blocks import attention

    torch.manual_seed(0)
    q, k, v = torch.randn(2, 96, 8), torch.randn(2, 24, 8), torch.randn(2, 24, 8)
    monkeypatch.setattr(attention, "CHUNK_BYTES", 24 * 4 * 10)  # chunks of 10 queries: several per image
    assert torch.allclose(
        dot_product_attention(q, k, v, 1.0, impl=impl),
        dot_product_attention(q, k, v, 1.0, impl="explicit"),
        atol=1e-5,
    )
    assert torch.allclose(
        dot_product_attention(q[0], k[0], v[0], None, impl=impl),
        dot_product_attention(q[0], k[0], v[0], None, impl="explicit"),
        atol=1e-5,
    )
    fused = NonLocal2d(16, 8, query_channels=12, attention=impl)
    explicit = NonLocal2d(16, 8, query_channels=12, attention="explicit")
    explicit.load_state_dict(fused.state_dict())
    for m in (fused, explicit):
        nn.init.normal_(m.W[1].weight)  # non-zero Wb, so the attention path reaches the output
        m.W[1].weight.data.copy_(fused.W[1].weight.data)
    x, query = torch.randn(2, 16, 12, 10), torch.randn(2, 12, 12, 10)
    outs, grads = [], []
    for m in (fused, explicit):
        xi, qi = x.clone().requires_grad_(True), query.clone().requires_grad_(True)
        y = m(xi, query=qi)
        (y * torch.linspace(-1, 1, y.numel()).view_as(y)).sum().backward()
        outs.append(y.detach())
        grads.append([xi.grad, qi.grad, m.theta.weight.grad, m.phi.weight.grad, m.g.weight.grad])
    assert torch.allclose(outs[0], outs[1], atol=1e-5)
    for a, b in zip(*grads):
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-4)
    s = fused.affinity(x, query)  # (B, H·W, H/2·W/2) rows are softmax distributions, no 1/√d scaling
    assert s.shape == (2, 120, 30) and torch.allclose(s.sum(-1), torch.ones(2, 120))
    with pytest.raises(ValueError, match="attention"):
        NonLocal2d(16, 8, attention="flash")


def test_effective_variant_follows_table_6():
    assert effective_variant("full", 0, 70) == "PK"
    assert effective_variant("full", 2, 0) == "PB"
    assert effective_variant("full", 0, 0) == "P"
    assert effective_variant("P+B+K", 0, 1) == "P+K"
    assert effective_variant("PBB", 0, 1) == "P"
    assert effective_variant("PP", 0, 0) == "PP"
    assert effective_variant("PKK", 1, 1) == "PKK"
    with pytest.raises(ValueError, match="unknown CorrPM variant"):
        effective_variant("PBK")
    m = tiny("full", pose_weight=0)
    assert m.variant == "PB" and m.pose_encoder is None and m.edge_encoder is not None


EXPECTED_MODULES = {
    "P": (None, False, False),
    "PP": (SelfNonLocal, False, False),
    "P+B": (ConcatFusion, True, False),
    "P+K": (ConcatFusion, False, True),
    "P+B+K": (ConcatFusion, True, True),
    "PB": (HeterogeneousNonLocal, True, False),
    "PK": (HeterogeneousNonLocal, False, True),
    "PBB": (HeterogeneousNonLocal, True, False),
    "PKK": (HeterogeneousNonLocal, False, True),
    "full": (HeterogeneousNonLocal, True, True),
}


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_each_variant_builds_and_takes_a_training_step(variant):
    torch.manual_seed(0)
    m = tiny(variant)
    fusion, edge, pose = EXPECTED_MODULES[variant]
    assert m.fusion is None if fusion is None else isinstance(m.fusion, fusion)
    assert (m.edge_encoder is not None) == edge and (m.pose_encoder is not None) == pose
    if variant in ("PBB", "PKK"):  # two copies of one factor: the same 3·C input channels as the full model
        assert m.fusion.Wa.in_channels == 3 * 16
    crit = CorrPMCriterion()
    opt = torch.optim.SGD(m.parameters(), lr=0.1, momentum=0.9)
    b = batch()
    out = m(b["image"])
    expected = (
        {"seg2"}
        | ({"seg1"} if fusion else set())
        | ({"edge"} if edge else set())
        | ({"pose"} if pose else set())
    )
    assert set(out) == expected
    losses = crit(out, b)
    assert set(losses) == {"loss"} | expected and torch.isfinite(losses["loss"])
    before = {k: v.detach().clone() for k, v in m.state_dict().items()}
    losses["loss"].backward()
    # every parameter gets a gradient (no dead layers: DDP needs no find_unused_parameters)
    assert all(p.grad is not None for p in m.parameters())
    opt.step()
    changed = [
        k for k, v in m.state_dict().items() if v.dtype.is_floating_point and not torch.equal(v, before[k])
    ]
    assert any(k.startswith("parsing_encoder") for k in changed) and any(
        k.startswith("backbone") for k in changed
    )
    if fusion is not None:
        assert any(k.startswith("fusion") for k in changed)


def test_seg1_weight_zero_removes_the_seg1_head():
    m = tiny(seg1_weight=0)
    assert m.parsing_encoder.classifier is None
    out = m(torch.randn(2, 3, 64, 64))
    assert "seg1" not in out and {"seg2", "edge", "pose"} <= set(out)
    # variant P keeps its single classifier whatever seg1_weight says
    assert tiny("P", seg1_weight=0).parsing_encoder.classifier is not None


def test_edge_feature_composed_into_its_consumers_equals_the_materialised_map():
    from humanparse.models.blocks import Projected, concat_conv1x1

    torch.manual_seed(0)
    parts = [torch.randn(2, 6, 12, 10, requires_grad=True), torch.randn(2, 6, 6, 5, requires_grad=True)]
    w_inner = torch.randn(8, 12, 1, 1, requires_grad=True)
    w_outer = torch.randn(5, 4 + 8, 1, 1, requires_grad=True)
    fp = torch.randn(2, 4, 12, 10, requires_grad=True)
    fb = Projected(w_inner, parts, (12, 10), align_corners=True)
    composed = concat_conv1x1(w_outer, None, [fp, fb], (12, 10), align_corners=True)
    direct = concat_conv1x1(w_outer, None, [fp, fb.materialize()], (12, 10), align_corners=True)
    assert torch.allclose(composed, direct, atol=1e-4)
    g1 = torch.autograd.grad(composed.square().sum(), [fp, *parts, w_inner, w_outer])
    g2 = torch.autograd.grad(direct.square().sum(), [fp, *parts, w_inner, w_outer])
    for a, b in zip(g1, g2):
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-3)
    with pytest.raises(ValueError, match="consumed at"):
        concat_conv1x1(w_outer, None, [fp[..., :6, :5], fb], (6, 5), align_corners=True)
