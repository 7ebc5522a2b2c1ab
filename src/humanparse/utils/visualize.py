"""Drawing label maps, instances, keypoints, edges and DensePose points onto images (numpy/OpenCV).

Used by ``humanparse.predict`` (colour renders and overlays) and the notebooks. Every function takes and
returns RGB uint8 ``(H, W, 3)`` arrays; nothing here depends on a model.
"""

from __future__ import annotations

import colorsys
from collections.abc import Sequence

import cv2
import numpy as np

from humanparse.data.meta import COCO_JOINTS, IGNORE_INDEX, LIP_JOINTS

# bones between joint indices, for drawing skeletons (LIP/MPII order and COCO-17 order)
LIP_BONES = (
    (0, 1),
    (1, 2),
    (2, 6),
    (6, 3),
    (3, 4),
    (4, 5),
    (6, 7),
    (7, 8),
    (8, 9),
    (10, 11),
    (11, 12),
    (12, 8),
    (8, 13),
    (13, 14),
    (14, 15),
)
COCO_BONES = (
    (15, 13),
    (13, 11),
    (16, 14),
    (14, 12),
    (11, 12),
    (5, 11),
    (6, 12),
    (5, 6),
    (5, 7),
    (6, 8),
    (7, 9),
    (8, 10),
    (1, 2),
    (0, 1),
    (0, 2),
    (1, 3),
    (2, 4),
    (3, 5),
    (4, 6),
)


def bones_for(num_joints: int) -> tuple[tuple[int, int], ...]:
    """The skeleton of a joint set by its size (16: LIP/MPII, 17: COCO); no bones otherwise."""
    return {len(LIP_JOINTS): LIP_BONES, len(COCO_JOINTS): COCO_BONES}.get(num_joints, ())


def colorize(label: np.ndarray, palette: np.ndarray) -> np.ndarray:
    """Index map → RGB with ``palette`` ((256, 3) uint8; values above 255 wrap)."""
    pal = np.asarray(palette, dtype=np.uint8).reshape(-1, 3)
    return pal[np.asarray(label).astype(np.int64) % len(pal)]


def overlay(
    image: np.ndarray,
    label: np.ndarray,
    palette: np.ndarray,
    alpha: float = 0.5,
    skip: Sequence[int] = (0, IGNORE_INDEX),
) -> np.ndarray:
    """Blend the colour render of ``label`` over ``image`` (pixels labelled in ``skip`` stay untouched)."""
    image = np.asarray(image, dtype=np.uint8)
    label = np.asarray(label)
    if image.shape[:2] != label.shape[:2]:
        raise ValueError(
            f"overlay: image is {image.shape[1]}x{image.shape[0]} but label {label.shape[1]}x{label.shape[0]}"
        )
    colour = colorize(label, palette).astype(np.float32)
    out = image.astype(np.float32)
    mask = ~np.isin(label, list(skip))
    out[mask] = (1 - alpha) * out[mask] + alpha * colour[mask]
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def distinct_colors(n: int, seed: int = 0) -> np.ndarray:
    """``n`` well separated RGB colours (golden-ratio hue steps), (n, 3) uint8."""
    h0 = (seed * 0.137) % 1.0
    cols = [colorsys.hsv_to_rgb((h0 + i * 0.618033988749895) % 1.0, 0.75, 0.95) for i in range(n)]
    return (np.array(cols, dtype=np.float64).reshape(-1, 3) * 255).round().astype(np.uint8)


def overlay_instances(
    image: np.ndarray,
    masks: Sequence[np.ndarray],
    alpha: float = 0.5,
    boxes: Sequence | None = None,
    labels: Sequence[str] | None = None,
) -> np.ndarray:
    """One colour per instance mask (later masks on top), with optional boxes and captions."""
    out = np.asarray(image, dtype=np.uint8).copy()
    colors = distinct_colors(len(masks))
    blend = out.astype(np.float32)
    for m, c in zip(masks, colors):
        m = np.asarray(m, dtype=bool)
        blend[m] = (1 - alpha) * blend[m] + alpha * c
    out = np.clip(blend + 0.5, 0, 255).astype(np.uint8)
    for i, c in enumerate(colors):
        col = tuple(int(v) for v in c)
        if boxes is not None and i < len(boxes) and boxes[i] is not None:
            x1, y1, x2, y2 = (int(round(float(v))) for v in boxes[i][:4])
            cv2.rectangle(out, (x1, y1), (x2, y2), col, 1)
            if labels is not None and i < len(labels):
                cv2.putText(
                    out,
                    str(labels[i]),
                    (x1, max(8, y1 - 2)),
                    cv2.FONT_HERSHEY_SIMPLEX,
                    0.35,
                    col,
                    1,
                    cv2.LINE_AA,
                )
    return out


