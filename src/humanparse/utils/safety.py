"""Reading user files without running code from them.

* :func:`safe_torch_load` reads checkpoints and weight files with ``torch.load(weights_only=True)``: a
  pickle that would call anything (``os.system``, ``builtins.exec``, ...) is refused. The only non-tensor
  types registered as safe are those humanparse checkpoints hold: OmegaConf containers (a task's
  hyper-parameters keep the ``DictConfig`` Hydra passed in) and their node types. Missing, empty,
  truncated, corrupt, foreign and code-carrying files raise :class:`CheckpointError` naming the file.
* :func:`check_config_targets` / :func:`safe_instantiate`: a config that came from a file (the run config
  stored in a checkpoint, a run folder's ``run_config.yaml``) only builds objects from an allowlist — the
  project's own classes and the libraries it builds on. ``_target_: pathlib.Path.write_text`` (which Hydra
  itself does not block) is refused with the config key and the target named. The classes named by the
  user's own config folder (``HUMANPARSE_CONFIG_DIR``: models from outside the package) and prefixes in
  ``HUMANPARSE_TRUSTED_TARGETS`` are trusted too: both are set by the person running the command, never by
  a stored file.
"""

from __future__ import annotations

import collections
import functools
import os
import pickle
import typing
import zipfile
from pathlib import Path
from typing import Any

import torch

from humanparse.utils.errors import UserError

# -- what a stored config may build --------------------------------------------------------------------
# Module prefixes whose *classes* a stored config may instantiate (functions are refused unless listed in
# ALLOWED_CALLABLES): a class of these packages builds a model part, a loss, an optimiser, a schedule, a
# data module or a Lightning callback/logger; no class here runs a shell or writes a file the config names
# beyond the run's own outputs.
ALLOWED_CLASS_PREFIXES: tuple[str, ...] = (
    "humanparse.models.",
    "humanparse.tasks.",
    "humanparse.data.",
    "humanparse.callbacks.",
    "humanparse.metrics.",
    "humanparse.evaluation.",
    "torch.nn.",
    "torch.optim.",
    "torchvision.models.",
    "torchvision.ops.",
    "torchvision.transforms.",
    "timm.models.",
    "timm.layers.",
    "timm.optim.",
    "timm.scheduler.",
    "segmentation_models_pytorch.",
    "pytorch_lightning.callbacks.",
    "pytorch_lightning.loggers.",
    "pytorch_lightning.strategies.",
    "pytorch_lightning.plugins.",
    "pytorch_lightning.profilers.",
    "pytorch_lightning.accelerators.",
    "lightning.pytorch.callbacks.",
    "lightning.pytorch.loggers.",
    "lightning.pytorch.strategies.",
    "lightning.pytorch.plugins.",
    "lightning.pytorch.profilers.",
    "lightning.pytorch.accelerators.",
    "hydra_plugins.",
)
# exact targets allowed besides: the Trainer, and the libraries' model factories
ALLOWED_EXACT: frozenset[str] = frozenset(
    {
        "pytorch_lightning.Trainer",
        "lightning.pytorch.Trainer",
        "pytorch_lightning.trainer.trainer.Trainer",
        "timm.create_model",
        "segmentation_models_pytorch.create_model",
    }
)
# never, whatever the prefix: the synthetic-data generators (they write files) and the command-line tools
DENIED_PREFIXES: tuple[str, ...] = ("humanparse.synthetic", "humanparse.tools")
# extra prefixes the user trusts (their own callbacks in a stored config), comma separated; set by the
# person running the command, never read from a config
TRUSTED_ENV = "HUMANPARSE_TRUSTED_TARGETS"


class ConfigTargetError(UserError, ValueError):
    """A stored config names a ``_target_`` outside the allowlist (or one that cannot be checked)."""


class CheckpointError(UserError, ValueError):
    """A checkpoint or weights file is missing, unreadable, unsafe or does not fit the model. Names the file."""

    def __init__(self, path: str | os.PathLike, problem: str):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


# the user's own config folder (their models from outside the package, see the README): the targets its
# yamls name are their own code, trusted like the allowlist
USER_CONFIG_ENV = "HUMANPARSE_CONFIG_DIR"


def _trusted_extra() -> tuple[str, ...]:
    return tuple(p.strip() for p in os.environ.get(TRUSTED_ENV, "").split(",") if p.strip())


