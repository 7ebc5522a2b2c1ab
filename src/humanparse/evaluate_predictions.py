"""Score prediction files with the papers' metrics, independently of any model.

``python -m humanparse.evaluate_predictions metric=<semantic|atr|app|apr|edge|densepose> gt_dir=... pred_dir=... [...]``

Arguments are ``key=value`` pairs (OmegaConf syntax; no output directory is created). Common:
``list`` (id file; default: the split's list found next to the GT, else every GT file),
``dataset=<name>`` or ``num_classes`` (class names of the table), ``output=<file.json>`` (default
``<pred_dir>/../<metric>_metrics.json``), ``workers`` (reader threads, default 4).

semantic
    ``<id>.png`` label maps in ``gt_dir`` and ``pred_dir``; ``absent_class=nan|zero`` (README "Metrics").
    A drop-in for the official LIP evaluation script.
atr
    Same files (``gt_dir`` = ``SegmentationClassAug``); ``atr_convention=hhp_macro|macro_f1|fg_macro|
    fg_pooled``, ``atr_zero_division=zero|nan`` (:mod:`humanparse.metrics.atr`). Default ``dataset=atr``.
app
    AP^p / PCP / Parsing R-CNN mIoU (:mod:`humanparse.metrics.instance`). ``gt_format=cihp`` (``gt_dir`` holds
    ``Category_ids/`` and ``Human_ids/``) or ``mhp`` (``gt_dir`` holds ``parsing_annos/``);
    ``pred_format=persons`` (``<pred_dir>/<id>_<k>.png`` + ``<pred_dir>/scores.txt`` lines
    ``<id> <k> <score>``, overlaps allowed; ``scores_file`` to move it) or ``mhp`` (MHP v2 submission:
    ``results.txt``, ``global_seg/``, ``global_tag/``) or ``predict`` (the ``instances/`` outputs of
    ``python -m humanparse.predict``). ``app_convention=prcnn|mhp_official|pet``,
    ``score_thresh`` (default: the convention's), ``semseg_score_thresh`` (0.3), ``prcnn_skip_empty``,
    ``nan_score=raise|first``.
apr
    PGN AP^r (:mod:`humanparse.metrics.apr`): ``<pred_dir>/<id>.png`` + ``<id>.txt`` (``<class> <score>`` per
    id) against CIHP ``gt_dir`` by the Category × Human rule (``apr_gt=category_human``, default) or the
    shipped ``Instance_ids`` + ``<id>.txt`` table (``apr_gt=instance_ids``; ``instance_dir``,
    ``instance_txt_dir`` for PGN's ``Instance_part_val``). ``matching=pgn|one_to_one``,
    ``class_reduction=nanmean|mean``, ``nan_score=raise|first``.
edge
    PGN instance edges (:mod:`humanparse.metrics.edge`): ``<pred_dir>/<id>.png`` as 255·p (``edge_pred=prob``,
    PGN's ``cihp_edge_maps``) or binary (``edge_pred=binary``); GT derived from ``Human_ids``
    (``edge_gt=human_ids``, PGN's ``write_edge.m`` rule) or read from ``edges/`` (``edge_gt=edges``,
    ``edge_dir``); ``edge_threshold`` (0.5).

It prints the table and writes the JSON. Prediction/GT size mismatches, missing files, malformed
lines and labels out of range are errors naming the file.
"""

from __future__ import annotations

import json
import sys
import time
import warnings
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from humanparse.data.io import DataError, read_id_list
from humanparse.data.meta import get_info
from humanparse.evaluation.fastio import read_index_png
from humanparse.evaluation.groundtruth import CIHPGroundTruth, ground_truth
from humanparse.evaluation.predictions import (
    APP_FORMATS,
    MHPSubmission,
    PersonPredictions,
    PredictOutputs,
    read_edge_prediction,
    read_part_instances,
)
from humanparse.metrics.ap import THRESHOLDS
from humanparse.metrics.apr import image_apr_record, score_apr
from humanparse.metrics.atr import atr_scores_from_confmat, flatten_atr
from humanparse.metrics.densepose_results import evaluate_densepose
from humanparse.metrics.edge import edge_scores
from humanparse.metrics.hist import confusion_counts
from humanparse.metrics.instance import image_app_record, score_app, threshold_key
from humanparse.metrics.semantic import scores_from_confmat
from humanparse.utils.cli import check_known_keys
from humanparse.utils.run import format_metrics_table, sanitize