def instance_id_map(masks: Sequence[np.ndarray], shape: tuple[int, int]) -> np.ndarray:
    """Paint masks in order into an id map (person k+1 for mask k, 0 = none); uint16 when > 255 masks."""
    ids = np.zeros(shape, dtype=np.uint16 if len(masks) > 255 else np.uint8)
    for k, m in enumerate(masks, start=1):
        ids[np.asarray(m, dtype=bool)] = k
    return ids


def draw_edges(image: np.ndarray, edges: np.ndarray, color=(255, 0, 0)) -> np.ndarray:
    """Paint the non-zero pixels of an edge map in ``color``."""
    out = np.asarray(image, dtype=np.uint8).copy()
    out[np.asarray(edges) > 0] = color
    return out


def draw_keypoints(
    image: np.ndarray,
    keypoints: np.ndarray,
    bones: Sequence[tuple[int, int]] | None = None,
    radius: int = 2,
    color=None,
) -> np.ndarray:
    """Joints ``(J, 3)`` (x, y, present) or ``(J, 2)`` as dots joined by ``bones`` (default by joint count);
    multi-person ``(P, J, 3)`` arrays draw every person."""
    out = np.asarray(image, dtype=np.uint8).copy()
    kp = np.asarray(keypoints, dtype=np.float64)
    if kp.ndim == 3:
        for person in kp:
            out = draw_keypoints(out, person, bones, radius, color)
        return out
    if kp.ndim != 2 or kp.shape[1] < 2:
        raise ValueError(f"keypoints must be (J, 2) or (J, 3), got {kp.shape}")
    present = (kp[:, 2] > 0) if kp.shape[1] > 2 else np.isfinite(kp[:, :2]).all(1)
    present &= np.isfinite(kp[:, :2]).all(1)
    bones = bones_for(len(kp)) if bones is None else bones
    colors = distinct_colors(len(kp), seed=3)
    for a, b in bones:
        if a < len(kp) and b < len(kp) and present[a] and present[b]:
            pa = (int(round(kp[a, 0])), int(round(kp[a, 1])))
            pb = (int(round(kp[b, 0])), int(round(kp[b, 1])))
            cv2.line(out, pa, pb, (255, 255, 255), 1, cv2.LINE_AA)
    for j in np.flatnonzero(present):
        c = tuple(int(v) for v in (color if color is not None else colors[j]))
        cv2.circle(out, (int(round(kp[j, 0])), int(round(kp[j, 1]))), radius, c, -1, cv2.LINE_AA)
    return out


def draw_densepose_points(
    image: np.ndarray, x: np.ndarray, y: np.ndarray, u: np.ndarray, v: np.ndarray, radius: int = 1
) -> np.ndarray:
    """DensePose points coloured by their chart coordinates (red = U, green = V, blue = 0.5)."""
    out = np.asarray(image, dtype=np.uint8).copy()
    for xi, yi, ui, vi in zip(np.asarray(x), np.asarray(y), np.asarray(u), np.asarray(v)):
        col = (int(255 * float(np.clip(ui, 0, 1))), int(255 * float(np.clip(vi, 0, 1))), 128)
        cv2.circle(out, (int(round(float(xi))), int(round(float(yi)))), radius, col, -1)
    return out


