"""Run a trained model on arbitrary images: label PNGs, colour overlays, per-person outputs, logits.

``python -m humanparse.predict ckpt_path=<file.ckpt> input=<image|folder> output=<dir> [key=value ...]``

Arguments are ``key=value`` pairs (OmegaConf syntax, as ``humanparse.evaluate_predictions``; the output
folder is given explicitly, so no Hydra run folder is made):

====================  =======================================================================================
``ckpt_path``         a humanparse checkpoint; the model is rebuilt from the config stored in it
``input``             one image, or a folder of images (``.jpg .jpeg .png .bmp .tif .tiff .webp``)
``output``            output folder (created)
``recursive``         also read images in sub-folders (default false; sub-folders are mirrored)
``save_logits``       also write the logits at the original size (default false)
``logits_format``     ``npy`` (a (C, H, W) float32 array) or ``pt`` (a dict: logits, classes, image path)
``device``            ``auto`` (GPU if there is one), ``cpu``, ``cuda``, ``cuda:1`` ...
``batch_size``        images per forward pass (default 1), ``num_workers`` reader processes (default 0)
``input_size``        network input (H, W); default: the size the model was trained at
``alpha``             overlay opacity (default 0.5); ``overlays=false`` skips the overlays
``progress``          progress bar on folders (default true)
====================  =======================================================================================

Written per image ``<name>`` (the input's path below ``input`` without its extension):
``labels/<name>.png`` (index PNG with the dataset's palette: class ids at the original size),
``overlays/<name>.jpg`` (colours over the image, with a legend of the classes present), with ``save_logits`` ``logits/<name>.npy|pt``, and for
instance-level models ``instances/<name>/person_<k>.png`` (that person's part map, or its mask),
``instances/<name>.json`` (score, box, keypoints per person), ``overlays/<name>_instances.jpg`` and
``overlays/<name>_side_by_side.jpg`` (image | parts | instances); for DensePose instances also
``instances/<name>/person_<k>_iuv.png`` (the chart of the integer box as an RGB PNG whose channels are I,
U·255, V·255) and ``overlays/<name>_densepose.jpg`` (the charts' U/V colours and iso-lines over the image).
``predictions.json`` lists every input with its files or its error. An unreadable image is reported
(naming the file) and skipped; the other images are still written. Exit status: 0 all written, 1 some
images failed, 2 bad arguments or checkpoint.

Prediction protocol (what a task's ``predict_step(batch, batch_idx)`` returns, one entry per image):

* a tensor ``(H, W)`` of class ids at the image's original size (``SemanticParsingTask``), or
* a dict with any of ``semantic`` ((H, W) class ids), ``logits`` ((C, H, W) at the original size) and
  ``instances``: a list of per-person dicts with ``mask`` ((H, W) bool) and/or ``parts`` ((H, W) class ids,
  0 outside the person), ``score``, ``box`` (x1, y1, x2, y2 original pixels), ``keypoints`` ((K, 3) x, y,
  score/visibility), ``label`` and ``densepose`` ({``iuv``: uint8 (3, h, w), ``box``: [x, y, w, h] ints}).
  Instance-level models (Parsing R-CNN, PGN, DensePose-RCNN) return this.

``batch`` is what the model's own evaluation loader gives (``image`` normalised at the input size,
``meta`` with ``orig_size`` and ``affine``), so a task's ``predict_step`` needs nothing new to work here.
When ``save_logits`` is set and the task returns no ``logits``, tasks with ``input_logits`` (the FCN
parsers) get their input-frame logits resampled to the original size bilinearly (sampled through each
image's affine, as the semantic metrics map predictions back).
"""

from __future__ import annotations

import copy
import json
import logging
import sys
import time
from pathlib import Path

import numpy as np
import torch
from omegaconf import OmegaConf
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from humanparse.data.base import collate_dense, to_tensors
from humanparse.data.io import DataError, read_image, write_label_png
from humanparse.data.meta import get_info
from humanparse.utils import visualize as viz
from humanparse.utils.cli import parse_key_values

