"""Put the official downloads in place: ``python -m humanparse.tools.prepare_data data=<name> archives=<folder> root=<dest>``.

Unpacks the archives a dataset is distributed as (``.zip``, ``.tar``, ``.tar.gz``/``.tgz``; plain files are
copied) from ``archives=`` into ``root=`` in the layout the readers expect, then runs the dataset checker
(``humanparse.tools.check_data``) on the result. Each archive is unpacked into a staging folder first and its
content located by a *marker* (a file or folder it must contain), so an extra wrapping folder or a doubled
folder name in an archive does not matter; the marker's folder is moved to its place under ``root``. An
archive that is missing, or that lacks a folder or file it must hold, is named in the error.

====================  =======================================================================================
``data``              ``lip``, ``atr``, ``cihp``, ``mhp_v2``, ``pascal_person_part``, ``densepose_coco``
``archives``          the folder holding the downloaded files (names below; the first existing candidate wins)
``root``              the destination (``data.root`` of training); created
``check``             run the dataset checker afterwards (default true; its exit status becomes ours)
``keep``              keep the staging folder ``<root>/.prepare`` (default false)
``overrides``         data-config overrides for the check (``overrides=[data.layout=release]``), as in training
``list``              only print the archives this dataset needs (``list=true``)
====================  =======================================================================================

What each dataset needs (``python -m humanparse.tools.prepare_data data=<name> list=true`` prints it): see
:data:`DATASETS`. Exit status 0 when everything is in place and the checker found no error, 1 when the
checker reported errors, 2 for a missing or incomplete archive or bad arguments.
"""

from __future__ import annotations

import shutil
import sys
import tarfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from humanparse.utils.cli import parse_key_values

DEFAULTS = {
    "data": None,
    "archives": None,
    "root": None,
    "check": True,
    "keep": False,
    "list": False,
    "overrides": [],
}


class PrepareError(ValueError):
    """A missing or incomplete archive, or bad arguments (exit status 2)."""


@dataclass(frozen=True)
class Archive:
    """One downloaded file and where its content goes.

    ``names``: file names it is published under (the first that exists in ``archives=`` is used).
    ``marker``: a path the archive contains; the folder holding it is the archive's content root.
    ``dest``: where that content goes under ``root`` (``""`` = ``root`` itself).
    ``take``: move only these entries of the content root (default: all of it).
    ``needs``: further paths (globs) relative to the content root that a complete archive holds.
    ``required``: ``False`` for archives only some uses need (LIP test images, pose CSVs).
    ``rename``: for plain files: the name it gets in ``dest``.
    """

    names: tuple[str, ...]
    marker: str
    dest: str = ""
    take: tuple[str, ...] = ()
    needs: tuple[str, ...] = ()
    required: bool = True
    rename: str | None = None
    what: str = ""


@dataclass(frozen=True)
class DatasetArchives:
    download: str
    archives: tuple[Archive, ...]
    notes: tuple[str, ...] = field(default_factory=tuple)


_DP_JSON = {  # detectron2 names ← the names of facebookresearch/DensePose get_DensePose_COCO.sh
    "train2014": "densepose_coco_2014_train.json",
    "valminusminival2014": "densepose_coco_2014_valminusminival.json",
    "minival2014": "densepose_coco_2014_minival.json",
}