def overlay_densepose(
    image: np.ndarray,
    charts: Sequence[tuple[np.ndarray, Sequence[int]]],
    alpha: float = 0.6,
    isolines: int = 10,
) -> np.ndarray:
    """DensePose charts drawn over ``image``: each ``(iuv, box)`` (uint8 (3, h, w) I, U·255, V·255 and its
    integer box [x, y, w, h]) colours its foreground by (U, V) (red = U, green = V, blue by chart index) and
    draws the U and V iso-lines every 1/``isolines`` in white; later charts on top, clipped to the image."""
    out = np.asarray(image, dtype=np.uint8).copy()
    h_img, w_img = out.shape[:2]
    for iuv, box in charts:
        iuv = np.asarray(iuv, dtype=np.uint8)
        x, y = int(box[0]), int(box[1])
        h, w = iuv.shape[1:]
        x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + w, w_img), min(y + h, h_img)
        if x1 <= x0 or y1 <= y0:
            continue
        sub = iuv[:, y0 - y : y1 - y, x0 - x : x1 - x]
        fg = sub[0] > 0
        colour = np.stack([sub[1], sub[2], (sub[0].astype(np.int64) * 10 % 256).astype(np.uint8)], -1).astype(
            np.float32
        )
        region = out[y0:y1, x0:x1].astype(np.float32)
        region[fg] = (1 - alpha) * region[fg] + alpha * colour[fg]
        if isolines > 0:
            for c in (1, 2):
                q = (sub[c].astype(np.int64) * isolines) // 256
                edge = np.zeros_like(fg)
                edge[:, 1:] |= q[:, 1:] != q[:, :-1]
                edge[1:, :] |= q[1:, :] != q[:-1, :]
                region[edge & fg] = 255.0
        out[y0:y1, x0:x1] = np.clip(region + 0.5, 0, 255).astype(np.uint8)
    return out


def legend_entries(
    class_names: Sequence[str], palette: np.ndarray, present: Sequence[int] | None = None
) -> list[tuple[str, tuple]]:
    """(name, RGB in 0..1) for the classes present (matplotlib legend handles)."""
    pal = np.asarray(palette, dtype=np.float64).reshape(-1, 3) / 255.0
    ids = (
        range(len(class_names)) if present is None else [int(i) for i in present if int(i) < len(class_names)]
    )
    return [(class_names[i], tuple(pal[i])) for i in ids]


# --- whole samples (dataset viewer) -----------------------------------------------------------------------
def _densepose_points(sample: dict, max_points: int = 400, seed: int = 0):
    """(x, y, u, v) of DensePose points: per-person ``dp_x/dp_y/dp_U/dp_V`` (in the 256×256 frame of the person's box),
    or points drawn from dense ``dp_parts``/``dp_u``/``dp_v`` maps (the synthetic scene)."""
    xs, ys, us, vs = [], [], [], []
    for p in sample.get("persons") or []:
        dp = p.get("dp")
        if isinstance(dp, dict) and dp.get("x") is not None and len(dp["x"]) and p.get("bbox") is not None:
            # the DensePose-COCO reader: ``dp`` {x, y, I, U, V} in the 256×256 frame of the COCO bbox [x, y, w, h]
            bx, by, bw, bh = (float(v) for v in p["bbox"][:4])
            xs += list(bx + np.asarray(dp["x"], dtype=np.float64) * bw / 256.0)
            ys += list(by + np.asarray(dp["y"], dtype=np.float64) * bh / 256.0)
            us += list(np.asarray(dp["U"], dtype=np.float64))
            vs += list(np.asarray(dp["V"], dtype=np.float64))
            continue
        if p.get("dp_x") is None or p.get("box") is None:
            continue
        x1, y1, x2, y2 = (float(v) for v in p["box"][:4])
        w, h = x2 - x1 + 1, y2 - y1 + 1
        xs += list(x1 + np.asarray(p["dp_x"], dtype=np.float64) * w / 256.0)
        ys += list(y1 + np.asarray(p["dp_y"], dtype=np.float64) * h / 256.0)
        us += list(np.asarray(p["dp_U"], dtype=np.float64))
        vs += list(np.asarray(p["dp_V"], dtype=np.float64))
    if not xs and sample.get("dp_parts") is not None:
        parts = np.asarray(sample["dp_parts"])
        yy, xx = np.nonzero(parts > 0)
        if len(xx):
            pick = np.random.default_rng(seed).choice(len(xx), size=min(max_points, len(xx)), replace=False)
            xs, ys = xx[pick], yy[pick]
            us, vs = np.asarray(sample["dp_u"])[ys, xs], np.asarray(sample["dp_v"])[ys, xs]
    return np.asarray(xs), np.asarray(ys), np.asarray(us), np.asarray(vs)