log = logging.getLogger("humanparse.predict")

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
DEFAULTS = {
    "ckpt_path": None,
    "input": None,
    "output": None,
    "recursive": False,
    "save_logits": False,
    "logits_format": "npy",
    "device": "auto",
    "batch_size": 1,
    "num_workers": 0,
    "input_size": None,
    "alpha": 0.5,
    "overlays": True,
    "progress": True,
}


class PredictError(ValueError):
    """Bad arguments or checkpoint (exit status 2)."""


def list_images(input_path: str | Path, recursive: bool = False) -> tuple[Path, list[Path]]:
    """(base folder, image files in sorted order). A single file is its own list."""
    p = Path(input_path).expanduser()
    if p.is_file():
        return p.parent, [p]
    if not p.is_dir():
        raise PredictError(f"input={input_path}: no such file or folder")
    pattern = "**/*" if recursive else "*"
    files = sorted(f for f in p.glob(pattern) if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise PredictError(
            f"input={input_path}: no images ({', '.join(IMAGE_SUFFIXES)}) in this folder"
            + ("" if recursive else " (recursive=true also reads sub-folders)")
        )
    return p, files


def output_names(base: Path, files: list[Path]) -> list[str]:
    """Output name per input: its path below ``base`` without the extension (kept when two inputs share a
    name, e.g. ``a.jpg`` and ``a.png``)."""
    rel = [f.relative_to(base) for f in files]
    stems = [str(r.with_suffix("")) for r in rel]
    dup = {s for s in stems if stems.count(s) > 1}
    return [str(r) if s in dup else s for r, s in zip(rel, stems)]


class ImageFiles(Dataset):
    """Images → the evaluation sample of the model's data pipeline; unreadable files give an error record."""

    def __init__(self, files: list[Path], names: list[str], transform, dataset: str):
        self.files, self.names, self.transform, self.dataset = files, names, transform, dataset

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> dict:
        path = self.files[i]
        try:
            img = read_image(path)
        except DataError as e:
            return {"error": str(e), "path": str(path), "name": self.names[i]}
        h, w = img.shape[:2]
        sample = {
            "image": img,
            "meta": {
                "id": self.names[i],
                "dataset": self.dataset,
                "image_path": str(path),
                "orig_size": (h, w),
                "split": "predict",
            },
        }
        sample = to_tensors(self.transform(sample, None))
        sample["original"] = img
        sample["name"] = self.names[i]
        return sample


def collate(batch: list[dict]) -> dict:
    ok = [b for b in batch if "error" not in b]
    out = collate_dense(ok) if ok else {}
    out["errors"] = [b for b in batch if "error" in b]
    out["size"] = len(ok)
    return out


def build_transform(saved: dict, input_size=None):
    """The model's evaluation transform (placement + normalisation) from its stored data config."""
    from humanparse.utils.safety import safe_instantiate

    data_cfg = copy.deepcopy(saved.get("data") or {})
    if input_size is not None:
        data_cfg["input_size"] = list(input_size)
    try:
        dm = safe_instantiate(OmegaConf.create(data_cfg), "the data config stored in the checkpoint")
        if hasattr(dm, "build_transform"):
            return dm.build_transform(train=False)
    except Exception as e:  # noqa: BLE001 - a datamodule from another setup: fall back to the plain pipeline
        log.debug(
            "datamodule from the checkpoint config not usable (%s); using AffineTransform + Normalize", e
        )
    from humanparse.data.transforms import AffineTransform, Compose, Normalize

    size = data_cfg.get("input_size") or [384, 384]
    return Compose(
        [
            AffineTransform(size, mode=(data_cfg.get("augment") or {}).get("mode", "box"), train=False),
            Normalize(**(data_cfg.get("normalize") or {})),
        ]
    )


def resolve_device(spec: str) -> torch.device:
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(spec)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise PredictError(f"device={spec}: no CUDA device on this machine (use device=cpu)")
    return dev


def _to_numpy(x):
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def normalise_prediction(pred) -> dict:
    """One entry of ``predict_step``'s output → ``{"semantic", "logits", "instances"}`` (numpy)."""
    if isinstance(pred, torch.Tensor) or isinstance(pred, np.ndarray):
        return {"semantic": _to_numpy(pred), "logits": None, "instances": None}
    if not isinstance(pred, dict):
        raise TypeError(
            f"predict_step returned a {type(pred).__name__} per image; expected a label tensor or a dict "
            "with semantic / logits / instances (see humanparse.predict)"
        )
    out = {
        "semantic": _to_numpy(pred["semantic"]) if pred.get("semantic") is not None else None,
        "logits": _to_numpy(pred["logits"]) if pred.get("logits") is not None else None,
        "instances": None,
    }
    if pred.get("instances") is not None:
        insts = []
        for inst in pred["instances"]:
            d = {
                k: (_to_numpy(v) if isinstance(v, (torch.Tensor, np.ndarray)) else v)
                for k, v in dict(inst).items()
            }
            if d.get("mask") is None and d.get("parts") is not None:
                d["mask"] = d["parts"] > 0
            insts.append(d)
        out["instances"] = insts
    return out


def fallback_logits(task, batch: dict) -> list[np.ndarray] | None:
    """Original-size logits for FCN tasks that expose ``input_logits`` (bilinear resampling of the
    input-frame logits through the inverse placement)."""
    if not hasattr(task, "input_logits"):
        return None
    from humanparse.tasks.postprocess import map_back

    logits = task.input_logits(batch["image"])
    return [
        map_back(logits[i], m["affine"], tuple(m["orig_size"]), "logits", return_logits=True).cpu().numpy()
        for i, m in enumerate(batch["meta"])
    ]


def _json_value(v):
    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, (np.floating, np.integer)):
        return v.item()
    return v