DATASETS: dict[str, DatasetArchives] = {
    # LIP: the four zips of the LIP download page; each unpacks into a folder of its own name, whose inner
    # folder repeats that name (TrainVal_images/TrainVal_images/train_images/...)
    "lip": DatasetArchives(
        "http://sysu-hcp.net/lip/overview.php (Google Drive / Baidu links)",
        (
            Archive(
                ("TrainVal_images.zip",),
                "train_id.txt",
                "TrainVal_images",
                needs=("val_id.txt", "**/train_images", "**/val_images"),
                what="train/val images and the id lists",
            ),
            Archive(
                ("TrainVal_parsing_annotations.zip",),
                "train_segmentations",
                "TrainVal_parsing_annotations",
                needs=("val_segmentations",),
                what="train/val part labels",
            ),
            Archive(
                ("TrainVal_pose_annotations.zip",),
                "lip_train_set.csv",
                "TrainVal_pose_annotations",
                needs=("lip_val_set.csv",),
                required=False,
                what="pose CSVs (CorrPM's pose branch)",
            ),
            Archive(
                ("Testing_images.zip",),
                "test_id.txt",
                "Testing_images",
                needs=("testing_images",),
                required=False,
                what="test images (no labels are public)",
            ),
        ),
    ),
    # ATR: the humanparsing release of lemondan/HumanParsing-Dataset
    "atr": DatasetArchives(
        "https://github.com/lemondan/HumanParsing-Dataset",
        (
            Archive(
                ("humanparsing.zip", "humanparsing.tar.gz", "humanparsing.tar", "ATR.zip", "ATR.tar.gz"),
                "SegmentationClassAug",
                "humanparsing",
                needs=("JPEGImages",),
                what="images and labels",
            ),
        ),
        ("ATR ships no split: the Graphonomy split is computed by the reader (README, ATR split).",),
    ),
    # CIHP: instance-level_human_parsing.tar.gz of the LIP download page (Training/Validation/Testing)
    "cihp": DatasetArchives(
        'http://sysu-hcp.net/lip/overview.php (CIHP, "instance-level_human_parsing")',
        (
            Archive(
                (
                    "instance-level_human_parsing.tar.gz",
                    "instance-level_human_parsing.zip",
                    "instance-level_human_parsing.tar",
                    "CIHP.tar.gz",
                    "CIHP.zip",
                ),
                "Training/Category_ids",
                "",
                needs=(
                    "Training/Images",
                    "Training/Human_ids",
                    "Training/Instance_ids",
                    "Training/train_id.txt",
                    "Validation/Images",
                    "Validation/Category_ids",
                    "Validation/Human_ids",
                    "Validation/Instance_ids",
                    "Validation/val_id.txt",
                ),
                what="Training/, Validation/, Testing/",
            ),
        ),
    ),
    # MHP v2.0: LV-MHP-v2.zip of the Multi-Human-Parsing repository
    "mhp_v2": DatasetArchives(
        "https://github.com/ZhaoJ9014/Multi-Human-Parsing (LV-MHP-v2)",
        (
            Archive(
                ("LV-MHP-v2.zip", "LV-MHP-v2.tar.gz", "LV-MHP-v2.tar"),
                "list/train.txt",
                "",
                needs=(
                    "list/val.txt",
                    "train/images",
                    "train/parsing_annos",
                    "val/images",
                    "val/parsing_annos",
                ),
                what="list/, train/, val/, test/",
            ),
        ),
    ),
    # PASCAL-Person-Part: the part labels + lists (Graphonomy's "pascal" package) and the VOC 2010 images
    "pascal_person_part": DatasetArchives(
        "part labels: Graphonomy's PASCAL-Person-Part package (github.com/Gaoyiminggithub/Graphonomy); images: "
        "PASCAL VOC 2010 VOCtrainval_03-May-2010.tar (host.robots.ox.ac.uk/pascal/VOC/voc2010)",
        (
            Archive(
                (
                    "pascal.zip",
                    "pascal.tar.gz",
                    "pascal.tar",
                    "PASCAL-Person-Part.zip",
                    "pascal_person_part.zip",
                ),
                "SegmentationPart",
                "pascal",
                needs=("list/train_id.txt", "list/val_id.txt"),
                what="SegmentationPart/, list/ (JPEGImages/ when included)",
            ),
            Archive(
                ("VOCtrainval_03-May-2010.tar", "VOCtrainval_03-May-2010.tar.gz"),
                "JPEGImages",
                "pascal",
                take=("JPEGImages",),
                required=False,
                what="VOC 2010 images (not needed when the label package includes JPEGImages/)",
            ),
        ),
    ),
    # DensePose-COCO: the COCO 2014 image zips and the DensePose annotation files (not archives)
    "densepose_coco": DatasetArchives(
        "images: cocodataset.org (train2014.zip, val2014.zip); annotations: "
        "dl.fbaipublicfiles.com/densepose/densepose_coco_2014_{train,valminusminival,minival}.json",
        (
            Archive(
                ("train2014.zip",), "train2014", "coco", take=("train2014",), what="COCO train2014 images"
            ),
            Archive(
                ("val2014.zip",),
                "val2014",
                "coco",
                take=("val2014",),
                what="COCO val2014 images (minival, valminusminival)",
            ),
            *(
                Archive(
                    (f"densepose_{split}.json", old),
                    "",
                    "coco/annotations",
                    rename=f"densepose_{split}.json",
                    what=f"DensePose {split} annotations",
                )
                for split, old in _DP_JSON.items()
            ),
        ),
        (
            "The GPS evaluation files (SMPL_subdiv.mat, SMPL_SUBDIV_TRANSFORM.mat, Pdist_matrix.pkl) and "
            "UV_symmetry_transforms.mat are separate downloads (README, DensePose-COCO).",
        ),
    ),
}


