"""A toy instance-level task: the semantic parser's output split into per-person results, returned in the
``humanparse.predict`` protocol (``semantic`` + ``instances``), standing in for Parsing R-CNN / PGN."""

from __future__ import annotations

import torch

from humanparse.tasks import Task


class ToyInstanceTask(Task):
    """Left and right image halves are two "persons" (the test only needs the output structure)."""

    def predict_step(self, batch: dict, batch_idx: int) -> list[dict]:
        out = []
        for labels in (p["semantic"] for p in self.predict_batch(batch)):
            h, w = labels.shape
            left = torch.zeros_like(labels, dtype=torch.bool)
            left[:, : w // 2] = True
            people = []
            for k, m in enumerate((left, ~left)):
                parts = torch.where(m, labels, torch.zeros_like(labels))
                ys, xs = torch.nonzero(m, as_tuple=True)
                people.append(
                    {
                        "parts": parts,
                        "score": 0.9 - 0.1 * k,
                        "box": [float(xs.min()), float(ys.min()), float(xs.max()), float(ys.max())],
                        "keypoints": torch.tensor(
                            [[float(xs.float().mean()), float(ys.float().mean()), 1.0]] * 16
                        ),
                    }
                )
            out.append({"semantic": labels, "instances": people})
        return out
