"""Mapping network outputs back to the original image (every metric scores at the original size).

Samples carry ``meta['affine']``, the 3×3 matrix from original pixels to input pixels (pixel-centre
convention). For an original pixel (x, y), its input position is ``M·(x, y, 1)``; sampling the
input-frame output there inverts the warp exactly, for every placement (whole-image letterbox, crop,
rotation, flip).

* ``mode='logits'`` (whole-image models: DeepLab, PGN, Grapy-ML): logits are sampled bilinearly at
  the original resolution, then argmax.
* ``mode='labels'`` (crop-frame models: CorrPM/CE2P): argmax in the input frame, then the label map is
  warped back with nearest-neighbour sampling, border 0.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

MAP_BACK_MODES = ("logits", "labels")


def sampling_grid(
    affine, orig_size: tuple[int, int], input_size: tuple[int, int], device=None
) -> torch.Tensor:
    """Grid (1, H, W, 2) in ``grid_sample``'s normalised coordinates (align_corners=False)."""
    m = torch.as_tensor(np.asarray(affine, dtype=np.float64), dtype=torch.float64, device=device)
    h, w = orig_size
    ih, iw = input_size
    ys, xs = torch.meshgrid(
        torch.arange(h, dtype=torch.float64, device=device),
        torch.arange(w, dtype=torch.float64, device=device),
        indexing="ij",
    )
    u = m[0, 0] * xs + m[0, 1] * ys + m[0, 2]
    v = m[1, 0] * xs + m[1, 1] * ys + m[1, 2]
    gx = (2.0 * u + 1.0) / iw - 1.0
    gy = (2.0 * v + 1.0) / ih - 1.0
    return torch.stack([gx, gy], dim=-1).unsqueeze(0).float()


def upsample_to(logits: torch.Tensor, size: tuple[int, int], align_corners: bool = False) -> torch.Tensor:
    """Bilinear resize of (N, C, h, w) logits to ``size`` (no-op when already there)."""
    if tuple(logits.shape[-2:]) == tuple(size):
        return logits
    return F.interpolate(logits, size=size, mode="bilinear", align_corners=align_corners)


def map_back(
    logits: torch.Tensor,
    affine,
    orig_size: tuple[int, int],
    mode: str = "logits",
    return_logits: bool = False,
) -> torch.Tensor:
    """One sample's (C, h, w) input-frame logits → (H, W) int64 labels at the original size.

    ``logits`` must already be at the input resolution (see :func:`upsample_to`). With
    ``return_logits`` (``logits`` mode only) the resampled (C, H, W) logits are returned instead.
    """
    if mode not in MAP_BACK_MODES:
        raise ValueError(f"map-back mode must be one of {MAP_BACK_MODES}, got {mode!r}")
    c, ih, iw = logits.shape
    grid = sampling_grid(affine, orig_size, (ih, iw), device=logits.device)
    if mode == "logits":
        out = F.grid_sample(
            logits.unsqueeze(0).float(), grid, mode="bilinear", padding_mode="border", align_corners=False
        )[0]
        return out if return_logits else out.argmax(0)
    if return_logits:
        raise ValueError("return_logits needs mode='logits'")
    labels = logits.argmax(0).float()[None, None]
    # outside the input frame nearest sampling with zero padding gives 0 = background (CorrPM's border 0)
    out = F.grid_sample(labels, grid, mode="nearest", padding_mode="zeros", align_corners=False)[0, 0]
    return out.round().long()


# -- the postprocess contract (docs/task_contract.md) ------------------------------------------------


@dataclass
class EvalContext:
    """What a postprocess knows besides the net's outputs and the batch.

    ``forward(images)`` runs the net's evaluation forward (with the task's test-time augmentation) on
    other images, e.g. person crops; ``flip_permutation`` maps each class to its mirrored class.
    """

    dataset: str
    num_classes: int
    class_names: list[str]
    flip_permutation: np.ndarray
    dataset_idx: int = 0
    return_logits: bool = False
    forward: Callable | None = None


