"""Run directories: the saved config, resuming, ``metrics.json`` and the printed metrics table."""

from __future__ import annotations

import json
import logging
import math
import os
import secrets
import string
import time
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf, open_dict

log = logging.getLogger(__name__)

RUN_CONFIG = "run_config.yaml"  # the composed config of the run, written once at its start
WANDB_ID = "wandb_id.txt"
METRICS_JSON = "metrics.json"
LAST_CKPT = Path("checkpoints") / "last.ckpt"


def run_id() -> str:
    """A short tag that makes a run folder name unique among runs started in the same second: the launcher's
    job id when one started every process of the run (SLURM, torchrun: all of them must find one folder),
    else 6 random hex digits. A clash left is caught by :func:`claim_run_dir` / :func:`save_run_config`."""
    for var in ("TORCHELASTIC_RUN_ID", "SLURM_JOB_ID"):
        value = os.environ.get(var, "")
        if value and value != "none":
            step = os.environ.get("SLURM_STEP_ID", "") if var == "SLURM_JOB_ID" else ""
            return (
                "j"
                + "".join(c for c in value + (f"-{step}" if step else "") if c.isalnum() or c in "-_")[:24]
            )
    return secrets.token_hex(3)


def is_rank_zero() -> bool:
    return int(os.environ.get("RANK", os.environ.get("LOCAL_RANK", "0"))) == 0


def atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


class ResumeError(FileNotFoundError):
    pass


class RunDirError(FileExistsError):
    """A new run was pointed at a folder that already holds a run (exit status 2)."""

    exit_code = 2


class RunFinished(Exception):
    """``resume=`` named a run that has already finished: nothing to do, nothing touched (exit status 0)."""

    exit_code = 0

    def __init__(self, message: str, record: dict):
        super().__init__(message)
        self.record = record

    @property
    def metrics(self) -> dict:
        return dict(self.record.get("metrics") or {})


# what marks a folder as holding a run: a new run never writes into such a folder
RUN_MARKERS = (METRICS_JSON, "checkpoints", RUN_CONFIG)
# overrides a resume cannot honour: the optimiser's hyper-parameters come back from its saved state, and the
# weights being restored fix the architecture
RESUME_REFUSED = (
    "model.optimizer",
    "model.net",
    "model.backbone",
    "model.variant",
    "data.num_classes",
    "data.name",
)


def claim_run_dir(run_dir: Path) -> None:
    """Refuse to start a new (non-resume) run in a folder that holds one (``metrics.json``, ``checkpoints/``,
    ``run_config.yaml``). Only rank zero checks: re-launched DDP processes join their parent's folder."""
    if not is_rank_zero():
        return
    held = [m for m in RUN_MARKERS if (run_dir / m).exists()]
    if held:
        raise RunDirError(
            f"{run_dir} already holds a run ({', '.join(held)}); a new run never writes into another "
            f"run's folder: use resume={run_dir} to continue it, or another hydra.run.dir"
        )


def check_run_dir_argument(argv: list[str]) -> None:
    """Before Hydra writes its ``.hydra/`` files: an explicit ``hydra.run.dir=<folder holding a run>`` without
    ``resume=`` is refused (re-launched DDP processes, which join their parent's folder, are not checked)."""
    if not is_rank_zero() or any(
        a.split("=", 1)[0].lstrip("+") == "resume" and a.split("=", 1)[1] not in ("", "null")
        for a in argv
        if "=" in a
    ):
        return
    for a in argv:
        if a.lstrip("+").startswith("hydra.run.dir="):
            claim_run_dir(Path(a.split("=", 1)[1]).expanduser())


def _override_key(o: str) -> str:
    return o.split("=", 1)[0].lstrip("+~")


def _finished_check(cfg: DictConfig, run_dir: Path, overrides: list[str]) -> None:
    """Raise :class:`RunFinished` when the run finished and the command line asks for no more epochs/steps."""
    path = run_dir / METRICS_JSON
    try:
        record = json.loads(path.read_text()) if path.is_file() else {}
    except (OSError, ValueError):
        return
    if not isinstance(record, dict) or record.get("status") != "finished":
        return
    done_epochs, done_steps = record.get("epochs"), record.get("global_step")
    for o in overrides:
        key, value = _override_key(o), o.split("=", 1)[1]
        try:
            n = int(value)
        except ValueError:
            continue
        if key == "trainer.max_epochs" and (done_epochs is None or n == -1 or n > int(done_epochs)):
            return
        if key == "trainer.max_steps" and n != -1 and (done_steps is None or n > int(done_steps)):
            return
    raise RunFinished(
        f"resume={cfg.resume}: the run already finished ({done_epochs} epochs, {done_steps} steps); "
        f"nothing was changed. Ask for more explicitly to continue it, e.g. trainer.max_epochs="
        f"{int(done_epochs or 0) + 1}",
        record,
    )


