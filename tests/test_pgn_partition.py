"""PGN instance partition: every rule of the released MATLAB tool on hand-made maps, random maps against a
literal transcription of the MATLAB loops, the files the scripts write, and the regrouping CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage as ndi
from scipy.io import savemat
from skimage.morphology import closing as sk_closing
from skimage.morphology import thin as sk_thin

from helpers import pgn_reference as ref
from humanparse.models.pgn import partition as P


def _random_scene(rng, h, w):
    """Boxes of 1-3 classes with box edges of random strength plus speckle: every rule fires somewhere."""
    par = np.zeros((h, w), np.uint8)
    edge = np.zeros((h, w))
    for _ in range(rng.integers(1, 5)):
        r0, c0 = rng.integers(0, h - 5), rng.integers(0, w - 5)
        hh, ww = rng.integers(5, h), rng.integers(3, w // 2 + 3)
        sub = rng.integers(1, 20, size=3)
        blk = par[r0 : r0 + hh, c0 : c0 + ww]
        cls = np.where(rng.random(blk.shape) < 0.9, sub[0], sub[1])
        cls[: blk.shape[0] // 2] = sub[2]
        blk[...] = cls
        box = np.zeros((h, w), bool)
        box[r0 : r0 + hh, c0 : c0 + ww] = True
        edge = np.maximum(edge, (ndi.binary_dilation(box) & ~ndi.binary_erosion(box)) * rng.uniform(0.1, 1))
    edge = np.maximum(edge, rng.random((h, w)) * (rng.random((h, w)) < 0.05))
    return par, np.round(edge * 255).astype(np.uint8)


# --- 1. edges -------------------------------------------------------------------------------------
def test_threshold_is_u8_ge_51():
    e = np.arange(256, dtype=np.uint8).reshape(16, 16)
    assert np.array_equal(P.edge_mask(e), e >= 51)


def test_closing_clears_the_frame_and_fills_gaps():
    m = np.ones((15, 17), bool)
    c = P.close_zero_border(m)
    assert not c[0].any() and not c[-1].any() and not c[:, 0].any() and not c[:, -1].any()
    assert c[1:-1, 1:-1].all()
    assert sk_closing(m, np.ones((3, 3), bool)).all()  # skimage keeps the frame: not MATLAB's bwmorph
    line = np.zeros((15, 17), bool)
    line[7, 2:15] = True
    line[7, 8] = False  # a 1-px gap is closed
    assert P.close_zero_border(line)[7, 2:15].all()


def test_closing_and_thinning_match_the_libraries_on_random_masks():
    rng = np.random.default_rng(0)
    for _ in range(40):
        m = ndi.binary_dilation(
            rng.random((int(rng.integers(5, 40)), int(rng.integers(5, 40)))) > 0.9,
            iterations=int(rng.integers(0, 3)),
        )
        assert np.array_equal(P.close_zero_border(m), ndi.binary_closing(m, np.ones((3, 3))))
        assert np.array_equal(P.thin(m), sk_thin(m))


def test_thinning_gives_one_pixel_curves():
    m = np.zeros((20, 30), bool)
    m[8:11, 3:27] = True  # a 3-px thick bar
    t = P.thin(m)
    assert (t.sum(axis=0)[5:25] == 1).all()
    assert t[:, 3:27].any(axis=0).sum() >= 20


# --- 2. border extension ---------------------------------------------------------------------------
def test_border_extension_bottom_and_right_only():
    h, w = 30, 40
    e = np.zeros((h, w), bool)
    e[h - 10, 5] = True  # in the last 10 rows: extends down
    e[h - 11, 8] = True  # just above them: does not
    e[3, w - 10] = True  # last 10 columns: extends right
    e[6, w - 11] = True  # does not
    e[0:3, 0:3] = False
    ev, eh = P.extend_to_border(e)
    assert ev[h - 10 :, 5].all() and not ev[h - 10 :, 8].any()
    assert eh[3, w - 10 :].all() and not eh[6, w - 10 :].any()
    assert not ev[: h - 10, 5].any() or ev[: h - 10, 5].sum() == 0  # never upwards
    # the horizontal scan runs on the vertically extended map: the extended column feeds it
    e2 = np.zeros((h, w), bool)
    e2[h - 5, w - 3] = True
    ev2, eh2 = P.extend_to_border(e2)
    assert ev2[h - 5 :, w - 3].all() and eh2[h - 5 :, w - 3 :].all() and not eh2[h - 5 :, : w - 3].any()


# --- 3. regions ----------------------------------------------------------------------------------
def test_vertical_links_survive_in_the_extended_strip():
    h, w = 24, 30
    par = np.zeros((h, w), np.uint8)
    par[2:22, 3:] = 4
    edges = np.zeros((h, w), bool)
    edges[10, 3 : w - 9] = True  # ends in the last 10 columns: extended to the right border
    ev, eh = P.extend_to_border(edges)
    assert eh[10, 3:].all() and not ev[10, w - 8 :].any()
    regions, n = P.line_regions(par, ev, eh)
    # S is cut in two by the extended row, but its pixels right of the edge keep their vertical links
    assert ndi.label((par != 0) & ~eh)[1] == 2
    assert n == 1 and (regions[10, w - 8 :] == 1).all() and (regions[2:10, 3:] == 1).all()
    assert (regions[11:22, 3:] == 1).all() and not regions[10, 3 : w - 9].any()
    # the same edge across the whole width separates the halves
    edges[10, 3:] = True
    regions2, n2 = P.line_regions(par, *P.extend_to_border(edges))
    assert n2 == 2


def test_regions_ordered_by_size_ties_later_discovered_first():
    par = np.zeros((20, 20), np.uint8)
    par[2:4, 12:15] = 3  # 6 px, discovered first (row 2)
    par[8:10, 2:5] = 5  # 6 px, discovered later (row 8)
    par[14:18, 8:12] = 7  # 16 px: the largest
    par[12, 2] = 1  # 1 px
    par[12, 4] = 1  # 1 px, later
    no = np.zeros_like(par, bool)
    regions, n = P.line_regions(par, no, no)
    assert n == 5
    assert regions[15, 9] == 1
    assert regions[8, 2] == 2 and regions[2, 12] == 3  # tie: the later-discovered region first
    assert regions[12, 4] == 4 and regions[12, 2] == 5


# --- 4. merge passes -----------------------------------------------------------------------------
def _human_block(par, m, label, r0, c0, hh=6, ww=6):
    par[r0 : r0 + hh, c0 : c0 + ww] = 2
    par[r0 : r0 + hh // 2, c0 : c0 + ww] = 3
    m[r0 : r0 + hh, c0 : c0 + ww] = label


def test_human_needs_two_labels_and_more_than_30_pixels():
    h, w = 30, 30
    for size, classes, human in ((6, 2, True), (5, 2, False), (6, 1, False)):
        par = np.zeros((h, w), np.uint8)
        m = np.zeros((h, w), np.int32)
        par[12 : 12 + size, 12 : 12 + 6] = 2
        if classes == 2:
            par[12, 12:18] = 3
        m[12 : 12 + size, 12:18] = 2
        par[10, 14] = 9  # a 1-px part region two rows above (label 1, processed first)
        m[10, 14] = 1
        out = P.region_merge(m, par, 2, 0)
        # the part merges into a human (takes label 2), or the other part takes its label 1
        assert (out[10, 14] == 2) == human
        assert (out[12, 14] == 1) == (not human)
        assert np.array_equal(out, ref.region_merge(m, par, 2, 0))


def test_border_filled_background_counts_as_a_label():
    h, w = 30, 30
    par = np.zeros((h, w), np.uint8)
    m = np.zeros((h, w), np.int32)
    par[10:17, 10:16] = 5  # one class, 42 px ...
    m[10:17, 10:16] = 2
    m[17, 10:16] = 2  # ... plus 6 background pixels a border fill gave label 2
    par[8, 12] = 6
    m[8, 12] = 1  # a part two rows above
    out = P.region_merge(m, par, 2, 0)
    assert out[8, 12] == 2  # {0, 5} are two labels: label 2 is a human
    m[17, 10:16] = 0
    out = P.region_merge(m, par, 2, 0)
    assert out[8, 12] == 1 and out[12, 12] == 1  # one label: two parts, the later takes the earlier's label


def test_only_the_first_qualifying_direction_is_examined():
    h, w = 30, 30
    par = np.zeros((h, w), np.uint8)
    m = np.zeros((h, w), np.int32)
    _human_block(par, m, 1, 16, 10)  # a human two rows below the part pixel
    par[14, 12], m[14, 12] = 7, 3  # the part: 1 px, label 3
    par[12, 12], m[12, 12] = 8, 5  # above it, a label outside 1..n (neither human nor part)
    out = P.region_merge(m, par, 3, 0)
    assert out[14, 12] == 3  # "up" qualifies first and leads nowhere: "down" is never tried
    assert np.array_equal(out, ref.region_merge(m, par, 3, 0))
    m2 = m.copy()
    m2[12, 12] = 0
    assert P.region_merge(m2, par, 3, 0)[14, 12] == 1
    # with n = 5 the label above is a (later) part: it takes label 3, and the united mask then reaches the
    # human from its lower pixel
    out5 = P.region_merge(m, par, 5, 0)
    assert out5[12, 12] == 1 and out5[14, 12] == 1
    assert np.array_equal(out5, ref.region_merge(m, par, 5, 0))


def test_later_boundary_pixels_try_after_a_failed_one():
    h, w = 30, 30
    par = np.zeros((h, w), np.uint8)
    m = np.zeros((h, w), np.int32)
    _human_block(par, m, 1, 18, 8)
    par[14:17, 10], m[14:17, 10] = 7, 4  # vertical 3-px part; its top pixel looks up at label 9 (unlisted)
    par[12, 10], m[12, 10] = 8, 9
    out = P.region_merge(m, par, 4, 0)
    assert np.array_equal(out, ref.region_merge(m, par, 4, 0))
    # the bottom pixel (16, 10) reaches the human at (18, 10) after the top pixel failed
    assert (out[14:17, 10] == 1).all()


def test_asymmetric_border_fill():
    h, w = 30, 32
    m = np.zeros((h, w), np.int32)
    m[5, w - 11] = 4  # check pixel of the right strip: zeros right of it take 4
    m[6, w - 10] = 4  # one column further right: no fill
    m[7, 9] = 7  # check pixel of the left strip: columns 8..0 take 7
    m[8, 10] = 7  # no fill
    m[15, w - 13] = 2
    m[15, w - 11] = 4  # W−12 is zero and takes W−13's 2, then W−11's own 4 goes on
    out = P.border_fill(m.copy())
    assert (out[5, w - 11 :] == 4).all() and out[5, w - 12] == 0
    assert out[6, w - 9 :].sum() == 0
    assert (out[7, :10] == 7).all() and (out[8, :10] == 0).all()
    assert out[15, w - 12] == 2 and (out[15, w - 10 :] == 4).all()
    # the column pass runs afterwards on the row-filled map (row H−11 / row 9 checks)
    m2 = np.zeros((h, w), np.int32)
    m2[h - 11, 3] = 5
    m2[9, 20] = 6
    out2 = P.border_fill(m2.copy())
    assert (out2[h - 11 :, 3] == 5).all() and (out2[:10, 20] == 6).all()
    rng = np.random.default_rng(3)
    for _ in range(20):
        r = np.where(rng.random((h, w)) < 0.3, rng.integers(1, 9, (h, w)), 0).astype(np.int32)
        assert np.array_equal(P.border_fill(r.copy()), ref.region_merge(r, np.zeros_like(r), 0, 10))


def test_merge_loop_label_count_quirk(monkeypatch):
    calls = []
    orig = P.region_merge

    def spy(m, par, n, padding):
        calls.append((n, padding))
        return orig(m, par, n, padding)

    monkeypatch.setattr(P, "region_merge", spy)
    par = np.full((20, 20), 2, np.uint8)
    par[:10] = 3
    no_edge = np.zeros((20, 20), np.uint8)
    persons, areas = P.person_partition(par, no_edge)
    # every pixel labelled: count = len(unique) − 1 = 0 ≠ 1, one extra (no-op) pass with n = 0
    assert calls == [(1, 10), (0, 0)] and areas.tolist() == [400]
    calls.clear()
    par = np.full((40, 40), 2, np.uint8)
    par[:20] = 3
    par[18:22, 18:22] = 0  # background out of the border fill's reach: a zero stays, no extra pass
    persons, areas = P.person_partition(par, np.zeros((40, 40), np.uint8))
    assert calls == [(1, 10)] and areas.tolist() == [1600 - 16]


# --- 5./6. persons and part instances -----------------------------------------------------------
def test_ids_above_254_saturate_in_both_pngs(tmp_path):
    h, w = 72, 72
    par = np.zeros((h, w), np.uint8)
    par[12:60:3, 12:60:3] = 1  # 1-px persons on a period-3 grid: nothing two pixels away (256 of them)
    edge = np.zeros((h, w), np.uint8)
    res = P.partition(par, edge, np.ones((h, w), np.float32))
    assert len(res.person_areas) > 255
    assert res.person_map.max() == len(res.person_areas)
    assert (
        res.person_map_read.max() == 255 and ((res.person_map >= 255) == (res.person_map_read == 255)).all()
    )
    # the part stage read the saturated map: persons ≥ 255 form one class-1 instance
    assert len(res.parts.classes) == 255
    P.write_outputs(tmp_path, "x", res)
    png = np.array(Image.open(tmp_path / "cihp_human_maps" / "x.png"))
    assert Image.open(tmp_path / "cihp_human_maps" / "x.png").mode == "P" and png.max() == 255
    assert len((tmp_path / "cihp_human_maps" / "x.txt").read_text().splitlines()) == len(res.person_areas)
    persons_ref, _ = ref.human_map(par, edge)
    assert np.array_equal(persons_ref, res.person_map)


def test_sobel_weights_can_cancel():
    par = np.full((9, 9), 2, np.uint8)
    par[3:6, 3:6] = [[1, 2, 3], [2, 2, 2], [3, 2, 1]]
    pe = P.sobel_nonzero(par)
    assert not pe[4, 4]  # neighbours of other classes, yet both Sobel responses are 0
    kx = np.array([[1, 0, -1], [2, 0, -2], [1, 0, -1]], float)
    want = (ndi.correlate(par.astype(float), kx, mode="nearest") != 0) | (
        ndi.correlate(par.astype(float), kx.T, mode="nearest") != 0
    )
    assert np.array_equal(pe, want)
    wide = par.astype(np.int64) * 300  # non-uint8 maps take the float path
    assert np.array_equal(P.sobel_nonzero(wide), want)


def test_scores_are_float32_products_and_nan_without_edges():
    rng = np.random.default_rng(5)
    h, w = 40, 40
    par = np.full((h, w), 5, np.uint8)  # uniform class: no part edge anywhere
    persons = np.zeros((h, w), np.int64)
    persons[:, :20], persons[:, 20:] = 1, 2
    edge = np.zeros((h, w), np.uint8)
    edge[:, 25:] = rng.integers(0, 256, (h, 15))
    score = rng.normal(7, 3, (h, w)).astype(np.float32)
    res = P.part_instances(par, persons, edge, score)
    assert res.classes.tolist() == [5, 5] and np.isnan(res.scores[0]) and not np.isnan(res.scores[1])
    assert P.part_txt(res.classes, res.scores).splitlines()[0] == "5 NaN"
    sel = persons == 2
    e = edge[sel].astype(np.float64) / 255
    es = e.sum() / (e > 0).sum()
    ps = np.float32(score[sel].astype(np.float64).mean())
    want = np.float32(sel.sum()) * (ps * np.float32(es))
    assert res.scores.dtype == np.float32 and res.scores[1] == want
    # double arithmetic prints differently for some instances: float32 matters
    diffs = 0
    for seed in range(200):
        r = np.random.default_rng(seed)
        d = r.normal(7, 3, 300).astype(np.float32)
        ee = r.integers(1, 256, 300) / 255
        f32 = np.float32(300) * (np.float32(d.astype(np.float64).mean()) * np.float32(ee.sum() / 300))
        f64 = 300 * (float(np.float32(d.astype(np.float64).mean())) * (ee.sum() / 300))
        diffs += P.matlab_float(f32) != P.matlab_float(f64)
    assert diffs > 0


def test_instances_numbered_by_class_then_person():
    par = np.zeros((20, 20), np.uint8)
    persons = np.zeros((20, 20), np.int64)
    par[2:8, 2:8], persons[2:8, 2:8] = 9, 2
    par[10:18, 2:8], persons[10:18, 2:8] = 3, 2
    par[10:18, 10:18], persons[10:18, 10:18] = 9, 1
    par[2:8, 10:18], persons[2:8, 10:18] = 20, 1  # class above 19: not a part instance on CIHP
    res = P.part_instances(par, persons, np.zeros((20, 20), np.uint8), np.ones((20, 20), np.float32))
    assert res.classes.tolist() == [3, 9, 9]
    assert res.instance_map[12, 4] == 1 and res.instance_map[12, 12] == 2 and res.instance_map[4, 4] == 3


def test_text_formats():
    assert P.human_txt(np.array([6053, 1])) == "1, 6053.000000\n1, 1.000000\n"
    assert P.part_txt(np.array([3, 14]), np.array([np.nan, 12.5], np.float32)) == "3 NaN\n14 12.500000\n"
    assert P.part_txt(np.zeros(0), np.zeros(0)) == ""
    assert P.matlab_float(np.inf) == "Inf" and P.matlab_float(-np.inf) == "-Inf"


def test_small_images_are_refused():
    with pytest.raises(ValueError, match="13x13"):
        P.partition(
            np.zeros((12, 20), np.uint8), np.zeros((12, 20), np.uint8), np.zeros((12, 20), np.float32)
        )


# --- the whole partition against the literal transcription ----------------------------------------
def test_random_maps_match_the_literal_matlab_transcription():
    rng = np.random.default_rng(11)
    merged = 0
    for _ in range(25):
        h, w = int(rng.integers(13, 40)), int(rng.integers(13, 40))
        par, eu8 = _random_scene(rng, h, w)
        persons, areas = P.person_partition(par, eu8)
        want, want_areas = ref.human_map(par, eu8)
        assert np.array_equal(persons, want) and areas.tolist() == want_areas
        score = (rng.normal(size=(h, w)) * 5).astype(np.float32)
        res = P.part_instances(par, np.minimum(persons, 255), eu8, score)
        inst, lines = ref.part_map(par, np.minimum(want, 255), eu8, score)
        assert np.array_equal(res.instance_map, inst)
        assert P.part_txt(res.classes, res.scores) == "".join(f"{k} {P.matlab_float(s)}\n" for k, s in lines)
        merged += int(
            P.line_regions(par, *P.extend_to_border(P.thin(P.close_zero_border(P.edge_mask(eu8)))))[1]
            > len(areas)
        )
    assert merged >= 5  # the merge passes did work in these scenes


# --- the regrouping CLI ----------------------------------------------------------------------------
def _write_released_outputs(root, ids_maps):
    (root / "output" / "cihp_parsing_maps").mkdir(parents=True)
    (root / "output" / "cihp_edge_maps").mkdir(parents=True)
    (root / "datasets" / "CIHP" / "list").mkdir(parents=True)
    for sid, (par, edge, score) in ids_maps.items():
        Image.fromarray(par).save(root / "output" / "cihp_parsing_maps" / f"{sid}.png")
        if score is not None:
            savemat(root / "output" / "cihp_parsing_maps" / f"{sid}.mat", {"data": score})
        Image.fromarray(edge).save(root / "output" / "cihp_edge_maps" / f"{sid}.png")
    (root / "datasets" / "CIHP" / "list" / "val_id.txt").write_text("".join(f"{s}\n" for s in ids_maps))


def _gt_scene(h=48, w=64):
    """Two side-by-side persons (two parts each): Category_ids, Human_ids, and released-style outputs."""
    cat = np.zeros((h, w), np.uint8)
    hum = np.zeros((h, w), np.uint8)
    cat[6:40, 6:26], hum[6:40, 6:26] = 13, 1
    cat[6:16, 6:26] = 2
    cat[6:40, 34:56], hum[6:40, 34:56] = 13, 2
    cat[6:16, 34:56] = 2
    from humanparse.data.targets import instance_edges

    edge = (instance_edges(hum) > 0).astype(np.uint8) * 255
    score = np.where(cat > 0, 9.0, 2.0).astype(np.float32)
    return cat, hum, edge, score


def test_cli_regroups_and_evaluate_predictions_reads_the_output(tmp_path, capsys):
    from humanparse.evaluate_predictions import main as eval_main

    cat, hum, edge, score = _gt_scene()
    big = np.zeros((20, 20), np.uint8)
    maps = {
        "0000001": (cat, edge, score),
        "0000002": (cat, edge, None),  # missing .mat
        "0000003": (cat, edge[:, :-1].copy(), score),  # size mismatch
        "0000004": (np.where(cat == 13, 25, cat).astype(np.uint8), edge, score),  # class 25 > 19
        "0000005": (
            np.zeros((10, 10), np.uint8),
            np.zeros((10, 10), np.uint8),
            np.zeros((10, 10), np.float32),
        ),
        "0000006": (big, big, np.zeros((20, 20), np.float32)),
    }
    root = tmp_path / "CIHP_PGN"
    _write_released_outputs(root, maps)
    out = tmp_path / "regrouped"
    assert P.main([f"input={root}", f"output={out}"]) == 1
    err = capsys.readouterr().err
    for sid, what in (
        ("0000002", ".mat) is missing"),
        ("0000003", "size mismatch"),
        ("0000004", "class id 25"),
        ("0000005", "at least 13x13"),
    ):
        assert any(sid in line and what in line for line in err.splitlines()), (sid, err)
    written = sorted(p.name for p in (out / "cihp_instance_part_maps").iterdir())
    assert written == ["0000001.png", "0000001.txt", "0000006.png", "0000006.txt"]
    assert (out / "cihp_instance_part_maps" / "0000006.txt").read_text() == ""  # no part instance: empty file
    lines = (out / "cihp_instance_part_maps" / "0000001.txt").read_text().splitlines()
    assert {ln.split()[0] for ln in lines} == {"2", "13"} and len(lines) >= 4
    areas = [
        float(ln.split(", ")[1]) for ln in (out / "cihp_human_maps" / "0000001.txt").read_text().splitlines()
    ]
    assert len(areas) >= 2 and sorted(areas)[-2] > 600  # the two persons (plus edge-pixel leftovers)
    # direct call = what the CLI wrote
    res = P.partition(cat, edge, score)
    assert (out / "cihp_instance_part_maps" / "0000001.txt").read_text() == P.part_txt(
        res.parts.classes, res.parts.scores
    )
    # the evaluator reads the folder: the two persons' four part instances are recovered
    gt = tmp_path / "gt"
    (gt / "Category_ids").mkdir(parents=True)
    (gt / "Human_ids").mkdir()
    Image.fromarray(cat).save(gt / "Category_ids" / "0000001.png")
    Image.fromarray(hum).save(gt / "Human_ids" / "0000001.png")
    (tmp_path / "ids.txt").write_text("0000001\n")
    (out / "cihp_instance_part_maps" / "0000006.png").unlink()  # not in the GT list
    (out / "cihp_instance_part_maps" / "0000006.txt").unlink()
    rc = eval_main(
        [
            "metric=apr",
            f"gt_dir={gt}",
            f"pred_dir={out / 'cihp_instance_part_maps'}",
            f"list={tmp_path / 'ids.txt'}",
            "dataset=cihp",
            "nan_score=first",
            f"output={tmp_path / 'apr.json'}",
        ]
    )
    assert rc == 0
    result = json.loads((tmp_path / "apr.json").read_text())
    assert result["counts"]["num_pred_instances"] == len(lines) and result["counts"]["num_gt_instances"] == 4
    # classes 2 (hair) and 13 (face): both persons' instances found at IoU 0.5 (the others have no GT: 0)
    assert result["table"]["hair"][4] == pytest.approx(1.0) and result["table"]["face"][4] == pytest.approx(
        1.0
    )
    assert result["metrics"]["apr50"] == pytest.approx(2 / 19)


def test_cli_usage_and_bad_arguments(tmp_path, capsys):
    assert P.main(["--help"]) == 0 and "cihp_instance_part_maps" in capsys.readouterr().out
    assert P.main([f"input={tmp_path}"]) == 2
    assert P.main([f"input={tmp_path}", f"output={tmp_path / 'o'}"]) == 2
    assert "cihp_parsing_maps" in capsys.readouterr().err