class DenseSemantic:
    """Postprocess of FCN parsers: ``outputs[output]`` (logits at the model's stride) → per-image class map at
    the original size (``map_back``: ``logits`` = bilinear logits there then argmax; ``labels`` = argmax in
    the input frame, nearest warp back, border 0, the CE2P / CorrPM protocol).

    On person-crop batches (``batch['person_crops']``, CorrPM on CIHP) each person's crop is parsed, mapped
    back with its own affine and pasted inside its mask in ascending score order (later, higher-scoring
    ones win on overlaps; pixels of no person are background); the persons are also returned as
    ``instances`` (part map, mask, box, score), so instance metrics (AP^p, PCP) score them.
    """

    produces = frozenset(
        {"semantic", "logits", "instances", "instances.parts", "instances.mask", "instances.box"}
    )

    def __init__(self, output: str = "seg", map_back: str = "logits", align_corners: bool = False):
        if map_back not in MAP_BACK_MODES:
            raise ValueError(f"map_back must be one of {MAP_BACK_MODES}, got {map_back!r}")
        self.output = output
        self.map_back = map_back
        self.align_corners = bool(align_corners)

    def input_logits(self, outputs: dict, size: tuple[int, int]) -> torch.Tensor:
        if self.output not in outputs:
            raise KeyError(f"model output {self.output!r} missing; the model returned {sorted(outputs)}")
        return upsample_to(outputs[self.output].float(), tuple(size), self.align_corners)

    def __call__(self, outputs: dict | None, batch: dict, ctx: EvalContext) -> list[dict]:
        if "person_crops" in batch:
            return [
                self.persons(p, tuple(m["orig_size"]), ctx)
                for p, m in zip(batch["person_crops"], batch["meta"])
            ]
        logits = self.input_logits(outputs, tuple(batch["image"].shape[-2:]))
        preds = []
        for i, m in enumerate(batch["meta"]):
            size = tuple(int(v) for v in m["orig_size"])
            if ctx.return_logits and self.map_back == "logits":
                lg = map_back(logits[i], m["affine"], size, "logits", return_logits=True)
                preds.append({"semantic": lg.argmax(0), "logits": lg})
            else:
                preds.append({"semantic": map_back(logits[i], m["affine"], size, self.map_back)})
        return preds

    def persons(self, persons: list[dict], orig_size: tuple[int, int], ctx: EvalContext) -> dict:
        h, w = (int(v) for v in orig_size)
        device = persons[0]["image"].device if persons else None
        out = torch.zeros((h, w), dtype=torch.long, device=device)
        instances: list[dict] = []
        if not persons:
            return {"semantic": out, "instances": instances}
        images = torch.stack([p["image"] for p in persons])
        logits = self.input_logits(ctx.forward(images), tuple(images.shape[-2:]))
        for i in sorted(range(len(persons)), key=lambda k: float(persons[k]["score"])):
            labels = map_back(logits[i], persons[i]["affine"], (h, w), self.map_back).to(out.device)
            mask = torch.as_tensor(persons[i]["mask"], device=out.device).bool()
            out[mask] = labels[mask]
            parts = torch.where(mask, labels, torch.zeros_like(labels))
            ys, xs = torch.nonzero(mask, as_tuple=True)
            box = (
                [float(xs.min()), float(ys.min()), float(xs.max()) + 1, float(ys.max()) + 1]
                if len(xs)
                else [0.0, 0.0, 0.0, 0.0]
            )
            instances.append(
                {"parts": parts, "mask": mask, "score": float(persons[i]["score"]), "box": box, "label": 1}
            )
        instances.sort(key=lambda d: -d["score"])
        return {"semantic": out, "instances": instances}


class TestTimeAugmentation:
    """Multi-scale + horizontal-flip inference for dense models (the papers' test protocols).

    The input is resized (bilinear) by each scale, optionally mirrored; every named output is upsampled
    back to the input size (bilinear, ``align_corners``), mirrored back — class-score outputs (as many
    channels as the dataset has classes) also get the left/right class swap — and the results are
    averaged (``reduce='mean'``) or summed (``'sum'``). ``output_scales`` gives an output its own scale
    list (PGN: edges only at scales ≥ 1). Outputs not named are taken from the unaugmented pass when it
    exists, else dropped.
    """

    def __init__(
        self,
        scales=(1.0,),
        flip: bool = False,
        outputs=("seg",),
        output_scales: dict | None = None,
        reduce: str = "mean",
        align_corners: bool = False,
    ):
        self.scales = [float(s) for s in scales]
        if not self.scales or any(s <= 0 for s in self.scales):
            raise ValueError(f"tta.scales must be positive numbers, got {list(scales)}")
        if reduce not in ("mean", "sum"):
            raise ValueError(f"tta.reduce must be mean or sum, got {reduce!r}")
        self.flip = bool(flip)
        self.outputs = list(outputs)
        self.output_scales = {k: [float(s) for s in v] for k, v in dict(output_scales or {}).items()}
        self.reduce = reduce
        self.align_corners = bool(align_corners)

    @property
    def active(self) -> bool:
        return self.flip or self.scales != [1.0] or bool(self.output_scales)

    def __call__(
        self,
        run: Callable[[torch.Tensor], dict],
        images: torch.Tensor,
        num_classes: int,
        flip_permutation: np.ndarray | None,
    ) -> dict:
        size = tuple(images.shape[-2:])
        scales = sorted(set(self.scales) | {s for v in self.output_scales.values() for s in v})
        sums: dict[str, torch.Tensor] = {}
        counts: dict[str, int] = {}
        plain: dict = {}
        perm = None
        if flip_permutation is not None:
            perm = torch.as_tensor(
                np.asarray(flip_permutation)[:num_classes].astype(np.int64), device=images.device
            )
        for s in scales:
            x = (
                images
                if s == 1.0
                else F.interpolate(
                    images,
                    scale_factor=s,
                    mode="bilinear",
                    align_corners=self.align_corners,
                    recompute_scale_factor=False,
                )
            )
            for flipped in (False, True) if self.flip else (False,):
                out = run(torch.flip(x, dims=[-1]) if flipped else x)
                if s == 1.0 and not flipped:
                    plain = out
                for name in self.outputs:
                    if s not in self.output_scales.get(name, self.scales) or name not in out:
                        continue
                    y = upsample_to(out[name].float(), size, self.align_corners)
                    if flipped:
                        y = torch.flip(y, dims=[-1])
                        if perm is not None and y.shape[1] == num_classes:
                            y = y.index_select(1, perm)
                    sums[name] = y if name not in sums else sums[name] + y
                    counts[name] = counts.get(name, 0) + 1
        merged = {k: v for k, v in plain.items() if k not in sums}
        for name, total in sums.items():
            merged[name] = total / counts[name] if self.reduce == "mean" else total
        return merged
