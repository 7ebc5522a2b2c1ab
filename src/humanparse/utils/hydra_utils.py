"""Hydra runtime queries and config printing."""

from __future__ import annotations

import logging

from omegaconf import DictConfig, OmegaConf

log = logging.getLogger(__name__)

PRINT_ORDER = ("data", "model", "callbacks", "logger", "trainer", "paths")


def hydra_overrides() -> list[str]:
    """The command-line overrides of the current Hydra job (empty outside Hydra)."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return []
    return list(HydraConfig.get().overrides.task)


def in_multirun() -> bool:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def print_config(cfg: DictConfig, resolve: bool = True) -> None:
    """Print the config as a tree (rich), main groups first."""
    try:
        import rich
        import rich.syntax
        import rich.tree
    except ImportError:  # pragma: no cover - rich is a dependency
        print(OmegaConf.to_yaml(cfg, resolve=resolve))
        return
    tree = rich.tree.Tree("CONFIG", guide_style="dim")
    keys = [k for k in PRINT_ORDER if k in cfg] + [k for k in cfg if k not in PRINT_ORDER and k != "hydra"]
    for k in keys:
        branch = tree.add(str(k))
        node = cfg[k]
        try:
            text = OmegaConf.to_yaml(node, resolve=resolve) if isinstance(node, DictConfig) else str(node)
        except Exception:  # noqa: BLE001 - unresolvable outside Hydra: show unresolved
            text = OmegaConf.to_yaml(node, resolve=False) if isinstance(node, DictConfig) else str(node)
        branch.add(rich.syntax.Syntax(text, "yaml"))
    rich.print(tree)


def swept_keys(argv: list[str] | None = None, sweeper_params: dict | None = None) -> list[str]:
    """The keys a multirun sweeps: command-line overrides with sweep syntax (``a=1,2``, ``range(…)``,
    ``choice(…)``, ``glob(…)``, ``interval(…)``) plus the sweeper's ``params`` (Optuna search spaces)."""
    import sys

    from hydra.core.override_parser.overrides_parser import OverridesParser

    args = [a for a in (sys.argv[1:] if argv is None else argv) if "=" in a and not a.startswith("-")]
    keys: list[str] = []
    try:
        parsed = OverridesParser.create().parse_overrides(args)
    except Exception:  # noqa: BLE001 - not a Hydra command line (e.g. pytest's argv): nothing swept
        parsed = []
    for o in parsed:
        if o.is_sweep_override() and not o.key_or_group.startswith("hydra"):
            keys.append(o.key_or_group)
    for k in sweeper_params or {}:
        if str(k) not in keys:
            keys.append(str(k))
    return keys


def swept_values(argv: list[str] | None = None) -> list[tuple[str, str]]:
    """``(key, value)`` of this multirun job for every swept key, in command-line order (empty outside a
    multirun). The values come from the job's own overrides."""
    from hydra.core.hydra_config import HydraConfig

    if not in_multirun():
        return []
    hc = HydraConfig.get()
    params = (hc.get("sweeper") or {}).get("params") or {}
    if argv is None:
        argv = multirun_overrides(hc)
    keys = swept_keys(argv, dict(params))
    job = {}
    for o in hc.overrides.task:
        if "=" in o:
            k, v = o.split("=", 1)
            job[k.lstrip("+~")] = v
    return [(k, job[k]) for k in keys if k in job]


def multirun_overrides(hc) -> list[str] | None:
    """The multirun's own command-line overrides (with their sweep syntax), from the ``multirun.yaml`` Hydra
    writes into the sweep folder before launching; this also works in SLURM jobs, whose ``sys.argv`` is the
    launcher's. ``None`` when the file is not there (then ``sys.argv`` is used)."""
    from pathlib import Path

    from omegaconf import OmegaConf

    path = Path(str(hc.sweep.dir)) / "multirun.yaml"
    if not path.is_file():
        return None
    try:
        return [str(o) for o in OmegaConf.load(path).hydra.overrides.task]
    except Exception:  # noqa: BLE001 - an unreadable file: fall back to sys.argv
        return None


def short_key(key: str) -> str:
    """``model.optimizer.lr`` → ``optimizer.lr``, ``model.net.channels`` → ``channels`` (as compare labels)."""
    for p in ("model.net.", "model."):
        if key.startswith(p):
            return key[len(p) :]
    return key