def find_archive(folder: Path, spec: Archive) -> Path | None:
    for name in spec.names:
        if (folder / name).is_file():
            return folder / name
    return None


def unpack(path: Path, dest: Path) -> None:
    """Unpack a zip or tar archive into ``dest`` (members may not leave it)."""
    dest.mkdir(parents=True, exist_ok=True)
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as z:
                for m in z.namelist():
                    if Path(m).is_absolute() or ".." in Path(m).parts:
                        raise PrepareError(f"{path}: unsafe member path {m!r}")
                z.extractall(dest)
        elif tarfile.is_tarfile(path):
            with tarfile.open(path) as t:
                t.extractall(dest, filter="data")
        else:
            raise PrepareError(f"{path}: not a zip or tar archive (damaged or incomplete download?)")
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, OSError) as e:
        raise PrepareError(
            f"{path}: cannot unpack ({type(e).__name__}: {e}); damaged or incomplete download?"
        ) from e


def content_root(staging: Path, marker: str, max_depth: int = 4) -> Path | None:
    """The shallowest folder under ``staging`` that holds ``marker`` (wrapping folders are skipped)."""
    level = [staging]
    for _ in range(max_depth + 1):
        for d in level:
            if (d / marker).exists():
                return d
        level = sorted(
            c for d in level for c in d.iterdir() if c.is_dir() and not c.name.startswith(("__MACOSX", "."))
        )
        if not level:
            return None
    return None


def _move_into(src: Path, dest: Path) -> None:
    """Move ``src`` (a file or folder) to ``dest``, merging folders that already exist."""
    if src.is_dir() and dest.is_dir():
        for child in src.iterdir():
            _move_into(child, dest / child.name)
        return
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.exists():
        if dest.is_dir():
            shutil.rmtree(dest)
        else:
            dest.unlink()
    shutil.move(str(src), str(dest))


def place(path: Path, spec: Archive, root: Path, staging: Path) -> list[str]:
    """Unpack (or copy) one archive into place; returns what it placed. Raises naming the archive when its
    content is incomplete."""
    dest = root / spec.dest
    if spec.rename is not None:  # a plain file
        dest.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, dest / spec.rename)
        return [str((dest / spec.rename).relative_to(root))]
    work = staging / path.name
    if work.exists():
        shutil.rmtree(work)
    unpack(path, work)
    base = content_root(work, spec.marker)
    if base is None:
        raise PrepareError(
            f"{path}: incomplete or not the expected archive: no {spec.marker!r} inside "
            f"(expected {spec.what or 'its content'})"
        )
    missing = [n for n in spec.needs if not any(base.glob(n))]
    if missing:
        raise PrepareError(
            f"{path}: incomplete archive: lacks {', '.join(repr(m) for m in missing)} next to {spec.marker!r}"
        )
    entries = [base / t for t in spec.take] if spec.take else sorted(base.iterdir())
    for e in entries:
        _move_into(e, dest / e.name)
    shutil.rmtree(work, ignore_errors=True)
    return [str((dest / e.name).relative_to(root)) for e in entries]


