"""PGN inference (Gong et al., ECCV 2018 §3.3; the released ``Engineering-Course/CIHP_PGN test_pgn.py`` and
``instance_tool/``): the multi-scale + flip test, the part score map, then the instance partition.

Per image, as the released test:

1. the image and its mirror run at every parsing scale (0.5, 0.75, 1, 1.25, 1.5, 1.75); ``parsing_fc`` and
   ``parsing_rf_fc`` are resized to the input size (bilinear) and averaged over the scales, then the
   initial and refined maps 1:1; the mirrored half is channel-swapped with the dataset's left/right class
   permutation (``ctx.flip_permutation``), flipped back and averaged with the direct half;
2. ``edge_rf_fc`` is averaged over the edge scales (1, 1.25, 1.5, 1.75) and the flip, then the sigmoid;
3. at the original resolution (logits mapped back bilinearly): semantic = argmax, the **part score map** =
   max over classes of the averaged logits (float32), the edge map as the released PNG, round(255·p);
4. the partition (:mod:`humanparse.models.pgn.partition`) gives persons and part instances.

Outputs per image (task contract): ``semantic``, ``edge`` (probability), ``instances`` (one per person:
``mask``, ``parts``, ``box``, ``label`` 1 and ``score`` = its pixel count, the number the released
``cihp_human_maps/<id>.txt`` lists), ``part_instances`` {``instance_map``, ``classes``, ``scores``} for AP^r,
and ``logits`` on request.

Project choice (switch ``nan_scores``): a part instance without any edge pixel scores NaN in the released
code, which the AP^r evaluator ranks first; here it scores 0 unless ``nan_scores=True``. ``saturate_ids``
(default on, as the released PNG hand-over) merges person ids ≥ 255 before the part stage.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from humanparse.models.pgn.partition import ID_LIMIT, MIN_SIZE, partition
from humanparse.tasks.postprocess import map_back, upsample_to

PARSING_SCALES = (0.5, 0.75, 1.0, 1.25, 1.5, 1.75)
EDGE_SCALES = (1.0, 1.25, 1.5, 1.75)


def scaled(images: torch.Tensor, s: float) -> torch.Tensor:
    """The released resize: (int(h·s), int(w·s)), bilinear."""
    if s == 1.0:
        return images
    h, w = images.shape[-2:]
    return F.interpolate(images, size=(int(h * s), int(w * s)), mode="bilinear", align_corners=False)


def multiscale_flip(
    forward,
    images: torch.Tensor,
    parsing_outputs: Sequence[str],
    edge_output: str | None,
    scales: Sequence[float],
    edge_scales: Sequence[float],
    flip: bool,
    flip_permutation: np.ndarray | None,
    first: dict | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Averaged parsing logits (B, C, H, W) and edge logits (B, 1, H, W) at the input size, as
    ``test_pgn.py`` computes them. ``forward(images) -> outputs``; ``first`` = outputs already computed on
    ``images`` (reused at scale 1)."""
    size = tuple(images.shape[-2:])
    b = images.shape[0]
    all_scales = sorted(set(map(float, scales)) | set(map(float, edge_scales if edge_output else ())))
    par_sum, edge_sum = None, None
    for s in all_scales:
        x = scaled(images, s)
        if flip:
            out = forward(torch.cat([x, torch.flip(x, dims=[-1])]))
        elif s == 1.0 and first is not None:
            out = first
        else:
            out = forward(x)
        if s in scales:
            p = sum(upsample_to(out[k].float(), size) for k in parsing_outputs) / len(parsing_outputs)
            par_sum = p if par_sum is None else par_sum + p
        if edge_output and s in edge_scales:
            e = upsample_to(out[edge_output].float(), size)
            edge_sum = e if edge_sum is None else edge_sum + e
    parsing = par_sum / len(scales)
    edge = edge_sum / len(edge_scales) if edge_sum is not None else None
    if flip:
        head, tail = parsing[:b], parsing[b:]
        if flip_permutation is not None:
            perm = torch.as_tensor(
                np.asarray(flip_permutation, dtype=np.int64)[: tail.shape[1]], device=tail.device
            )
            tail = tail.index_select(1, perm)
        parsing = (head + torch.flip(tail, dims=[-1])) / 2
        if edge is not None:
            edge = (edge[:b] + torch.flip(edge[b:], dims=[-1])) / 2
    return parsing, edge


def _box(mask: np.ndarray) -> list[float]:
    ys, xs = np.nonzero(mask)
    if not len(xs):
        return [0.0, 0.0, 0.0, 0.0]
    return [float(xs.min()), float(ys.min()), float(xs.max()) + 1.0, float(ys.max()) + 1.0]