class Writer:
    """Writes the files of one image; returns what it wrote (relative to the output folder)."""

    def __init__(
        self,
        out: Path,
        palette: np.ndarray,
        class_names: list[str],
        alpha: float,
        overlays: bool,
        save_logits: bool,
        logits_format: str,
    ):
        self.out, self.palette, self.classes = out, palette, class_names
        self.alpha, self.overlays, self.save_logits, self.logits_format = (
            alpha,
            overlays,
            save_logits,
            logits_format,
        )

    def _path(self, sub: str, name: str, suffix: str) -> Path:
        p = self.out / sub / f"{name}{suffix}"
        p.parent.mkdir(parents=True, exist_ok=True)
        return p

    def write(self, name: str, image: np.ndarray, image_path: str, pred: dict) -> dict:
        files: dict = {}
        sem = pred["semantic"]
        if sem is not None:
            sem = np.asarray(sem).astype(np.int64)
            if sem.shape != image.shape[:2]:
                raise ValueError(
                    f"{image_path}: the model returned a {sem.shape[1]}x{sem.shape[0]} label map for a "
                    f"{image.shape[1]}x{image.shape[0]} image (predictions must be at the original size)"
                )
            p = self._path("labels", name, ".png")
            write_label_png(p, sem, self.palette)
            files["label"] = str(p.relative_to(self.out))
            if self.overlays:
                p = self._path("overlays", name, ".jpg")
                over = viz.add_legend(
                    viz.overlay(image, sem, self.palette, self.alpha), sem, self.classes, self.palette
                )
                Image.fromarray(over).save(p, quality=92)
                files["overlay"] = str(p.relative_to(self.out))
        if self.save_logits and pred["logits"] is not None:
            logits = np.asarray(pred["logits"], dtype=np.float32)
            if self.logits_format == "pt":
                p = self._path("logits", name, ".pt")
                torch.save(
                    {"logits": torch.from_numpy(logits), "classes": self.classes, "image": image_path}, p
                )
            else:
                p = self._path("logits", name, ".npy")
                np.save(p, logits)
            files["logits"] = str(p.relative_to(self.out))
        if pred["instances"] is not None:
            files.update(self._write_instances(name, image, pred["instances"]))
            if self.overlays:
                p = self._path("overlays", f"{name}_side_by_side", ".jpg")
                Image.fromarray(
                    viz.side_by_side(image, sem, pred["instances"], self.classes, self.palette, self.alpha)
                ).save(p, quality=92)
                files["side_by_side"] = str(p.relative_to(self.out))
        return files

    def _write_instances(self, name: str, image: np.ndarray, instances: list[dict]) -> dict:
        folder = self.out / "instances" / name
        folder.mkdir(parents=True, exist_ok=True)
        records, masks, boxes, captions, charts = [], [], [], [], []
        for k, inst in enumerate(instances, start=1):
            rec = {"id": k}
            for key in ("score", "box", "label", "keypoints"):
                if inst.get(key) is not None:
                    rec[key] = _json_value(inst[key])
            p = folder / f"person_{k}.png"
            if inst.get("parts") is not None:
                write_label_png(p, np.asarray(inst["parts"]).astype(np.int64), self.palette)
            elif inst.get("mask") is not None:
                Image.fromarray((np.asarray(inst["mask"], dtype=bool) * 255).astype(np.uint8)).save(p)
            else:
                p = None
            if p is not None:
                rec["file"] = str(p.relative_to(self.out))
            dp = inst.get("densepose")
            if dp is not None:  # DensePose chart: the (I, U·255, V·255) uint8 image of the integer box
                iuv = _to_numpy(dp["iuv"]).astype(np.uint8)
                q = folder / f"person_{k}_iuv.png"
                Image.fromarray(np.ascontiguousarray(iuv.transpose(1, 2, 0)), mode="RGB").save(q)
                rec["densepose"] = {"box": [int(v) for v in dp["box"]], "file": str(q.relative_to(self.out))}
                charts.append((iuv, dp["box"]))
            if inst.get("mask") is not None:
                masks.append(np.asarray(inst["mask"], dtype=bool))
                boxes.append(inst.get("box"))
                captions.append(
                    f"{k}" + (f":{float(inst['score']):.2f}" if inst.get("score") is not None else "")
                )
            records.append(rec)
        jpath = self.out / "instances" / f"{name}.json"
        jpath.write_text(json.dumps({"image": name, "instances": records}, indent=2))
        files = {"instances": str(jpath.relative_to(self.out)), "num_instances": len(records)}
        if self.overlays and masks:
            img = viz.overlay_instances(image, masks, self.alpha, boxes, captions)
            for inst in instances:
                if inst.get("keypoints") is not None:
                    img = viz.draw_keypoints(img, np.asarray(inst["keypoints"], dtype=np.float64))
            p = self._path("overlays", f"{name}_instances", ".jpg")
            Image.fromarray(img).save(p, quality=92)
            files["instance_overlay"] = str(p.relative_to(self.out))
        if self.overlays and charts:
            p = self._path("overlays", f"{name}_densepose", ".jpg")
            Image.fromarray(viz.overlay_densepose(image, charts, self.alpha)).save(p, quality=92)
            files["densepose_overlay"] = str(p.relative_to(self.out))
        return files


