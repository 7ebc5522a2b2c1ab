"""Which reader class and which synthetic generator serve each dataset name.

A new dataset adds one line to each table (and a ``conf/data/<name>.yaml``).
"""

from __future__ import annotations

import importlib

READERS: dict[str, str] = {
    "lip": "humanparse.data.lip:LIPDataset",
}

GENERATORS: dict[str, str] = {
    "lip": "humanparse.data.synthetic:generate_lip",
}


def _load(spec: str):
    module, _, attr = spec.partition(":")
    return getattr(importlib.import_module(module), attr)


def reader_class(name: str):
    if name not in READERS:
        raise KeyError(f"no reader for dataset {name!r}; known: {sorted(READERS)}")
    return _load(READERS[name])


def generator(name: str):
    if name not in GENERATORS:
        raise KeyError(f"no synthetic generator for dataset {name!r}; known: {sorted(GENERATORS)}")
    return _load(GENERATORS[name])
