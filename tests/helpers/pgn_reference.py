"""A literal, loop-by-loop Python transcription of the released PGN partition
(``Engineering-Course/CIHP_PGN instance_tool/search.m``, ``bfs.m``, ``region_merge.m``,
``generate_instance_human.m``, ``generate_instance_part.m``), 0-based, slow, for small test maps only.

It follows the MATLAB control flow statement by statement (scan order, in-place edge extension during the
scans, the BFS queue, the size-ordered insertion, the per-boundary-pixel ``if/elseif`` chain, the border
fill loops), with library calls only where MATLAB calls a library: ``bwmorph 'close'`` =
``scipy.ndimage.binary_closing`` (zero border), ``bwmorph 'thin'`` = ``skimage.morphology.thin``,
``imgradient`` = ``scipy.ndimage.correlate`` with replicate padding. The vectorised implementation is
checked against it on random maps.
"""

from __future__ import annotations

from collections import deque

import numpy as np
from scipy import ndimage as ndi
from skimage.morphology import thin


def search(parsing: np.ndarray, edge: np.ndarray, edge_thresh: float = 0.2) -> np.ndarray:
    padding = 10
    row, col = parsing.shape
    e = edge >= edge_thresh
    e = ndi.binary_closing(e, np.ones((3, 3)))
    e = thin(e).astype(np.int64)
    mv = np.zeros((row, col), np.int64)
    mh = np.zeros((row, col), np.int64)
    num = 0
    for c in range(col):
        for r in range(row):
            if e[r, c] == 1:
                if row - 1 - r < padding:
                    e[r + 1 :, c] = 1
                continue
            if parsing[r, c] != 0:
                if c - 1 >= 0 and mv[:, c - 1].sum() == 0 and mv[:, c].sum() == 0:
                    num += 1
                    mv[r, c] = num
                else:
                    if r - 1 >= 0 and mv[r - 1, c] != 0:
                        mv[r, c] = mv[r - 1, c]
                    if mv[r, c] == 0:
                        num += 1
                        mv[r, c] = num
    num = 0
    for r in range(row):
        for c in range(col):
            if e[r, c] == 1:
                if col - 1 - c < padding:
                    e[r, c + 1 :] = 1
                continue
            if parsing[r, c] != 0:
                if r - 1 >= 0 and mh[r - 1, :].sum() == 0 and mh[r, :].sum() == 0:
                    num += 1
                    mh[r, c] = num
                else:
                    if c - 1 >= 0 and mh[r, c - 1] != 0:
                        mh[r, c] = mh[r, c - 1]
                    if mh[r, c] == 0:
                        num += 1
                        mh[r, c] = num
    combine, n = bfs(mh, mv)
    refined = region_merge(combine, parsing, n, padding)
    n_ref = len(np.unique(refined)) - 1
    while n_ref != n:
        n = n_ref
        refined = region_merge(refined, parsing, n, 0)
        n_ref = len(np.unique(refined)) - 1
    return refined


def bfs(mh: np.ndarray, mv: np.ndarray) -> tuple[np.ndarray, int]:
    row, col = mh.shape
    marked = np.zeros(row * col, bool)
    queue_sum: list[list[int]] = []

    def neighbours(node: int) -> list[int]:
        i, j = divmod(node, col)
        out = []
        for x, y, m in ((i - 1, j, mv), (i + 1, j, mv), (i, j - 1, mh), (i, j + 1, mh)):
            if (
                0 <= x < row
                and 0 <= y < col
                and m[x, y] == m[i, j]
                and not marked[x * col + y]
                and m[x, y] != 0
            ):
                out.append(x * col + y)
        return out

    for i in range(row):
        for j in range(col):
            start = i * col + j
            if not marked[start] and mh[i, j] != 0 and mv[i, j] != 0:
                q = deque([start])
                region = []
                while q:
                    node = q.popleft()
                    if not marked[node]:
                        marked[node] = True
                        region.append(node)
                        q.extend(neighbours(node))
                if region:
                    index = sum(1 for r in queue_sum if len(region) < len(r))
                    queue_sum.insert(index, region)
    out = np.zeros((row, col), np.int64)
    for k, region in enumerate(queue_sum, 1):
        for node in region:
            out[divmod(node, col)] = k
    return out, len(queue_sum)