def _ids(cfg: DictConfig, gt_dir: Path) -> list[str]:
    if cfg.get("list"):
        return read_id_list(cfg.list)
    ids = sorted(p.stem for p in gt_dir.glob("*.png"))
    if not ids:
        raise DataError(gt_dir, "no ground-truth PNG files")
    return ids


def _class_names(cfg: DictConfig, default_dataset: str | None = None) -> tuple[int, list[str]]:
    dataset = cfg.get("dataset") or (default_dataset if cfg.get("num_classes") is None else None)
    if dataset:
        info = get_info(dataset)
        if cfg.get("num_classes") not in (None, info.num_classes):
            raise ValueError(f"num_classes={cfg.num_classes} but dataset {dataset} has {info.num_classes}")
        return info.num_classes, list(info.class_keys)
    if cfg.get("num_classes") is None:
        raise ValueError("give num_classes=<C> or dataset=<name>")
    n = int(cfg.num_classes)
    return n, [str(i) for i in range(n)]


def semantic_confmat(
    gt_dir: Path, pred_dir: Path, ids: list[str], num_classes: int, workers: int = 4
) -> torch.Tensor:
    """Dataset-level confusion matrix of ``<id>.png`` predictions against ``<id>.png`` ground truth."""
    c = num_classes

    def one(sid: str) -> np.ndarray:
        gpath, ppath = gt_dir / f"{sid}.png", pred_dir / f"{sid}.png"
        gt = read_index_png(gpath, num_classes=c)
        if not ppath.is_file():
            raise DataError(ppath, f"prediction file is missing (id {sid} is in the list)")
        pred = read_index_png(ppath)
        if pred.shape != gt.shape:
            raise DataError(
                ppath,
                f"prediction is {pred.shape[1]}x{pred.shape[0]} but ground truth {gpath} is "
                f"{gt.shape[1]}x{gt.shape[0]}; predictions must be at the original size (no resizing of label maps)",
            )
        try:
            return confusion_counts(gt, pred, c).reshape(-1)
        except ValueError as e:
            raise DataError(ppath, str(e)) from None

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


def _workers(cfg: DictConfig) -> int:
    return max(1, int(cfg.get("workers", 4)))


def _parallel(fn: Callable, ids: list[str], workers: int) -> list:
    """``fn`` over ``ids`` in reader threads (PNG decoding releases the GIL), results in list order."""
    if workers == 1:
        return [fn(i) for i in ids]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(fn, ids))


def _warn_all(messages: list[str], what: str) -> None:
    if messages:
        head = "\n  ".join(messages[:5])
        more = f"\n  ... and {len(messages) - 5} more" if len(messages) > 5 else ""
        warnings.warn(f"{what}: {len(messages)} warning(s):\n  {head}{more}", stacklevel=3)


def _split_counts(metrics: dict) -> tuple[dict, dict]:
    counts = {k: int(v) for k, v in metrics.items() if k.startswith("num_") or k == "semantic_images"}
    return {k: v for k, v in metrics.items() if k not in counts}, counts


def evaluate_atr(cfg: DictConfig) -> dict:
    """ATR's five numbers from ``<id>.png`` label maps (:class:`~humanparse.metrics.atr.ATRMetric`)."""
    gt_dir, pred_dir = Path(cfg.gt_dir), Path(cfg.pred_dir)
    num_classes, names = _class_names(cfg, "atr")
    ids = _ids(cfg, gt_dir)
    cm = semantic_confmat(gt_dir, pred_dir, ids, num_classes, _workers(cfg))
    conv = cfg.get("atr_convention", "hhp_macro")
    zd = cfg.get("atr_zero_division", "zero")
    s = atr_scores_from_confmat(cm, conv, zd)
    sem = scores_from_confmat(cm, "nan")
    s["miou"], s["mean_acc"] = sem["miou"], sem["mean_acc"]
    s["iou"] = sem["iou"]
    metrics = flatten_atr(s, names)
    metrics.update({f"iou/{n}": float(v) for n, v in zip(names, sem["iou"].tolist())})
    return {
        "metrics": metrics,
        "num_images": len(ids),
        "atr_convention": conv,
        "atr_zero_division": zd,
        "confusion_matrix": cm.tolist(),
    }


def _gt_ids(cfg: DictConfig, gt) -> list[str]:
    return read_id_list(cfg.list) if cfg.get("list") else gt.default_ids()


