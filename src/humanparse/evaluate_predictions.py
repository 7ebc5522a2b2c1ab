"""Score prediction files with the papers' metrics, independently of any model.

``python -m humanparse.evaluate_predictions metric=semantic gt_dir=... pred_dir=... list=... num_classes=20``

Arguments are ``key=value`` pairs (Hydra/OmegaConf syntax, no output directory is created):

semantic
    ``gt_dir``, ``pred_dir`` (``<id>.png`` index maps in both), ``list`` (id file; default: every PNG in
    ``gt_dir``), ``num_classes`` or ``dataset=<name>`` (class names in the table),
    ``absent_class=nan|zero``, ``output=<file.json>`` (default ``<pred_dir>/../<metric>_metrics.json``),
    ``workers`` (reader threads). A drop-in for the official LIP evaluation script.

It prints the table and writes the JSON. Prediction/GT size mismatches, missing files and labels out
of range are errors naming the file.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from humanparse.data.io import DataError, read_id_list, read_label
from humanparse.data.meta import get_info
from humanparse.metrics.densepose_results import evaluate_densepose
from humanparse.metrics.semantic import scores_from_confmat
from humanparse.utils.run import format_metrics_table, sanitize


def _ids(cfg: DictConfig, gt_dir: Path) -> list[str]:
    if cfg.get("list"):
        return read_id_list(cfg.list)
    ids = sorted(p.stem for p in gt_dir.glob("*.png"))
    if not ids:
        raise DataError(gt_dir, "no ground-truth PNG files")
    return ids


def _class_names(cfg: DictConfig) -> tuple[int, list[str]]:
    if cfg.get("dataset"):
        info = get_info(cfg.dataset)
        if cfg.get("num_classes") not in (None, info.num_classes):
            raise ValueError(f"num_classes={cfg.num_classes} but dataset {cfg.dataset} has {info.num_classes}")
        return info.num_classes, list(info.class_keys)
    if cfg.get("num_classes") is None:
        raise ValueError("give num_classes=<C> or dataset=<name>")
    n = int(cfg.num_classes)
    return n, [str(i) for i in range(n)]


def semantic_confmat(gt_dir: Path, pred_dir: Path, ids: list[str], num_classes: int, workers: int = 4) -> torch.Tensor:
    """Dataset-level confusion matrix of ``<id>.png`` predictions against ``<id>.png`` ground truth."""
    c = num_classes

    def one(sid: str) -> np.ndarray:
        gpath, ppath = gt_dir / f"{sid}.png", pred_dir / f"{sid}.png"
        gt = read_label(gpath, num_classes=c)
        if not ppath.is_file():
            raise DataError(ppath, f"prediction file is missing (id {sid} is in the list)")
        pred = read_label(ppath)
        if pred.shape != gt.shape:
            raise DataError(ppath, f"prediction is {pred.shape[1]}x{pred.shape[0]} but ground truth {gpath} is "
                            f"{gt.shape[1]}x{gt.shape[0]}; predictions must be at the original size (no resizing of label maps)")
        valid = gt != 255
        p = pred[valid].astype(np.int64)
        if p.size and (p.max() >= c):
            raise DataError(ppath, f"predicted label {int(p.max())} outside 0..{c - 1}")
        return np.bincount(gt[valid].astype(np.int64) * c + p, minlength=c * c)

    total = np.zeros(c * c, dtype=np.int64)
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        for counts in pool.map(one, ids):
            total += counts
    return torch.from_numpy(total.reshape(c, c))


def evaluate_semantic(cfg: DictConfig) -> dict:
    gt_dir, pred_dir = Path(cfg.gt_dir), Path(cfg.pred_dir)
    num_classes, names = _class_names(cfg)
    ids = _ids(cfg, gt_dir)
    cm = semantic_confmat(gt_dir, pred_dir, ids, num_classes, int(cfg.get("workers", 4)))
    s = scores_from_confmat(cm, cfg.get("absent_class", "nan"))
    metrics = {k: float(s[k]) for k in ("pixel_acc", "mean_acc", "miou", "fwiou")}
    metrics.update({f"iou/{n}": float(v) for n, v in zip(names, s["iou"].tolist())})
    return {"metrics": metrics, "num_images": len(ids), "confusion_matrix": cm.tolist()}


EVALUATORS: dict[str, Callable[[DictConfig], dict]] = {
    "semantic": evaluate_semantic,
    "densepose": evaluate_densepose,
}


def run(cfg: DictConfig) -> dict:
    metric = cfg.get("metric")
    if metric not in EVALUATORS:
        raise ValueError(f"metric={metric!r}; choose one of {sorted(EVALUATORS)}")
    start = time.perf_counter()
    result = EVALUATORS[metric](cfg)
    result["seconds"] = round(time.perf_counter() - start, 4)
    result["metric"] = metric
    result["args"] = {k: v for k, v in OmegaConf.to_container(cfg, resolve=True).items() if k != "output"}
    out = Path(cfg.get("output") or Path(cfg.pred_dir).resolve().parent / f"{metric}_metrics.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(sanitize(result), indent=2, default=str))
    flat = {f"eval/{k}": v for k, v in result["metrics"].items() if isinstance(v, (int, float))}
    print(format_metrics_table(flat, "eval", f"{metric} metrics (%) over {result.get('num_images', '?')} images — {out}"))
    return result


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0
    try:
        run(OmegaConf.from_cli(argv))
    except (DataError, ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