def prepare_resume(cfg: DictConfig, cli_overrides: list[str] | None = None) -> tuple[DictConfig, Path | None]:
    """When ``cfg.resume`` names a run directory, return that run's own config and its ``last.ckpt``.

    The saved config replaces the composed one so that the run continues exactly as it started;
    plain ``key=value`` overrides from the command line (e.g. ``trainer.max_epochs=200``) are applied on
    top, except those a resume cannot honour (:data:`RESUME_REFUSED`), which are refused. A run directory
    without ``checkpoints/last.ckpt`` is an error: a resume never starts over. A finished run raises
    :class:`RunFinished` unless more epochs or steps are asked for. The saved config may only build
    allowlisted classes (:func:`humanparse.utils.safety.check_config_targets`).
    """
    if not cfg.get("resume"):
        return cfg, None
    from humanparse.utils.safety import check_config_targets

    run_dir = Path(str(cfg.resume)).expanduser().resolve()
    ckpt = run_dir / LAST_CKPT
    saved = run_dir / RUN_CONFIG
    if not run_dir.is_dir():
        raise ResumeError(f"resume={cfg.resume}: run directory does not exist")
    if not ckpt.is_file():
        raise ResumeError(
            f"resume={cfg.resume}: no checkpoint {ckpt} to resume from (the run died before its first "
            "checkpoint, or this is not a run directory); refusing to start the run over"
        )
    if not saved.is_file():
        raise ResumeError(f"resume={cfg.resume}: {saved} is missing, cannot restore the run's configuration")
    try:
        new = OmegaConf.load(saved)
    except Exception as e:  # noqa: BLE001 - a damaged YAML file is named, not a parser traceback
        raise ResumeError(
            f"resume={cfg.resume}: {saved} is not a readable config ({type(e).__name__}: "
            f"{str(e).splitlines()[0] if str(e) else ''})"
        ) from None
    check_config_targets(new, str(saved))
    overrides = [
        o for o in (cli_overrides or []) if "=" in o and not _override_key(o).startswith(("resume", "hydra"))
    ]
    refused = [o for o in overrides if _override_key(o).startswith(RESUME_REFUSED)]
    if refused:
        raise ResumeError(
            f"resume: {', '.join(refused)} cannot apply to a run being resumed (the optimiser state and "
            "the weights are restored from the checkpoint, with their own settings); start a new run "
            f"with ckpt_path={ckpt} train settings instead"
        )
    _finished_check(cfg, run_dir, overrides)
    for o in overrides:
        key, value = o.split("=", 1)
        key = key.lstrip("+")
        if isinstance(OmegaConf.select(cfg, key, default=None), DictConfig):
            raise ResumeError(f"resume: config-group override {o!r} cannot change a run being resumed")
        OmegaConf.update(new, key, OmegaConf.select(cfg, key), force_add=True)
    with open_dict(new):
        new.resume = str(run_dir)
        new.paths.output_dir = str(run_dir)
    if "hydra" in cfg:
        with open_dict(new):
            new.hydra = cfg.hydra
    return new, ckpt


def save_run_config(cfg: DictConfig, run_dir: Path) -> None:
    """Write the composed config (unresolved, without the ``hydra`` node) once, at the start of a run.

    The file is created atomically and exclusively: of two runs started in one folder, the second fails
    with :class:`RunDirError` instead of mixing its files with the first's."""
    path = run_dir / RUN_CONFIG
    if not is_rank_zero() or (cfg.get("resume") and path.exists()):
        return
    c = OmegaConf.masked_copy(cfg, [k for k in cfg.keys() if k != "hydra"]) if "hydra" in cfg else cfg
    c = OmegaConf.to_container(c, resolve=False)
    # the output dir interpolates hydra's runtime dir, which a resumed process cannot resolve
    c.setdefault("paths", {})["output_dir"] = str(run_dir)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(OmegaConf.to_yaml(OmegaConf.create(c)))
    try:
        os.link(tmp, path)  # fails if the file exists: the folder was claimed by another run meanwhile
    except FileExistsError:
        raise RunDirError(
            f"{run_dir} already holds a run ({RUN_CONFIG}); another run started in the same folder"
        ) from None
    except OSError:  # no hard links on this file system: exclusive create, then the content
        with open(path, "x") as f:
            f.write(tmp.read_text())
    finally:
        tmp.unlink(missing_ok=True)


