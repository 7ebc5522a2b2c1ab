"""OmegaConf resolvers used by the configs (registered on import, before Hydra composes)."""

from __future__ import annotations

import os

from omegaconf import OmegaConf


def _pick(value, default):
    """``${hp.pick:${resume},<default>}``: ``value`` when set, else ``default``."""
    return value if value not in (None, "", "null") else default


def _if_set(value, when_set, otherwise):
    return when_set if value not in (None, "", "null") else otherwise


def _choose(flag, if_true, if_false):
    """``${hp.choose:${parity.x},<value if true>,<value if false>}``: select by a boolean switch."""
    if not isinstance(flag, bool):
        raise ValueError(f"hp.choose needs a boolean switch, got {flag!r}")
    return if_true if flag else if_false


def _cwd() -> str:
    """The launch directory (Hydra does not chdir: ``hydra.job.chdir`` stays false)."""
    return os.getcwd()


def _run_id() -> str:
    """``${hp.run_id:}``: the unique tail of a run folder name (see :func:`humanparse.utils.run.run_id`);
    cached, so every use in one config gives the same value."""
    from humanparse.utils.run import run_id

    return run_id()


def _user_config_dir() -> str:
    """Hydra search-path entry of the user's config folder (``HUMANPARSE_CONFIG_DIR``): their own models,
    experiments and machine-local settings, found like the package's. Unset: the package's folder again."""
    folder = os.environ.get("HUMANPARSE_CONFIG_DIR")
    return f"file://{os.path.abspath(os.path.expanduser(folder))}" if folder else "pkg://humanparse.conf"


def register() -> None:
    for name, fn in (
        ("hp.pick", _pick),
        ("hp.if_set", _if_set),
        ("hp.choose", _choose),
        ("hp.cwd", _cwd),
        ("hp.user_config_dir", _user_config_dir),
    ):
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, fn)
    if not OmegaConf.has_resolver("hp.run_id"):
        OmegaConf.register_new_resolver("hp.run_id", _run_id, use_cache=True)


register()
