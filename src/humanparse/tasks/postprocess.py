"""Mapping network outputs back to the original image (metrics.md §1.4).

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

import numpy as np
import torch
import torch.nn.functional as F

MAP_BACK_MODES = ("logits", "labels")


def sampling_grid(affine, orig_size: tuple[int, int], input_size: tuple[int, int], device=None) -> torch.Tensor:
    """Grid (1, H, W, 2) in ``grid_sample``'s normalised coordinates (align_corners=False)."""
    m = torch.as_tensor(np.asarray(affine, dtype=np.float64), dtype=torch.float64, device=device)
    h, w = orig_size
    ih, iw = input_size
    ys, xs = torch.meshgrid(
        torch.arange(h, dtype=torch.float64, device=device), torch.arange(w, dtype=torch.float64, device=device), indexing="ij"
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
        out = F.grid_sample(logits.unsqueeze(0).float(), grid, mode="bilinear", padding_mode="border", align_corners=False)[0]
        return out if return_logits else out.argmax(0)
    if return_logits:
        raise ValueError("return_logits needs mode='logits'")
    labels = logits.argmax(0).float()[None, None]
    # outside the input frame nearest sampling with zero padding gives 0 = background (CorrPM's border 0)
    out = F.grid_sample(labels, grid, mode="nearest", padding_mode="zeros", align_corners=False)[0, 0]
    return out.round().long()
