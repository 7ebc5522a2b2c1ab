"""``key=value`` command lines for the tools that need no Hydra run folder (compare, predict,
evaluate_predictions): an unknown key is refused, naming the closest valid one."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import ConfigKeyError


def closest(key: str, valid: Iterable[str]) -> str | None:
    """The valid key most like ``key`` (difflib), or None when none is close."""
    found = difflib.get_close_matches(key, sorted(set(valid)), n=1, cutoff=0.5)
    return found[0] if found else None


def unknown_key_message(key: str, valid: Iterable[str]) -> str:
    valid = sorted(set(valid))
    near = closest(key, valid)
    hint = f"did you mean {near}?" if near else f"options: {', '.join(valid)}"
    return f"unknown option {key!r}; {hint}"


def check_known_keys(argv: list[str], valid: Iterable[str], error: type[Exception] = ValueError) -> None:
    """Refuse ``key=value`` arguments whose top-level key is not in ``valid``."""
    valid = set(valid)
    for a in argv:
        key = a.split("=", 1)[0].lstrip("+~").split(".", 1)[0].split("[", 1)[0]
        if key not in valid:
            raise error(unknown_key_message(key, valid))


def parse_key_values(argv: list[str], defaults: dict, error: type[Exception] = ValueError) -> DictConfig:
    """``argv`` (OmegaConf dot-list syntax) merged onto ``defaults``; a bare word or an unknown key raises
    ``error`` naming the key and the closest option."""
    bad = [a for a in argv if "=" not in a]
    if bad:
        raise error(f"arguments are key=value pairs; got {bad}")
    check_known_keys(argv, defaults, error)
    base = OmegaConf.create(defaults)
    OmegaConf.set_struct(base, True)
    try:
        return OmegaConf.merge(base, OmegaConf.from_cli(argv))
    except ConfigKeyError as e:
        key = getattr(e, "full_key", None) or e.msg.splitlines()[0]
        raise error(
            f"unknown option {key!r} ({e.msg.splitlines()[0]}); options: {sorted(defaults)}"
        ) from None