def sample_panels(sample: dict, info, alpha: float = 0.55) -> list[tuple[str, np.ndarray]]:
    """Pictures of everything a raw sample holds: image, labels, instances, keypoints, edges, DensePose.

    ``sample`` is a reader's raw sample (``Dataset.load``: numpy at the original size, keys as in
    :mod:`humanparse.data.base`); only the keys present are drawn. Edge maps are derived on the fly
    (:mod:`humanparse.data.targets`) when the sample has none.
    """
    from humanparse.data import targets

    image = np.asarray(sample["image"], dtype=np.uint8)
    palette = info.palette()
    panels: list[tuple[str, np.ndarray]] = [("image", image)]
    semantic = sample.get("semantic")
    if semantic is not None:
        present = [int(c) for c in np.unique(semantic) if int(c) < info.num_classes and c != 0]
        names = ", ".join(info.class_keys[c] for c in present[:6]) + ("…" if len(present) > 6 else "")
        panels.append((f"labels ({names})", overlay(image, semantic, palette, alpha)))
    persons = sample.get("persons") or []
    masks = [np.asarray(p["mask"], dtype=bool) for p in persons if p.get("mask") is not None]
    if not masks and sample.get("person_ids") is not None:
        ids = np.asarray(sample["person_ids"])
        masks = [ids == k for k in np.unique(ids) if k != 0]
    if masks:
        boxes = [p.get("box") for p in persons] if persons else None
        panels.append(
            (
                f"instances ({len(masks)} persons)",
                overlay_instances(image, masks, alpha, boxes, [str(i + 1) for i in range(len(masks))]),
            )
        )
    kps = [np.asarray(p["keypoints"]) for p in persons if p.get("keypoints") is not None]
    if sample.get("keypoints") is not None:
        kps.append(np.asarray(sample["keypoints"]))
    if kps:
        img = image.copy()
        for kp in kps:
            img = draw_keypoints(img, kp, radius=max(1, min(image.shape[:2]) // 80))
        panels.append((f"keypoints ({kps[0].shape[0]} joints)", img))
    edges = []
    sem_edge = sample.get("semantic_edge")
    if sem_edge is None and semantic is not None:
        sem_edge = targets.semantic_edges(semantic, width=1)  # undilated: readable at small sizes
    if sem_edge is not None:
        edges.append(("part", sem_edge, (255, 40, 40)))
    inst_edge = sample.get("instance_edge")
    if inst_edge is None and sample.get("person_ids") is not None:
        inst_edge = targets.instance_edges(sample["person_ids"])
    if inst_edge is not None:
        edges.append(("person", inst_edge, (40, 220, 255)))
    if edges:
        img = (image * 0.6).astype(np.uint8)
        for _, e, c in edges:
            img = draw_edges(img, e, c)
        panels.append(("edges (" + ", ".join(n for n, _, _ in edges) + ")", img))
    x, y, u, v = _densepose_points(sample)
    if len(x):
        panels.append(
            (
                f"DensePose points ({len(x)}; red U, green V)",
                draw_densepose_points((image * 0.5).astype(np.uint8), x, y, u, v),
            )
        )
    return panels


def show_panels(
    panels: list[tuple[str, np.ndarray]], ncols: int = 6, size: float = 2.6, title: str | None = None
):
    """Panels in a matplotlib figure row-wise; returns the figure."""
    import matplotlib.pyplot as plt

    n = len(panels)
    ncols = min(ncols, n)
    nrows = (n + ncols - 1) // ncols
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * 1.25 * nrows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, (name, img) in zip(axes.ravel(), panels):
        ax.imshow(img)
        ax.set_title(name, fontsize=7)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig


# --- legends and side-by-side views (predict overlays, validation images) ---------------------------------
def present_classes(
    label: np.ndarray, num_classes: int, skip: Sequence[int] = (0, IGNORE_INDEX)
) -> list[int]:
    """Class ids present in ``label`` (sorted), without ``skip`` and ids outside the class list."""
    return [int(c) for c in np.unique(np.asarray(label)) if int(c) not in skip and 0 <= int(c) < num_classes]


def add_legend(
    image: np.ndarray,
    label: np.ndarray,
    class_names: Sequence[str],
    palette: np.ndarray,
    skip: Sequence[int] = (0, IGNORE_INDEX),
) -> np.ndarray:
    """``image`` with a legend strip on its right: a colour swatch and the name of every class present in
    ``label`` (``skip``-ped ids left out). The canvas grows in height when the legend is taller."""
    image = np.asarray(image, dtype=np.uint8)
    ids = present_classes(label, len(class_names), skip)
    h, w = image.shape[:2]
    row = 16
    font, scale = cv2.FONT_HERSHEY_SIMPLEX, 0.4
    names = [str(class_names[i]) for i in ids] or ["(no classes)"]
    text_w = max(cv2.getTextSize(n, font, scale, 1)[0][0] for n in names)
    lw = text_w + 28
    out_h = max(h, row * len(names) + 8)
    canvas = np.full((out_h, w + lw, 3), 255, dtype=np.uint8)
    canvas[:h, :w] = image
    pal = np.asarray(palette, dtype=np.uint8).reshape(-1, 3)
    for k, name in enumerate(names):
        y = 4 + k * row
        if ids:
            col = tuple(int(v) for v in pal[ids[k] % len(pal)])
            cv2.rectangle(canvas, (w + 4, y + 2), (w + 16, y + 13), col, -1)
            cv2.rectangle(canvas, (w + 4, y + 2), (w + 16, y + 13), (0, 0, 0), 1)
        cv2.putText(canvas, name, (w + 21, y + 12), font, scale, (0, 0, 0), 1, cv2.LINE_AA)
    return canvas


def titled(image: np.ndarray, title: str, height: int = 18) -> np.ndarray:
    """``image`` with a white title bar above it."""
    image = np.asarray(image, dtype=np.uint8)
    text_w = cv2.getTextSize(title, cv2.FONT_HERSHEY_SIMPLEX, 0.42, 1)[0][0] + 6
    if text_w > image.shape[1]:  # a title wider than the image widens the panel (white on the right)
        pad = np.full((image.shape[0], text_w - image.shape[1], 3), 255, dtype=np.uint8)
        image = np.concatenate([image, pad], axis=1)
    bar = np.full((height, image.shape[1], 3), 255, dtype=np.uint8)
    cv2.putText(bar, title, (3, height - 5), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (0, 0, 0), 1, cv2.LINE_AA)
    return np.concatenate([bar, image], axis=0)


def hstack(panels: Sequence[np.ndarray], gap: int = 4) -> np.ndarray:
    """Panels side by side (top-aligned, white gaps and padding)."""
    h = max(p.shape[0] for p in panels)
    cols = []
    for i, p in enumerate(panels):
        pad = np.full((h, p.shape[1], 3), 255, dtype=np.uint8)
        pad[: p.shape[0]] = p
        cols.append(pad)
        if i < len(panels) - 1:
            cols.append(np.full((h, gap, 3), 255, dtype=np.uint8))
    return np.concatenate(cols, axis=1)


def vstack(rows: Sequence[np.ndarray], gap: int = 4) -> np.ndarray:
    """Rows one above the other (left-aligned, white gaps and padding)."""
    w = max(r.shape[1] for r in rows)
    out = []
    for i, r in enumerate(rows):
        pad = np.full((r.shape[0], w, 3), 255, dtype=np.uint8)
        pad[:, : r.shape[1]] = r
        out.append(pad)
        if i < len(rows) - 1:
            out.append(np.full((gap, w, 3), 255, dtype=np.uint8))
    return np.concatenate(out, axis=0)


def side_by_side(
    image: np.ndarray,
    semantic: np.ndarray | None,
    instances: Sequence[dict] | None,
    class_names: Sequence[str],
    palette: np.ndarray,
    alpha: float = 0.5,
) -> np.ndarray:
    """image | parts (colour overlay, class legend) | instances (one colour per person, score captions)."""
    image = np.asarray(image, dtype=np.uint8)
    panels = [titled(image, "image")]
    if semantic is not None:
        panels.append(
            titled(
                add_legend(overlay(image, semantic, palette, alpha), semantic, class_names, palette), "parts"
            )
        )
    if instances:
        masks = [np.asarray(i["mask"], dtype=bool) for i in instances if i.get("mask") is not None]
        boxes = [i.get("box") for i in instances if i.get("mask") is not None]
        caps = [
            f"{k + 1}" + (f":{float(i['score']):.2f}" if i.get("score") is not None else "")
            for k, i in enumerate(instances)
            if i.get("mask") is not None
        ]
        panels.append(
            titled(overlay_instances(image, masks, alpha, boxes, caps), f"instances ({len(masks)})")
        )
    return hstack(panels)
