"""Dot-product attention and the non-local block (Wang et al., CVPR 2018), shared by CorrPM's
heterogeneous non-local block, its self-correlation ablation ("PP") and Parsing R-CNN's GCE.

The affinity ``softmax(scale · θᵀφ)`` between N query and M key positions (at CorrPM's 384² input a
9216×2304 matrix per image) has three interchangeable kernels, ``impl``:

* ``sdpa``: ``torch.nn.functional.scaled_dot_product_attention``. Its fused kernels (flash /
  memory-efficient on GPU) never hold the N×M matrix, so GPU memory stays linear in N and M. The default
  on GPUs.
* ``chunked``: queries in chunks of about 16 MB of scores each; per chunk the two products are 1×1
  convolutions with the keys / values as weights (oneDNN), the softmax runs over the chunk, and autograd
  differentiates through them. Written by hand because on the CPU the fused kernel's block products go
  through the BLAS sgemm, which runs at about half the speed of oneDNN's convolution kernels on the
  machines we measured (AMD EPYC: 105 vs 186 GMAC/s; CorrPM's non-local forward + backward 0.45 s →
  0.23 s, ``scripts/benchmark_corrpm.py``). The default on CPUs. Only one chunk's scores exist at a
  time in the forward pass; the backward pass keeps each chunk's probabilities.
* ``explicit``: builds the whole matrix; kept for relation-map visualisation (CorrPM Fig. 4) and for
  the tests that the kernels agree.

``auto`` picks ``sdpa`` for CUDA tensors and ``chunked`` otherwise.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

ATTENTION_IMPLS = ("auto", "sdpa", "chunked", "explicit")
CHUNK_BYTES = 16_000_000  # scores per chunk: below glibc's 32 MB mmap ceiling, so buffers are reused


def _chunked_attention(
    query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, scale: float
) -> torch.Tensor:
    """``softmax(scale·q·kᵀ)·v`` with queries in chunks and both products as 1×1 convolutions."""
    lead, (n, d), (m, dv) = query.shape[:-2], query.shape[-2:], value.shape[-2:]
    q = query.reshape(-1, n, d)
    k = key.reshape(-1, m, d)
    v = value.reshape(-1, m, dv)
    step = max(1, CHUNK_BYTES // (4 * m))
    outs = []
    for b in range(q.shape[0]):
        w_key = (k[b] * scale).reshape(m, d, 1, 1)  # conv weight (out = key positions, in = d)
        w_val = v[b].t().reshape(dv, m, 1, 1)  # conv weight (out = dv, in = key positions)
        rows = []
        for s in range(0, n, step):
            # (n_c, d) rows → a (1, d, n_c, 1) map whose channels are contiguous (channels-last)
            x = q[b, s : s + step].t().unsqueeze(0).unsqueeze(-1)
            p = F.conv2d(x, w_key).softmax(dim=1)  # (1, m, n_c, 1): one softmax per query over the keys
            rows.append(F.conv2d(p, w_val)[0, :, :, 0].t())  # (n_c, dv)
        outs.append(torch.cat(rows, 0))
    return torch.stack(outs).reshape(*lead, n, dv)


def dot_product_attention(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    scale: float | None = None,
    impl: str = "auto",
) -> torch.Tensor:
    """``softmax(scale · query · keyᵀ) · value`` for (..., N, d), (..., M, d), (..., M, dv) tensors.

    ``scale=None`` is 1/√d (transformer attention); the non-local block uses 1.0 (no scaling).
    ``impl``: ``auto`` | ``sdpa`` | ``chunked`` | ``explicit`` (module docstring).
    """
    if impl not in ATTENTION_IMPLS:
        raise ValueError(f"attention impl must be one of {ATTENTION_IMPLS}, got {impl!r}")
    s = scale if scale is not None else query.shape[-1] ** -0.5
    if impl == "auto":
        impl = "sdpa" if query.is_cuda else "chunked"
    if impl == "explicit":
        return torch.softmax(torch.matmul(query, key.transpose(-1, -2)) * s, dim=-1) @ value
    if impl == "chunked":
        return _chunked_attention(query, key, value, s)
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
        attention: the affinity kernel, ``auto`` | ``sdpa`` | ``chunked`` | ``explicit`` (module docstring).
    """

    def __init__(
        self,
        channels: int,
        inter_channels: int | None = None,
        query_channels: int | None = None,
        subsample: int = 2,
        scale: float = 1.0,
        attention: str = "auto",
    ):
        super().__init__()
        inter = inter_channels or max(1, channels // 2)
        self.theta = nn.Conv2d(query_channels or channels, inter, 1)
        self.phi = nn.Conv2d(channels, inter, 1)
        self.g = nn.Conv2d(channels, inter, 1)
        self.pool = nn.MaxPool2d(subsample) if subsample > 1 else nn.Identity()
        self.W = nn.Sequential(nn.Conv2d(inter, channels, 1), nn.BatchNorm2d(channels))
        nn.init.zeros_(self.W[1].weight)
        nn.init.zeros_(self.W[1].bias)
        if attention not in ATTENTION_IMPLS:
            raise ValueError(f"attention must be one of {ATTENTION_IMPLS}, got {attention!r}")
        self.scale = scale
        self.attention = attention

    def _qkv(
        self, x: torch.Tensor, query: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """θ(query), pool(φ(x)), pool(g(x)) as (B, positions, inter) matrices."""
        if query is not None and query.shape[-2:] != x.shape[-2:]:
            raise ValueError(
                f"query map {tuple(query.shape[-2:])} and input map {tuple(x.shape[-2:])} differ in size"
            )
        q = self.theta(x if query is None else query)
        return _positions(q), _positions(self.pool(self.phi(x))), _positions(self.pool(self.g(x)))

    def affinity(self, x: torch.Tensor, query: torch.Tensor | None = None) -> torch.Tensor:
        """The (B, H·W, M) relation map S (rows: query positions; M = key positions after pooling)."""
        q, k, _ = self._qkv(x, query)
        return torch.softmax(torch.matmul(q, k.transpose(-1, -2)) * self.scale, dim=-1)

    def forward(self, x: torch.Tensor, query: torch.Tensor | None = None) -> torch.Tensor:
        b, _, h, w = x.shape
        q, k, v = self._qkv(x, query)
        y = dot_product_attention(q, k, v, scale=self.scale, impl=self.attention)  # (B, H·W, inter)
        y = y.view(b, h, w, -1).permute(0, 3, 1, 2)  # NCHW view with channels-last strides, no copy
        return self.W(y) + x