@functools.lru_cache(maxsize=8)
def _targets_in_folder(folder: str) -> frozenset[str]:
    """Every ``_target_`` named by the yaml files under ``folder`` (unreadable files skipped)."""
    import yaml

    found: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            t = node.get("_target_")
            if isinstance(t, str):
                found.add(t)
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    for i, path in enumerate(sorted(Path(folder).rglob("*.yaml"))):
        if i >= 2000:
            break
        try:
            walk(yaml.safe_load(path.read_text()))
        except Exception:  # noqa: BLE001 - a yaml that does not parse names nothing
            continue
    return frozenset(found)


def _user_config_targets() -> frozenset[str]:
    folder = os.environ.get(USER_CONFIG_ENV)
    if not folder or not Path(folder).expanduser().is_dir():
        return frozenset()
    return _targets_in_folder(str(Path(folder).expanduser().resolve()))


def target_allowed(target: str) -> tuple[bool, str]:
    """(allowed, why not) for one dotted ``_target_``."""
    if not isinstance(target, str) or not target or "${" in target:
        return False, "not a plain dotted name"
    if any(target == d or target.startswith(d + ".") for d in DENIED_PREFIXES):
        return False, "writes files"
    if any(target == t or target.startswith(t if t.endswith(".") else t + ".") for t in _trusted_extra()):
        return True, ""
    if target in ALLOWED_EXACT or target in _user_config_targets():
        return True, ""
    if not target.startswith(ALLOWED_CLASS_PREFIXES):
        return False, "outside the allowed packages"
    # the prefix is trusted, so importing its module is safe; only classes may be built from it
    try:
        from hydra._internal.utils import _locate

        obj = _locate(target)
    except Exception as e:  # noqa: BLE001 - an unknown name is refused, as Hydra would fail on it anyway
        return False, f"cannot be found ({type(e).__name__})"
    if not isinstance(obj, type):
        return False, "is a function, only classes may be built from a stored config"
    return True, ""


def check_config_targets(cfg: Any, where: str) -> None:
    """Refuse a config (dict/list/DictConfig) that would instantiate anything outside the allowlist.

    Every ``_target_`` at any depth (also under ``_partial_`` nodes and in lists) is checked; the error
    names ``where`` (the file), the config key path and the target.
    """
    from omegaconf import DictConfig, ListConfig, OmegaConf

    if isinstance(cfg, (DictConfig, ListConfig)):
        try:
            cfg = OmegaConf.to_container(cfg, resolve=True)
        except Exception:  # noqa: BLE001 - ${hydra:...} cannot resolve outside a job: check the raw text
            cfg = OmegaConf.to_container(cfg, resolve=False)

    def walk(node: Any, path: str) -> None:
        if isinstance(node, dict):
            if "_target_" in node:
                ok, why = target_allowed(node["_target_"])
                if not ok:
                    key = f"{path}._target_" if path else "_target_"
                    raise ConfigTargetError(
                        f"{where}: refusing to build {key}={node['_target_']!r} ({why}); a stored config may only "
                        f"build classes of {', '.join(p.rstrip('.') for p in ALLOWED_CLASS_PREFIXES[:8])}, ... "
                        f"(set {TRUSTED_ENV}=<prefix> to trust your own code)"
                    )
            for k, v in node.items():
                walk(v, f"{path}.{k}" if path else str(k))
        elif isinstance(node, (list, tuple)):
            for i, v in enumerate(node):
                walk(v, f"{path}[{i}]")

    walk(cfg, "")


def safe_instantiate(cfg: Any, where: str, **kwargs):
    """``hydra.utils.instantiate`` of a config that came from a file, after :func:`check_config_targets`."""
    import hydra

    check_config_targets(cfg, where)
    return hydra.utils.instantiate(cfg, **kwargs)


# -- checkpoints ---------------------------------------------------------------------------------------
def _safe_globals() -> list:
    from omegaconf import DictConfig, ListConfig
    from omegaconf.base import ContainerMetadata, Metadata
    from omegaconf.nodes import AnyNode, BooleanNode, BytesNode, FloatNode, IntegerNode, PathNode, StringNode

    return [
        DictConfig,
        ListConfig,
        ContainerMetadata,
        Metadata,
        AnyNode,
        StringNode,
        IntegerNode,
        FloatNode,
        BooleanNode,
        BytesNode,
        PathNode,
        typing.Any,
        collections.defaultdict,
        # builtin types: the element/key types in a container's metadata
        dict,
        list,
        int,
        float,
        str,
        bool,
    ]