def _boundary(mask: np.ndarray) -> np.ndarray:
    p = np.pad(mask, 1)
    inner = p[:-2, 1:-1] & p[2:, 1:-1] & p[1:-1, :-2] & p[1:-1, 2:]
    return mask & ~inner


def region_merge(m: np.ndarray, parsing: np.ndarray, n: int, padding: int) -> np.ndarray:
    m = m.copy()
    row, col = m.shape
    humans, human_labels, parts = [], [], []
    for i in range(1, n + 1):
        reg = m == i
        if reg.sum() == 0:
            continue
        if len(np.unique(parsing[reg])) > 1 and reg.sum() > 30:
            humans.append(reg)
            human_labels.append(i)
        else:
            parts.append(reg)
    for i in range(len(parts)):
        part_i = parts[i]
        rr_all, cc_all = np.nonzero(_boundary(part_i).T)  # MATLAB find: column-major
        merged = False
        for cc, rr in zip(rr_all, cc_all):
            if merged:
                break
            cur = m[rr, cc]
            for dr, dc in ((-2, 0), (0, -2), (2, 0), (0, 2)):
                tr, tc = rr + dr, cc + dc
                if 0 <= tr < row and 0 <= tc < col and m[tr, tc] > 0 and m[tr, tc] != cur:
                    for p in range(i + 1, len(parts)):
                        if parts[p][tr, tc]:
                            merged = True
                            m[parts[p]] = cur
                            parts[p] = part_i | parts[p]
                            break
                    for h in range(len(humans)):
                        if humans[h][tr, tc]:
                            merged = True
                            m[part_i] = human_labels[h]
                            break
                    break  # only the first qualifying direction (the elseif chain)
    if padding > 0:
        for r in range(row):
            if m[r, col - 1 - padding] != 0:
                for c in range(col - 2 - padding, col):
                    if m[r, c] == 0:
                        m[r, c] = m[r, c - 1]
            if m[r, padding - 1] != 0:
                for c in range(padding - 2, -1, -1):
                    if m[r, c] == 0:
                        m[r, c] = m[r, c + 1]
        for c in range(col):
            if m[row - 1 - padding, c] != 0:
                for r in range(row - 2 - padding, row):
                    if m[r, c] == 0:
                        m[r, c] = m[r - 1, c]
            if m[padding - 1, c] != 0:
                for r in range(padding - 2, -1, -1):
                    if m[r, c] == 0:
                        m[r, c] = m[r + 1, c]
    return m


def human_map(parsing: np.ndarray, edge_u8: np.ndarray) -> tuple[np.ndarray, list[float]]:
    refined = search(parsing, edge_u8.astype(np.float64) / 255.0, 0.2)
    out = np.zeros(refined.shape, np.int64)
    areas = []
    count = 0
    for ins in range(1, int(refined.max(initial=0)) + 1):
        idx = refined == ins
        if idx.any():
            count += 1
            out[idx] = count
            areas.append(float(idx.sum()))
    return out, areas


def part_map(
    parsing: np.ndarray, human_u8: np.ndarray, edge_u8: np.ndarray, score: np.ndarray, class_num: int = 19
) -> tuple[np.ndarray, list[tuple[int, float]]]:
    p = parsing.astype(np.float64)
    kx = np.array([[1, 0, -1], [2, 0, -2], [1, 0, -1]], np.float64)
    gx = ndi.correlate(p, kx, mode="nearest")
    gy = ndi.correlate(p, kx.T, mode="nearest")
    edge_map = ((gx != 0) | (gy != 0)).astype(np.float64) + edge_u8.astype(np.float64) / 255.0
    inst = np.zeros(parsing.shape, np.int64)
    lines = []
    counter = 0
    for k in range(1, class_num + 1):
        pm = np.where(parsing == k, human_u8, 0)
        for lid in np.unique(pm):
            if lid == 0:
                continue
            counter += 1
            idx = (pm == lid).T  # column-major element order
            inst[idx.T] = counter
            e = edge_map.T[idx]
            with np.errstate(invalid="ignore", divide="ignore"):
                es = np.float64(e.sum()) / np.float64((e > 0).sum())
            ps = np.float32(np.mean(score.T[idx].astype(np.float64)))
            sc = np.float32(idx.sum()) * (ps * np.float32(es))
            lines.append((k, float(sc)))
    return inst, lines
