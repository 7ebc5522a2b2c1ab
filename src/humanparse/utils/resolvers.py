"""OmegaConf resolvers used by the configs (registered on import, before Hydra composes)."""

from __future__ import annotations

import os

from omegaconf import OmegaConf


def _pick(value, default):
    """``${hp.pick:${resume},<default>}``: ``value`` when set, else ``default``."""
    return value if value not in (None, "", "null") else default


def _if_set(value, when_set, otherwise):
    return when_set if value not in (None, "", "null") else otherwise


def _cwd() -> str:
    """The launch directory (Hydra does not chdir: ``hydra.job.chdir`` stays false)."""
    return os.getcwd()


def register() -> None:
    for name, fn in (("hp.pick", _pick), ("hp.if_set", _if_set), ("hp.cwd", _cwd)):
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, fn)


register()
