"""``key=value`` command lines for the tools that need no Hydra run folder (compare, predict)."""

from __future__ import annotations

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import ConfigKeyError


def parse_key_values(argv: list[str], defaults: dict, error: type[Exception] = ValueError) -> DictConfig:
    """``argv`` (OmegaConf dot-list syntax) merged onto ``defaults``; a bare word or an unknown key raises
    ``error`` with the list of options."""
    bad = [a for a in argv if "=" not in a]
    if bad:
        raise error(f"arguments are key=value pairs; got {bad}")
    base = OmegaConf.create(defaults)
    OmegaConf.set_struct(base, True)
    try:
        return OmegaConf.merge(base, OmegaConf.from_cli(argv))
    except ConfigKeyError as e:
        raise error(f"unknown option ({e.msg.splitlines()[0]}); options: {sorted(defaults)}") from None
