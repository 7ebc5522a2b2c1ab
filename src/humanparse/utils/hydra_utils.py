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