def parse_args(argv: list[str]):
    cfg = parse_key_values(argv, DEFAULTS, PredictError)
    for key in ("ckpt_path", "input", "output"):
        if not cfg.get(key):
            raise PredictError(
                f"{key}=... is required (python -m humanparse.predict ckpt_path=<file.ckpt> "
                "input=<image|folder> output=<dir>)"
            )
    if cfg.logits_format not in ("npy", "pt"):
        raise PredictError(f"logits_format={cfg.logits_format!r}: choose npy or pt")
    return cfg


def predict(cfg) -> dict:
    """Run the model over the inputs; returns the summary written to ``predictions.json``."""
    from humanparse.evaluate import build_task_from_checkpoint

    try:
        task, saved = build_task_from_checkpoint(cfg.ckpt_path)
    except (FileNotFoundError, ValueError, KeyError) as e:
        raise PredictError(str(e)) from e
    base, files = list_images(cfg.input, bool(cfg.recursive))
    names = output_names(base, files)
    info = getattr(task, "info", None) or get_info((saved.get("data") or {}).get("name", ""))
    device = resolve_device(str(cfg.device))
    task = task.to(device).eval()
    transform = build_transform(
        saved, OmegaConf.to_container(cfg.input_size) if cfg.input_size is not None else None
    )
    dataset = ImageFiles(files, names, transform, info.name)
    loader = DataLoader(
        dataset, batch_size=int(cfg.batch_size), num_workers=int(cfg.num_workers), collate_fn=collate
    )
    out = Path(cfg.output).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    writer = Writer(
        out,
        info.palette(),
        list(info.class_keys),
        float(cfg.alpha),
        bool(cfg.overlays),
        bool(cfg.save_logits),
        str(cfg.logits_format),
    )
    entries: dict[str, dict] = {}
    from tqdm.auto import tqdm

    bar = tqdm(total=len(files), unit="img", disable=not cfg.progress or len(files) < 2, desc="predict")
    start = time.perf_counter()
    with torch.inference_mode():
        for i, batch in enumerate(loader):
            for err in batch["errors"]:
                entries[err["name"]] = {"input": err["path"], "error": err["error"]}
                bar.write(f"error: {err['error']} (skipped)", file=sys.stderr)
            if batch["size"]:
                batch["image"] = batch["image"].to(device)
                preds = [normalise_prediction(p) for p in task.predict_step(batch, i)]
                if cfg.save_logits and any(p["logits"] is None for p in preds):
                    extra = fallback_logits(task, batch)
                    if extra is None:
                        log.warning(
                            "save_logits: %s returns no logits and has no input_logits; none written",
                            type(task).__name__,
                        )
                    else:
                        for p, lg in zip(preds, extra):
                            p["logits"] = p["logits"] if p["logits"] is not None else lg
                for name, meta, image, pred in zip(batch["name"], batch["meta"], batch["original"], preds):
                    try:
                        entries[name] = {
                            "input": meta["image_path"],
                            **writer.write(name, image, meta["image_path"], pred),
                        }
                    except (ValueError, OSError) as e:
                        entries[name] = {"input": meta["image_path"], "error": str(e)}
                        bar.write(f"error: {e} (skipped)", file=sys.stderr)
            bar.update(batch["size"] + len(batch["errors"]))
    bar.close()
    failed = [n for n, e in entries.items() if "error" in e]
    summary = {
        "checkpoint": str(Path(cfg.ckpt_path).resolve()),
        "model": (saved.get("model") or {}).get("name"),
        "dataset": info.name,
        "classes": list(info.class_keys),
        "device": str(device),
        "images": len(files),
        "written": len(files) - len(failed),
        "failed": len(failed),
        "seconds": round(time.perf_counter() - start, 3),
        "outputs": [{"name": n, **entries[n]} for n in names if n in entries],
    }
    (out / "predictions.json").write_text(json.dumps(summary, indent=2))
    return summary


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        cfg = parse_args(argv)
        summary = predict(cfg)
    except PredictError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(
        f"{summary['written']} of {summary['images']} images written to {cfg.output} "
        f"({summary['seconds']:.1f} s on {summary['device']})"
        + (f"; {summary['failed']} failed, see predictions.json" if summary["failed"] else "")
    )
    return 1 if summary["failed"] else 0


if __name__ == "__main__":
    from humanparse.utils.errors import run_main

    sys.exit(run_main(main))
