"""Seeded stand-ins for released checkpoints: a state dict under the released key names, drawn from a
seed at non-trivial scales, so that equality with the released network can be tested without its weights.

The values come from NumPy's PCG64 *bit generator* (its raw 64-bit stream is fixed by the algorithm, unlike
the distribution methods of ``numpy.random.Generator`` or torch's samplers, which may change between
releases), turned into uniforms by hand: the same state dict on every machine and version.

Scales (per released key name):

* conv / deconv weights: U(−a, a) with std 1/√fan_in (the theta/phi projections of a non-local block 3× that, so that its softmax is far from
  uniform and the correlation matters);
* conv biases: U(−0.1, 0.1);
* normalisation weights: |w| ~ U(0.4, 1.2), a quarter of them negative (U(0.1, 0.4) for the last BN of
  each residual block, as trained ResNets have); biases U(−0.2, 0.2);
* running means U(−0.3, 0.3), running variances U(0.5, 2.0); ``num_batches_tracked`` 1000.
"""

from __future__ import annotations

import json
import re
import zlib
from pathlib import Path

import numpy as np
import torch

DATA = Path(__file__).resolve().parents[1] / "data" / "released"
_LAST_BN = re.compile(r"(^|\.)layer\d+\.\d+\.bn3\.weight$")


def uniform(key: str, n: int, seed: int) -> np.ndarray:
    """``n`` float64 uniforms in [0, 1) for ``key``: PCG64 raw output, seeded by (seed, crc32(key))."""
    bits = np.random.PCG64([seed, zlib.crc32(key.encode())]).random_raw(n)
    return (bits >> np.uint64(11)).astype(np.float64) * (1.0 / 2**53)


def _sym(u: np.ndarray, a: float) -> np.ndarray:
    return (2.0 * u - 1.0) * a


def draw(key: str, shape: list[int], dtype: str, norm_modules: set[str], seed: int) -> torch.Tensor:
    """One tensor of the seeded state dict (see the module docstring for the scales)."""
    n = int(np.prod(shape)) if shape else 1
    if dtype.startswith("int"):
        return torch.full(shape, 1000, dtype=getattr(torch, dtype))
    module, _, leaf = key.rpartition(".")
    u = uniform(key, n, seed)
    if leaf == "running_mean":
        v = _sym(u, 0.3)
    elif leaf == "running_var":
        v = 0.5 + 1.5 * u
    elif module in norm_modules and leaf == "weight":
        lo, hi = (0.1, 0.4) if _LAST_BN.search(key) else (0.4, 1.2)
        sign = np.where(uniform(key + "#sign", n, seed) < 0.25, -1.0, 1.0)
        v = sign * (lo + (hi - lo) * u)
    elif module in norm_modules and leaf == "bias":
        v = _sym(u, 0.2)
    elif leaf == "bias":
        v = _sym(u, 0.1)
    elif len(shape) == 4:
        if "deconv" in module:  # ConvTranspose2d (in, out, k, k), stride 2: in·k²/4 inputs per output
            fan_in = shape[0] * shape[2] * shape[3] / 4
        else:
            fan_in = shape[1] * shape[2] * shape[3]
        gain = 3.0 if re.search(r"(theta|phi)(\.\d+)?$", module) else 1.0
        v = _sym(u, gain * np.sqrt(3.0 / fan_in))
    else:
        v = _sym(u, 0.1)
    return torch.from_numpy(v.reshape(shape).astype(np.float32))


def seeded_state_dict(keys: list[tuple[str, list[int], str]], seed: int = 0) -> dict[str, torch.Tensor]:
    """The seeded state dict for a released key list ``[(name, shape, dtype), ...]`` (normalisation layers
    are the modules with a ``running_mean``)."""
    norm_modules = {k.rsplit(".", 1)[0] for k, _, _ in keys if k.endswith(".running_mean")}
    return {k: draw(k, list(shape), dtype, norm_modules, seed) for k, shape, dtype in keys}


def released_keys(model: str, name: str) -> list[tuple[str, list[int], str]]:
    """The committed key list ``tests/data/released/<model>/<name>_keys.json``."""
    return [tuple(e) for e in json.loads((DATA / model / f"{name}_keys.json").read_text())]


def reference(model: str, name: str) -> dict[str, np.ndarray]:
    """The committed fixed input and released outputs ``tests/data/released/<model>/<name>_reference.npz``."""
    with np.load(DATA / model / f"{name}_reference.npz") as z:
        return {k: z[k] for k in z.files}


def to_released(
    ours: dict[str, torch.Tensor], fmt, dead: dict[str, list[int]] | None = None, wrapper: str = "module."
) -> dict[str, torch.Tensor]:
    """Our state dict written under the released names of ``fmt`` (the inverse of its key map), InPlace-ABN
    weights as the released file stores them (``w − eps``, every other one negated: ``|w'| + eps = w``),
    plus ``dead`` tensors of the given shapes: a released-format file for any size of the model."""
    out = {}
    for key, value in ours.items():
        if key.endswith("num_batches_tracked") and not key.startswith("pose_encoder."):
            continue
        best = max(
            ((o, n) for o, n in fmt.renames if key.startswith(n)), key=lambda p: len(p[1]), default=None
        )
        assert best is not None, key
        name = best[0] + key[len(best[1]) :]
        if fmt.abn_weight(name):
            value = (value - fmt.abn_eps) * torch.where(torch.arange(value.numel()) % 2 == 0, 1.0, -1.0)
        out[wrapper + name] = value.clone()
    for key, shape in (dead or {}).items():
        out[wrapper + key] = torch.randn(shape)
    return out
