"""PGN instance-edge precision / recall / F1 (released CIHP_PGN ``test_pgn.py``)."""

from __future__ import annotations

import pytest
import torch

from humanparse.metrics.edge import InstanceEdgeMetric, edge_scores


def test_pooled_counts_and_threshold():
    gt = torch.tensor([[0, 1, 1, 0], [0, 1, 0, 0]])
    logits = torch.tensor([[-3.0, 2.0, 0.0, 1.0], [5.0, 4.0, -1.0, -2.0]])  # sigmoid(0) = 0.5 is not > 0.5
    m = InstanceEdgeMetric()
    m.update(logits, gt)
    m.update(torch.full((1, 2, 4), -9.0), torch.ones(1, 2, 4))  # a second image: all edges missed
    assert (int(m.tp), int(m.pred_pos), int(m.gt_pos)) == (2, 4, 11)
    s = m.compute()
    p, r = 2 / 4, 2 / 11
    assert float(s["edge_precision"]) == pytest.approx(p)
    assert float(s["edge_recall"]) == pytest.approx(r)
    assert float(s["edge_f1"]) == pytest.approx(2 * p * r / (p + r))
    # pooled, not averaged per image: the first image alone has recall 2/3
    probs = InstanceEdgeMetric(edge_input="probs", edge_threshold=0.3)
    probs.update(torch.tensor([[0.31, 0.3]]), torch.tensor([[1, 1]]))
    assert int(probs.tp) == 1


def test_edge_cases():
    s = edge_scores(torch.tensor(0), torch.tensor(0), torch.tensor(5))
    assert float(s["edge_precision"]) == 0.0 and float(s["edge_f1"]) == 0.0  # nothing predicted
    s = edge_scores(torch.tensor(0), torch.tensor(3), torch.tensor(0))
    assert float(s["edge_recall"]) == 0.0 and float(s["edge_f1"]) == 0.0  # no GT edges
    m = InstanceEdgeMetric(edge_input="binary")
    m.update(torch.tensor([[1, 0, 255]]), torch.tensor([[1, 1, 0]]))
    assert (int(m.tp), int(m.pred_pos), int(m.gt_pos)) == (1, 2, 2)
    with pytest.raises(ValueError, match="original resolution"):
        m.update(torch.zeros(2, 3), torch.zeros(3, 2))
    m.update(torch.zeros(1, 1, 3), torch.zeros(1, 3))  # a singleton channel is squeezed
