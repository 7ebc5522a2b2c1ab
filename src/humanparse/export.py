"""Export a dense model to ONNX or TorchScript: ``python -m humanparse.export ckpt_path=<file.ckpt> format=onnx``.

====================  =======================================================================================
``ckpt_path``         a humanparse checkpoint (the model is rebuilt from the config stored in it)
``format``            ``onnx`` (default) or ``torchscript``
``output``            the file to write (default: next to the checkpoint, ``<name>.onnx`` / ``<name>.pt``)
``input_size``        (H, W) of the example input (default: the size the model was trained at); the batch
                      size, height and width stay dynamic in the ONNX graph
``opset``             ONNX opset (default 17)
``check``             run the exported file on a random input and compare it with PyTorch (default true;
                      ONNX needs ``onnxruntime``: ``pip install "humanparse[export]"``)
``atol``              tolerance of that check on the logits (default 1e-3, absolute, float32)
====================  =======================================================================================

The exported graph maps a normalised image batch ``image`` (N, 3, H, W) float32 to ``logits`` (N, C, H, W)
at the input resolution (the model's evaluation output upsampled as the task does; test-time augmentation,
``model.tta``, is not part of the graph). Preprocessing and
class names are written next to it in ``<output>.json`` (mean, std, channel order, input size, classes):
the input is ``(rgb / 255 - mean) / std``; argmax over C gives class ids. Dense models only: models whose
output is a list of per-person detections (Parsing R-CNN, DensePose-RCNN) or that parse person crops from
a detector are refused with the reason.
"""

from __future__ import annotations

import copy
import json
import logging
import sys
from pathlib import Path

import numpy as np
import torch
from torch import nn

from humanparse.utils.cli import parse_key_values

log = logging.getLogger("humanparse.export")

DEFAULTS = {
    "ckpt_path": None,
    "format": "onnx",
    "output": None,
    "input_size": None,
    "opset": 17,
    "check": True,
    "atol": 1e-3,
}
FORMATS = {"onnx": ".onnx", "torchscript": ".pt"}


class ExportError(ValueError):
    """Bad arguments, or a model that cannot be exported (exit status 2)."""


class DenseLogits(nn.Module):
    """images (N, 3, H, W) → logits (N, C, H, W) at the input size: the net's evaluation output, upsampled."""

    def __init__(self, net: nn.Module, output: str, align_corners: bool = False):
        super().__init__()
        self.net, self.output, self.align_corners = net, output, align_corners

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        out = self.net(image)
        if isinstance(out, dict):
            out = out[self.output]
        return nn.functional.interpolate(
            out.float(), size=image.shape[-2:], mode="bilinear", align_corners=self.align_corners
        )


def shape_generic_attention(module: nn.Module) -> int:
    """Switch the shared non-local blocks (CorrPM's HNL) from the query-chunked CPU kernel (``auto`` /
    ``chunked``: a Python loop over chunks, which tracing would freeze to the example's shape) to the explicit
    matmul-softmax-matmul kernel: the same function (the blocks' tests check the kernels agree) in a graph
    whose batch and image size stay dynamic. Returns how many blocks were switched."""
    from humanparse.models.blocks.attention import NonLocal2d

    n = 0
    for m in module.modules():
        if isinstance(m, NonLocal2d) and m.attention in ("auto", "chunked"):
            m.attention = "explicit"
            n += 1
    return n


def refuse_non_dense(config: dict) -> None:
    """:class:`ExportError` saying why, for a model whose output is not a per-pixel logit map."""
    model_cfg = config.get("model") or {}
    name = model_cfg.get("name")
    requires = model_cfg.get("requires") or {}
    post = model_cfg.get("postprocess") or {}
    why = None
    if requires.get("collate") == "instance":
        why = "it is a region-based model (model.requires.collate: instance)"
    elif post and "Dense" not in str(post.get("_target_", "")):
        why = f"its postprocess {post.get('_target_')} returns per-person results"
    if why:
        raise ExportError(
            f"model {name!r} cannot be exported: {why}; its output is a list of per-person "
            "detections whose number and shapes depend on the image (data-dependent control flow), "
            "and export covers dense models with a per-pixel logit map"
        )
    if (config.get("data") or {}).get("person_crops"):
        log.warning(
            "model %r was evaluated on person crops from a detector: the exported graph parses one crop", name
        )


def dense_head(task, config: dict) -> tuple[str, bool]:
    """(name of the dense output, align_corners) of a task."""
    model_cfg = config.get("model") or {}
    name = model_cfg.get("name")
    post = model_cfg.get("postprocess") or {}
    pp = getattr(task, "postprocess", None)
    output = getattr(pp, "output", None) or post.get("output") or model_cfg.get("eval_output")
    if not output:
        raise ExportError(
            f"model {name!r} cannot be exported: no dense evaluation output is configured "
            "(model.postprocess.output)"
        )
    align = getattr(pp, "align_corners", None)
    if align is None:
        align = post.get("align_corners", model_cfg.get("upsample_align_corners", False))
    return str(output), bool(align)