def wandb_run_id(run_dir: Path, resuming: bool) -> str:
    """A stable wandb id per run dir: generated once, reused on resume."""
    path = run_dir / WANDB_ID
    if path.is_file():
        return path.read_text().strip()
    if resuming:
        log.warning("resume: %s not found; the resumed run gets a new wandb id", path)
    rid = "".join(secrets.choice(string.ascii_lowercase + string.digits) for _ in range(8))
    if is_rank_zero():
        atomic_write_text(path, rid)
    return rid


def _clean(v):
    if isinstance(v, torch.Tensor):
        v = v.item() if v.numel() == 1 else v.tolist()
    if isinstance(v, float) and (math.isnan(v) or math.isinf(v)):
        return None
    return v


def sanitize(obj):
    """JSON-safe copy: NaN/inf become null, tensors become numbers or lists."""
    if isinstance(obj, dict):
        return {str(k): sanitize(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [sanitize(v) for v in obj]
    return _clean(obj)


def collect_metrics(callback_metrics: dict, prefixes=("val/", "test/", "train/")) -> dict[str, float | None]:
    # logging order is kept: per-class entries stay in the dataset's class order
    return {
        k: _clean(v)
        for k, v in callback_metrics.items()
        if k.startswith(prefixes) and not k.endswith("_step")
    }


def write_metrics_json(run_dir: Path, record: dict) -> Path:
    """``metrics.json``: the run's final metrics (NaN written as null) plus what the compare tool needs."""
    path = run_dir / METRICS_JSON
    rec = dict(record)
    rec.setdefault("written", time.strftime("%Y-%m-%dT%H:%M:%S"))
    atomic_write_text(path, json.dumps(sanitize(rec), indent=2, sort_keys=False, default=str))
    return path


SUMMARY_KEYS = ("pixel_acc", "mean_acc", "miou", "fwiou")


def format_metrics_table(metrics: dict, prefix: str, title: str = "") -> str:
    """Plain-text table (percent) of the summary metrics and per-class IoU under ``prefix``."""
    p = f"{prefix}/"
    lines = [title or f"{prefix} metrics (%)"]
    summary = [(k, metrics.get(p + k)) for k in SUMMARY_KEYS if p + k in metrics]
    other = [
        (k[len(p) :], v)
        for k, v in metrics.items()
        if k.startswith(p) and "/" not in k[len(p) :] and k[len(p) :] not in SUMMARY_KEYS
    ]
    # several evaluation datasets (val/<dataset>/<metric>): their summary numbers too
    other += [
        (k[len(p) :], v)
        for k, v in metrics.items()
        if k.startswith(p)
        and k[len(p) :].count("/") == 1
        and k.rsplit("/", 1)[1] in SUMMARY_KEYS + ("app50", "app_vol", "pcp50", "apr50", "apr_vol", "dp_ap")
    ]
    per_class = [(k[len(p) + 4 :], v) for k, v in metrics.items() if k.startswith(p + "iou/")]

    def fmt(v):
        return "   n/a" if v is None else f"{100.0 * float(v):6.2f}"

    width = max([len(k) for k, _ in summary + other + per_class] + [10])
    for k, v in summary + other:
        lines.append(f"  {k:<{width}} {fmt(v)}")
    if per_class:
        lines.append("  per-class IoU:")
        for k, v in per_class:
            lines.append(f"    {k:<{width}} {fmt(v)}")
    return "\n".join(lines)


def print_skipped(skipped: dict) -> None:
    """One line naming the metrics of the dataset that this model cannot be scored with, and why."""
    if skipped:
        print("not computed: " + "; ".join(f"{k} ({why})" for k, why in sorted(skipped.items())))
