"""Reading images, label maps and id lists with errors that name the file and the problem."""

from __future__ import annotations

import contextlib
import os
import warnings
from pathlib import Path

import numpy as np
from PIL import Image

from humanparse.data.meta import IGNORE_INDEX


class DataError(ValueError):
    """A dataset file is missing, unreadable or inconsistent. The message names the file."""

    def __init__(self, path: str | os.PathLike, problem: str):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


def _decoder_problem(e: BaseException) -> str:
    """Why Pillow could not decode a file, in words (decompression bombs named as such)."""
    if isinstance(e, (Image.DecompressionBombError, Image.DecompressionBombWarning)):
        return (
            f"image too large to decode safely ({e}); Pillow's decompression-bomb limit "
            "(PIL.Image.MAX_IMAGE_PIXELS) refuses it"
        )
    return f"corrupt or unreadable image ({type(e).__name__}: {e})"


@contextlib.contextmanager
def _open_image(path: Path):
    """``Image.open`` + ``load`` with Pillow's decompression-bomb warning raised as an error (an image
    larger than the limit is refused, never decoded into gigabytes)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        with Image.open(path) as im:
            im.load()
            yield im


def _to_uint8_rgb(im: Image.Image, path: Path) -> np.ndarray:
    """RGB uint8 of any decoded image; 16/32-bit integer images are scaled to 8 bit (Pillow's own
    ``convert('RGB')`` clips them at 255, which turns a 16-bit photo white)."""
    mode = im.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        arr = np.asarray(im).astype(np.int64)
        if arr.size and (arr.min() < 0 or arr.max() > 65535):
            raise DataError(path, f"{mode} image with values outside 0..65535; cannot map it to 8-bit RGB")
        gray = ((arr * 255 + 32767) // 65535).astype(np.uint8)  # 16-bit → 8-bit, rounded
        return np.repeat(gray[..., None], 3, axis=2)
    if mode == "F":
        raise DataError(
            path, "floating-point image (mode F): no 8-bit RGB reading is defined; save it as 8/16-bit"
        )
    return np.asarray(im.convert("RGB"))


def read_image(path: str | os.PathLike) -> np.ndarray:
    """RGB uint8 array (H, W, 3). 16-bit images are scaled to 8 bit. Any decoder failure (corrupt or
    truncated file, decompression bomb, unsupported mode) raises :class:`DataError` naming the file."""
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "image file is missing")
    try:
        with _open_image(path) as im:
            arr = _to_uint8_rgb(im, path)
    except DataError:
        raise
    except Exception as e:  # noqa: BLE001 - every decoder failure becomes the project's named error
        raise DataError(path, _decoder_problem(e)) from e
    return arr


def read_label(
    path: str | os.PathLike,
    num_classes: int | None = None,
    channels: str = "single",
    ignore_index: int = IGNORE_INDEX,
) -> np.ndarray:
    """Read an index label PNG as uint8/uint16 (H, W).

    ``channels='single'`` accepts mode ``L``/``P``/``I;16``/``I`` (palette indices, never luminance:
    many label PNGs are palette images) and refuses RGB/RGBA colour renders. ``channels='first'``
    takes channel 0 of a 3-channel file (MHP v2.0). With ``num_classes``, values in
    ``[num_classes, ignore_index)`` or above ``ignore_index`` are an error.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "label file is missing")
    try:
        with _open_image(path) as im:
            mode = im.mode
            if channels == "first" and mode in ("RGB", "RGBA"):
                arr = np.asarray(im)[..., 0]
            elif mode in ("L", "P"):
                arr = np.asarray(im)
            elif mode in ("I;16", "I;16B", "I;16L", "I"):
                arr = np.asarray(im).astype(np.int64)
                if arr.min() < 0 or arr.max() > 65535:
                    raise DataError(path, "16/32-bit label values outside 0..65535")
                arr = arr.astype(np.uint16)
            else:
                raise DataError(
                    path,
                    f"label image has mode {mode!r}; expected a single-channel index PNG (mode L or P). "
                    "Colour renders (RGB/RGBA) are not label maps",
                )
    except DataError:
        raise
    except Exception as e:  # noqa: BLE001 - every decoder failure becomes the project's named error
        raise DataError(path, "label: " + _decoder_problem(e)) from e
    if num_classes is not None:
        check_label_range(arr, num_classes, path, ignore_index)
    return arr


def check_label_range(arr: np.ndarray, num_classes: int, path, ignore_index: int = IGNORE_INDEX) -> None:
    bad = (arr >= num_classes) & (arr != ignore_index)
    if bad.any():
        vals = np.unique(arr[bad])
        raise DataError(
            path,
            f"label value(s) {vals[:10].tolist()} out of range: expected 0..{num_classes - 1} "
            f"or {ignore_index} (ignore)",
        )


def check_same_size(image: np.ndarray, label: np.ndarray, label_path, image_path) -> None:
    if image.shape[:2] != label.shape[:2]:
        raise DataError(
            label_path,
            f"size mismatch: label is {label.shape[1]}x{label.shape[0]} (WxH) but image {image_path} is "
            f"{image.shape[1]}x{image.shape[0]}",
        )


def read_id_list(path: str | os.PathLike) -> list[str]:
    """One id per line, no extension; blank lines skipped; duplicates are an error."""
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "id list file is missing")
    ids: list[str] = []
    seen: dict[str, int] = {}
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            s = line.strip()
            if not s:
                continue
            if s in seen:
                raise DataError(path, f"duplicate id {s!r} on lines {seen[s]} and {lineno}")
            seen[s] = lineno
            ids.append(s)
    return ids


def write_label_png(path: str | os.PathLike, label: np.ndarray, palette: np.ndarray | None = None) -> None:
    """Write an index PNG (mode P with ``palette`` if given, else L; 16-bit when values exceed 255)."""
    label = np.asarray(label)
    if label.max(initial=0) > 255:
        Image.fromarray(label.astype(np.uint16)).save(path)
        return
    im = Image.fromarray(label.astype(np.uint8))
    if palette is not None:
        # putpalette on an L image turns it into P with the same indices (no colour quantisation)
        im.putpalette(np.asarray(palette, dtype=np.uint8).reshape(-1).tolist())
    im.save(path)
