"""Dot-product attention and the non-local block (Wang et al., CVPR 2018), shared by CorrPM's
heterogeneous non-local block, its self-correlation ablation ("PP") and Parsing R-CNN's GCE.

The affinity ``softmax(scale · θᵀφ)`` between N query and M key positions is computed with
``torch.nn.functional.scaled_dot_product_attention``: its fused kernels (flash / memory-efficient on
GPU, flash on CPU) never hold the N×M matrix, so memory stays linear in N and M — at CorrPM's 384²
input that matrix is 9216×2304 per image. The explicit path, which does build it, is kept for
visualising relation maps (CorrPM Fig. 4) and for the test that both paths agree.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def dot_product_attention(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, scale: float | None = None,
                          explicit: bool = False) -> torch.Tensor:
    """``softmax(scale · query · keyᵀ) · value`` for (..., N, d), (..., M, d), (..., M, dv) tensors.

    ``scale=None`` is 1/√d (transformer attention); the non-local block uses 1.0 (no scaling).
    ``explicit=True`` materialises the (..., N, M) affinity instead of using the fused kernel.
    """
    if explicit:
        s = scale if scale is not None else query.shape[-1] ** -0.5
        return torch.softmax(torch.matmul(query, key.transpose(-1, -2)) * s, dim=-1) @ value
    return F.scaled_dot_product_attention(query, key, value, scale=scale)


def _positions(x: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) → (B, H·W, C): one row per position; a view (no copy) when ``x`` is channels-last."""
    return x.permute(0, 2, 3, 1).flatten(1, 2)


class NonLocal2d(nn.Module):
    """Non-local block, embedded-Gaussian form, with optional queries from another feature map.

    ``z = W(softmax(scale · θ(q)ᵀ φ(x)) · g(x)) + x`` where ``q = x`` (self non-local) or a separate
    ``query`` map of the same spatial size (CorrPM's heterogeneous non-local: q = the hybrid feature fh,
    paper §3.3 Eq. 2–3).

    * θ, φ, g: conv1x1 → ``inter_channels`` (with bias); φ and g are followed by a ``subsample``×
      ``subsample`` max-pool, so keys/values live at 1/subsample² of the positions (released code:
      ``sub_sample=True``, 2×2).
    * W: conv1x1 back to ``channels`` (with bias) then BatchNorm with γ = β = 0 at initialisation: the
      block starts as the identity ("Wb is initialized as 0").
    * ``scale``: 1.0 = no 1/√d scaling (released code and Eq. 2).

    Args:
        channels: channels of ``x`` (and of the output).
        inter_channels: width of θ, φ, g (default ``channels // 2``, as the released code).
        query_channels: channels of ``query`` (default ``channels``).
        subsample: max-pool factor of keys/values (1 = none).
        explicit: build the affinity matrix instead of using the fused attention kernel.
    """

    def __init__(self, channels: int, inter_channels: int | None = None, query_channels: int | None = None,
                 subsample: int = 2, scale: float = 1.0, explicit: bool = False):
        super().__init__()
        inter = inter_channels or max(1, channels // 2)
        self.theta = nn.Conv2d(query_channels or channels, inter, 1)
        self.phi = nn.Conv2d(channels, inter, 1)
        self.g = nn.Conv2d(channels, inter, 1)
        self.pool = nn.MaxPool2d(subsample) if subsample > 1 else nn.Identity()
        self.W = nn.Sequential(nn.Conv2d(inter, channels, 1), nn.BatchNorm2d(channels))
        nn.init.zeros_(self.W[1].weight)
        nn.init.zeros_(self.W[1].bias)
        self.scale = scale
        self.explicit = explicit

    def _qkv(self, x: torch.Tensor, query: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """θ(query), pool(φ(x)), pool(g(x)) as (B, positions, inter) matrices."""
        if query is not None and query.shape[-2:] != x.shape[-2:]:
            raise ValueError(f"query map {tuple(query.shape[-2:])} and input map {tuple(x.shape[-2:])} differ in size")
        q = self.theta(x if query is None else query)
        return _positions(q), _positions(self.pool(self.phi(x))), _positions(self.pool(self.g(x)))

    def affinity(self, x: torch.Tensor, query: torch.Tensor | None = None) -> torch.Tensor:
        """The (B, H·W, M) relation map S (rows: query positions; M = key positions after pooling)."""
        q, k, _ = self._qkv(x, query)
        return torch.softmax(torch.matmul(q, k.transpose(-1, -2)) * self.scale, dim=-1)

    def forward(self, x: torch.Tensor, query: torch.Tensor | None = None) -> torch.Tensor:
        b, _, h, w = x.shape
        q, k, v = self._qkv(x, query)
        y = dot_product_attention(q, k, v, scale=self.scale, explicit=self.explicit)  # (B, H·W, inter)
        y = y.view(b, h, w, -1).permute(0, 3, 1, 2)  # NCHW view with channels-last strides, no copy
        return self.W(y) + x
