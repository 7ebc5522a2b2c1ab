"""Convert an authors' released checkpoint into a humanparse checkpoint.

``python -m humanparse.convert model=<name> [data=<name>] released=<file> output=<file.ckpt> [key=value ...]``

The model config is composed as for training, with the model's released-protocol preset
(``experiment=<preset>`` declared by its released format, e.g. ``corrpm_released``: the released input
normalisation, input size and evaluation protocol) unless another ``experiment=`` is given; sizes the
released file fixes (CorrPM: the number of joint heatmaps) are taken from it. The released tensors are
mapped strictly (:mod:`humanparse.models.released`) and the result is written with the composed config, so
``evaluate ckpt_path=``, ``predict ckpt_path=`` and ``train ckpt_path=`` (fine-tuning from these weights)
accept it. Further ``key=value`` overrides are Hydra overrides of that config (e.g. ``data.root=...``).
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import pytorch_lightning as pl
import torch
from omegaconf import OmegaConf

import humanparse.utils.resolvers  # noqa: F401
from humanparse.models.released import (
    ReleasedWeightsError,
    check_sizes,
    get_format,
    net_of,
    read_released,
    released_record,
)

log = logging.getLogger("humanparse.convert")

USAGE = (
    "python -m humanparse.convert model=<name> [data=<name>] released=<file> output=<file.ckpt> "
    "[experiment=<preset>] [key=value ...]"
)


class ConvertError(ValueError):
    pass


def _split_args(argv: list[str]) -> tuple[dict[str, str], list[str]]:
    """``released=`` / ``output=`` / ``model=`` → own arguments; everything else → Hydra overrides."""
    own, overrides = {}, []
    for a in argv:
        if "=" not in a:
            raise ConvertError(f"argument {a!r} is not key=value; usage: {USAGE}")
        key, value = a.split("=", 1)
        if key in ("released", "output"):
            own[key] = value
        else:
            if key == "model":
                own["model"] = value
            overrides.append(a)
    for key in ("model", "released", "output"):
        if not own.get(key):
            raise ConvertError(f"{key}=... is required; usage: {USAGE}")
    return own, overrides


def compose_config(
    model: str,
    overrides: list[str],
    file_sizes: dict,
    settable: tuple[str, ...],
    preset: str | None,
    output_dir: Path | None = None,
):
    """The run config of the converted model (Hydra compose of ``conf/convert.yaml``; no Hydra run folder:
    ``paths.output_dir`` is the output's folder)."""
    from hydra import compose, initialize_config_module
    from hydra.core.global_hydra import GlobalHydra

    given = {o.split("=", 1)[0].lstrip("+") for o in overrides}
    extra = []
    if preset and "experiment" not in given:
        extra.append(f"experiment={preset}")
    for key in settable:
        if key in file_sizes and f"model.{key}" not in given:
            extra.append(f"model.{key}={file_sizes[key]}")
    if output_dir is not None and "paths.output_dir" not in given:
        extra.append(f"paths.output_dir={Path(output_dir).resolve()}")
    if GlobalHydra.instance().is_initialized():
        GlobalHydra.instance().clear()
    with initialize_config_module(config_module="humanparse.conf", version_base="1.3"):
        cfg = compose(config_name="convert", overrides=extra + overrides)
    return cfg


def convert(model: str, released: str | Path, output: str | Path, overrides: list[str] = ()) -> dict:
    """Build the model from its composed config, load the released file strictly, write the checkpoint.
    Returns the released-file record stored in it."""
    from humanparse.utils.instantiate import check_model_keys, instantiate_task

    fmt = get_format(model)
    state = fmt.strip_wrapper(read_released(released))
    cfg = compose_config(
        model, list(overrides), fmt.file_config(state), fmt.settable, fmt.preset, Path(output).parent
    )
    if cfg.model.get("name") != model:
        raise ConvertError(f"model={model}: the composed model config is {cfg.model.get('name')!r}")
    check_model_keys(cfg)
    with_weights = OmegaConf.to_container(cfg, resolve=False)
    with_weights["model"]["weights"] = str(Path(released).resolve())
    cfg = OmegaConf.create(with_weights)
    resolved = OmegaConf.to_container(cfg, resolve=True)
    # build without the released file (loaded below from the state read above), never fetching a backbone
    model_cfg = OmegaConf.to_container(cfg.model, resolve=True)
    model_cfg["weights"] = None
    model_cfg["pretrained"] = None
    if isinstance(model_cfg.get("net"), dict) and "pretrained" in model_cfg["net"]:
        model_cfg["net"]["pretrained"] = None
    task = instantiate_task(OmegaConf.create({"model": model_cfg}), check_keys=False)  # keys checked above
    net = net_of(task)
    check_sizes(fmt, state, net, released)
    net.load_state_dict(fmt.convert(state, net.state_dict(), released), strict=True)
    record = released_record(released, fmt, fmt.dead_parameters(state))
    task.released_weights = record
    task.run_config = resolved
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    ckpt = {
        "state_dict": task.state_dict(),
        "pytorch-lightning_version": pl.__version__,
        "epoch": 0,
        "global_step": 0,
    }
    task.on_save_checkpoint(ckpt)  # the task's own record (run config, hyper-parameters)
    ckpt.setdefault("humanparse", {})["config"] = resolved
    ckpt["humanparse"]["released"] = record
    torch.save(ckpt, output)
    log.debug("wrote %s from the released %s file %s", output, model, released)
    return record


def is_weights_only(ckpt: dict) -> bool:
    """A humanparse checkpoint without trainer state (written by ``convert``)."""
    return "optimizer_states" not in ckpt and bool((ckpt.get("humanparse") or {}).get("config"))


def init_from_checkpoint(task, ckpt_path: str | Path) -> dict | None:
    """If ``ckpt_path`` is a weights-only humanparse checkpoint (``convert``'s output), load its weights into
    ``task`` (strict) and return its released-file record; ``None`` for a full Lightning checkpoint (resumed
    by the trainer as before)."""
    from humanparse.utils.safety import safe_torch_load

    ckpt = safe_torch_load(ckpt_path)  # weights_only=True, stored config checked, failures name the file
    if not is_weights_only(ckpt):
        return None
    task.load_state_dict(ckpt["state_dict"], strict=True)
    record = ckpt["humanparse"].get("released")
    if record:
        task.released_weights = record
    return record or {"file": str(Path(ckpt_path).resolve()), "name": Path(ckpt_path).name}


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    argv = sys.argv[1:] if argv is None else argv
    try:
        own, overrides = _split_args(argv)
        overrides = [o for o in overrides if not o.startswith("model=")]
        record = convert(own["model"], own["released"], own["output"], [f"model={own['model']}", *overrides])
    except (ConvertError, ReleasedWeightsError) as e:
        print(f"humanparse.convert: {e}", file=sys.stderr)
        return 2
    print(
        f"wrote {own['output']} ({record['model']} from {record['name']}, sha256 {record['sha256'][:12]}, "
        f"{record['dropped_dead']} dead released values dropped)"
    )
    return 0


if __name__ == "__main__":
    from humanparse.utils.errors import run_main

    sys.exit(run_main(main))