def listing(name: str) -> str:
    ds = DATASETS[name]
    lines = [f"{name}: download from {ds.download}"]
    for a in ds.archives:
        opt = "" if a.required else " (optional)"
        lines.append(
            f"  {' | '.join(a.names)}{opt}: {a.what} → <root>/{a.dest or ''}"
            + (f" (contains {a.marker})" if a.marker else "")
        )
    lines += [f"  note: {n}" for n in ds.notes]
    return "\n".join(lines)


def prepare(name: str, archives: Path, root: Path, keep: bool = False) -> dict:
    """Place every archive of ``name`` found in ``archives`` under ``root``; returns what was placed."""
    if name not in DATASETS:
        raise PrepareError(f"data={name!r}: choose one of {sorted(DATASETS)}")
    archives = Path(archives).expanduser()
    if not archives.is_dir():
        raise PrepareError(f"archives={archives}: no such folder")
    ds = DATASETS[name]
    found = {a: find_archive(archives, a) for a in ds.archives}
    missing = [a for a, p in found.items() if p is None and a.required]
    if missing:
        raise PrepareError(
            f"data={name}: missing in {archives}: "
            + "; ".join(f"{' or '.join(a.names)} ({a.what})" for a in missing)
            + f". Download: {ds.download}"
        )
    root = Path(root).expanduser()
    root.mkdir(parents=True, exist_ok=True)
    staging = root / ".prepare"
    placed: dict[str, list[str]] = {}
    skipped = []
    try:
        for spec, path in found.items():
            if path is None:
                skipped.append(f"{' | '.join(spec.names)} ({spec.what})")
                continue
            placed[path.name] = place(path, spec, root, staging)
    finally:
        if not keep:
            shutil.rmtree(staging, ignore_errors=True)
    if name == "pascal_person_part" and not (root / "pascal" / "JPEGImages").is_dir():
        raise PrepareError(
            f"data={name}: the label package in {archives} has no JPEGImages/ and "
            f"{' or '.join(ds.archives[1].names)} (the VOC 2010 images) is missing"
        )
    return {"dataset": name, "root": str(root), "placed": placed, "not_found_optional": skipped}


def run_check(name: str, root: Path, overrides: list[str] | None = None) -> dict:
    """The dataset checker on the prepared root, with the data config's reader options."""
    import hydra

    from humanparse.tools.check_data import check_dataset
    from humanparse.tools.preview_data import data_config

    dm = hydra.utils.instantiate(data_config(name, root=str(root), overrides=list(overrides or [])))
    return check_dataset(name, dm.data_root(), dm.reader_kwargs(), progress=False)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0
    try:
        cfg = parse_key_values(argv, DEFAULTS, PrepareError)
        if not cfg.data:
            raise PrepareError(f"data=<name> is required ({', '.join(sorted(DATASETS))})")
        if cfg.data not in DATASETS:
            raise PrepareError(f"data={cfg.data!r}: choose one of {sorted(DATASETS)}")
        if cfg.list:
            print(listing(str(cfg.data)))
            return 0
        if not cfg.archives or not cfg.root:
            raise PrepareError("archives=<folder with the downloads> and root=<destination> are required")
        result = prepare(str(cfg.data), Path(cfg.archives), Path(cfg.root), bool(cfg.keep))
    except PrepareError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for archive, entries in result["placed"].items():
        print(f"{archive} → {', '.join(entries)}")
    for s in result["not_found_optional"]:
        print(f"not found (optional): {s}")
    if not cfg.check:
        return 0
    from omegaconf import OmegaConf

    from humanparse.tools.check_data import summary

    report = run_check(str(cfg.data), Path(cfg.root), [str(o) for o in OmegaConf.to_container(cfg.overrides)])
    print(summary(report))
    print(
        f"ready: data={cfg.data} data.root={Path(cfg.root).resolve()}"
        if report["ok"]
        else "the checker found errors (above)"
    )
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
