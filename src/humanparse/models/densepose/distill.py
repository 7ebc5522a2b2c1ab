"""Distilled ("inpainted") dense supervision of DensePose-RCNN (Güler et al. CVPR 2018 §3.3, "Distillation-based
ground-truth interpolation"): a teacher network trained on the sparse points predicts dense I/U/V inside each
annotated person; those dense maps, cached once, supervise the R-CNN instead of the sparse points.

Cache format (one ``.pt`` file, read with ``torch.load(weights_only=True)``)::

    {"format": "densepose_teacher_v1",
     "persons": {<annotation id>: {"bbox": [x, y, w, h] (original image pixels, the COCO bbox),
                                   "iuv": uint8 (3, 256, 256) teacher I (0 = background, 1..24), U·255, V·255
                                          on the 256×256 frame of that box (rows = y)}}}

Training (:class:`TeacherTargets`): every cell of a head RoI's output grid inside the matched person's box
becomes one supervision point at the cell centre: its input-pixel position goes back through the sample's
placement (``meta['affine']``, original → input) into the original box frame, where the teacher map is read
(nearest). When the sample was mirrored, the read label is mirrored too: I through the fine-chart flip table,
U/V through ``UV_symmetry_transforms.mat`` (datasets without it cannot flip). Cells with teacher I = 0 inside
the person's box are background points for the I loss; U/V are trained where I > 0 (as for sparse points).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import scipy.io
import torch
from torch import Tensor

from humanparse.models.densepose.densepose_rcnn import DensePoseTargets, xyxy_to_xywh

CACHE_FORMAT = "densepose_teacher_v1"
# fine chart index after a horizontal flip (detectron2 densepose/structures/transform_data.py,
# Detectron1 detectron/utils/densepose_methods.py)
FINE_FLIP = (0, 1, 2, 4, 3, 6, 5, 8, 7, 10, 9, 12, 11, 14, 13, 16, 15, 18, 17, 20, 19, 22, 21, 24, 23)


def load_teacher_cache(path: str | os.PathLike) -> dict[int, dict]:
    """``{annotation id: {"bbox": (4,) float64, "iuv": (3, 256, 256) uint8}}``; a bad file raises one clear error."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: DensePose teacher cache not found (supervision=distilled needs the cached "
            "teacher outputs, see humanparse.models.densepose.distill)"
        )
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unpickling failure is one error naming the file
        raise ValueError(f"{path}: not a readable DensePose teacher cache ({type(e).__name__}: {e})") from e
    if (
        not isinstance(data, dict)
        or data.get("format") != CACHE_FORMAT
        or not isinstance(data.get("persons"), dict)
    ):
        raise ValueError(
            f"{path}: not a DensePose teacher cache (expected a dict with format={CACHE_FORMAT!r} and "
            "'persons')"
        )
    out = {}
    for aid, rec in data["persons"].items():
        iuv = torch.as_tensor(rec["iuv"])
        if iuv.shape != (3, 256, 256) or iuv.dtype != torch.uint8:
            raise ValueError(
                f"{path}: person {aid}: iuv must be uint8 (3, 256, 256), got {tuple(iuv.shape)} {iuv.dtype}"
            )
        out[int(aid)] = {"bbox": np.asarray(rec["bbox"], dtype=np.float64).reshape(4), "iuv": iuv.numpy()}
    return out


def save_teacher_cache(path: str | os.PathLike, persons: dict[int, dict]) -> Path:
    """Write a cache (``persons``: annotation id → ``bbox`` [x, y, w, h], ``iuv`` uint8 (3, 256, 256))."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(
        {
            "format": CACHE_FORMAT,
            "persons": {
                int(k): {
                    "bbox": torch.as_tensor(np.asarray(v["bbox"], np.float64)),
                    "iuv": torch.as_tensor(np.asarray(v["iuv"], np.uint8)),
                }
                for k, v in persons.items()
            },
        },
        path,
    )
    return path


def load_uv_symmetry_tables(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """(24, 256, 256) U and V flip tables from ``UV_symmetry_transforms.mat`` (1×24 cells ``U_transforms`` /
    ``V_transforms``, indexed [⌊V·255⌋, ⌊U·255⌋])."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: UV_symmetry_transforms.mat not found (needed to mirror teacher targets)"
        )
    try:
        mat = scipy.io.loadmat(path)
        tables = []
        for key in ("U_transforms", "V_transforms"):
            cell = mat[key]
            tables.append(np.stack([np.asarray(cell[0, i], dtype=np.float32) for i in range(24)]))
    except (KeyError, ValueError, IndexError, TypeError) as e:
        raise ValueError(
            f"{path}: not a UV symmetry file with 1x24 cells U_transforms / V_transforms ({e})"
        ) from e
    if tables[0].shape != (24, 256, 256):
        raise ValueError(f"{path}: U_transforms must hold 24 arrays of 256x256, got {tables[0].shape}")
    return tables[0], tables[1]


