"""CorrPM loss terms and weights (paper §3.5, Eq. 4)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from humanparse.tasks.losses import ClassBalancedEdgeLoss, CorrPMCriterion, HeatmapMSE


def up(x: torch.Tensor, size) -> torch.Tensor:
    return F.interpolate(x, size=size, mode="bilinear", align_corners=True)


def test_edge_loss_uses_batch_class_weights():
    torch.manual_seed(0)
    logits = torch.randn(2, 2, 4, 4)
    target = torch.zeros(2, 8, 8, dtype=torch.long)
    target[0, 2:4, :] = 1  # 16 edge pixels of 128
    target[1, 0, 0] = 255  # ignored
    pos, neg = 16.0, 127.0 - 16.0
    n = pos + neg
    w = torch.tensor([pos / n, neg / n])  # [w_neg, w_pos]: the rare edges weigh more
    expected = F.cross_entropy(up(logits, (8, 8)), target, weight=w, ignore_index=255)
    got = ClassBalancedEdgeLoss()(logits, target)
    assert torch.allclose(got, expected, atol=1e-6)
    # by hand: Σ w_t·(−log p_t) / Σ w_t
    logp = F.log_softmax(up(logits, (8, 8)), 1)
    valid = target != 255
    t = target.clamp(max=1)
    nll = -logp.gather(1, t[:, None])[:, 0]
    wt = w[t]
    assert torch.allclose(got, (wt * nll)[valid].sum() / wt[valid].sum(), atol=1e-6)
    # a batch without any edge pixel contributes 0, not NaN
    zero = ClassBalancedEdgeLoss()(logits, torch.zeros(2, 8, 8, dtype=torch.long))
    assert zero.item() == 0.0


def test_heatmap_mse_and_joint_count():
    pred = torch.zeros(2, 16, 8, 8)
    target = torch.rand(2, 16, 16, 16)
    assert torch.allclose(HeatmapMSE()(pred, target), (target**2).mean())
    pred = torch.randn(2, 16, 16, 16)
    assert torch.allclose(HeatmapMSE()(pred, target), F.mse_loss(pred, target))
    with pytest.raises(ValueError, match="model.num_joints"):
        HeatmapMSE()(torch.zeros(2, 17, 16, 16), target)


def _outputs_and_batch(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    outputs = {
        "seg1": torch.randn(2, 20, 8, 8, generator=g),
        "seg2": torch.randn(2, 20, 8, 8, generator=g),
        "edge": torch.randn(2, 2, 8, 8, generator=g),
        "pose": torch.randn(2, 16, 8, 8, generator=g),
    }
    batch = {
        "semantic": torch.randint(0, 20, (2, 32, 32), generator=g),
        "semantic_edge": torch.randint(0, 2, (2, 32, 32), generator=g),
        "heatmaps": torch.rand(2, 16, 8, 8, generator=g),
    }
    batch["semantic"][0, :4] = 255
    return outputs, batch


def test_criterion_is_equation_4_with_configurable_weights():
    outputs, batch = _outputs_and_batch()
    ce = {
        k: F.cross_entropy(up(outputs[k], (32, 32)), batch["semantic"], ignore_index=255)
        for k in ("seg1", "seg2")
    }
    edge = ClassBalancedEdgeLoss()(outputs["edge"], batch["semantic_edge"])
    pose = F.mse_loss(outputs["pose"], batch["heatmaps"])
    got = CorrPMCriterion()(outputs, batch)  # α = 2, β = 70
    assert torch.allclose(got["loss"], ce["seg2"] + ce["seg1"] + 2 * edge + 70 * pose, atol=1e-5)
    for k, v in (("seg1", ce["seg1"]), ("seg2", ce["seg2"]), ("edge", edge), ("pose", pose)):
        assert torch.allclose(got[k], v, atol=1e-6), k
    got = CorrPMCriterion(seg1_weight=0.5, edge_weight=10, pose_weight=1)(outputs, batch)
    assert torch.allclose(got["loss"], ce["seg2"] + 0.5 * ce["seg1"] + 10 * edge + pose, atol=1e-5)
    # a zero weight removes the term ("Ours†" drops L_p; α = 0 / β = 0 drop the branches)
    got = CorrPMCriterion(seg1_weight=0, edge_weight=0)(outputs, batch)
    assert set(got) == {"loss", "seg2", "pose"}
    assert torch.allclose(got["loss"], ce["seg2"] + 70 * pose, atol=1e-5)
    # the logits are upsampled with align_corners=True, as the released code
    other = F.cross_entropy(
        F.interpolate(outputs["seg2"], size=(32, 32), mode="bilinear"), batch["semantic"], ignore_index=255
    )
    assert not torch.allclose(got["seg2"], other)


def test_criterion_terms_follow_the_model_outputs_and_need_their_targets():
    outputs, batch = _outputs_and_batch()
    got = CorrPMCriterion()({"seg2": outputs["seg2"]}, batch)  # variant P: a single classifier
    assert set(got) == {"loss", "seg2"}
    del batch["heatmaps"]
    with pytest.raises(KeyError, match="PoseHeatmaps"):
        CorrPMCriterion()(outputs, batch)
    assert "pose" not in CorrPMCriterion(pose_weight=0)(outputs, batch)
    grads = {k: v.clone().requires_grad_(True) for k, v in outputs.items()}
    CorrPMCriterion(pose_weight=0)(grads, batch)["loss"].backward()
    assert all(grads[k].grad is not None and grads[k].grad.abs().sum() > 0 for k in ("seg1", "seg2", "edge"))
