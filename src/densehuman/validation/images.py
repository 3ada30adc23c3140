"""Image and video files checked before they are decoded.

``read_image`` looks at the header first (Pillow reads it without decoding): a file that is not an image, or whose
header claims an absurd size (a "decompression bomb", which would make OpenCV abort the whole process), is refused
with its name. The pixels are then decoded with OpenCV; a JPEG whose data ends before its end-of-image marker, or a
PNG without its final chunk (a truncated download), is refused too, where the decoders would only print an unnamed
warning and return a partly grey image.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from densehuman.validation.errors import InputError

MAX_IMAGE_SIDE = 16384  # pixels; larger images are refused as absurd
MAX_IMAGE_PIXELS = 1 << 28  # 268 M pixels (16384 x 16384)


def check_image_size(height: int, width: int, where: str | Path) -> None:
    if height < 1 or width < 1:
        raise InputError(where, f"empty image of size {height}x{width}")
    if max(height, width) > MAX_IMAGE_SIDE or height * width > MAX_IMAGE_PIXELS:
        raise InputError(where, f"image of size {height}x{width} exceeds the {MAX_IMAGE_SIDE}-pixel side limit")


def image_header(path: str | Path) -> tuple[str, int, int]:
    """(format, height, width) from the file's header, without decoding it."""
    from PIL import Image, UnidentifiedImageError

    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{p}: no such image file")
    if p.stat().st_size == 0:
        raise InputError(p, "empty file, not an image")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Pillow's DecompressionBombWarning: the size is checked below
            with Image.open(p) as image:
                width, height = image.size
                fmt = image.format or "unknown"
    except Image.DecompressionBombError as err:
        raise InputError(
            p, f"refused: its header claims a size beyond the {MAX_IMAGE_SIDE}-pixel side limit ({err})"
        ) from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as err:
        raise InputError(p, f"not a readable image ({type(err).__name__}: {err})") from None
    check_image_size(height, width, p)
    return fmt, height, width


def _truncated(data: bytes, fmt: str) -> str | None:
    if fmt == "JPEG":
        # No FF D9 inside entropy-coded data (FF is stuffed there), so the last scan must be followed by EOI.
        scan = data.rfind(b"\xff\xda")
        if scan < 0 or data.find(b"\xff\xd9", scan) < 0:
            return "truncated JPEG (the data ends before the end-of-image marker)"
    elif fmt == "PNG" and b"IEND" not in data[-1024:]:
        return "truncated PNG (no IEND chunk at the end)"
    return None


def read_image(path: str | Path) -> np.ndarray:
    """An image file as (H, W, 3) uint8 RGB (EXIF orientation applied, as OpenCV and detectron2 do); every problem
    is an ``InputError`` (``FileNotFoundError`` when missing) naming the file."""
    import cv2

    p = Path(path)
    fmt, height, width = image_header(p)
    data = p.read_bytes()
    if (problem := _truncated(data, fmt)) is not None:
        raise InputError(p, problem)
    decoded = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR)
    if decoded is None:
        raise InputError(p, f"{fmt} file that cannot be decoded (corrupt)")
    if decoded.shape[:2] not in ((height, width), (width, height)):  # (EXIF orientation may turn it)
        raise InputError(p, f"decodes to {decoded.shape[1]}x{decoded.shape[0]} but its header says {width}x{height}")
    return np.ascontiguousarray(decoded[..., ::-1])


def read_label_map(path: str | Path, num_classes: int | None = None, *, ignore: int | None = 255) -> np.ndarray:
    """A label PNG (part labels, human or instance ids) as an (H, W) uint8 array, checked like ``read_image``.

    A 3-channel file gives its red channel (MHP v2.0's per-person maps are stored that way; OpenCV's channel 2 of
    a BGR read). With ``num_classes``, every value must be below it (or be ``ignore``)."""
    import io

    from PIL import Image

    p = Path(path)
    fmt, _, _ = image_header(p)
    data = p.read_bytes()
    if (problem := _truncated(data, fmt)) is not None:
        raise InputError(p, problem)
    try:
        with Image.open(io.BytesIO(data)) as image:  # Pillow: palette images give their indices, not colours
            mode = image.mode
            decoded = np.asarray(image.convert("RGB") if mode in ("RGBA", "LA") else image)
    except (OSError, ValueError, SyntaxError) as err:
        raise InputError(p, f"{fmt} file that cannot be decoded ({err})") from None
    if decoded.dtype != np.uint8:
        raise InputError(p, f"a label map must be 8-bit, got mode {mode}")
    if decoded.ndim == 3:
        decoded = decoded[..., 0]
    labels = np.ascontiguousarray(decoded)
    if num_classes is not None:
        bad = labels >= num_classes
        if ignore is not None:
            bad &= labels != ignore
        if bad.any():
            value = int(labels[bad][0])
            raise InputError(p, f"label {value} is not one of the {num_classes} classes (0..{num_classes - 1})")
    return labels


@dataclass(frozen=True)
class VideoInfo:
    fps: float
    frames: int  # as the container says (0: unknown)
    height: int
    width: int


def open_video(path: str | Path) -> tuple[Any, VideoInfo]:
    """An opened ``cv2.VideoCapture`` and what its container says; an unreadable file or absurd frame size is an
    ``InputError`` naming the file (the capture is released then)."""
    import cv2

    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{p}: no such video file")
    capture = cv2.VideoCapture(str(p))
    if not capture.isOpened():
        capture.release()
        raise InputError(p, "not a readable video")
    width = int(capture.get(cv2.CAP_PROP_FRAME_WIDTH))
    height = int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
    fps = float(capture.get(cv2.CAP_PROP_FPS) or 0.0)
    frames = max(int(capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0), 0)
    try:
        check_image_size(height, width, p)
    except InputError:
        capture.release()
        raise
    if not (math.isfinite(fps) and 0 < fps <= 1000):
        fps = 25.0
    return capture, VideoInfo(fps, frames, height, width)
