"""Dataset checker: ``python -m humanparse.tools.check_data data=<name> [data.root=...] [data.synthetic=true]``.

Composes the same Hydra config as training (``conf/check.yaml`` + ``conf/data/<name>.yaml``), then walks
every split of the dataset with a progress bar and reports, per split: id / image / annotation counts,
missing or unreadable files, label values out of range, image/label size mismatches, persons without
annotations, class pixel histograms, image sizes and keypoint coverage. The report is printed and
written as JSON (``report=<path>``, default ``<run dir>/check_report.json``). The exit status is 1 when
there is an **error** (something training or evaluation would fail on or silently miscount), 0
otherwise; **warnings** are the known, tolerated quirks the readers survive (images without a pose
row, MHP persons with an empty map, Instance_ids disagreeing with the Category/Human pairs, ...);
``strict=true`` fails on them too.

Per-dataset checks are :class:`DatasetCheck` subclasses registered in
:data:`humanparse.data.registry.CHECKS`; a new dataset adds its class there (the generic checks run
for every dataset). ``data=grapy_ml`` checks each member dataset.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import hydra
import numpy as np
from omegaconf import DictConfig

import humanparse.utils.resolvers  # noqa: F401  (registers ${hp.*} before Hydra composes)
from humanparse.data import registry
from humanparse.data.base import DatasetNotFoundError
from humanparse.data.io import DataError
from humanparse.data.meta import IGNORE_INDEX
from humanparse.utils.errors import one_line_errors

log = logging.getLogger(__name__)

ERROR, WARNING = "error", "warning"


@dataclass
class Issue:
    severity: str
    split: str
    path: str
    problem: str


@dataclass
class SplitReport:
    """What the walk found in one split."""

    split: str
    reader_split: str
    ids: int = 0
    images_found: int = 0
    annotations_found: int = 0
    annotations_expected: int = 0
    checked: int = 0
    unreadable: int = 0
    image_size_min: list[int] | None = None
    image_size_max: list[int] | None = None
    class_pixels: dict[str, int] = field(default_factory=dict)
    ignore_pixels: int = 0
    absent_classes: list[str] = field(default_factory=list)
    persons: int = 0
    persons_without_annotation: int = 0
    images_without_persons: int = 0
    keypoint_sets: int = 0
    keypoints_present: int = 0
    extra: dict = field(default_factory=dict)
    issues: list[Issue] = field(default_factory=list)

    def add(self, severity: str, path, problem: str) -> None:
        self.issues.append(Issue(severity, self.split, str(path), problem))

    def count(self, severity: str) -> int:
        return sum(1 for i in self.issues if i.severity == severity)


class DatasetCheck:
    """Generic checks of one dataset; subclasses add dataset-specific ones.

    ``splits`` maps a report name to (reader split, extra reader options, optional); an optional
    split whose files do not exist is skipped (e.g. PASCAL's Grapy-ML val list). Hooks:
    :meth:`check_split` once per split after the walk, :meth:`check_sample` per loaded sample.
    """

    splits: dict[str, tuple[str, dict, bool]] = {"train": ("train", {}, False), "val": ("val", {}, False)}
    # how a person without annotation is reported (None: counted only)
    unannotated_person_severity: str | None = WARNING

    def __init__(self, name: str):
        self.name = name

    def person_annotated(self, person: dict) -> bool:
        """Whether a person carries the dataset's annotation (default: a non-empty part map)."""
        parts = person.get("parts")
        return False if parts is None else bool(((parts > 0) & (parts != IGNORE_INDEX)).any())

    def check_sample(self, reader, index: int, sample: dict, report: SplitReport) -> None:
        """Dataset-specific checks of one sample (add issues / counters to ``report``)."""

    def check_split(self, reader, report: SplitReport, readers: dict) -> None:
        """Dataset-specific checks of a whole split (``readers``: the splits walked so far)."""

    # -- the generic walk ---------------------------------------------------------------------------
    def walk(self, reader, report: SplitReport, limit: int | None, progress: bool) -> None:
        from tqdm import tqdm

        info = reader.info
        C = info.num_classes
        hist = np.zeros(C, dtype=np.int64)
        n = len(reader.ids) if limit is None else min(len(reader.ids), int(limit))
        report.ids = len(reader.ids)
        sizes = []
        labelled = False
        for i in tqdm(
            range(n), desc=f"{self.name}/{report.split}", disable=not progress, leave=False, file=sys.stderr
        ):
            files = reader.sample_files(i)
            missing = False
            for key, value in files.items():
                paths = value if isinstance(value, list) else [value]
                if value is None:
                    continue
                if key != "image":
                    report.annotations_expected += 1
                if key != "image" and not paths:
                    report.add(ERROR, reader.ids[i], f"no {key} file for this id")
                    missing = True
                    continue
                ok = all(p.is_file() for p in paths)
                if key == "image":
                    report.images_found += int(ok)
                else:
                    report.annotations_found += int(ok)
                for p in paths:
                    if not p.is_file():
                        report.add(ERROR, p, f"{key} file is missing")
                        missing = True
            if missing:
                continue
            try:
                sample = reader.load(i)
            except DataError as e:
                report.unreadable += 1
                report.add(ERROR, e.path, e.problem)
                continue
            except Exception as e:  # a reader bug or an unforeseen file problem: report it, keep walking
                report.unreadable += 1
                report.add(
                    ERROR, files.get("image") or reader.ids[i], f"reading failed: {type(e).__name__}: {e}"
                )
                continue
            report.checked += 1
            sizes.append(sample["image"].shape[:2])
            sem = sample.get("semantic")
            if sem is not None:
                labelled = True
                valid = sem[sem != IGNORE_INDEX]
                hist += np.bincount(valid.ravel().astype(np.int64), minlength=C)[:C]
                report.ignore_pixels += int((sem == IGNORE_INDEX).sum())
            persons = sample.get("persons")
            if persons is not None:
                report.persons += len(persons)
                report.images_without_persons += int(len(persons) == 0)
                for p in persons:
                    if not self.person_annotated(p):
                        report.persons_without_annotation += 1
                        if self.unannotated_person_severity is not None:
                            report.add(
                                self.unannotated_person_severity,
                                sample["meta"].get("image_path", reader.ids[i]),
                                f"person {p.get('id')} has no part annotation (empty map)",
                            )
            kp = sample.get("keypoints")
            if kp is not None:
                kp = np.asarray(kp)
                report.keypoint_sets += int(np.prod(kp.shape[:-2])) if kp.ndim > 2 else 1
                report.keypoints_present += int((kp[..., 2] > 0).sum())
            self.check_sample(reader, i, sample, report)
        if sizes:
            arr = np.asarray(sizes)
            report.image_size_min = arr.min(0).tolist()
            report.image_size_max = arr.max(0).tolist()
        if labelled:
            keys = info.class_keys
            report.class_pixels = {keys[c]: int(hist[c]) for c in range(C)}
            report.absent_classes = [keys[c] for c in range(C) if hist[c] == 0]
        for path, problem in getattr(reader, "issues", []) or []:
            report.add(WARNING, path, problem)
        missing_pose = getattr(reader, "missing_pose", 0)
        if missing_pose:
            report.add(
                WARNING,
                getattr(reader, "root", ""),
                f"{missing_pose} of {len(reader.ids)} images have no "
                "pose / pseudo-pose entry (their joints are absent)",
            )


class LIPCheck(DatasetCheck):
    splits = {"train": ("train", {}, False), "val": ("val", {}, False), "test": ("test", {}, False)}


class ATRCheck(DatasetCheck):
    """ATR: which split rule was applied, the id prefixes per split, train/val disjoint."""

    def check_split(self, reader, report: SplitReport, readers: dict) -> None:
        prefixes: dict[str, int] = {}
        for i in reader.ids:
            p = i.split("_", 1)[0] + "_" if "_" in i else i
            prefixes[p] = prefixes.get(p, 0) + 1
        report.extra["split_rule"] = reader.split_rule
        report.extra["id_prefixes"] = dict(sorted(prefixes.items()))
        _disjoint(report, reader, readers, "train")


class PascalCheck(DatasetCheck):
    """PASCAL: the HHP and (when present) Grapy-ML val lists, both disjoint from train; converted
    instance files consistent with ``SegmentationPart``."""

    splits = {
        "train": ("train", {}, False),
        "val": ("val", {"val_list": "hhp"}, False),
        "val_grapy": ("val", {"val_list": "grapy"}, True),
    }

    def check_sample(self, reader, index, sample, report):
        _person_pixels(sample, report)

    def check_split(self, reader, report, readers):
        report.extra["instance_level"] = reader.human_dir is not None
        if report.split != "train":
            _disjoint(report, reader, readers, "train")


class CIHPCheck(DatasetCheck):
    """CIHP: splits disjoint (ids are global), part pixels covered by a person, instance files."""

    splits = {"train": ("train", {}, False), "val": ("val", {}, False), "test": ("test", {}, True)}

    def check_sample(self, reader, index, sample, report):
        _person_pixels(sample, report)

    def check_split(self, reader, report, readers):
        for other in readers:
            if other != report.split:
                _disjoint(report, reader, readers, other)


class MHPCheck(DatasetCheck):
    """MHP v2.0: person-file numbering, empty person maps, the test lists."""

    splits = {
        "train": ("train", {}, False),
        "val": ("val", {}, False),
        "test_all": ("test_all", {}, True),
        "test_inter_top20": ("test_inter_top20", {}, True),
        "test_inter_top10": ("test_inter_top10", {}, True),
    }

    def check_sample(self, reader, index, sample, report):
        report.extra["person_files"] = report.extra.get("person_files", 0) + sample["meta"].get(
            "num_person_files", 0
        )

    def check_split(self, reader, report, readers):
        if report.split in ("test_inter_top20", "test_inter_top10") and "test_all" in readers:
            extra = set(reader.ids) - set(readers["test_all"].ids)
            if extra:
                report.add(
                    ERROR, reader.base / "list", f"{len(extra)} ids of {report.split} are not in test_all"
                )
        if report.split in ("train", "val"):
            for other in ("train", "val"):
                if other != report.split and other in readers:
                    _disjoint(report, reader, readers, other)


class DensePoseCheck(DatasetCheck):
    """DensePose-COCO: dense points per person and per chart, crowd regions, empty coarse masks, image
    ids disjoint across splits. Persons without ``dp_x`` are counted, not flagged: the evaluator treats
    them as ignore regions (as detectron2's does), and most COCO persons have no dense annotation."""

    splits = {
        "train": ("train", {}, False),
        "valminusminival": ("valminusminival", {}, True),
        "minival": ("minival", {}, False),
    }
    unannotated_person_severity = None

    def person_annotated(self, person: dict) -> bool:
        return bool(person.get("has_dp"))

    def check_sample(self, reader, index, sample, report):
        ex = report.extra
        chart = ex.setdefault("points_per_chart", [0] * 25)
        for p in sample.get("persons") or []:
            ex["crowd_regions"] = ex.get("crowd_regions", 0) + int(p.get("iscrowd", 0))
            dp = p.get("dp")
            if not p.get("has_dp") or dp is None:
                continue
            ex["dense_points"] = ex.get("dense_points", 0) + len(dp["I"])
            for i, n in enumerate(np.bincount(np.asarray(dp["I"], np.int64), minlength=25)[:25]):
                chart[i] += int(n)
            coarse = dp.get("coarse")
            if coarse is None or not (np.asarray(coarse) > 0).any():
                ex["persons_without_coarse_masks"] = ex.get("persons_without_coarse_masks", 0) + 1
            if len(dp["I"]) == 0:
                report.add(
                    WARNING,
                    sample["meta"].get("image_path", reader.ids[index]),
                    f"person {p.get('id')} has an empty dp_x list (scored as a miss)",
                )

    def check_split(self, reader, report, readers):
        for other in readers:
            if other != report.split:
                _disjoint(report, reader, readers, other)


def _disjoint(report: SplitReport, reader, readers: dict, other: str) -> None:
    if other == report.split or other not in readers:
        return
    both = set(reader.ids) & set(readers[other].ids)
    if both:
        report.add(
            ERROR,
            getattr(reader, "root", ""),
            f"{len(both)} ids are in both {report.split} and {other}, e.g. {sorted(both)[:5]}",
        )


def _person_pixels(sample: dict, report: SplitReport) -> None:
    """Part pixels (class > 0, not ignore) that no person claims in ``person_ids``."""
    sem, pid = sample.get("semantic"), sample.get("person_ids")
    if sem is None or pid is None:
        return
    orphan = int(((sem > 0) & (sem != IGNORE_INDEX) & (pid == 0)).sum())
    if orphan:
        report.add(
            WARNING,
            sample["meta"].get("image_path", sample["meta"].get("id")),
            f"{orphan} part pixels belong to no person (Human_ids = 0)",
        )


# -- running ---------------------------------------------------------------------------------------
def check_dataset(
    name: str,
    root: Path,
    reader_options: dict,
    splits: Iterable[str] | None = None,
    limit: int | None = None,
    progress: bool = True,
) -> dict:
    """Walk the splits of dataset ``name`` under ``root``; returns the report dict (see module docstring)."""
    checker = registry.check(name)(name)
    cls = registry.reader_class(name)
    chosen = list(splits) if splits else list(checker.splits)
    unknown = [s for s in chosen if s not in checker.splits]
    if unknown:
        raise ValueError(f"unknown split(s) {unknown} for {name}; known: {list(checker.splits)}")
    readers: dict = {}
    reports: dict[str, SplitReport] = {}
    for label in chosen:
        split, extra, optional = checker.splits[label]
        report = SplitReport(split=label, reader_split=split)
        try:
            reader = cls(root, split=split, **{**reader_options, **extra, "check_files": False})
        except (DatasetNotFoundError, DataError, ValueError) as e:
            if optional and isinstance(e, DatasetNotFoundError):
                log.info("%s: optional split %s not present (%s)", name, label, e)
                continue
            report.add(ERROR, getattr(e, "path", root), getattr(e, "problem", str(e)))
            reports[label] = report
            continue
        if not len(reader.ids):
            report.add(
                ERROR,
                getattr(reader, "root", root),
                f"the {label} split ({split!r}) has no ids (empty id list)",
            )
        checker.walk(reader, report, limit, progress)
        checker.check_split(reader, report, readers)
        readers[label] = reader
        reports[label] = report
    errors = sum(r.count(ERROR) for r in reports.values())
    warnings = sum(r.count(WARNING) for r in reports.values())
    return {
        "dataset": name,
        "root": str(root),
        "reader_options": reader_options,
        "ok": errors == 0,
        "errors": errors,
        "warnings": warnings,
        "splits": {k: {**asdict(r), "issues": [asdict(i) for i in r.issues]} for k, r in reports.items()},
    }


def summary(report: dict, max_issues: int = 20) -> str:
    """Human-readable summary of a :func:`check_dataset` report."""
    lines = [
        f"{report['dataset']} at {report['root']}: {report['errors']} errors, {report['warnings']} warnings"
    ]
    for name, s in report["splits"].items():
        size = f", sizes {s['image_size_min']}..{s['image_size_max']} (HxW)" if s["image_size_min"] else ""
        lines.append(
            f"  {name}: {s['ids']} ids, {s['images_found']} images, {s['annotations_found']}/"
            f"{s['annotations_expected']} annotation files, {s['checked']} samples read{size}"
        )
        if s["persons"]:
            lines.append(
                f"    persons: {s['persons']} ({s['persons_without_annotation']} without annotation, "
                f"{s['images_without_persons']} images without persons)"
            )
        if s["keypoint_sets"]:
            lines.append(f"    keypoints: {s['keypoints_present']} present in {s['keypoint_sets']} sets")
        if s["class_pixels"]:
            total = max(1, sum(s["class_pixels"].values()))
            ranked = sorted(s["class_pixels"].items(), key=lambda kv: -kv[1])
            top = ", ".join(f"{k} {100 * v / total:.1f}%" for k, v in ranked[:12] if v)
            more = (
                f" (+{sum(1 for _, v in ranked[12:] if v)} more classes)"
                if sum(1 for _, v in ranked[12:] if v)
                else ""
            )
            lines.append(f"    class pixels: {top}{more}; ignore {s['ignore_pixels']}")
            if s["absent_classes"]:
                lines.append(f"    classes never seen: {s['absent_classes']}")
        for key, value in s["extra"].items():
            lines.append(f"    {key}: {value}")
        issues = s["issues"]
        for i in issues[:max_issues]:
            lines.append(f"    {i['severity'].upper()}: {i['path']}: {i['problem']}")
        if len(issues) > max_issues:
            lines.append(f"    ... {len(issues) - max_issues} more issues in the JSON report")
    return "\n".join(lines)


def run(cfg: DictConfig) -> int:
    """Check the dataset(s) of a composed config; returns the process exit status."""
    from humanparse.data.datamodule import ParsingDataModule
    from humanparse.data.multi import MultiDataModule

    dm = hydra.utils.instantiate(cfg.data)
    members = dm.members if isinstance(dm, MultiDataModule) else {dm.name: dm}
    reports = []
    for member in members.values():
        if not isinstance(member, ParsingDataModule):
            raise TypeError(f"cannot check {type(member).__name__}")
        member.prepare_data()
        root = member.data_root()
        rep = check_dataset(
            member.name,
            root,
            member.reader_kwargs(),
            cfg.get("splits"),
            cfg.get("limit"),
            bool(cfg.get("progress", True)),
        )
        rep["synthetic"] = bool(member.synthetic)
        print(summary(rep, int(cfg.get("max_issues_printed", 20))))
        reports.append(rep)
    out = (
        reports[0]
        if len(reports) == 1
        else {
            "dataset": dm.name,
            "members": reports,
            "ok": all(r["ok"] for r in reports),
            "errors": sum(r["errors"] for r in reports),
            "warnings": sum(r["warnings"] for r in reports),
        }
    )
    path = Path(cfg.report)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=2) + "\n")
    print(f"report: {path}")
    failed = out["errors"] > 0 or (bool(cfg.get("strict", False)) and out["warnings"] > 0)
    return 1 if failed else 0


@hydra.main(version_base="1.3", config_path="../conf", config_name="check")
@one_line_errors
def main(cfg: DictConfig) -> None:
    code = run(cfg)
    if code:
        sys.exit(code)


if __name__ == "__main__":
    from humanparse.utils.errors import run_main

    sys.exit(run_main(main))
