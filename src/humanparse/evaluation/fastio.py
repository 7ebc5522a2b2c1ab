"""Fast label-PNG reading for the evaluator: OpenCV for grey/RGB PNGs, :func:`read_label` otherwise.

The evaluator decodes thousands of small PNGs, and PIL's per-file overhead is about a third of the
decode time. ``cv2.imdecode`` is faster and releases the GIL (so reader threads run in parallel),
but it must never see a palette PNG: with ``IMREAD_UNCHANGED`` OpenCV expands the palette to
colours, and the label values are lost. So the PNG header decides: 8/16-bit
greyscale (and, for ``channels='first'``, 8-bit RGB/RGBA) goes through OpenCV; palette, low bit
depth and anything unusual or corrupt go through :func:`humanparse.data.io.read_label`, which reads
indices with PIL and raises :class:`~humanparse.data.io.DataError` naming the file.
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from humanparse.data.io import DataError, check_label_range, read_label
from humanparse.data.meta import IGNORE_INDEX

_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_GREY, _RGB, _RGBA = 0, 2, 6


def read_index_png(
    path: str | os.PathLike, num_classes: int | None = None, channels: str = "single"
) -> np.ndarray:
    """Same contract as :func:`humanparse.data.io.read_label` (uint8/uint16 (H, W); ``channels='first'``
    takes channel 0 of a 3-channel file; ``num_classes`` checks the value range), faster."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            buf = f.read()
    except FileNotFoundError:
        raise DataError(path, "label file is missing") from None
    except OSError as e:
        raise DataError(path, f"unreadable label file ({e})") from e
    arr = None
    if len(buf) > 26 and buf[:8] == _SIGNATURE and buf[12:16] == b"IHDR":
        depth, colour = buf[24], buf[25]
        if colour == _GREY and depth in (8, 16):
            arr = cv2.imdecode(np.frombuffer(buf, np.uint8), cv2.IMREAD_UNCHANGED)
        elif channels == "first" and colour in (_RGB, _RGBA) and depth == 8:
            bgr = cv2.imdecode(np.frombuffer(buf, np.uint8), cv2.IMREAD_UNCHANGED)
            arr = None if bgr is None or bgr.ndim != 3 else np.ascontiguousarray(bgr[..., 2])  # R = channel 0
    if arr is None or arr.ndim != 2:
        return read_label(path, num_classes=num_classes, channels=channels)
    if num_classes is not None and arr.size and int(arr.max()) >= num_classes:
        check_label_range(arr, num_classes, path, IGNORE_INDEX)
    return arr
