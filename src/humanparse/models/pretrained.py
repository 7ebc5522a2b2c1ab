"""Pretrained weights: by name (torchvision / timm / smp hubs) or from a local file, failing fast offline.

``pretrained`` in a model config is one of:

* ``null`` — random initialisation;
* a path to a local file (``.pth``/``.pt``/``.bin``/``.safetensors``) holding a state dict (possibly
  nested under ``state_dict``/``model``) of the backbone — keys are matched after stripping common
  prefixes, and the number of loaded tensors is logged;
* a weight name the underlying library understands (e.g. ``imagenet``). Before asking the library to
  download, the host is probed with a short timeout, so an offline machine gets a clear error at once
  instead of a hang. With ``HF_HUB_OFFLINE=1`` the probe is skipped and the library's local cache is used.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

log = logging.getLogger(__name__)

HOSTS = ("huggingface.co", "download.pytorch.org")


class PretrainedWeightsError(RuntimeError):
    pass


def reachable(host: str, port: int = 443, timeout: float = 4.0) -> bool:
    """True if a TCP connection to ``host:port`` opens within ``timeout`` s (DNS included)."""
    result: list[bool] = []

    def probe():
        try:
            with socket.create_connection((host, port), timeout=timeout):
                result.append(True)
        except OSError:
            result.append(False)

    t = threading.Thread(target=probe, daemon=True)
    t.start()
    t.join(timeout + 1.0)
    return bool(result and result[0])


def is_local_file(spec) -> bool:
    return isinstance(spec, (str, os.PathLike)) and (
        os.sep in str(spec) or Path(spec).suffix in {".pth", ".pt", ".bin", ".safetensors", ".ckpt"}
    )


def require_download(what: str, spec: str, hosts=HOSTS) -> None:
    """Raise :class:`PretrainedWeightsError` unless a weight host is reachable (or HF_HUB_OFFLINE=1)."""
    if os.environ.get("HF_HUB_OFFLINE") == "1":
        return
    if not any(reachable(h) for h in hosts):
        raise PretrainedWeightsError(
            f"cannot download pretrained weights {spec!r} for {what}: none of {', '.join(hosts)} is reachable "
            "from this machine. Download the weights elsewhere and pass a local file "
            "(model.pretrained=/path/to/weights.pth), set HF_HUB_OFFLINE=1 if they are already in your "
            "Hugging Face / torch cache, or train from scratch with model.pretrained=null."
        )


def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    path = Path(path)
    if not path.is_file():
        raise PretrainedWeightsError(f"pretrained weights file {path} does not exist")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        sd = load_file(str(path))
    else:
        try:
            sd = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:  # noqa: BLE001 - report any unpickling problem with the file name
            raise PretrainedWeightsError(f"{path}: cannot read weights ({e})") from e
    for key in ("state_dict", "model", "model_state"):
        if isinstance(sd, dict) and key in sd and isinstance(sd[key], dict):
            sd = sd[key]
    if not isinstance(sd, dict):
        raise PretrainedWeightsError(f"{path}: expected a state dict, got {type(sd).__name__}")
    return sd


def load_into(
    module: nn.Module,
    path: str | os.PathLike,
    prefixes=("module.", "encoder.", "backbone.", "model."),
    key_map: Callable[[dict], dict] | None = None,
) -> int:
    """Load a local state dict into ``module``; returns the number of tensors loaded.

    ``key_map`` may first rename the file's keys (e.g. another codebase's layer names). Keys are then
    tried as they are and with the common wrapper prefixes stripped. Shape mismatches and a file that
    matches nothing are errors; missing keys (e.g. a classifier head) are logged.
    """
    sd = read_state_dict(path)
    if key_map is not None:
        sd = key_map(sd)
    own = module.state_dict()
    mapped: dict[str, torch.Tensor] = {}
    for k, v in sd.items():
        cand = [k] + [k[len(p) :] for p in prefixes if k.startswith(p)]
        for c in cand:
            if c in own:
                if own[c].shape != v.shape:
                    raise PretrainedWeightsError(
                        f"{path}: tensor {k!r} has shape {tuple(v.shape)}, model expects {tuple(own[c].shape)}"
                    )
                mapped[c] = v
                break
    if not mapped:
        raise PretrainedWeightsError(f"{path}: no tensor name matches the {type(module).__name__} parameters")
    missing = [k for k in own if k not in mapped]
    module.load_state_dict(mapped, strict=False)
    log.info(
        "loaded %d/%d tensors from %s (%d missing%s)",
        len(mapped),
        len(own),
        path,
        len(missing),
        f", e.g. {missing[:3]}" if missing else "",
    )
    return len(mapped)
