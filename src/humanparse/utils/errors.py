"""One clear line per error at every entry point; the traceback only when asked for.

Every ``python -m humanparse.<tool>`` ends through :func:`run_main`: an exception is printed as one line
``error: <message>`` on stderr and the process exits with

* 2 for a user error: a bad argument, file, checkpoint, config or dataset (:class:`UserError`, the
  project's ``DataError`` / ``ValueError`` family, ``FileNotFoundError``, Hydra's composition and override
  errors, OmegaConf's key errors), also when Hydra wraps one while instantiating a config;
* the exception's own ``exit_code`` where it has one (e.g. a training stopped on a non-finite loss: 1);
* 1 for anything else (an internal error; the line says how to see the traceback).

The full traceback is shown when ``HUMANPARSE_DEBUG=1`` or ``HYDRA_FULL_ERROR=1`` is set.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable

DEBUG_ENV = "HUMANPARSE_DEBUG"
# set by run_main when it turns Hydra's own error report off, so that re-launched processes (DDP) know
# HYDRA_FULL_ERROR=1 came from us and not from the user
_OWN_FULL_ERROR = "_HUMANPARSE_SET_HYDRA_FULL_ERROR"


class UserError(Exception):
    """A problem with what the user gave (arguments, files, configs): exit status 2, one line."""

    exit_code = 2


def debug_requested() -> bool:
    """The user asked for tracebacks (``HUMANPARSE_DEBUG=1`` or their own ``HYDRA_FULL_ERROR=1``)."""
    if os.environ.get(DEBUG_ENV, "") not in ("", "0"):
        return True
    return os.environ.get("HYDRA_FULL_ERROR", "") == "1" and not os.environ.get(_OWN_FULL_ERROR)


def _user_error_types() -> tuple[type[BaseException], ...]:
    types: list[type[BaseException]] = [
        UserError,
        ValueError,
        FileNotFoundError,
        NotADirectoryError,
        IsADirectoryError,
        PermissionError,
    ]
    try:
        from hydra.errors import ConfigCompositionException, MissingConfigException, OverrideParseException

        types += [ConfigCompositionException, MissingConfigException, OverrideParseException]
    except ImportError:  # pragma: no cover - hydra is a dependency
        pass
    try:
        from omegaconf.errors import ConfigKeyError, InterpolationResolutionError, MissingMandatoryValue

        types += [ConfigKeyError, MissingMandatoryValue, InterpolationResolutionError]
    except ImportError:  # pragma: no cover
        pass
    try:  # weights that cannot be downloaded or read: the user's file or network, named in the message
        from humanparse.models.pretrained import PretrainedWeightsError

        types.append(PretrainedWeightsError)
    except ImportError:  # pragma: no cover
        pass
    return tuple(types)


def _chain(e: BaseException) -> list[BaseException]:
    out, seen = [], set()
    while e is not None and id(e) not in seen:
        out.append(e)
        seen.add(id(e))
        e = e.__cause__ or (None if e.__suppress_context__ else e.__context__)
    return out


def exit_code(e: BaseException) -> int:
    """The exit status for ``e`` (see the module docstring)."""
    for link in _chain(e):
        code = getattr(type(link), "exit_code", None)
        if isinstance(code, int):
            return code
        if isinstance(link, _user_error_types()):
            return 2
        from hydra.errors import InstantiationException

        if not isinstance(link, InstantiationException):
            break
    return 1


def one_line(e: BaseException) -> str:
    """The message of ``e`` on one line (Hydra's wrapper text around an instantiation error kept short)."""
    from hydra.errors import InstantiationException

    inner = e
    while isinstance(inner, InstantiationException) and inner.__cause__ is not None:
        inner = inner.__cause__
    msg = str(inner.args[0]) if isinstance(inner, KeyError) and inner.args else str(inner)
    msg = " ".join(part.strip() for part in msg.splitlines() if part.strip()) or type(inner).__name__
    if inner is not e:
        key = next(
            (ln.split(":", 1)[1].strip() for ln in str(e).splitlines() if ln.startswith("full_key:")), None
        )
        if key:
            msg = f"{msg} (building config key {key})"
    if exit_code(e) == 1 and not getattr(type(e), "exit_code", None):
        msg = f"{type(inner).__name__}: {msg} (internal error; set {DEBUG_ENV}=1 for the traceback)"
    return msg


def report(e: BaseException) -> int:
    """Print ``e`` as one ``error:`` line on stderr; returns its exit status."""
    print(f"error: {one_line(e)}", file=sys.stderr, flush=True)
    return exit_code(e)


def _in_multirun() -> bool:
    try:
        from humanparse.utils.hydra_utils import in_multirun

        return in_multirun()
    except Exception:  # noqa: BLE001 - outside Hydra
        return False


def one_line_errors(fn: Callable) -> Callable:
    """Decorator for a Hydra task function (under ``@hydra.main``): an exception is reported as one line
    and ends the process with its exit status, before Hydra adds its own "Error executing job" report."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except Exception as e:  # noqa: BLE001 - every error ends here as one line
            # in a sweep, Hydra (and Optuna) record a failed job and go on with the others
            if debug_requested() or _in_multirun():
                raise
            sys.exit(report(e))

    return wrapper


def run_main(main: Callable[[], object], before: Callable[[], object] | None = None) -> int:
    """Run an entry point's ``main`` and turn any exception into one line and an exit status.

    Hydra mains are called with ``HYDRA_FULL_ERROR=1`` (unless the user asked for tracebacks) so that
    Hydra re-raises instead of printing its own report, and the error reaches this function. Returns the
    exit status (``main``'s integer return value, else 0). ``before`` runs first, under the same handling
    (checks that must happen before Hydra writes anything).
    """
    debug = debug_requested()
    # Hydra re-raises instead of printing its own report: with debug, the full traceback follows; without,
    # the error reaches the handler below as one line
    os.environ["HYDRA_FULL_ERROR"] = "1"
    if not debug:
        os.environ[_OWN_FULL_ERROR] = "1"
    try:
        if before is not None:
            before()
        ret = main()
    except SystemExit:
        raise
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except BaseException as e:  # noqa: BLE001 - every error ends here as one line
        if debug:
            raise
        return report(e)
    return ret if isinstance(ret, int) and not isinstance(ret, bool) else 0
