"""PGN instance partition (Gong et al., ECCV 2018, §3.3 "instance partition"), bit-exact to the released
MATLAB tool ``Engineering-Course/CIHP_PGN instance_tool/`` (``search.m``, ``bfs.m``, ``region_merge.m``,
``generate_instance_human.m``, ``generate_instance_part.m``).

Positions are 0-based here (the MATLAB code is 1-based). Every quirk of the released code is kept, because
AP^r parity with the released numbers needs them:

1. **Edges** (``search.m``): ``E = u8/255 >= 0.2``; ``bwmorph(E, 'close', Inf)`` — 3×3 dilation then
   erosion with pixels outside the image taken as 0, so the erosion clears the 1-px image frame;
   ``bwmorph(E, 'thin', Inf)`` (two parallel sub-iterations per pass until a pass changes nothing).
2. **Border extension**: per column, the topmost edge pixel in the last 10 rows extends the edge to the
   bottom (``Ev``); then per row of ``Ev``, the leftmost edge pixel in the last 10 columns extends it to
   the right (``Eh``). Never towards the top or left.
3. **Regions** (line scans + ``bfs.m``): with fg = parsing ≠ 0, ``V = fg ∧ ¬Ev``, ``S = fg ∧ ¬Eh``, pixels
   link vertically when both are in V and horizontally when both are in S; a region is a component that
   holds an S pixel (so V∖S pixels of the extended strip keep their vertical links). Regions are numbered
   by size, largest first, **ties: the later-discovered region first** (discovery = raster order of a
   region's first S pixel).
4. **Merge passes** (``region_merge.m``): label values 1..n are *human* regions (more than one parsing
   value — background 0 of border-filled pixels counts — and more than 30 pixels) or *part* regions.
   Each part region in label order looks at its boundary pixels in column-major order; for each, only the
   **first** of the pixels 2 px up, left, down, right that is labelled and differs from it is examined: if
   a later part region holds it, that region takes this one's label and the two masks are united; if a
   human region holds it, this region takes the human's label; the first merge ends the region's turn.
   After the first pass (only), the **asymmetric border fill**: rows whose column W−11 is labelled
   forward-fill zeros over columns W−12..W−1; rows whose column 9 is labelled back-fill columns 8..0; then
   the same per column (rows H−12..H−1 / 8..0). Passes repeat while ``len(unique(M)) − 1`` changes (the
   −1 is subtracted even when no pixel is 0), later passes classifying label values 1..previous count
   only.
5. **Persons** (``generate_instance_human.m``): final labels renumbered 1..P in increasing value; the PNG
   is uint8, so **ids ≥ 255 are written as 255**, and the part stage reads that saturated map.
6. **Part instances** (``generate_instance_part.m``): ``part_edge`` = Sobel of the parsing map with
   replicate padding is non-zero (weights can cancel); ``edge_map = part_edge + u8/255``; instances are the
   (class k = 1..19, person l ascending) pairs, numbered in that order; score = n · (ps · es) in float32
   with ps = mean score-map value (float32 map) and es = sum(edge_map)/count(edge_map > 0) (NaN when no
   pixel has an edge value). Ids ≥ 255 saturate in the PNG as well.

What is vectorised (same results): the closing (OpenCV with an explicit zero border), the thinning (a
256-entry lookup table applied to the current edge pixels only; checked against ``skimage.morphology.thin``
in the tests), the border extension and fill (cumulative maxima), the regions (run labelling plus
``scipy.sparse.csgraph.connected_components`` on runs instead of a per-pixel BFS), each part region's
boundary scan (all its boundary pixels at once; the first merging one wins, as the sequential loop stops
there), and the part stage (``np.bincount``). The sequence of part regions in a merge pass stays a loop,
because each merge changes what the next region sees.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from scipy import ndimage as ndi
from scipy import sparse
from scipy.sparse.csgraph import connected_components

EDGE_THRESHOLD = 0.2  # generate_instance_human.m: edge_thresh
PADDING = 10  # search.m: padding (border extension and fill)
HUMAN_MIN_PIXELS = 30  # region_merge.m: a human region has more than 30 pixels
MIN_SIZE = 13  # region_merge.m's border fill indexes column W−12 / row H−12 (0-based)
ID_LIMIT = 255  # imwrite(uint8(...)) saturates ids

# neighbour order of MATLAB's bwmorph 'thin' (Lam, Lee & Suen 1992): x1..x8 = E, NE, N, NW, W, SW, S, SE
_THIN_OFFSETS = ((0, 1), (-1, 1), (-1, 0), (-1, -1), (0, -1), (1, -1), (1, 0), (1, 1))


def _thin_luts() -> tuple[np.ndarray, np.ndarray]:
    """Deletion tables of the two sub-iterations of ``bwmorph(.., 'thin')`` indexed by the 8-bit code
    Σ x_k·2^(k−1) (G1 ∧ G2 ∧ G3, and G1 ∧ G2 ∧ G3')."""
    lut1 = np.zeros(256, dtype=bool)
    lut2 = np.zeros(256, dtype=bool)
    for code in range(256):
        x = [(code >> k) & 1 for k in range(8)]
        x = [None] + x + [x[0]]  # 1-based, x9 = x1
        xh = sum(1 for i in range(1, 5) if x[2 * i - 1] == 0 and (x[2 * i] or x[2 * i + 1]))
        n1 = sum(1 for k in range(1, 5) if x[2 * k - 1] or x[2 * k])
        n2 = sum(1 for k in range(1, 5) if x[2 * k] or x[2 * k + 1])
        g12 = xh == 1 and 2 <= min(n1, n2) <= 3
        g3 = not ((x[2] or x[3] or not x[8]) and x[1])
        g3p = not ((x[6] or x[7] or not x[4]) and x[5])
        lut1[code] = g12 and g3
        lut2[code] = g12 and g3p
    return lut1, lut2


_THIN_LUT1, _THIN_LUT2 = _thin_luts()


# --- 1. edges ------------------------------------------------------------------------------------
def edge_mask(edge_u8: np.ndarray, threshold: float = EDGE_THRESHOLD) -> np.ndarray:
    """``double(u8)/255 >= threshold`` (generate_instance_human.m, search.m)."""
    return edge_u8.astype(np.float64) / 255.0 >= threshold


def close_zero_border(mask: np.ndarray) -> np.ndarray:
    """``bwmorph(mask, 'close', Inf)``: 3×3 dilation then erosion, outside pixels 0 for both (the erosion
    clears the image frame), repeated until nothing changes. Same as
    ``scipy.ndimage.binary_closing(mask, np.ones((3, 3)))``, computed with OpenCV (faster); not
    ``skimage.morphology.binary_closing``, whose erosion keeps the frame."""
    k = np.ones((3, 3), np.uint8)
    cur = mask.astype(np.uint8)
    while True:
        d = cv2.dilate(cur, k, borderType=cv2.BORDER_CONSTANT, borderValue=0)
        nxt = cv2.erode(d, k, borderType=cv2.BORDER_CONSTANT, borderValue=0)
        if np.array_equal(nxt, cur):
            return nxt.astype(bool)
        cur = nxt


def thin(mask: np.ndarray) -> np.ndarray:
    """``bwmorph(mask, 'thin', Inf)`` (equal to ``skimage.morphology.thin``), outside pixels 0.

    Hand-written for speed: skimage correlates the whole image at every sub-iteration; here the
    lookup tables are applied to the candidate pixels only — edge pixels with a 4-neighbour off the edge
    (a pixel whose four 4-neighbours are set fails condition G1 of both sub-iterations), a set that only
    grows by the 4-neighbours of deleted pixels."""
    h, w = mask.shape
    pad = np.zeros((h + 2, w + 2), np.uint8)
    pad[1:-1, 1:-1] = mask
    flat = pad.reshape(-1)
    stride = w + 2
    offs = np.array([dr * stride + dc for dr, dc in _THIN_OFFSETS], dtype=np.int64)
    four = np.array([1, -stride, -1, stride], dtype=np.int64)  # E, N, W, S
    fg = np.flatnonzero(flat)
    cand = fg[(flat[fg[:, None] + four[None, :]] == 0).any(axis=1)]
    weights = (1 << np.arange(8)).astype(np.int32)
    mark = np.zeros(flat.shape, bool)
    while True:
        removed = 0
        for lut in (_THIN_LUT1, _THIN_LUT2):
            if not len(cand):
                break
            code = flat[cand[:, None] + offs[None, :]].astype(np.int32) @ weights
            delete = lut[code]
            if not delete.any():
                continue
            gone = cand[delete]
            flat[gone] = 0
            removed += len(gone)
            # new candidates: edge pixels 4-adjacent to a deleted one
            nb = (gone[:, None] + four[None, :]).reshape(-1)
            nb = nb[flat[nb] != 0]
            keep = cand[~delete]
            mark[keep] = True
            nb = np.unique(nb[~mark[nb]])
            mark[keep] = False
            cand = np.concatenate([keep, nb])
        if removed == 0:
            break
    return pad[1:-1, 1:-1].astype(bool)


def extend_to_border(edges: np.ndarray, padding: int = PADDING) -> tuple[np.ndarray, np.ndarray]:
    """The two border-extension scans of ``search.m``: (Ev, Eh).

    Ev: per column, below the topmost edge pixel among the last ``padding`` rows, everything is edge.
    Eh: per row of Ev, right of the leftmost Ev pixel among the last ``padding`` columns, everything is edge.
    """
    h, w = edges.shape

    def down(e: np.ndarray) -> np.ndarray:
        n = e.shape[0]
        lo = max(n - padding, 0)
        tail = e[lo:]
        has = tail.any(axis=0)
        out = e.copy()
        if has.any():
            r0 = lo + tail.argmax(axis=0)
            out[lo:] |= (np.arange(lo, n)[:, None] > r0[None, :]) & has[None, :]
        return out

    ev = down(edges)
    eh = down(ev.T).T
    return ev, eh


# --- 3. regions -----------------------------------------------------------------------------------
def line_regions(parsing: np.ndarray, ev: np.ndarray, eh: np.ndarray) -> tuple[np.ndarray, int]:
    """Region map (0 = none, 1..N by size, ties later-discovered first) of ``search.m`` + ``bfs.m``.

    The released code labels vertical runs of V and horizontal runs of S and joins pixels of one run by
    BFS. Restricted to S that graph is plain 4-connectivity, so S is labelled with
    ``scipy.ndimage.label`` (whose labels follow the raster order of each component's first pixel, i.e.
    bfs.m's discovery order); the pixels of V∖S (right of a horizontal extension) then add their
    vertical links, joining S components through ``scipy.sparse.csgraph.connected_components``.
    """
    h, w = parsing.shape
    fg = parsing != 0
    s = fg & ~eh
    lab, ns = ndi.label(s)  # 4-connected
    if ns == 0:
        return np.zeros((h, w), np.int32), 0
    size = np.bincount(lab.reshape(-1), minlength=ns + 1)[1:].astype(np.int64)
    extra = fg & eh & ~ev  # V minus S
    comp = np.arange(ns)
    extra_label = None
    if extra.any():
        cols = np.flatnonzero(extra.any(axis=0))
        c0 = int(cols[0])
        sub_extra = extra[:, c0:]
        sub_v = sub_extra | s[:, c0:]
        ex_r, ex_c = np.nonzero(sub_extra)
        n_ex = len(ex_r)
        node = lab[:, c0:].astype(np.int64) - 1  # S component, or −1
        ex_id = np.full(sub_v.shape, -1, np.int64)
        ex_id[ex_r, ex_c] = ns + np.arange(n_ex)
        node = np.where(sub_extra, ex_id, node)
        # vertical links inside V with at least one V∖S end (S–S links are already in the labelling)
        link = sub_v[:-1] & sub_v[1:] & (sub_extra[:-1] | sub_extra[1:])
        a, b = node[:-1][link], node[1:][link]
        n_nodes = ns + n_ex
        graph = sparse.coo_matrix((np.ones(len(a), np.int8), (a, b)), shape=(n_nodes, n_nodes)).tocsr()
        _, cc = connected_components(graph, directed=False)
        ncc = int(cc.max()) + 1
        comp = cc[:ns]
        csize = np.bincount(comp, weights=size, minlength=ncc) + np.bincount(cc[ns:], minlength=ncc)
        size_by = csize.astype(np.int64)
        disc_by = np.full(ncc, ns, np.int64)
        np.minimum.at(disc_by, comp, np.arange(ns))
        extra_label = (ex_r, ex_c + c0, cc[ns:])
    else:
        ncc = ns
        size_by = size
        disc_by = np.arange(ns)
    regions = np.flatnonzero(disc_by < ns)  # components holding an S pixel
    # bfs.m inserts each new region before every region that is not larger: size descending, ties by
    # later discovery first
    order = regions[np.lexsort((-disc_by[regions], -size_by[regions]))]
    label_of_comp = np.zeros(ncc, np.int32)
    label_of_comp[order] = np.arange(1, len(order) + 1)
    lut = np.zeros(ns + 1, np.int32)
    lut[1:] = label_of_comp[comp]
    out = lut[lab]
    if extra_label is not None:
        r, c, k = extra_label
        out[r, c] = label_of_comp[k]
    return out, len(order)


# --- 4. merge passes ------------------------------------------------------------------------------
def _forward_fill(block: np.ndarray) -> np.ndarray:
    """Along axis 1, each zero takes the value left of it (already filled), in order."""
    idx = np.where(block != 0, np.arange(block.shape[1])[None, :], 0)
    np.maximum.accumulate(idx, axis=1, out=idx)
    return np.take_along_axis(block, idx, axis=1)


def border_fill(m: np.ndarray, padding: int = PADDING) -> np.ndarray:
    """``region_merge.m``'s border fill (in place and returned): rows first (right strip, then left),
    then columns (bottom strip, then top). Right/bottom: if column W−1−padding is labelled, zeros of
    columns W−2−padding..W−1 take their left neighbour in order; left/top: if column padding−1 is
    labelled, zeros of columns padding−2..0 take their right neighbour."""
    h, w = m.shape
    p = padding
    for arr in (m, m.T):  # rows, then columns (the transpose is a view: writes go to m)
        n = arr.shape[1]
        rows = np.flatnonzero(arr[:, n - 1 - p] != 0)
        if len(rows):
            lo = n - 3 - p  # source column of the first filled one (n − 2 − p takes n − 3 − p)
            blk = arr[np.ix_(rows, np.arange(lo, n))]
            arr[np.ix_(rows, np.arange(lo, n))] = _forward_fill(blk)
        rows = np.flatnonzero(arr[:, p - 1] != 0)
        if len(rows):
            blk = arr[np.ix_(rows, np.arange(p - 1, -1, -1))]  # reversed: column p−1 first
            arr[np.ix_(rows, np.arange(p - 1, -1, -1))] = _forward_fill(blk)
    return m


_DIRS = ((-2, 0), (0, -2), (2, 0), (0, 2))  # region_merge.m: up, left, down, right, two pixels away


def region_merge(m: np.ndarray, parsing: np.ndarray, n: int, padding: int) -> np.ndarray:
    """One ``region_merge.m`` pass on label map ``m`` (label values 1..n classified); returns a new map."""
    h, w = m.shape
    m = m.astype(np.int32, copy=True)
    flat = m.reshape(-1)
    par = parsing.reshape(-1)
    # classify label values 1..n (absent ones skipped); larger values are neither human nor part
    nz = np.flatnonzero(flat)
    lab = flat[nz].astype(np.int64)
    keep = lab <= n
    nz, lab = nz[keep], lab[keep]
    sizes = np.bincount(lab, minlength=n + 1)[: n + 1]
    nvals = int(par.max(initial=0)) + 1
    pairs = np.bincount(lab * nvals + par[nz], minlength=(n + 1) * nvals).reshape(n + 1, nvals)
    distinct = np.count_nonzero(pairs, axis=1)
    present = sizes > 0
    present[0] = False
    human = present & (distinct > 1) & (sizes > HUMAN_MIN_PIXELS)
    part = present & ~human
    part_labels = np.flatnonzero(part)
    n_part = len(part_labels)
    if n_part:
        human_label = np.zeros(h * w, np.int32)  # label of the (fixed) human region holding the pixel
        is_h = human[lab]
        human_label[nz[is_h]] = lab[is_h]
        # owner[p] = index of the part mask holding p among those not yet processed (masks grow by union)
        part_index = np.full(n + 1, -1, np.int32)
        part_index[part_labels] = np.arange(n_part)
        owner = np.full(h * w, -1, np.int32)
        pi = part_index[lab]
        is_p = pi >= 0
        po, pi = nz[is_p], pi[is_p]
        srt = np.argsort(pi, kind="stable")
        po, pi = po[srt], pi[srt]
        owner[po] = pi
        pixels = list(np.split(po, np.searchsorted(pi, np.arange(1, n_part))))
    for i in range(n_part):
        pix = pixels[i]
        r, c = np.divmod(pix, w)
        # boundary (bwmorph 'remove'): a 4-neighbour outside the mask or outside the image
        bnd = (r == 0) | (r == h - 1) | (c == 0) | (c == w - 1)
        inner = ~bnd
        ip = pix[inner]
        bnd[inner] = (owner[ip - w] != i) | (owner[ip + w] != i) | (owner[ip - 1] != i) | (owner[ip + 1] != i)
        b, br, bc = pix[bnd], r[bnd], c[bnd]
        order = np.lexsort((br, bc))  # column-major, as MATLAB's find
        b, br, bc = b[order], br[order], bc[order]
        cur = flat[b]
        target = np.full(len(b), -1, np.int64)
        for dr, dc in _DIRS:
            rr, cc = br + dr, bc + dc
            ok = (target < 0) & (rr >= 0) & (rr < h) & (cc >= 0) & (cc < w)
            t = np.where(ok, rr * w + cc, 0)
            val = flat[t]
            ok &= (val > 0) & (val != cur)
            target[ok] = t[ok]
        has = target >= 0
        if not has.any():
            continue
        tt = target[has]
        merge = (owner[tt] > i) | (human_label[tt] > 0)
        if not merge.any():
            continue
        k = int(np.argmax(merge))
        t = int(tt[k])
        j = int(owner[t])
        if j > i:  # a later part region takes this one's label; the masks are united
            flat[pixels[j]] = cur[has][k]
            owner[pix] = j
            pixels[j] = np.concatenate([pix, pixels[j]])
        else:  # a human region absorbs this one
            flat[pix] = human_label[t]
    if padding > 0:
        border_fill(m, padding)
    return m


def _label_count(m: np.ndarray) -> int:
    """``length(unique(M)) - 1`` (search.m), also when no pixel is 0."""
    return int(np.count_nonzero(np.bincount(m.reshape(-1)))) - 1


def person_partition(
    parsing: np.ndarray, edge_u8: np.ndarray, edge_threshold: float = EDGE_THRESHOLD, padding: int = PADDING
) -> tuple[np.ndarray, np.ndarray]:
    """Person map (int64, ids 1..P in the order of ``generate_instance_human.m``, unsaturated) and the P
    pixel counts. ``parsing``: class map (H, W); ``edge_u8``: round(255·p) (H, W)."""
    parsing = np.asarray(parsing)
    if parsing.dtype != np.uint8:
        parsing = parsing.astype(np.int64)
    edges = thin(close_zero_border(edge_mask(edge_u8, edge_threshold)))
    ev, eh = extend_to_border(edges, padding)
    regions, n = line_regions(parsing, ev, eh)
    m = region_merge(regions, parsing, n, padding)
    count = _label_count(m)
    prev = n
    while count != prev:
        prev = count
        m = region_merge(m, parsing, prev, 0)
        count = _label_count(m)
    counts = np.bincount(m.reshape(-1))
    values = np.flatnonzero(counts)
    values = values[values > 0]
    lut = np.zeros(len(counts), np.int64)
    lut[values] = np.arange(1, len(values) + 1)
    return lut[m], counts[values].astype(np.int64)


# --- 6. part instances ------------------------------------------------------------------------------
def sobel_nonzero(parsing: np.ndarray) -> np.ndarray:
    """``imgradient(parsing) > 0``: 3×3 Sobel responses of the class map with replicate padding, either
    non-zero (weights can cancel; not a neighbour-difference test). Exact integer arithmetic (int16 holds
    every response of an 8-bit map; wider maps are filtered in float64, exact for integers)."""
    if parsing.dtype == np.uint8:
        p, depth = parsing, cv2.CV_16S
    else:
        p, depth = parsing.astype(np.float64), cv2.CV_64F
    gx = cv2.Sobel(p, depth, 1, 0, ksize=3, borderType=cv2.BORDER_REPLICATE)
    gy = cv2.Sobel(p, depth, 0, 1, ksize=3, borderType=cv2.BORDER_REPLICATE)
    return (gx != 0) | (gy != 0)


@dataclass
class PartInstanceResult:
    """Part instances of one image: ``instance_map`` ids 1..K (unsaturated, int64), per id its class and
    float32 score (``NaN`` where the released code prints ``NaN``)."""

    instance_map: np.ndarray
    classes: np.ndarray
    scores: np.ndarray  # float32 (float64 for a float64 score map)


def part_instances(
    parsing: np.ndarray,
    person_map: np.ndarray,
    edge_u8: np.ndarray,
    score_map: np.ndarray,
    num_part_classes: int = 19,
) -> PartInstanceResult:
    """``generate_instance_part.m`` for one image. ``person_map`` is the map the part stage reads (the
    saturated PNG in the released pipeline); ``score_map`` the float32 part score map."""
    par = parsing.reshape(-1)
    per = person_map.reshape(-1)
    valid = (par >= 1) & (par <= num_part_classes) & (per > 0)
    idx = np.flatnonzero(valid)
    base = int(per.max(initial=0)) + 1
    key = par[idx].astype(np.int64) * base + per[idx]
    counts = np.bincount(key)
    present = np.flatnonzero(counts)
    k = len(present)
    lut = np.zeros(len(counts), np.int64)
    lut[present] = np.arange(1, k + 1)
    ids = lut[key]
    inst = np.zeros(par.shape, np.int64)
    inst[idx] = ids
    inst = inst.reshape(parsing.shape)
    edge_map = (sobel_nonzero(parsing).reshape(-1)[idx] + edge_u8.reshape(-1)[idx] / 255.0).astype(np.float64)
    single = np.asarray(score_map).dtype != np.float64  # MATLAB keeps a double map in double
    data = np.asarray(score_map, dtype=np.float32 if single else np.float64).reshape(-1)[idx]
    n = counts[present].astype(np.float64)
    esum = np.bincount(ids, weights=edge_map, minlength=k + 1)[1:]
    ecnt = np.bincount(ids, weights=edge_map > 0, minlength=k + 1)[1:]
    psum = np.bincount(ids, weights=data.astype(np.float64), minlength=k + 1)[1:]
    with np.errstate(invalid="ignore", divide="ignore"):
        es = esum / ecnt  # float64, 0/0 = NaN
        # mean of the float32 map (accumulated in double, rounded to single), then MATLAB's mixed
        # single/double products, which run in single precision
        if single:
            ps = (psum / n).astype(np.float32)
            score = n.astype(np.float32) * (ps * es.astype(np.float32))
        else:
            score = n * ((psum / n) * es)
    return PartInstanceResult(inst, (present // base).astype(np.int64), score)


@dataclass
class PartitionResult:
    """Everything the two MATLAB scripts produce for one image (ids unsaturated; see :func:`saturate`)."""

    person_map: np.ndarray
    person_areas: np.ndarray
    parts: PartInstanceResult
    person_map_read: np.ndarray = field(repr=False, default=None)  # what the part stage read


def saturate(ids: np.ndarray, limit: int | None = ID_LIMIT) -> np.ndarray:
    """``uint8(ids)``: ids above 255 become 255 (``limit=None`` keeps them)."""
    return ids if limit is None else np.minimum(ids, limit)


def partition(
    parsing: np.ndarray,
    edge_u8: np.ndarray,
    score_map: np.ndarray,
    num_part_classes: int = 19,
    id_limit: int | None = ID_LIMIT,
    edge_threshold: float = EDGE_THRESHOLD,
) -> PartitionResult:
    """Person map and part instances of one image exactly as the released MATLAB scripts.

    ``id_limit=255`` (default) reproduces the uint8 PNG hand-over between the two scripts (person ids ≥ 255
    merge into 255 before the part stage); ``None`` is the project's unsaturated option.
    """
    parsing = np.asarray(parsing)
    edge_u8 = np.asarray(edge_u8)
    score_map = np.asarray(score_map)
    if parsing.shape != edge_u8.shape or parsing.shape != score_map.shape:
        raise ValueError(
            f"parsing {parsing.shape}, edge {edge_u8.shape} and score {score_map.shape} maps differ in size"
        )
    if min(parsing.shape) < MIN_SIZE:
        raise ValueError(
            f"image is {parsing.shape[1]}x{parsing.shape[0]}; the released partition needs at least "
            f"{MIN_SIZE}x{MIN_SIZE} pixels (its border fill reads column W-12 and row H-12)"
        )
    persons, areas = person_partition(parsing, edge_u8, edge_threshold)
    read = saturate(persons, id_limit)
    parts = part_instances(parsing, read, edge_u8, score_map, num_part_classes)
    return PartitionResult(persons, areas, parts, read)


# --- files (the MATLAB scripts' outputs) --------------------------------------------------------------
def voc_colormap(n: int = 256) -> np.ndarray:
    """PASCAL VOC colour map (``pascal_seg_colormap.mat``), (n, 3) uint8."""
    cmap = np.zeros((n, 3), np.uint8)
    for i in range(n):
        c, r, g, b = i, 0, 0, 0
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        cmap[i] = (r, g, b)
    return cmap


_PALETTE = voc_colormap().reshape(-1).tolist()


def write_palette_png(path: str | os.PathLike, ids: np.ndarray) -> None:
    """``imwrite(uint8(ids), colormap, path)``: palette PNG, ids saturating at 255."""
    from PIL import Image

    img = Image.fromarray(np.clip(ids, 0, ID_LIMIT).astype(np.uint8), mode="P")
    img.putpalette(_PALETTE)
    img.save(path)


def matlab_float(x: float) -> str:
    """MATLAB's ``%f``: 6 decimals, ``NaN`` / ``Inf`` / ``-Inf`` spelled as MATLAB prints them."""
    x = float(x)
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "Inf" if x > 0 else "-Inf"
    return f"{x:f}"


def human_txt(areas: np.ndarray) -> str:
    """``fprintf('%d, %f\\n', 1, area)`` per person."""
    return "".join(f"1, {matlab_float(a)}\n" for a in areas)


def part_txt(classes: np.ndarray, scores: np.ndarray) -> str:
    """``fprintf('%d %f\\n', class, score)`` per part instance (empty when there is none)."""
    return "".join(f"{int(c)} {matlab_float(s)}\n" for c, s in zip(classes, scores))


def write_outputs(out_dir: str | os.PathLike, image_id: str, result: PartitionResult) -> None:
    """``cihp_human_maps/<id>.png|.txt`` and ``cihp_instance_part_maps/<id>.png|.txt`` under ``out_dir``."""
    out = Path(out_dir)
    hdir, pdir = out / "cihp_human_maps", out / "cihp_instance_part_maps"
    hdir.mkdir(parents=True, exist_ok=True)
    pdir.mkdir(parents=True, exist_ok=True)
    write_palette_png(hdir / f"{image_id}.png", result.person_map)
    (hdir / f"{image_id}.txt").write_text(human_txt(result.person_areas))
    write_palette_png(pdir / f"{image_id}.png", result.parts.instance_map)
    (pdir / f"{image_id}.txt").write_text(part_txt(result.parts.classes, result.parts.scores))


# --- command line -------------------------------------------------------------------------------------
USAGE = """Regroup the released PGN test outputs into persons and part instances, exactly as the released
MATLAB scripts (instance_tool/generate_instance_human.m, generate_instance_part.m):

    python -m humanparse.models.pgn.partition input=<dir> output=<dir> [list=<ids file>] [num_classes=20]

input   the folder test_pgn.py writes (``output/`` of CIHP_PGN, or the CIHP_PGN folder holding it):
        cihp_parsing_maps/<id>.png (class map), cihp_parsing_maps/<id>.mat (MATLAB v5, float32 ``data``, the
        part score map), cihp_edge_maps/<id>.png (round(255·p))
output  receives cihp_human_maps/<id>.png + <id>.txt and cihp_instance_part_maps/<id>.png + <id>.txt
list    image ids, one per line (default: datasets/CIHP/list/val_id.txt of the CIHP_PGN folder)
num_classes  C (20 on CIHP): part classes 1..C-1; a class id above C-1 is an error

Score the part instances with
    python -m humanparse.evaluate_predictions metric=apr gt_dir=<CIHP val> pred_dir=<output>/cihp_instance_part_maps nan_score=first
A bad image (missing file, size mismatch, class id above C-1, smaller than 13 px) is reported with its file
name; the other images are still written (exit status 1).
"""


class PartitionInputError(ValueError):
    """A bad input file (the message names it)."""


def _maps_root(root: Path) -> Path:
    for cand in (root, root / "output"):
        if (cand / "cihp_parsing_maps").is_dir():
            return cand
    raise PartitionInputError(
        f"{root}: no cihp_parsing_maps/ folder (expected the output/ folder of test_pgn.py)"
    )


def _default_list(root: Path, maps: Path) -> Path:
    for base in (root, maps.parent, root.parent):
        cand = base / "datasets" / "CIHP" / "list" / "val_id.txt"
        if cand.is_file():
            return cand
    raise PartitionInputError(
        f"{root}: datasets/CIHP/list/val_id.txt not found next to the maps; pass list=<ids file>"
    )


def _read_u8(path: Path, what: str) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    if not path.is_file():
        raise PartitionInputError(f"{path}: {what} is missing")
    try:
        with Image.open(path) as img:
            if img.mode not in ("L", "P"):
                raise PartitionInputError(
                    f"{path}: {what} must be an 8-bit single-channel PNG, got mode {img.mode}"
                )
            return np.array(img)
    except (UnidentifiedImageError, OSError) as e:
        raise PartitionInputError(f"{path}: unreadable {what} ({e})") from None


def _read_mat(path: Path) -> np.ndarray:
    from scipy.io import loadmat

    if not path.is_file():
        raise PartitionInputError(f"{path}: part score map (.mat) is missing")
    try:
        mat = loadmat(str(path))
    except Exception as e:  # noqa: BLE001 - any parse failure is reported with the file name
        raise PartitionInputError(f"{path}: unreadable MATLAB file ({e})") from None
    data = mat.get("data")
    if (
        data is None
        or not isinstance(data, np.ndarray)
        or data.ndim != 2
        or data.dtype not in (np.float32, np.float64)
    ):
        raise PartitionInputError(f"{path}: expected a 2-D float32 variable 'data' (the part score map)")
    return data


def regroup_image(maps: Path, image_id: str, out: Path, num_classes: int = 20) -> PartitionResult:
    """Read one image's three files, partition it, write the four outputs."""
    par_png = maps / "cihp_parsing_maps" / f"{image_id}.png"
    parsing = _read_u8(par_png, "parsing map")
    mat = maps / "cihp_parsing_maps" / f"{image_id}.mat"
    score = _read_mat(mat)
    edge_png = maps / "cihp_edge_maps" / f"{image_id}.png"
    edge = _read_u8(edge_png, "edge map")
    if parsing.shape != edge.shape or parsing.shape != score.shape:
        raise PartitionInputError(
            f"{par_png}: size mismatch: parsing map {parsing.shape[1]}x{parsing.shape[0]}, "
            f"{edge_png.name} (edge) {edge.shape[1]}x{edge.shape[0]}, "
            f"{mat.name} (score) {score.shape[1]}x{score.shape[0]}"
        )
    if int(parsing.max(initial=0)) > num_classes - 1:
        raise PartitionInputError(
            f"{par_png}: class id {int(parsing.max())} above {num_classes - 1} (num_classes={num_classes})"
        )
    if min(parsing.shape) < MIN_SIZE:
        raise PartitionInputError(
            f"{par_png}: image is {parsing.shape[1]}x{parsing.shape[0]}; the released partition "
            f"needs at least {MIN_SIZE}x{MIN_SIZE} pixels"
        )
    res = partition(parsing, edge, score, num_part_classes=num_classes - 1)
    write_outputs(out, image_id, res)
    return res


def main(argv: list[str] | None = None) -> int:
    import sys

    from omegaconf import OmegaConf

    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE)
        return 0
    cfg = OmegaConf.from_cli(argv)
    unknown = sorted(set(cfg) - {"input", "output", "list", "num_classes"})
    if unknown or not cfg.get("input") or not cfg.get("output"):
        print(
            f"error: {'unknown arguments ' + str(unknown) if unknown else 'input=<dir> and output=<dir> are required'}"
            f"\n{USAGE}",
            file=sys.stderr,
        )
        return 2
    root = Path(str(cfg.input))
    try:
        maps = _maps_root(root)
        ids_file = Path(str(cfg.list)) if cfg.get("list") else _default_list(root, maps)
        if not ids_file.is_file():
            raise PartitionInputError(f"{ids_file}: id list is missing")
        ids = [line.strip() for line in ids_file.read_text().splitlines() if line.strip()]
    except PartitionInputError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    out = Path(str(cfg.output))
    num_classes = int(cfg.get("num_classes", 20))
    bad = 0
    for image_id in ids:
        try:
            regroup_image(maps, image_id, out, num_classes)
        except PartitionInputError as e:
            bad += 1
            print(f"error: {e}", file=sys.stderr)
    print(
        f"{len(ids) - bad} of {len(ids)} images regrouped into {out}/cihp_human_maps and "
        f"{out}/cihp_instance_part_maps" + (f"; {bad} failed (see above)" if bad else "")
    )
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