class TeacherTargets:
    """Dense teacher targets for the head RoIs (module docstring). ``cache``: the ``.pt`` path or the loaded
    dict; ``uv_symmetry``: ``UV_symmetry_transforms.mat`` (required to train on mirrored samples)."""

    def __init__(self, cache, uv_symmetry: str | os.PathLike | None = None):
        self.persons = load_teacher_cache(cache) if isinstance(cache, (str, os.PathLike)) else dict(cache)
        self.symmetry = load_uv_symmetry_tables(uv_symmetry) if uv_symmetry else None

    def targets(
        self, rois: list[Tensor], targets: list[dict], matched: list[Tensor], size: int
    ) -> DensePoseTargets:
        """Dense points of the head RoIs (``size`` = the output grid); ``targets[i]`` needs ``boxes``,
        ``person_ids`` (annotation ids, the cache keys) and ``meta`` (the sample's ``affine`` / ``flipped``)."""
        dev = rois[0].device if rois else torch.device("cpu")
        roi_boxes, gt_boxes = [], []
        pr, px, py, pi, pu, pv = [], [], [], [], [], []
        offset = 0
        centres = (torch.arange(size, dtype=torch.float64) + 0.5) / size
        for r, tgt, gidx in zip(rois, targets, matched):
            meta = tgt.get("meta") or {}
            affine = np.asarray(meta.get("affine", np.eye(3)), dtype=np.float64)
            flipped = bool(meta.get("flipped", False))
            if flipped and self.symmetry is None:
                raise ValueError(
                    "distilled DensePose supervision on a mirrored sample needs uv_symmetry="
                    "<UV_symmetry_transforms.mat> to mirror the teacher's U/V"
                )
            inv = np.linalg.inv(affine)
            ids = tgt.get("person_ids")
            roi_boxes.append(xyxy_to_xywh(r))
            gt = xyxy_to_xywh(tgt["boxes"][gidx])
            gt_boxes.append(gt)
            for k, g in enumerate(gidx.tolist()):
                aid = int(ids[g]) if ids is not None else None
                rec = self.persons.get(aid)
                if rec is None:
                    continue
                x0, y0, x1, y1 = (float(c) for c in r[k])
                xs = x0 + centres * (x1 - x0)
                ys = y0 + centres * (y1 - y0)
                yy, xx = torch.meshgrid(ys, xs, indexing="ij")
                # input pixels → original pixels (pixel-centre placement: c' = M (c − ½) + ½)
                ox = inv[0, 0] * (xx - 0.5) + inv[0, 1] * (yy - 0.5) + inv[0, 2] + 0.5
                oy = inv[1, 0] * (xx - 0.5) + inv[1, 1] * (yy - 0.5) + inv[1, 2] + 0.5
                bx, by, bw, bh = rec["bbox"]
                cx = torch.floor((ox - bx) * 256.0 / bw).long()
                cy = torch.floor((oy - by) * 256.0 / bh).long()
                inside = (cx >= 0) & (cx < 256) & (cy >= 0) & (cy < 256)
                if not bool(inside.any()):
                    continue
                cxi, cyi = cx[inside].numpy(), cy[inside].numpy()
                iuv = rec["iuv"]
                parts = iuv[0, cyi, cxi].astype(np.int64)
                iu, iv = iuv[1, cyi, cxi].astype(np.int64), iuv[2, cyi, cxi].astype(np.int64)
                u, v = iu / 255.0, iv / 255.0
                if flipped:  # looked up at [⌊V·255⌋, ⌊U·255⌋] = the stored integers
                    fg = parts > 0
                    cu, cv = iu[fg], iv[fg]
                    u[fg] = self.symmetry[0][parts[fg] - 1, cv, cu]
                    v[fg] = self.symmetry[1][parts[fg] - 1, cv, cu]
                    parts = np.asarray(FINE_FLIP)[parts]
                # the supervision point, expressed in the 256-frame of the matched GT box (input pixels)
                gx0, gy0, gw, gh = (float(c) for c in gt[k])
                n = int(inside.sum())
                px.append(((xx[inside] - gx0) * 256.0 / gw).float().to(dev))
                py.append(((yy[inside] - gy0) * 256.0 / gh).float().to(dev))
                pi.append(torch.as_tensor(parts, device=dev))
                pu.append(torch.as_tensor(u, dtype=torch.float32, device=dev))
                pv.append(torch.as_tensor(v, dtype=torch.float32, device=dev))
                pr.append(torch.full((n,), offset + k, dtype=torch.int64, device=dev))
            offset += len(r)

        def cat(xs: list[Tensor], dtype) -> Tensor:
            return torch.cat(xs) if xs else torch.zeros(0, dtype=dtype, device=dev)

        n_roi = offset
        return DensePoseTargets(
            roi_boxes=torch.cat(roi_boxes) if roi_boxes else torch.zeros((0, 4), device=dev),
            gt_boxes=torch.cat(gt_boxes) if gt_boxes else torch.zeros((0, 4), device=dev),
            point_roi=cat(pr, torch.int64),
            x=cat(px, torch.float32),
            y=cat(py, torch.float32),
            i=cat(pi, torch.int64),
            u=cat(pu, torch.float32),
            v=cat(pv, torch.float32),
            coarse=None,
            has_coarse=torch.zeros(n_roi, dtype=torch.bool, device=dev),
        )