def export(cfg) -> dict:
    """Write the exported model and its ``.json`` description; returns that description (plus the check)."""
    from humanparse.evaluate import build_task_from_checkpoint, load_checkpoint_config

    fmt = str(cfg.format)
    if fmt not in FORMATS:
        raise ExportError(f"format={fmt!r}: choose {' or '.join(FORMATS)}")
    try:
        refuse_non_dense(load_checkpoint_config(cfg.ckpt_path)[0])
        task, saved = build_task_from_checkpoint(cfg.ckpt_path)
    except (FileNotFoundError, ValueError, KeyError) as e:
        raise ExportError(str(e)) from e
    output, align = dense_head(task, saved)
    module = DenseLogits(task.net, output, align).eval()
    # what is exported; the check compares it with the model as it evaluates (``module``)
    exported = copy.deepcopy(module)
    shape_generic_attention(exported)
    data = saved.get("data") or {}
    size = list(cfg.input_size) if cfg.input_size is not None else list(data.get("input_size") or [512, 512])
    example = torch.randn(1, 3, int(size[0]), int(size[1]), generator=torch.Generator().manual_seed(0))
    out = Path(cfg.output) if cfg.output else Path(cfg.ckpt_path).with_suffix(FORMATS[fmt])
    out.parent.mkdir(parents=True, exist_ok=True)
    import warnings

    with torch.no_grad(), warnings.catch_warnings():
        # torch deprecates the TorchScript-based exporters in favour of torch.export, which needs onnxscript
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", category=FutureWarning)
        try:
            if fmt == "onnx":
                # the TorchScript-based exporter needs no extra package (the dynamo one needs onnxscript)
                torch.onnx.export(
                    exported,
                    (example,),
                    str(out),
                    dynamo=False,
                    input_names=["image"],
                    output_names=["logits"],
                    opset_version=int(cfg.opset),
                    dynamic_axes={
                        "image": {0: "batch", 2: "height", 3: "width"},
                        "logits": {0: "batch", 2: "height", 3: "width"},
                    },
                )
            else:
                torch.jit.save(torch.jit.trace(exported, (example,), check_trace=False), str(out))
        except Exception as e:  # noqa: BLE001 - exporter errors are many; one line naming the model and the cause
            raise ExportError(
                f"model {(saved.get('model') or {}).get('name')!r} could not be exported to {fmt}: "
                f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
            ) from e
    norm = data.get("normalize") or {}
    info = {
        "file": str(out),
        "format": fmt,
        "checkpoint": str(Path(cfg.ckpt_path).resolve()),
        "model": (saved.get("model") or {}).get("name"),
        "dataset": data.get("name"),
        "input": {
            "name": "image",
            "shape": ["N", 3, "H", "W"],
            "trained_size": size,
            "mean": norm.get("mean", [0.485, 0.456, 0.406]),
            "std": norm.get("std", [0.229, 0.224, 0.225]),
            "channel_order": "BGR" if norm.get("bgr") else "RGB",
            "scale": "x / 255 then (x - mean) / std",
        },
        "output": {"name": "logits", "shape": ["N", "C", "H", "W"], "classes": _class_names(task, data)},
    }
    if cfg.check:
        info["check"] = check_export(out, fmt, module, example, float(cfg.atol))
    Path(str(out) + ".json").write_text(json.dumps(info, indent=2))
    return info


def _class_names(task, data: dict) -> list[str]:
    info = getattr(task, "info", None)
    if info is None and data.get("name"):
        from humanparse.data.meta import get_info

        info = get_info(data["name"])
    return list(info.class_keys) if info is not None else []


def run_exported(path: str | Path, fmt: str, image: torch.Tensor) -> np.ndarray:
    """Logits of the exported file on ``image`` (onnxruntime on the CPU, or the TorchScript module)."""
    if fmt == "onnx":
        try:
            import onnxruntime as ort
        except ImportError as e:
            raise ExportError(
                'check=true needs onnxruntime (pip install "humanparse[export]"), or check=false'
            ) from e
        sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return sess.run(["logits"], {"image": image.numpy()})[0]
    with torch.no_grad():
        return torch.jit.load(str(path), map_location="cpu")(image).numpy()


def check_export(path: Path, fmt: str, module: nn.Module, example: torch.Tensor, atol: float) -> dict:
    """Max absolute logit difference and label agreement between PyTorch and the exported file, at the example
    size and at a second size (the height and width are dynamic)."""
    h, w = example.shape[-2:]
    other = torch.randn(
        2, 3, h + 32, w - 16 if w > 48 else w + 16, generator=torch.Generator().manual_seed(1)
    )
    diffs, agree = [], []
    for image in (example, other):
        with torch.no_grad():
            ref = module(image).numpy()
        got = run_exported(path, fmt, image)
        if got.shape != ref.shape:
            raise ExportError(
                f"{path}: exported output has shape {got.shape} for input {tuple(image.shape)}, "
                f"PyTorch {ref.shape}"
            )
        diffs.append(float(np.abs(got - ref).max()))
        agree.append(float((got.argmax(1) == ref.argmax(1)).mean()))
    result = {
        "max_abs_diff": max(diffs),
        "label_agreement": min(agree),
        "atol": atol,
        "sizes": [list(example.shape), list(other.shape)],
        "ok": max(diffs) <= atol,
    }
    if not result["ok"]:
        raise ExportError(
            f"{path}: exported logits differ from PyTorch's by {max(diffs):.2e} > atol={atol:g}"
        )
    return result


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        cfg = parse_key_values(argv, DEFAULTS, ExportError)
        if not cfg.ckpt_path:
            raise ExportError(
                "ckpt_path=... is required (python -m humanparse.export ckpt_path=<file.ckpt> format=onnx)"
            )
        info = export(cfg)
    except ExportError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    check = info.get("check")
    print(
        f"wrote {info['file']} ({info['format']}, {info['model']} on {info['dataset']}, "
        f"{len(info['output']['classes'])} classes) and {info['file']}.json"
        + (
            f"; check against PyTorch: max |Δlogit| {check['max_abs_diff']:.1e} (atol {check['atol']:g}), "
            f"labels agree on {100 * check['label_agreement']:.2f} % of pixels"
            if check
            else ""
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
