"""Released checkpoints: load the authors' published weights into humanparse models.

Each model with a public checkpoint declares its **released format** once, in its own package
(``humanparse.models.<paper>.released.FORMAT``, listed in :data:`FORMATS`): how the released parameter
names map to ours, which released parameters are dead (never used in the released forward pass) and are
dropped on purpose, how released values become ours where the layers differ in parametrisation (e.g.
InPlace-ABN's ``|w| + eps`` scale), and the experiment preset that reproduces the released input
normalisation and evaluation protocol.

Two ways in, both strict (every released tensor is either mapped — with its shape checked — or declared
dead; every tensor of ours is filled, apart from declared counters such as ``num_batches_tracked``):

* ``python -m humanparse.convert model=<name> [data=<name>] released=<file> output=<file.ckpt>`` writes a
  humanparse checkpoint for ``evaluate`` / ``predict`` / ``train ckpt_path=``;
* ``model.weights=<released file>``: the task calls :func:`load_released_weights` right after building
  its net.

Files are read with ``torch.load(weights_only=True)``: a released checkpoint is a plain state dict, and a
file that needs arbitrary unpickling is refused with the reason.
"""

from __future__ import annotations

import hashlib
import importlib
import logging
import os
import pickle
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

log = logging.getLogger(__name__)

# model name (the model yaml's ``name``) → "module:attribute" of its ReleasedFormat
FORMATS: dict[str, str] = {
    "corrpm": "humanparse.models.corrpm.released:FORMAT",
    "parsing_rcnn": "humanparse.models.parsing_rcnn.released:FORMAT",
    "grapy": "humanparse.models.grapy.released:FORMAT",
    "grapy_ml": "humanparse.models.grapy.released:FORMAT_ML",
}

# our buffers a released file may lack: BatchNorm's step counter (no effect unless momentum is None);
# they keep the value of the freshly built net
OPTIONAL_SUFFIXES = ("num_batches_tracked",)


class ReleasedWeightsError(ValueError):
    """A released file that cannot be loaded: the message names the file and the problem."""


