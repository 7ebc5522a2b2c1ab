"""Tiny synthetic sets of every dataset, generated once per test session into the shared cache."""

from __future__ import annotations

import shutil
from pathlib import Path

from humanparse.data.datamodule import ensure_synthetic

# small, but enough for every trap of every generator to show up
TINY = {"num_train": 8, "num_val": 6, "num_test": 3, "image_size": [40, 64], "seed": 5}


def tiny_root(cache_dir: Path, name: str, **over) -> Path:
    return ensure_synthetic(cache_dir, name, {**TINY, **over})


def copy_of(root: Path, dst: Path) -> Path:
    """A writable copy (for deliberately broken variants)."""
    shutil.copytree(root, dst)
    return dst
