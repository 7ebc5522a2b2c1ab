"""Grapy-ML mutual learning: a step on one dataset never touches another dataset's heads, and a short
three-dataset fit of a tiny network on synthetic data beats its start and the majority-class baseline on
every dataset's mIoU (each dataset scored through its own heads)."""

from __future__ import annotations

import pytest
import torch

from helpers.grapy import HIERARCHY, ML, TINY
from humanparse.metrics.semantic import SemanticParsingMetric
from humanparse.models.grapy import GrapyCriterion, GrapyNet

CLASSES = [20, 7, 18]


def test_a_mutual_learning_step_only_updates_its_own_dataset_heads():
    torch.manual_seed(0)
    net = GrapyNet(CLASSES, ML, HIERARCHY, **TINY)
    crit = GrapyCriterion()
    images = torch.randn(2, 3, 64, 64)
    for d in range(3):
        net.zero_grad(set_to_none=True)
        target = torch.randint(0, CLASSES[d], (2, 64, 64))
        crit(net(images, torch.tensor([d, d])), {"semantic": target})["loss"].backward()
        for other in range(3):
            grads = [p.grad for _, p in net.dataset_parameters(other)]
            if other == d:
                assert all(g is not None and g.abs().sum() > 0 for g in grads)
            else:
                assert all(g is None or g.abs().sum() == 0 for g in grads), (d, other)
        shared = dict(net.named_parameters())
        for name in (
            "deeplab.aspp.project.0.weight",
            "gpm.reason.1.project_in.weight",
            "gpm.reason.2.rounds.0.query.weight",
            "gpm.distribute.3.weight",
            "gpm.fusion.0.weight",
        ):
            assert shared[name].grad is not None and shared[name].grad.abs().sum() > 0, name


# the foreground classes drawn per dataset (head, torso, arm, leg nodes), with well-separated colours
PARTS = [[13, 5, 14, 9], [1, 2, 4, 6], [11, 4, 14, 6]]
COLOURS = torch.tensor([[1.0, -1.0, -1.0], [-1.0, 1.0, -1.0], [-1.0, -1.0, 1.0], [1.0, 1.0, -1.0]])


def synthetic(d: int, n: int, seed: int, size: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    """Images with a background of noise and a 'person' of four horizontal bands, one part class each, in
    random order; every dataset colours its parts differently, so each needs its own classifiers."""
    g = torch.Generator().manual_seed(1000 * d + seed)
    colours = COLOURS.roll(d, 0)
    images = torch.randn(n, 3, size, size, generator=g) * 0.3
    labels = torch.zeros(n, size, size, dtype=torch.long)
    for i in range(n):
        x0 = int(torch.randint(0, size // 3, (1,), generator=g))
        w = int(torch.randint(size // 3, size // 2, (1,), generator=g))
        bounds = torch.linspace(4, size - 4, 5).long()
        for k, j in enumerate(torch.randperm(4, generator=g).tolist()):
            y0, y1 = int(bounds[k]), int(bounds[k + 1])
            labels[i, y0:y1, x0 : x0 + w] = PARTS[d][j]
            images[i, :, y0:y1, x0 : x0 + w] += colours[j].view(3, 1, 1)
    return images, labels


def miou(net: GrapyNet, d: int, images: torch.Tensor, labels: torch.Tensor, output: str = "seg") -> float:
    metric = SemanticParsingMetric(CLASSES[d])
    net.eval()
    with torch.no_grad():
        logits = net(images, d)[output]
        pred = torch.nn.functional.interpolate(
            logits, size=labels.shape[-2:], mode="bilinear", align_corners=True
        ).argmax(1)
    net.train()
    metric.update(pred, labels)
    return float(metric.compute()["miou"])


def test_three_dataset_fit_improves_every_dataset_over_start_and_majority():
    torch.manual_seed(0)
    net = GrapyNet(CLASSES, ML, HIERARCHY, **TINY)
    crit = GrapyCriterion()
    train = [synthetic(d, 24, seed=0) for d in range(3)]
    val = [synthetic(d, 8, seed=1) for d in range(3)]
    start = [miou(net, d, *val[d]) for d in range(3)]
    majority = []
    for d in range(3):
        metric = SemanticParsingMetric(CLASSES[d])
        metric.update(torch.zeros_like(val[d][1]), val[d][1])
        majority.append(float(metric.compute()["miou"]))
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(0)
    for _ in range(8):  # epochs: every batch from one dataset, the datasets' batches interleaved at random
        order = [(d, b) for d in range(3) for b in range(0, 24, 6)]
        for j in torch.randperm(len(order), generator=g).tolist():
            d, b = order[j]
            images, labels = train[d][0][b : b + 6], train[d][1][b : b + 6]
            loss = crit(net(images, d), {"semantic": labels})["loss"]
            opt.zero_grad()
            loss.backward()
            opt.step()
    end = [miou(net, d, *val[d]) for d in range(3)]
    for d in range(3):
        assert end[d] > start[d] + 0.1 and end[d] > majority[d] + 0.1, (ML[d], start[d], majority[d], end[d])


def test_each_dataset_is_validated_through_its_own_heads_and_logged_separately(compose_train):
    import hydra
    import pytorch_lightning as pl
    from omegaconf import open_dict

    from humanparse.utils.instantiate import instantiate_task

    cfg = compose_train(
        "model=grapy_ml",
        "data=grapy_ml",
        "data.synthetic_options.image_size=[64,80]",
        "data.eval_batch_size=2",
    )
    with open_dict(cfg):
        cfg.data.batch_size = 3
    task = instantiate_task(cfg)
    dm = hydra.utils.instantiate(cfg.data)
    dm.adapt_to_model(task.data_requirements(), "grapy_ml")
    seen: list[tuple[bool, int, int]] = []  # (training, dataset_idx, classes of the output)
    forward = task.net.forward

    def spy(images, dataset_idx=0):
        out = forward(images, dataset_idx)
        seen.append((task.net.training, int(torch.as_tensor(dataset_idx).flatten()[0]), out["seg"].shape[1]))
        return out

    task.net.forward = spy
    trainer = pl.Trainer(
        accelerator="cpu",
        max_steps=2,
        limit_train_batches=2,
        limit_val_batches=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        use_distributed_sampler=False,
    )
    trainer.fit(task, datamodule=dm)
    evals = {(d, c) for training, d, c in seen if not training}
    assert evals == {(0, 20), (1, 7), (2, 18)}  # every loader through its own dataset's heads
    metrics = trainer.callback_metrics
    for name in ML:
        assert f"val/{name}/miou" in metrics, sorted(metrics)
    per_set = [float(metrics[f"val/{n}/miou"]) for n in ML]
    assert float(metrics["val/miou"]) == pytest.approx(sum(per_set) / 3)
    assert "val/atr/f1" in metrics or any(k.startswith("val/atr/") and "iou/" in k for k in metrics)