def register_safe_globals() -> None:
    """Register the types humanparse checkpoints hold with ``torch.serialization`` (idempotent), so that
    Lightning's own ``weights_only=True`` loads accept them too."""
    torch.serialization.add_safe_globals(_safe_globals())


register_safe_globals()


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def safe_torch_load(
    path: str | os.PathLike, what: str = "checkpoint", map_location="cpu", humanparse: bool = True
) -> Any:
    """``torch.load(path, weights_only=True)`` with every failure turned into :class:`CheckpointError`.

    ``humanparse=True``: the file must be a Lightning checkpoint written by humanparse (``state_dict`` and
    the stored run config), and that config must pass :func:`check_config_targets`.
    """
    s = str(path)
    if s.startswith(("http://", "https://", "s3://", "gs://")):
        raise CheckpointError(s, f"remote {what}s are not read; download the file and pass its path")
    p = Path(s).expanduser()
    if not p.exists():
        raise CheckpointError(p, f"no such {what} file")
    if p.is_dir():
        raise CheckpointError(p, f"is a folder, not a {what} file")
    if p.stat().st_size == 0:
        raise CheckpointError(p, f"empty file (0 bytes), not a {what}")
    try:
        obj = torch.load(p, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        if "weights only load failed" in str(e).lower() or "weights_only" in str(e):
            detail = next(
                (ln.strip() for ln in str(e).splitlines() if "Unsupported" in ln or "global" in ln.lower()),
                _first_line(e),
            )
            raise CheckpointError(
                p,
                f"refused: the {what} holds Python objects beyond weights, which could run "
                f"code when loaded ({detail})",
            ) from None
        raise CheckpointError(p, f"corrupt {what} ({_first_line(e)})") from None
    except (
        RuntimeError,
        EOFError,
        zipfile.BadZipFile,
        OSError,
        ValueError,
        KeyError,
        AttributeError,
        TypeError,
        IndexError,
        MemoryError,
    ) as e:
        raise CheckpointError(
            p, f"corrupt or truncated {what} ({type(e).__name__}: {_first_line(e)})"
        ) from None
    if not humanparse:
        return obj
    if not isinstance(obj, dict) or not isinstance(obj.get("state_dict"), dict):
        raise CheckpointError(p, f"not a Lightning checkpoint (no state_dict; got {type(obj).__name__})")
    stored = (obj.get("humanparse") or {}).get("config") if isinstance(obj.get("humanparse"), dict) else None
    if not isinstance(stored, dict) or not stored:
        raise CheckpointError(p, "not a humanparse checkpoint (no stored run config)")
    check_config_targets(stored, f"{p} (config stored in the checkpoint)")
    return obj


def check_weights_fit(
    module: torch.nn.Module,
    state_dict: dict,
    path: str | os.PathLike,
    ignore_prefixes: tuple[str, ...] = ("evaluators.",),
) -> None:
    """Raise :class:`CheckpointError` when ``state_dict`` does not fit ``module`` exactly (missing or
    unexpected keys, other shapes): a checkpoint of another architecture, named as such. Keys under
    ``ignore_prefixes`` (metric states, which a task tolerates either way) are not compared."""
    own = {k: v for k, v in module.state_dict().items() if not k.startswith(ignore_prefixes)}
    state_dict = {k: v for k, v in state_dict.items() if not k.startswith(ignore_prefixes)}
    missing = [k for k in own if k not in state_dict]
    unexpected = [k for k in state_dict if k not in own]
    shapes = [
        k
        for k in own
        if k in state_dict
        and hasattr(state_dict[k], "shape")
        and tuple(state_dict[k].shape) != tuple(own[k].shape)
    ]
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f"{len(missing)} weights missing (e.g. {missing[0]})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected (e.g. {unexpected[0]})")
        if shapes:
            k = shapes[0]
            parts.append(
                f"{len(shapes)} of another shape (e.g. {k}: {tuple(state_dict[k].shape)} in the file, "
                f"{tuple(own[k].shape)} in the model)"
            )
        raise CheckpointError(path, "the weights do not fit the model's architecture: " + "; ".join(parts))


def load_weights(module: torch.nn.Module, state_dict: dict, path: str | os.PathLike) -> None:
    """``module.load_state_dict(state_dict, strict=True)`` after :func:`check_weights_fit`."""
    check_weights_fit(module, state_dict, path)
    module.load_state_dict(state_dict, strict=True)