@dataclass(frozen=True)
class ReleasedFormat:
    """How one released codebase stores a model.

    Attributes:
        model: the humanparse model name (``name`` in ``conf/model/<name>.yaml``).
        source: where the released files come from and how its code loads them (for messages and records).
        renames: ``(released prefix, our prefix)`` pairs; a released key takes the longest matching prefix.
        dead: released key prefixes of parameters the released forward pass never uses, dropped on purpose.
        abn_weight: released key → whether it is the weight of an InPlace-ABN layer whose eval-mode scale
            is ``|w| + eps`` (CE2P's ``libs/src/bn.cu``); such values become ``|w| + abn_eps`` in our
            ``BatchNorm2d``, which applies its weight as it is.
        abn_eps: that layer's ``eps``.
        wrapper_prefixes: prefixes the released training wrapper adds to every key (``module.``).
        preset: experiment preset (``conf/experiment/<preset>.yaml``) with the released input
            normalisation and evaluation protocol.
        file_config: released state dict → the net sizes the file fixes, as attributes of the built net
            (``{"num_classes": 20, "num_joints": 16}``); a net built with other values is refused with a hint.
        settable: those of ``file_config`` that ``convert`` takes from the file (model config keys, e.g.
            ``num_joints``: the pose head's width is the file's, whatever the dataset); the others must agree
            with the config (``num_classes`` comes from ``data=``).
    """

    model: str
    source: str
    renames: tuple[tuple[str, str], ...]
    dead: tuple[str, ...] = ()
    abn_weight: Callable[[str], bool] = field(default=lambda key: False)
    abn_eps: float = 1e-5
    wrapper_prefixes: tuple[str, ...] = ("module.",)
    preset: str | None = None
    file_config: Callable[[Mapping[str, torch.Tensor]], dict] = field(default=lambda sd: {})
    settable: tuple[str, ...] = ()

    def rename(self, key: str) -> str | None:
        """Our key for a released key (``None``: no rule maps it)."""
        best = None
        for old, new in self.renames:
            if key.startswith(old) and (best is None or len(old) > len(best[0])):
                best = (old, new)
        return None if best is None else best[1] + key[len(best[0]) :]

    def is_dead(self, key: str) -> bool:
        return key.startswith(self.dead)

    def strip_wrapper(self, state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Drop a training-wrapper prefix present on every key (released ``evaluate.py`` strips ``module.``)."""
        for p in self.wrapper_prefixes:
            if state and all(k.startswith(p) for k in state):
                return {k[len(p) :]: v for k, v in state.items()}
        return dict(state)

    def dead_parameters(self, state: Mapping[str, torch.Tensor]) -> dict[str, int]:
        """Released dead tensors → element counts (running statistics included)."""
        return {k: int(v.numel()) for k, v in state.items() if self.is_dead(k)}

    def convert(
        self,
        state: Mapping[str, torch.Tensor],
        target: Mapping[str, torch.Tensor],
        path: str | os.PathLike = "<state dict>",
    ) -> dict[str, torch.Tensor]:
        """Released state dict → ours, for a net whose ``state_dict()`` is ``target``.

        Raises :class:`ReleasedWeightsError` (one line naming ``path``) on unmapped released keys, keys of
        ours left unfilled, or any shape difference.
        """
        state = self.strip_wrapper(state)
        out: dict[str, torch.Tensor] = {}
        unexpected, absent, shapes, seen = [], [], [], set()
        for key, value in state.items():
            if self.is_dead(key):
                continue
            ours = self.rename(key)
            if ours is None:
                unexpected.append(key)
                continue
            if ours not in target:
                absent.append(f"{key} (-> {ours})")
                continue
            if tuple(value.shape) != tuple(target[ours].shape):
                shapes.append(f"{key} {tuple(value.shape)} -> {ours} {tuple(target[ours].shape)}")
                seen.add(ours)
                continue
            if ours in out:
                raise ReleasedWeightsError(f"{path}: two released tensors map to {ours}")
            if self.abn_weight(key):
                value = value.abs() + self.abn_eps  # InPlace-ABN eval-mode scale |w| + eps
            out[ours] = value.to(dtype=target[ours].dtype)
        missing = [k for k in target if k not in out and k not in seen and not k.endswith(OPTIONAL_SUFFIXES)]
        problems = []
        if shapes:
            problems.append(f"{len(shapes)} shape mismatch(es): {_listing(shapes)}")
        if unexpected:
            problems.append(f"{len(unexpected)} unexpected released key(s): {_listing(unexpected)}")
        if absent:
            problems.append(
                f"{len(absent)} released key(s) with no counterpart in this net: {_listing(absent)}"
            )
        if missing:
            problems.append(f"{len(missing)} key(s) of ours missing from the file: {_listing(missing)}")
        if problems:
            raise ReleasedWeightsError(
                f"{path}: not a {self.source} checkpoint for this {self.model} config; " + "; ".join(problems)
            )
        for k in target:
            if k not in out:
                out[k] = target[k].clone()
        return out


def _listing(keys: list[str], limit: int = 40) -> str:
    shown = ", ".join(keys[:limit])
    return shown + (f", ... and {len(keys) - limit} more" if len(keys) > limit else "")


def get_format(model: str) -> ReleasedFormat:
    """The declared released format of a model (error listing the models that have one)."""
    if model not in FORMATS:
        raise ReleasedWeightsError(
            f"model {model!r} has no released-checkpoint format; models with one: "
            f"{', '.join(sorted(FORMATS))}"
        )
    module, attr = FORMATS[model].split(":")
    return getattr(importlib.import_module(module), attr)


def read_released(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """A released state dict, read with ``torch.load(weights_only=True)``.

    Accepts a plain ``{name: tensor}`` dict, or one nested once under ``state_dict`` / ``model``. Refuses
    (with the reason) a file that needs more than tensors and plain containers to unpickle, or that holds
    no state dict.
    """
    p = Path(path)
    if not p.is_file():
        raise ReleasedWeightsError(f"{p}: released weights file does not exist")
    try:
        obj = torch.load(p, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        for line in str(e).splitlines():
            if "Unsupported global" in line or "unsupported" in line.lower():
                reason = line.strip()
                break
        raise ReleasedWeightsError(
            f"{p}: refused: the file needs more than tensors to load (torch.load(weights_only=True): {reason}); "
            "released checkpoints are plain state dicts, so re-save it as one, e.g. "
            "torch.save({k: v for k, v in sd.items()}, 'plain.pth'), in an environment you trust"
        ) from None
    except Exception as e:  # noqa: BLE001 - any read failure is reported with the file name
        raise ReleasedWeightsError(
            f"{p}: cannot read the released weights ({type(e).__name__}: {e})"
        ) from None
    for key in ("state_dict", "model"):
        if (
            isinstance(obj, dict)
            and isinstance(obj.get(key), dict)
            and not isinstance(obj.get(key), torch.Tensor)
        ):
            obj = obj[key]
            break
    if not isinstance(obj, dict) or not obj:
        raise ReleasedWeightsError(f"{p}: expected a state dict (name -> tensor), got {type(obj).__name__}")
    bad = [str(k) for k, v in obj.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if bad:
        raise ReleasedWeightsError(
            f"{p}: expected a state dict (name -> tensor); non-tensor entries: {_listing(bad, 10)}"
        )
    return obj


def file_sha256(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            h.update(chunk)
    return h.hexdigest()


def released_record(path: str | os.PathLike, fmt: ReleasedFormat, dead: Mapping[str, int]) -> dict:
    """What a run records about the released file it started from (``metrics.json``, checkpoints, compare)."""
    p = Path(path).resolve()
    return {
        "file": str(p),
        "name": p.name,
        "sha256": file_sha256(p),
        "model": fmt.model,
        "format": fmt.source,
        "dropped_dead": int(sum(dead.values())),
    }


def check_sizes(fmt: ReleasedFormat, state: Mapping[str, torch.Tensor], net: nn.Module, path) -> None:
    """Refuse a net built with other sizes than the file's (before the key-by-key shape check)."""
    for key, value in fmt.file_config(state).items():
        built = getattr(net, key, None)
        if built and int(built) != int(value):  # 0: the branch is not built (the key check names it)
            hint = (
                f"set model.{key}={value}"
                if key in fmt.settable
                else "num_classes follows data=...: choose the dataset the file was trained on"
                if key == "num_classes"
                else f"build the model with {key}={value}"
            )
            raise ReleasedWeightsError(
                f"{path}: the released file has {key}={value} but the model is built with "
                f"{key}={built}; {hint}"
            )


def net_of(task_or_net: nn.Module) -> nn.Module:
    """The network of a task (its ``net`` attribute), or the module itself."""
    net = getattr(task_or_net, "net", None)
    return net if isinstance(net, nn.Module) else task_or_net


def load_released_weights(task_or_net: nn.Module, path: str | os.PathLike, model_name: str) -> dict:
    """Load a released checkpoint into a built net (or a task's ``net``) in place, strictly.

    Returns the record of the file (also set as ``released_weights`` on the net and on the task) that
    ``metrics.json`` and ``compare`` report.
    """
    fmt = get_format(model_name)
    net = net_of(task_or_net)
    state = fmt.strip_wrapper(read_released(path))
    check_sizes(fmt, state, net, path)
    converted = fmt.convert(state, net.state_dict(), path)
    net.load_state_dict(converted, strict=True)
    dead = fmt.dead_parameters(state)
    record = released_record(path, fmt, dead)
    log.info(
        "loaded released %s weights %s (%d tensors; %d dead released values dropped: %s)",
        model_name,
        path,
        len(state) - len(dead),
        record["dropped_dead"],
        ", ".join(sorted({k.rsplit(".", 2)[0] for k in dead})),
    )
    net.released_weights = record
    if task_or_net is not net:
        task_or_net.released_weights = record
    return record


def released_of(task_or_net: nn.Module) -> dict | None:
    """The record of the released file a task (or its net) was loaded from, if any."""
    return getattr(task_or_net, "released_weights", None) or getattr(
        net_of(task_or_net), "released_weights", None
    )
