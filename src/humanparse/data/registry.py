"""Which reader class and which synthetic generator serve each dataset name.

A new dataset adds one line to each table (and a ``conf/data/<name>.yaml``); entries are
``"module:attribute"`` strings so that nothing is imported before it is used.
"""

from __future__ import annotations

import importlib

READERS: dict[str, str] = {
    "lip": "humanparse.data.lip:LIPDataset",
    "atr": "humanparse.data.atr:ATRDataset",
    "pascal_person_part": "humanparse.data.pascal:PascalPersonPartDataset",
    "cihp": "humanparse.data.cihp:CIHPDataset",
    "mhp_v2": "humanparse.data.mhp:MHPv2Dataset",
    "densepose_coco": "humanparse.data.densepose_coco:DensePoseCOCODataset",
}

GENERATORS: dict[str, str] = {
    "lip": "humanparse.data.synthetic:generate_lip",
    "atr": "humanparse.data.synthetic:generate_atr",
    "pascal_person_part": "humanparse.data.synthetic:generate_pascal_person_part",
    "cihp": "humanparse.data.synthetic:generate_cihp",
    "mhp_v2": "humanparse.data.synthetic:generate_mhp_v2",
    "densepose_coco": "humanparse.data.synthetic.densepose:generate_densepose_coco",
}

# per-dataset extra checks of ``python -m humanparse.data.check`` (a DatasetCheck subclass;
# datasets without an entry get the generic checks only)
CHECKS: dict[str, str] = {
    "lip": "humanparse.data.check:LIPCheck",
    "atr": "humanparse.data.check:ATRCheck",
    "pascal_person_part": "humanparse.data.check:PascalCheck",
    "cihp": "humanparse.data.check:CIHPCheck",
    "mhp_v2": "humanparse.data.check:MHPCheck",
    "densepose_coco": "humanparse.data.check:DensePoseCheck",
}


def _load(spec: str):
    module, _, attr = spec.partition(":")
    return getattr(importlib.import_module(module), attr)


def reader_class(name: str):
    if name not in READERS:
        raise KeyError(f"no reader for dataset {name!r}; known: {sorted(READERS)}")
    return _load(READERS[name])


def check(name: str):
    """The :class:`~humanparse.data.check.DatasetCheck` class of ``name`` (the generic one if none)."""
    return _load(CHECKS.get(name, "humanparse.data.check:DatasetCheck"))


def generator(name: str):
    if name not in GENERATORS:
        raise KeyError(f"no synthetic generator for dataset {name!r}; known: {sorted(GENERATORS)}")
    return _load(GENERATORS[name])