class PGNPostprocess:
    """Net outputs → per-image PGN predictions (see the module docstring).

    Args:
        scales / edge_scales / flip: the test-time augmentation (released: six parsing scales, four edge
            scales, flip). ``scales=[1.0]``, ``flip=False`` uses the outputs the task computed.
        parsing_outputs / edge_output: which outputs are averaged (defaults follow the net's
            ``inference_outputs`` when present: ``parsing_fc`` + ``parsing_rf_fc`` and ``edge_rf_fc``).
        instances: run the partition (persons, part instances); off gives semantic + edge only.
        nan_scores: keep NaN part-instance scores (released code) instead of 0.
        saturate_ids: person ids ≥ 255 merge into 255 before the part stage (released PNG hand-over).
        edge_threshold: the partition's edge threshold (0.2).
    """

    produces = frozenset(
        {
            "semantic",
            "logits",
            "edge",
            "instances",
            "instances.mask",
            "instances.parts",
            "instances.box",
            "part_instances",
        }
    )

    def __init__(
        self,
        scales: Sequence[float] = PARSING_SCALES,
        edge_scales: Sequence[float] = EDGE_SCALES,
        flip: bool = True,
        parsing_outputs: Sequence[str] | None = None,
        edge_output: str | None = None,
        instances: bool = True,
        nan_scores: bool = False,
        saturate_ids: bool = True,
        edge_threshold: float = 0.2,
    ):
        self.scales = [float(s) for s in scales]
        self.edge_scales = [float(s) for s in edge_scales]
        if not self.scales or not self.edge_scales or min(self.scales + self.edge_scales) <= 0:
            raise ValueError(f"PGN test scales must be positive, got {self.scales} / {self.edge_scales}")
        self.flip = bool(flip)
        self.parsing_outputs = list(parsing_outputs) if parsing_outputs else None
        self.edge_output = edge_output
        self.instances = bool(instances)
        self.nan_scores = bool(nan_scores)
        self.id_limit = ID_LIMIT if saturate_ids else None
        self.edge_threshold = float(edge_threshold)

    def _names(self, outputs: dict) -> tuple[list[str], str | None]:
        par = self.parsing_outputs or [k for k in ("parsing_fc", "parsing_rf_fc") if k in outputs]
        if self.edge_output is not None:
            edge = self.edge_output
        else:
            edge = "edge_rf_fc" if "edge_rf_fc" in outputs else ("edge_fc" if "edge_fc" in outputs else None)
        missing = [k for k in par + ([edge] if edge else []) if k not in outputs]
        if not par or missing:
            raise KeyError(
                f"PGN postprocess needs outputs {missing or ['parsing_fc']}; the model returned "
                f"{sorted(outputs)}"
            )
        return par, edge

    def input_logits(self, outputs: dict, size: tuple[int, int]) -> torch.Tensor:
        """Single-pass parsing logits at the input size: the mean of the initial and refined maps (the task's
        dense-logits hook, e.g. ``predict save_logits``)."""
        par, _ = self._names(outputs)
        return sum(upsample_to(outputs[k].float(), tuple(size)) for k in par) / len(par)

    def input_maps(
        self, outputs: dict, images: torch.Tensor, ctx
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Averaged parsing and edge logits at the input size."""
        par, edge = self._names(outputs)
        plain = self.scales == [1.0] and (self.edge_scales == [1.0] or edge is None) and not self.flip
        forward = getattr(ctx, "forward", None)
        if not plain and forward is None:
            raise RuntimeError("PGN's multi-scale/flip test needs ctx.forward (the task provides it)")
        return multiscale_flip(
            forward,
            images,
            par,
            edge,
            self.scales,
            self.edge_scales,
            self.flip,
            getattr(ctx, "flip_permutation", None),
            first=outputs,
        )

    def __call__(self, outputs: dict, batch: dict, ctx) -> list[dict]:
        images = batch["image"]
        parsing, edge = self.input_maps(outputs, images, ctx)
        preds = []
        for i, m in enumerate(batch["meta"]):
            size = tuple(int(v) for v in m["orig_size"])
            logits = map_back(parsing[i], m["affine"], size, "logits", return_logits=True)
            score, semantic = logits.max(0)
            pred: dict = {"semantic": semantic}
            if getattr(ctx, "return_logits", False):
                pred["logits"] = logits
            if edge is not None:
                e = map_back(edge[i], m["affine"], size, "logits", return_logits=True)[0]
                prob = torch.sigmoid(e)
                pred["edge"] = prob
                if self.instances:
                    pred.update(self.group(semantic, prob, score, int(logits.shape[0])))
            preds.append(pred)
        return preds

    def group(
        self, semantic: torch.Tensor, edge_prob: torch.Tensor, score: torch.Tensor, num_classes: int
    ) -> dict:
        """Persons and part instances of one image from its class map, edge probability and part score map
        (part classes 1..C−1: the released ``class_num = 19`` on CIHP)."""
        sem = semantic.detach().cpu().numpy()
        h, w = sem.shape
        if min(h, w) < MIN_SIZE:  # the released partition cannot run: no instances
            empty = {
                "instance_map": torch.zeros((h, w), dtype=torch.long),
                "classes": torch.zeros(0, dtype=torch.long),
                "scores": torch.zeros(0, dtype=torch.float64),
            }
            return {"instances": [], "part_instances": empty}
        edge_u8 = np.round(255.0 * edge_prob.detach().float().cpu().numpy()).astype(np.uint8)
        res = partition(
            sem.astype(np.uint8),
            edge_u8,
            score.detach().float().cpu().numpy(),
            num_part_classes=num_classes - 1,
            id_limit=self.id_limit,
            edge_threshold=self.edge_threshold,
        )
        persons = []
        for k, area in enumerate(res.person_areas, start=1):
            mask = res.person_map == k
            persons.append(
                {
                    "mask": torch.from_numpy(mask),
                    "parts": torch.from_numpy(np.where(mask, sem, 0)),
                    "box": _box(mask),
                    "label": 1,
                    "score": float(area),
                }
            )
        scores = res.parts.scores.astype(np.float64)
        if not self.nan_scores:
            scores = np.nan_to_num(scores, nan=0.0)
        part = {
            "instance_map": torch.from_numpy(res.parts.instance_map),
            "classes": torch.from_numpy(res.parts.classes),
            "scores": torch.from_numpy(scores),
        }
        return {"instances": persons, "part_instances": part}