def _extra_ids(pred_ids: set[str], ids: list[str], source: Path) -> list[str]:
    extra = sorted(pred_ids - set(ids))
    if not extra:
        return []
    return [f"{source}: {len(extra)} image id(s) not in the evaluation list are ignored (e.g. {extra[:5]})"]


def evaluate_app(cfg: DictConfig) -> dict:
    """AP^p, PCP and the Parsing R-CNN semantic mIoU from per-person predictions (Parsing R-CNN §4)."""
    gt_format = cfg.get("gt_format", "cihp")
    num_classes, names = _class_names(cfg, {"cihp": "cihp", "mhp": "mhp_v2"}.get(gt_format))
    conv = cfg.get("app_convention", "prcnn")
    nan_score = cfg.get("nan_score", "raise")
    gt = ground_truth(gt_format, cfg.gt_dir, num_classes)
    ids = _gt_ids(cfg, gt)
    fmt = cfg.get("pred_format", "persons")
    if fmt == "persons":
        preds = PersonPredictions(cfg.pred_dir, cfg.get("scores_file"), nan_score)
        source = preds.scores_path
    elif fmt == "mhp":
        preds = MHPSubmission(cfg.pred_dir, nan_score)
        source = preds.results_path
    elif fmt == "predict":
        preds = PredictOutputs(cfg.pred_dir, nan_score)
        source = preds.folder
    else:
        raise ValueError(f"pred_format must be one of {APP_FORMATS}, got {fmt!r}")
    notes = _extra_ids(preds.ids(), ids, source)
    semseg = float(cfg.get("semseg_score_thresh", 0.3))
    drop = conv == "mhp_official"

    def one(sid: str) -> dict:
        persons, semantic = gt.persons(sid, drop_empty=drop)
        maps, scores = preds.read(sid, semantic.shape)
        try:
            return image_app_record(persons, maps, scores, semantic_gt=semantic, semseg_score_thresh=semseg)
        except ValueError as e:
            raise DataError(Path(cfg.pred_dir), f"image {sid}: {e}") from None

    records = _parallel(one, ids, _workers(cfg))
    _warn_all(notes, "app")
    score_thresh = cfg.get("score_thresh", "default")
    metrics = score_app(
        records,
        num_classes,
        conv,
        score_thresh,
        THRESHOLDS,
        bool(cfg.get("prcnn_skip_empty", False)),
        names,
        nan_score,
    )
    metrics, counts = _split_counts(metrics)
    return {
        "metrics": metrics,
        "counts": counts,
        "num_images": len(ids),
        "app_convention": conv,
        "pred_format": fmt,
        "gt_format": gt_format,
    }


def evaluate_apr(cfg: DictConfig) -> dict:
    """PGN AP^r (PGN §4, released ``test_inst_part_ap.py``) from CIHP_PGN part-instance files."""
    num_classes, names = _class_names(cfg, "cihp")
    gt = CIHPGroundTruth(
        cfg.gt_dir,
        num_classes,
        instance_dir=cfg.get("instance_dir"),
        instance_txt_dir=cfg.get("instance_txt_dir"),
    )
    ids = _gt_ids(cfg, gt)
    source = cfg.get("apr_gt", "category_human")
    nan_score = cfg.get("nan_score", "raise")
    pred_dir = Path(cfg.pred_dir)
    if not pred_dir.is_dir():
        raise DataError(pred_dir, "prediction directory does not exist")
    pred_ids = {p.stem for p in pred_dir.glob("*.txt")}

    def one(sid: str) -> tuple[dict, list[str]]:
        g = gt.part_instances(sid, source)
        p, notes = read_part_instances(pred_dir, sid, g.id_map.shape, nan_score)
        return image_apr_record(g, p, num_classes, f"image {sid}: "), notes

    out = _parallel(one, ids, _workers(cfg))
    notes = _extra_ids(pred_ids, ids, pred_dir) + [n for _, ns in out for n in ns]
    _warn_all(notes, "apr")
    matching = cfg.get("matching", "pgn")
    reduction = cfg.get("class_reduction", "nanmean")
    metrics = score_apr([r for r, _ in out], num_classes, matching, reduction, THRESHOLDS, nan_score, names)
    metrics, counts = _split_counts(metrics)
    table = {
        names[c]: [metrics[f"apr/{names[c]}/{threshold_key(t)}"] for t in THRESHOLDS]
        for c in range(1, num_classes)
    }
    return {
        "metrics": metrics,
        "counts": counts,
        "num_images": len(ids),
        "matching": matching,
        "class_reduction": reduction,
        "apr_gt": source,
        "thresholds": list(THRESHOLDS),
        "table": table,
    }


