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
    "lip": "humanparse.synthetic:generate_lip",
    "atr": "humanparse.synthetic:generate_atr",
    "pascal_person_part": "humanparse.synthetic:generate_pascal_person_part",
    "cihp": "humanparse.synthetic:generate_cihp",
    "mhp_v2": "humanparse.synthetic:generate_mhp_v2",
    "densepose_coco": "humanparse.synthetic.densepose:generate_densepose_coco",
}

# per-dataset extra checks of ``python -m humanparse.tools.check_data`` (a DatasetCheck subclass;
# datasets without an entry get the generic checks only)
CHECKS: dict[str, str] = {
    "lip": "humanparse.tools.check_data:LIPCheck",
    "atr": "humanparse.tools.check_data:ATRCheck",
    "pascal_person_part": "humanparse.tools.check_data:PascalCheck",
    "cihp": "humanparse.tools.check_data:CIHPCheck",
    "mhp_v2": "humanparse.tools.check_data:MHPCheck",
    "densepose_coco": "humanparse.tools.check_data:DensePoseCheck",
}


def _load(spec: str):
    module, _, attr = spec.partition(":")
    return getattr(importlib.import_module(module), attr)


def reader_class(name: str):
    if name not in READERS:
        raise KeyError(f"no reader for dataset {name!r}; known: {sorted(READERS)}")
    return _load(READERS[name])


def check(name: str):
    """The :class:`~humanparse.tools.check_data.DatasetCheck` class of ``name`` (the generic one if none)."""
    return _load(CHECKS.get(name, "humanparse.tools.check_data:DatasetCheck"))


def generator(name: str):
    if name not in GENERATORS:
        raise KeyError(f"no synthetic generator for dataset {name!r}; known: {sorted(GENERATORS)}")
    return _load(GENERATORS[name])
