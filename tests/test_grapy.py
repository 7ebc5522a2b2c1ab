"""Grapy-ML building blocks: parameter counts against the released nets, hierarchy tables and remapping,
graph semantics aggregation / distribution on hand-made masks, reasoning variants, loss, schedule, weight loading."""

from __future__ import annotations

import os

import pytest
import torch

from helpers.grapy import HIERARCHY, ML, TINY
from humanparse.data.meta import get_info
from humanparse.models.grapy import (
    DeepLabV3PlusXception,
    GraphContextReasoning,
    GraphPyramid,
    GraphSemanticAggregation,
    GrapyCriterion,
    GrapyNet,
    dataset_index,
    graph_semantic_distribution,
    hierarchy_tables,
)
from humanparse.models.grapy.schedule import ReleasedPolyLR


def n_params(m: torch.nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


# --- sizes against the released code (Charleshhy/Grapy-ML @664f59b, built with random weights) ----------
def test_deeplab_xception65_matches_released_sizes():
    net = DeepLabV3PlusXception(20)
    assert n_params(net.backbone) == 37_867_312  # released Xception, = timm xception65 without classifier
    assert net.trunk_parameters() == 41_050_016  # released DeepLabv3_plus without its classifier
    assert n_params(net) == 41_055_156
    net.eval()
    with torch.no_grad():
        high, low = net.backbone(torch.randn(1, 3, 64, 64))
    assert high.shape == (1, 2048, 4, 4) and low.shape == (1, 256, 16, 16)  # OS 16; tap at stride 4


@pytest.mark.parametrize(
    "c,name,released,unused",
    [
        (20, "cihp", 46_130_780, 65_792 + 257 * 20),
        (7, "pascal_person_part", 46_120_757, 65_792 + 257 * 7),
        (18, "atr", 46_129_238, 65_792 + 257 * 18),
    ],
)
def test_grapynet_matches_released_sizes(c, name, released, unused):
    net = GrapyNet(c, name, HIERARCHY)
    # the released GrapyNet also builds `transform` and the inherited `semantic`, never run in its forward
    assert n_params(net) == released - unused
    # released GraphPyramidModule (with its raw classifier `sem`): 5,004,692 / 5,001,351 / 5,004,178
    assert (
        n_params(net.gpm) + n_params(net.deeplab.classifiers) == 3 * 1_382_016 + 656_128 + 197_376 + 257 * c
    )
    assert (
        sum(p.numel() for n, p in net.gpm.named_parameters() if n.startswith("reason_fine.0.")) == 1_382_016
    )


def test_mutual_learning_net_matches_released_size():
    net = GrapyNet([20, 7, 18], ML, HIERARCHY)
    # released GrapyMutualLearning: 48,914,087, of which transform + semantic_aux_{cihp,pascal,atr} never run
    assert n_params(net) == 48_914_087 - 77_357
    shared = sum(
        p.numel()
        for n, p in net.named_parameters()
        if not any(n in dict(net.dataset_parameters(d)) for d in range(3))
    )
    assert shared == 44_667_552
    assert [sum(p.numel() for _, p in net.dataset_parameters(d)) for d in range(3)] == [
        1_392_296,
        1_385_614,
        1_391_268,
    ]


# --- hierarchy tables -------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["cihp", "lip", "atr", "pascal_person_part"])
def test_hierarchy_config_equals_data_tables(name):
    info = get_info(name)
    c = info.num_classes
    assert HIERARCHY[name]["level1"] == [int(v) for v in info.hierarchy_lut(1)[:c]]
    assert HIERARCHY[name]["level2"] == [int(v) for v in info.hierarchy_lut(2)[:c]]


# level-2 nodes by class name (released train_gpm_ml.py cate_list2)
NODES = {
    "cihp": {
        1: {"Hat", "Hair", "Sunglasses", "Face"},
        2: {"Upper-clothes", "Dress", "Coat", "Torso-skin", "Scarf", "Skirt"},
        3: {"Glove", "Left-arm", "Right-arm"},
        4: {"Socks", "Pants", "Left-leg", "Right-leg", "Left-shoe", "Right-shoe"},
    },
    "atr": {
        1: {"Hat", "Hair", "Sunglasses", "Face"},
        2: {"Upper-clothes", "Skirt", "Dress", "Belt", "Bag", "Scarf"},
        3: {"Left-arm", "Right-arm"},
        4: {"Pants", "Left-shoe", "Right-shoe", "Left-leg", "Right-leg"},
    },
    "pascal_person_part": {
        1: {"Head"},
        2: {"Torso"},
        3: {"Upper-arms", "Lower-arms"},
        4: {"Upper-legs", "Lower-legs"},
    },
}


@pytest.mark.parametrize("name", ML)
def test_hierarchy_remapping_puts_every_fine_class_in_its_node(name):
    classes = get_info(name).classes
    c = len(classes)
    tables = hierarchy_tables(c, HIERARCHY[name]["level1"], HIERARCHY[name]["level2"])
    # the GPM remaps the raw argmax: one pixel per fine class, raw logits one-hot
    fine = torch.arange(c).view(1, 1, c)
    for level in (1, 2, 3):
        nodes = tables[level - 1][fine].flatten().tolist()
        for k, cls in enumerate(classes):
            if level == 3:
                expected = k
            elif level == 1:
                expected = int(k != 0)
            else:
                expected = next((node for node, names in NODES[name].items() if cls in names), 0)
            assert nodes[k] == expected, (name, level, cls)
    assert {n for names in NODES[name].values() for n in names} | {"Background"} == set(classes)


def test_pyramid_uses_the_remapped_masks():
    """With a constant raw prediction of one class, every level sees a single present node: each level's
    painted map is constant, so the GPM adds a constant per level."""
    torch.manual_seed(0)
    tables = [hierarchy_tables(20, HIERARCHY["cihp"]["level1"], HIERARCHY["cihp"]["level2"])]
    gpm = GraphPyramid([20], tables, channels=8, graph_channels=16).eval()
    f0 = torch.randn(1, 8, 6, 6)
    raw = torch.zeros(1, 20, 6, 6)
    raw[:, 14] = 1  # left arm: level 1 node 1, level 2 node 3
    seen = []
    gpm.aggregate.register_forward_hook(lambda m, i, o: seen.append((i[1].unique().tolist(), i[2])))
    gpm(f0, raw)
    assert seen == [([1], 2), ([3], 5), ([14], 20)]


# --- aggregation and distribution on hand-made masks --------------------------------------------------
def test_aggregation_empty_node_full_node_and_negative_max():
    f = torch.tensor([[[[-1.0, -2.0], [-3.0, -4.0]]]])  # (1, 1, 2, 2), all negative
    full = torch.zeros(1, 2, 2, dtype=torch.long)  # node 0 covers the image, node 1 empty
    v = GraphSemanticAggregation("avg+max", "masked")(f, full, 2)
    assert v.shape == (1, 2, 2)
    assert v[0, 0].tolist() == [-2.5, -1.0]  # mean, true max (negative)
    assert v[0, 1].tolist() == [0.0, 0.0]  # absent node -> 0
    split = torch.tensor([[[0, 1], [1, 1]]])
    masked = GraphSemanticAggregation("avg+max", "masked")(f, split, 3)
    assert masked[0, :, 0].tolist() == [-1.0, -3.0, 0.0]
    assert masked[0, :, 1].tolist() == [-1.0, -2.0, 0.0]
    # the released code multiplies by the 0/1 mask: a partial node's negative max becomes 0, a full node's not
    mult = GraphSemanticAggregation("avg+max", "multiply")
    assert mult(f, split, 3)[0, :, 1].tolist() == [0.0, 0.0, 0.0]
    assert mult(f, full, 2)[0, 0, 1].item() == -1.0
    assert GraphSemanticAggregation("avg")(f, split, 3).shape == (1, 3, 1)
    assert GraphSemanticAggregation("max")(f, split, 3)[0, :, 0].tolist() == [-1.0, -2.0, 0.0]


def test_aggregation_matches_a_loop_over_nodes_and_has_gradients():
    torch.manual_seed(1)
    f = torch.randn(2, 5, 7, 9, requires_grad=True)
    nodes = torch.randint(0, 4, (2, 7, 9))
    nodes[1][nodes[1] == 2] = 3  # node 2 absent in image 1
    v = GraphSemanticAggregation()(f, nodes, 4)
    for b in range(2):
        for k in range(4):
            m = nodes[b] == k
            px = f[b][:, m]
            avg = px.mean(1) if m.any() else torch.zeros(5)
            mx = px.amax(1) if m.any() else torch.zeros(5)
            assert torch.allclose(v[b, k], torch.cat([avg, mx]), atol=1e-6)
    v.sum().backward()
    assert f.grad is not None and f.grad.abs().sum() > 0


def test_distribution_paints_each_pixel_with_its_node():
    vectors = torch.tensor([[[10.0, 20.0, 30.0], [1.0, 2.0, 3.0]]])  # (1, C=2, K=3)
    labels = torch.tensor([[[0, 2], [2, 1]]])
    painted = graph_semantic_distribution(vectors, labels)
    assert painted[0, 0].tolist() == [[10.0, 30.0], [30.0, 20.0]]
    assert painted[0, 1].tolist() == [[1.0, 3.0], [3.0, 2.0]]


# --- reasoning, ablations ---------------------------------------------------------------------------
def test_reasoning_shapes_and_variants():
    torch.manual_seed(0)
    x = torch.randn(3, 5, 32)
    gcr = GraphContextReasoning(32, 16, 8)
    assert gcr(x).shape == (3, 8, 5)
    assert sum(p.numel() for p in gcr.rounds[0].query.parameters()) == 16 * 2 + 2  # Q at C/8
    gcn = GraphContextReasoning(32, 16, 8, reasoning="gcn")
    assert gcn(x).shape == (3, 8, 5)
    # GCN on a fully connected graph: node order does not matter (permutation equivariant)
    perm = torch.tensor([4, 2, 0, 1, 3])
    gcn.eval()
    assert torch.allclose(gcn(x[:, perm])[..., :], gcn(x)[..., perm], atol=1e-5)
    with pytest.raises(ValueError):
        GraphContextReasoning(reasoning="transformer")


@pytest.mark.parametrize(
    "opts",
    [
        dict(levels=[3]),
        dict(pooling="avg"),
        dict(pooling="max"),
        dict(reasoning="gcn"),
        dict(levels=[1, 2, 3], max_pool="multiply"),
    ],
)
def test_ablation_variants_build_and_run(opts):
    torch.manual_seed(0)
    net = GrapyNet(7, "pascal_person_part", HIERARCHY, **TINY, **opts)
    out = net(torch.randn(2, 3, 64, 64))
    assert out["seg"].shape == out["raw"].shape == (2, 7, 16, 16)
    levels = opts.get("levels", [1, 2, 3])
    assert net.gpm.fusion[0].in_channels == 16 * (len(levels) + 1)
    assert sorted(net.gpm.distribute) == [str(v) for v in levels]
    node_dim = 16 if opts.get("pooling") in ("avg", "max") else 32
    assert net.gpm.reason_fine[0].project_in.in_channels == node_dim


def test_gpm_masks_carry_no_gradient_to_the_raw_classifier():
    torch.manual_seed(0)
    net = GrapyNet(7, "pascal_person_part", HIERARCHY, **TINY)
    out = net(torch.randn(2, 3, 64, 64))
    out["seg"].sum().backward()
    g = net.deeplab.classifiers[0].weight.grad
    assert g is None or g.abs().sum() == 0  # hard argmax masks
    assert net.deeplab.decoder.convs[0].conv_pw.weight.grad.abs().sum() > 0


def test_dataset_index_checks():
    assert dataset_index(torch.tensor([2, 2]), 3) == 2
    with pytest.raises(ValueError, match="one dataset"):
        dataset_index(torch.tensor([0, 1]), 3)
    with pytest.raises(ValueError, match="out of range"):
        dataset_index(3, 3)


# --- loss and schedule ------------------------------------------------------------------------------
def test_criterion_is_raw_plus_lambda_gpm():
    torch.manual_seed(0)
    target = torch.randint(0, 5, (2, 16, 16))
    target[0, :4] = 255
    outputs = {"seg": torch.randn(2, 5, 4, 4), "raw": torch.randn(2, 5, 4, 4)}
    one = GrapyCriterion(gpm_weight=1.0)(outputs, {"semantic": target})
    half = GrapyCriterion(gpm_weight=0.5)(outputs, {"semantic": target})
    assert torch.allclose(one["loss"], one["raw"] + one["seg"])
    assert torch.allclose(half["loss"], half["raw"] + 0.5 * half["seg"])
    up = torch.nn.functional.interpolate(outputs["seg"], size=(16, 16), mode="bilinear", align_corners=True)
    assert torch.allclose(one["seg"], torch.nn.functional.cross_entropy(up, target, ignore_index=255))
    stage1 = GrapyCriterion()({"seg": outputs["seg"]}, {"semantic": target})
    assert set(stage1) == {"loss", "seg"}
    empty = GrapyCriterion()(outputs, {"semantic": torch.full((2, 16, 16), 255)})
    assert empty["loss"].item() == 0.0


def test_released_schedule_steps_every_ten_epochs_and_resets_momentum():
    p = torch.nn.Parameter(torch.ones(1))
    opt = torch.optim.SGD([p], lr=1.0, momentum=0.9)
    sched = ReleasedPolyLR(opt, total_steps=100 * 2, epochs=100, step_epochs=10)
    lrs = []
    for step in range(60):
        p.grad = torch.ones(1)
        opt.step()
        lrs.append(opt.param_groups[0]["lr"])
        had_momentum = bool(opt.state)
        sched.step()
        if step == 2 * 9 - 1:  # entering epoch 9: lr changes and the momentum buffer is dropped
            assert had_momentum and not opt.state
    assert lrs[0] == lrs[17] == 1.0  # epochs 0-8 at the base rate
    assert lrs[18] == pytest.approx((1 - 9 / 100) ** 0.9)  # epoch 9: poly(9)
    assert lrs[18] == lrs[37] and lrs[38] == pytest.approx((1 - 19 / 100) ** 0.9)


# --- weight loading ---------------------------------------------------------------------------------
def test_stage1_and_mutual_learning_checkpoints_initialise_the_right_heads(tmp_path):
    torch.manual_seed(0)
    stage1 = DeepLabV3PlusXception(
        [20, 7, 18], **{k: v for k, v in TINY.items() if k != "graph_channels"}, datasets=ML
    )
    path = tmp_path / "stage1.ckpt"
    torch.save({"state_dict": {f"net.{k}": v for k, v in stage1.state_dict().items()}}, path)
    gpm = GrapyNet(18, "atr", HIERARCHY, **TINY, init_from=str(path), init_datasets=ML)
    assert torch.equal(
        gpm.deeplab.classifiers[0].weight, stage1.classifiers[2].weight
    )  # raw classifier <- stage 1
    assert torch.equal(gpm.deeplab.aspp.project[0].weight, stage1.aspp.project[0].weight)
    ml = GrapyNet([20, 7, 18], ML, HIERARCHY, **TINY)
    path = tmp_path / "ml.pth"
    torch.save(ml.state_dict(), path)
    ft = GrapyNet(7, "pascal_person_part", HIERARCHY, **TINY, init_from=str(path), init_datasets=ML)
    for n, b in ft.state_dict().items():
        src = n.replace("classifiers.0.", "classifiers.1.").replace("reason_fine.0.", "reason_fine.1.")
        assert torch.equal(b, ml.state_dict()[src]), n
    bad = tmp_path / "bad.pth"
    torch.save({"foo": torch.zeros(1)}, bad)
    with pytest.raises(Exception, match="trunk tensors missing"):
        GrapyNet(7, "pascal_person_part", HIERARCHY, **TINY, init_from=str(bad))


REFERENCE = os.environ.get("GRAPY_ML_CODE")


@pytest.mark.skipif(not REFERENCE, reason="set GRAPY_ML_CODE to a checkout of Charleshhy/Grapy-ML to compare")
def test_forward_equals_the_released_code():  # pragma: no cover - needs the released code
    import sys
    import types

    import torch.nn.functional as F

    sys.path.insert(0, REFERENCE)
    for name in ("networkx", "scipy", "scipy.sparse"):
        sys.modules.setdefault(name, types.ModuleType(name))
    torch.Tensor.cuda = lambda self, *a, **k: self
    if not hasattr(F, "upsample"):
        F.upsample = F.interpolate
    from networks import grapy_net  # type: ignore

    from humanparse.models.grapy.released import released_to_humanparse

    torch.manual_seed(0)
    ref = grapy_net.GrapyNet(n_classes=7, os=16, hidden_layers=256)
    ref.set_category_list([[0], [1, 2, 3, 4, 5, 6]], [[0], [1], [2], [3, 4], [5, 6]])
    ref.eval()
    mine = GrapyNet(7, "pascal_person_part", HIERARCHY, max_pool="multiply").eval()
    mine.load_state_dict(released_to_humanparse(ref.state_dict()))
    x = torch.randn(1, 3, 96, 96)
    with torch.no_grad():
        r, _ = ref(x, training=False)
        o = F.interpolate(mine(x)["seg"], size=(96, 96), mode="bilinear", align_corners=True)
    assert (r - o).abs().max() <= 1e-4 * r.abs().max()


def test_released_key_map_examples():
    from humanparse.models.grapy.released import FORMAT, rename_key

    gpm = {
        "xception_features.conv1.weight": "deeplab.backbone.body.stem.0.conv.weight",
        "xception_features.block1.rep.0.depthwise.weight": "deeplab.backbone.body.blocks.0.stack.conv1.conv_dw.weight",
        "xception_features.block1.rep.4.pointwise_bn.bias": "deeplab.backbone.body.blocks.0.stack.conv3.bn_pw.bias",
        "xception_features.block2.rep.3.pointwise.weight": "deeplab.backbone.body.blocks.1.stack.conv2.conv_pw.weight",
        "xception_features.block2.block2_lastconv.1.depthwise.weight": "deeplab.backbone.body.blocks.1.stack.conv3.conv_dw.weight",
        "xception_features.block20.skipbn.running_var": "deeplab.backbone.body.blocks.19.shortcut.bn.running_var",
        "xception_features.conv5.pointwise.weight": "deeplab.backbone.body.blocks.20.stack.conv3.conv_pw.weight",
        "aspp3.atrous_convolution.depthwise_bn.weight": "deeplab.aspp.atrous.1.bn_dw.weight",
        "global_avg_pool.2.running_mean": "deeplab.aspp.image_pool.1.1.running_mean",
        "decoder.1.atrous_convolution.pointwise.weight": "deeplab.decoder.convs.1.conv_pw.weight",
        "gcn_network.sem.weight": "deeplab.classifiers.0.weight",
        "gcn_network.gcn_block_feature3.attn2.query_conv.bias": "gpm.reason_fine.0.rounds.1.query.bias",
        "gcn_network.gcn_block_feature_atr.bn3.weight": "gpm.reason_fine.2.norms.2.weight",
        "gcn_network.sem_pascal.bias": "deeplab.classifiers.1.bias",
        "gcn_network.transform_lv2.weight": "gpm.distribute.2.weight",
        "sem2_atr.weight": "classifiers.2.weight",
        "transform.weight": None,
        "semantic.weight": None,
    }
    for released, ours in gpm.items():
        assert rename_key(released, gpm=True) == ours, released
    assert rename_key("semantic.weight", gpm=False) == "classifiers.0.weight"  # DeepLab v3+ stage file
    assert rename_key("semantic_aux_atr.bias", gpm=False) == "classifiers.2.bias"
    assert FORMAT.is_dead("transform.bias") and FORMAT.rename("nonsense.weight") is None


@pytest.mark.skipif(not REFERENCE, reason="set GRAPY_ML_CODE to a checkout of Charleshhy/Grapy-ML to compare")
def test_released_weights_load_strictly_and_compute_the_released_forward(tmp_path):  # pragma: no cover
    import sys
    import types

    import torch.nn.functional as F

    from humanparse.models.released import load_released_weights

    sys.path.insert(0, REFERENCE)
    for name in ("networkx", "scipy", "scipy.sparse"):
        sys.modules.setdefault(name, types.ModuleType(name))
    torch.Tensor.cuda = lambda self, *a, **k: self
    if not hasattr(F, "upsample"):
        F.upsample = F.interpolate
    from networks import grapy_net  # type: ignore

    torch.manual_seed(1)
    ref = grapy_net.GrapyMutualLearning(os=16, hidden_layers=256)
    ref.set_category_list(
        [[0], list(range(1, 20))],
        [[0], [1, 2, 4, 13], [5, 6, 7, 10, 11, 12], [3, 14, 15], [8, 9, 16, 17, 18, 19]],
        [[0], [1, 2, 3, 4, 5, 6]],
        [[0], [1], [2], [3, 4], [5, 6]],
        [[0], list(range(1, 18))],
        [[0], [1, 2, 3, 11], [4, 5, 7, 8, 16, 17], [14, 15], [6, 9, 10, 12, 13]],
    )
    for m in ref.modules():  # BN statistics and affine terms away from their initial values
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.running_mean.normal_(0, 0.1)
            m.running_var.uniform_(0.5, 1.5)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.normal_(0, 0.1)
    ref.eval()
    path = tmp_path / "GPM-ML_multi-dataset.pth"
    torch.save({f"module.{k}": v for k, v in ref.state_dict().items()}, path)
    net = GrapyNet([20, 7, 18], ML, HIERARCHY, max_pool="multiply").eval()
    record = load_released_weights(net, path, "grapy_ml")
    assert record["dropped_dead"] == 77_357
    x = torch.randn(1, 3, 96, 96)
    for d in range(3):
        with torch.no_grad():
            r, _ = ref((x, d), training=False)
            o = F.interpolate(net(x, d)["seg"], size=(96, 96), mode="bilinear", align_corners=True)
        assert (r - o).abs().max() <= 1e-4 * r.abs().max(), d