def evaluate_edge(cfg: DictConfig) -> dict:
    """PGN instance-edge precision / recall / F1 (CIHP_PGN ``test_pgn.py``), pooled over the split."""
    gt_dir = Path(cfg.gt_dir)
    source = cfg.get("edge_gt", "human_ids")
    # edges need no class table: the class count only bounds Category_ids, which is not read here
    gt = CIHPGroundTruth(gt_dir, num_classes=255, edge_dir=cfg.get("edge_dir"))
    ids = (
        read_id_list(cfg.list)
        if cfg.get("list")
        else gt.default_ids(gt.edge_dir if source == "edges" else gt.human_dir)
    )
    edge_pred = cfg.get("edge_pred", "prob")
    thr = float(cfg.get("edge_threshold", 0.5))

    def one(sid: str) -> np.ndarray:
        g = gt.edges(sid, source) != 0
        e = read_edge_prediction(cfg.pred_dir, sid, g.shape, edge_pred, thr)
        return np.array([np.count_nonzero(e & g), np.count_nonzero(e), np.count_nonzero(g)], dtype=np.int64)

    counts = np.sum(_parallel(one, ids, _workers(cfg)), axis=0) if ids else np.zeros(3, np.int64)
    s = edge_scores(*(torch.tensor(int(x)) for x in counts))
    return {
        "metrics": {k: float(v) for k, v in s.items()},
        "num_images": len(ids),
        "counts": {"tp": int(counts[0]), "pred_pos": int(counts[1]), "gt_pos": int(counts[2])},
        "edge_gt": source,
        "edge_pred": edge_pred,
        "edge_threshold": thr,
    }


EVALUATORS: dict[str, Callable[[DictConfig], dict]] = {
    "semantic": evaluate_semantic,
    "atr": evaluate_atr,
    "app": evaluate_app,
    "apr": evaluate_apr,
    "edge": evaluate_edge,
    "densepose": evaluate_densepose,
}


def _apr_table(result: dict) -> str:
    table = result.get("table")
    if not table:
        return ""
    ts = [threshold_key(t) for t in result["thresholds"]]
    width = max(len(n) for n in table) + 2
    lines = ["AP^r per class (%), IoU thresholds:", " " * (width + 2) + " ".join(f"{t:>6}" for t in ts)]
    for name, row in table.items():
        cells = " ".join("   n/a" if v != v else f"{100 * v:6.2f}" for v in row)
        lines.append(f"  {name:<{width}}{cells}")
    return "\n".join(lines)


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
    flat = {
        f"eval/{k}": v
        for k, v in result["metrics"].items()
        if isinstance(v, (int, float)) and not k.startswith("apr/")
    }
    print(
        format_metrics_table(
            flat, "eval", f"{metric} metrics (%) over {result.get('num_images', '?')} images — {out}"
        )
    )
    if metric == "apr":
        print(_apr_table(result))
    return result


# every option some metric reads (module docstring); anything else is a misspelling and is refused
OPTIONS = frozenset(
    {
        "metric",
        "gt_dir",
        "pred_dir",
        "list",
        "dataset",
        "num_classes",
        "output",
        "workers",
        "absent_class",
        "atr_convention",
        "atr_zero_division",
        "gt_format",
        "pred_format",
        "scores_file",
        "app_convention",
        "score_thresh",
        "semseg_score_thresh",
        "prcnn_skip_empty",
        "nan_score",
        "apr_gt",
        "instance_dir",
        "instance_txt_dir",
        "matching",
        "class_reduction",
        "edge_pred",
        "edge_gt",
        "edge_dir",
        "edge_threshold",
        # metric=densepose (humanparse.metrics.densepose_results)
        "results",
        "gt",
        "eval_data",
        "modes",
        "kappa",
        "category_id",
        "rcp",
        "rcp_results",
        "rcp_curve",
        "rcp_per_part",
        "rcp_setting",
        "min_threshold",
        "bbox",
    }
)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0
    try:
        check_known_keys(argv, OPTIONS)
        run(OmegaConf.from_cli(argv))
    except (DataError, ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    from humanparse.utils.errors import run_main

    sys.exit(run_main(main))
