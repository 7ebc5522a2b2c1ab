"""Standalone evaluator round trips: every official format written, read back and scored exactly as the
in-memory metrics score the same arrays (metric=atr|app|apr|edge)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from PIL import Image

from humanparse import evaluate_predictions as ep
from humanparse.data.io import DataError, write_label_png
from humanparse.data.meta import get_info, voc_palette
from humanparse.data.targets import instance_edges
from humanparse.evaluation import synthetic as sy
from humanparse.evaluation.fastio import read_index_png
from humanparse.metrics import ATRMetric, InstanceEdgeMetric, InstanceParsingMetric, PartInstanceAPMetric


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    root = tmp_path_factory.mktemp("eval")
    samples = sy.make_instance_samples(6, seed=7, size=(48, 40), persons=(1, 4))
    samples[2].pred_parts, samples[2].pred_scores = [], []  # an image without any prediction
    cihp = sy.write_cihp_gt(root / "CIHP" / "Validation", samples)
    write_label_png(cihp / "Category_ids" / f"{samples[1].image_id}.png", samples[1].semantic, voc_palette())
    mhp = sy.write_mhp_gt(root / "MHP", samples)
    sy.write_person_predictions(root / "persons", samples)
    sy.write_mhp_submission(root / "mhp_sub", samples)
    sy.write_part_instance_predictions(root / "parts", samples)
    sy.write_edge_predictions(root / "edges", samples)
    return root, samples, cihp, mhp


def run(args, tmp_path, capsys=None):
    out = tmp_path / "res.json"
    assert ep.main(args + [f"output={out}"]) == 0
    return json.loads(out.read_text())


def flat(metric):
    return {k: float(v) for k, v in metric.compute().items()}


def close(a: dict, b: dict, keys):
    for k in keys:
        x, y = a[k], b[k]
        assert (x is None and math.isnan(y)) or x == pytest.approx(y, abs=1e-12), (k, x, y)


def test_app_per_person_pngs_against_cihp(bench, tmp_path, capsys):
    root, samples, cihp, _ = bench
    res = run(["metric=app", f"gt_dir={cihp}", f"pred_dir={root / 'persons'}"], tmp_path)
    m = InstanceParsingMetric(20)
    for i, s in enumerate(samples):
        m.update(
            [{"parts": np.stack(s.pred_parts) if s.pred_parts else None, "scores": s.pred_scores}],
            [{"semantic": s.semantic, "person_ids": s.person_ids, "image_id": s.image_id, "order": i}],
        )
    close(res["metrics"], flat(m), ["app50", "app_vol", "pcp50", "app90", "pcp10", "miou", "pixel_acc"])
    assert res["num_images"] == 6 and res["counts"]["num_gt_persons"] == sum(
        len(np.unique(s.person_ids)) - 1 for s in samples
    )
    out = capsys.readouterr().out
    assert "app50" in out and "pcp50" in out and "right_shoe" in out


def test_app_mhp_submission_against_mhp_and_cihp(bench, tmp_path):
    root, samples, cihp, mhp = bench
    res = run(
        [
            "metric=app",
            "gt_format=mhp",
            f"gt_dir={mhp}",
            f"pred_dir={root / 'mhp_sub'}",
            "pred_format=mhp",
            "app_convention=mhp_official",
            "dataset=cihp",
        ],
        tmp_path,
    )
    m = InstanceParsingMetric(20, app_convention="mhp_official")
    for i, s in enumerate(samples):
        seg, tag, persons = sy.mhp_submission_maps(s)
        parts = [np.where(tag == t, seg, 0) for t, _ in persons if (tag == t).any()]
        scores = [sc for t, sc in persons if (tag == t).any()]
        ids = [k for k in np.unique(s.person_ids) if k > 0]
        m.update(
            [{"parts": np.stack(parts) if parts else None, "scores": scores}],
            [
                {
                    "persons": [np.where(s.person_ids == k, s.semantic, 0) for k in ids],
                    "image_id": s.image_id,
                    "order": i,
                }
            ],
        )
    close(res["metrics"], flat(m), ["app50", "app_vol", "pcp50", "pcp90", "miou"])
    # the same submission against the CIHP files: identical persons, identical AP^p
    res2 = run(
        [
            "metric=app",
            f"gt_dir={cihp}",
            f"pred_dir={root / 'mhp_sub'}",
            "pred_format=mhp",
            "app_convention=mhp_official",
        ],
        tmp_path,
    )
    close(res2["metrics"], res["metrics"], ["app50", "app_vol", "pcp50"])


def test_apr_pgn_format_both_gt_sources(bench, tmp_path, capsys):
    root, samples, cihp, _ = bench
    res = run(["metric=apr", f"gt_dir={cihp}", f"pred_dir={root / 'parts'}"], tmp_path)
    res_inst = run(
        [
            "metric=apr",
            f"gt_dir={cihp}",
            f"pred_dir={root / 'parts'}",
            "apr_gt=instance_ids",
            "matching=pgn",
            "class_reduction=mean",
        ],
        tmp_path,
    )
    m = PartInstanceAPMetric(20, class_names=get_info("cihp").class_keys)
    for i, s in enumerate(samples):
        m.update(
            [{"parts": np.stack(s.pred_parts) if s.pred_parts else None, "scores": s.pred_scores}],
            [{"semantic": s.semantic, "person_ids": s.person_ids, "image_id": s.image_id, "order": i}],
        )
    ref = flat(m)
    close(res["metrics"], ref, ["apr50", "apr60", "apr70", "apr_vol", "apr/face/50", "apr/hair/10"])
    keys = [k for k in ref if k.startswith("apr/")]
    close(res_inst["metrics"], ref, keys)  # Instance_ids + txt induce the same part instances
    assert len(res["table"]) == 19 and len(res["table"]["face"]) == 9
    out = capsys.readouterr().out
    assert "AP^r per class" in out and "apr_vol" in out


def test_apr_mismatch_warning_and_sixteen_bit(tmp_path):
    gt = tmp_path / "gt"
    for d in ("Category_ids", "Human_ids"):
        (gt / d).mkdir(parents=True)
    sem = np.zeros((20, 30), np.uint8)
    pid = np.zeros((20, 30), np.uint8)
    sem[:, :15], pid[:, :15] = 13, 1
    write_label_png(gt / "Category_ids" / "a.png", sem)
    write_label_png(gt / "Human_ids" / "a.png", pid)
    (gt / "val_id.txt").write_text("a\n")
    pred = tmp_path / "pred"
    pred.mkdir()
    inst = np.zeros((20, 30), np.int64)
    inst[:, :15] = 300  # needs a 16-bit PNG
    write_label_png(pred / "a.png", inst)
    assert Image.open(pred / "a.png").mode.startswith("I")
    lines = ["2 0.5"] * 299 + ["13 0.9"]  # ids 1..299 are listed but absent from the PNG
    (pred / "a.txt").write_text("\n".join(lines) + "\n")
    with pytest.warns(UserWarning, match="absent from a.png"):
        res = run(["metric=apr", f"gt_dir={gt}", f"pred_dir={pred}"], tmp_path)
    assert res["metrics"]["apr/face/90"] == 1.0
    assert res["metrics"]["apr/hair/10"] == 0.0  # the 299 listed hair ids were dropped, not scored
    assert res["counts"]["num_pred_instances"] == 1


def test_edge_maps_prob_and_binary(bench, tmp_path):
    root, samples, cihp, _ = bench
    res = run(["metric=edge", f"gt_dir={cihp}", f"pred_dir={root / 'edges'}"], tmp_path)
    m = InstanceEdgeMetric(edge_input="probs")
    for s in samples:
        p = read_index_png(root / "edges" / f"{s.image_id}.png").astype(np.float64) / 255
        m.update(torch.from_numpy(p), torch.from_numpy(instance_edges(s.person_ids)))
    close(res["metrics"], flat(m), ["edge_precision", "edge_recall", "edge_f1"])
    # binary predictions against a PGN-style edges/ folder
    (cihp / "edges").mkdir(exist_ok=True)
    binp = tmp_path / "bin"
    binp.mkdir()
    for s in samples:
        e = instance_edges(s.person_ids)
        write_label_png(cihp / "edges" / f"{s.image_id}.png", e)
        write_label_png(binp / f"{s.image_id}.png", e * 255)
    res = run(
        ["metric=edge", f"gt_dir={cihp}", f"pred_dir={binp}", "edge_gt=edges", "edge_pred=binary"], tmp_path
    )
    assert res["metrics"]["edge_f1"] == 1.0


def test_atr_label_maps(tmp_path):
    rng = np.random.default_rng(0)
    (tmp_path / "gt").mkdir(), (tmp_path / "pred").mkdir()
    pairs = []
    for i in range(3):
        g = rng.integers(0, 18, (12, 10)).astype(np.uint8)
        g[0] = 255
        p = np.where(rng.random(g.shape) < 0.7, g % 18, rng.integers(0, 17, g.shape)).astype(np.uint8)
        p[g == 255] = 0
        write_label_png(tmp_path / "gt" / f"{i}.png", g)
        write_label_png(tmp_path / "pred" / f"{i}.png", p)
        pairs.append((torch.from_numpy(p), torch.from_numpy(g)))
    for conv in ("hhp_macro", "fg_pooled"):
        res = run(
            [
                "metric=atr",
                f"gt_dir={tmp_path / 'gt'}",
                f"pred_dir={tmp_path / 'pred'}",
                f"atr_convention={conv}",
                "atr_zero_division=nan",
            ],
            tmp_path,
        )
        m = ATRMetric(
            18, class_names=get_info("atr").class_keys, atr_convention=conv, atr_zero_division="nan"
        )
        for p, g in pairs:
            m.update(p, g)
        close(
            res["metrics"], m.flat(), ["pixel_acc", "fg_acc", "precision", "recall", "f1", "f1/face", "miou"]
        )
        assert res["atr_convention"] == conv


def test_errors_name_the_file(bench, tmp_path, capsys):
    root, samples, cihp, _ = bench
    pred = tmp_path / "p"
    sy.write_person_predictions(pred, samples[:2])
    args = ["metric=app", f"gt_dir={cihp}", f"pred_dir={pred}", f"output={tmp_path / 'o.json'}"]
    sid = samples[0].image_id
    write_label_png(pred / f"{sid}_1.png", np.zeros((5, 5), np.uint8))
    assert ep.main(args) == 2
    assert f"{sid}_1.png" in capsys.readouterr().err
    (pred / f"{sid}_1.png").unlink()
    assert ep.main(args) == 2
    assert "label file is missing" in capsys.readouterr().err
    (pred / "scores.txt").write_text(f"{sid} 1\n")
    assert ep.main(args) == 2
    assert "scores.txt: line 1" in capsys.readouterr().err
    (pred / "scores.txt").write_text(f"{sid} 1 nan\n")
    assert ep.main(args) == 2
    assert "NaN score" in capsys.readouterr().err
    (root / "bad_sub").mkdir(exist_ok=True)
    (root / "bad_sub" / "results.txt").write_text(f"{sid} 1 0.5 2\n")
    assert ep.main(["metric=app", f"gt_dir={cihp}", f"pred_dir={root / 'bad_sub'}", "pred_format=mhp"]) == 2
    assert "pairs" in capsys.readouterr().err
    assert ep.main(["metric=apr", f"gt_dir={cihp}", f"pred_dir={tmp_path / 'nowhere'}"]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_fast_reader_keeps_indices(tmp_path):
    lab = np.array([[0, 1, 19], [255, 7, 3]], np.uint8)
    write_label_png(tmp_path / "p.png", lab, voc_palette())  # palette: must come back as indices
    write_label_png(tmp_path / "l.png", lab)
    write_label_png(tmp_path / "w.png", lab.astype(np.int64) * 200)  # 16-bit
    rgb = np.zeros((2, 3, 3), np.uint8)
    rgb[..., 0] = lab
    rgb[..., 1] = 9
    Image.fromarray(rgb).save(tmp_path / "rgb.png")
    assert np.array_equal(read_index_png(tmp_path / "p.png"), lab)
    assert np.array_equal(read_index_png(tmp_path / "l.png"), lab)
    assert np.array_equal(read_index_png(tmp_path / "w.png"), lab.astype(np.int64) * 200)
    assert np.array_equal(read_index_png(tmp_path / "rgb.png", channels="first"), lab)
    with pytest.raises(DataError, match="RGB"):
        read_index_png(tmp_path / "rgb.png")
    with pytest.raises(DataError, match="out of range"):
        read_index_png(tmp_path / "l.png", num_classes=10)
    (tmp_path / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)
    with pytest.raises(DataError, match="bad.png"):
        read_index_png(tmp_path / "bad.png")


def test_confusion_counts_paths_agree_and_reject_bad_predictions():
    from humanparse.metrics.hist import confusion_counts

    rng = np.random.default_rng(0)
    g = rng.integers(0, 20, (30, 40)).astype(np.uint8)
    g[0] = 255
    p = rng.integers(0, 20, (30, 40)).astype(np.uint8)
    p[0] = 200  # out of range but on ignored pixels: allowed
    ref = confusion_counts(g.astype(np.int64), p.astype(np.int64), 20)  # bincount path
    assert np.array_equal(confusion_counts(g, p, 20), ref)  # OpenCV path
    assert ref.sum() == 29 * 40
    p[5, 5] = 25
    for a, b in ((g, p), (g.astype(np.int64), p.astype(np.int64))):
        with pytest.raises(ValueError, match=r"\[25\]"):
            confusion_counts(a, b, 20)


def test_app_reads_humanparse_predict_outputs(bench, tmp_path):
    root, samples, cihp, _ = bench
    out = tmp_path / "predict"
    for s in samples:
        recs = []
        for k, (p, sc) in enumerate(zip(s.pred_parts, s.pred_scores), 1):
            (out / "instances" / s.image_id).mkdir(parents=True, exist_ok=True)
            write_label_png(out / "instances" / s.image_id / f"person_{k}.png", p, voc_palette())
            recs.append({"id": k, "score": sc, "file": f"instances/{s.image_id}/person_{k}.png"})
        (out / "instances").mkdir(parents=True, exist_ok=True)
        (out / "instances" / f"{s.image_id}.json").write_text(
            json.dumps({"image": s.image_id, "instances": recs})
        )
    a = run(["metric=app", f"gt_dir={cihp}", f"pred_dir={out}", "pred_format=predict"], tmp_path)
    b = run(["metric=app", f"gt_dir={cihp}", f"pred_dir={root / 'persons'}"], tmp_path)
    close(a["metrics"], b["metrics"], ["app50", "app_vol", "pcp50", "miou"])
