"""Atomic file writes: write to a temporary file beside the target, then rename, so no reader (and no interrupted
run) ever sees a half-written file. The file gets the mode a plain ``open(path, "w")`` would give it."""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

import cv2
import numpy as np


def default_mode(directory: bool = False) -> int:
    """The permission bits a new file (0666) or directory (0777) gets under the process's umask."""
    try:  # Linux: read it without changing it
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                mask = int(line.split()[1], 8)
                break
        else:
            raise OSError("no Umask line")
    except (OSError, ValueError):
        mask = os.umask(0o022)
        os.umask(mask)
    return (0o777 if directory else 0o666) & ~mask


@contextmanager
def replacing(path: str | os.PathLike[str]) -> Iterator[BinaryIO]:
    """A binary handle on a temporary file beside ``path`` that replaces ``path`` when the block ends without error;
    on an error the temporary file is removed and ``path`` is untouched. The file is created as ``open(path, "w")``
    would create it (mode 0666 less the umask; ``mkstemp`` would make it 0600)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    while True:
        tmp = target.with_name(f".{target.name}.{secrets.token_hex(6)}.tmp")
        try:
            fd = os.open(tmp, flags, 0o666)
            break
        except FileExistsError:  # another writer's temporary file: draw another name
            continue
    try:
        with os.fdopen(fd, "wb") as handle:
            yield handle
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    with replacing(path) as handle:
        handle.write(data)


def write_json(path: str | os.PathLike[str], obj: Any, indent: int | None = None) -> None:
    """JSON with a stable layout (no NaN), written atomically."""
    text = json.dumps(obj, indent=indent, allow_nan=False, separators=(",", ":") if indent is None else None)
    write_bytes(path, text.encode("utf-8"))


def write_image(path: str | os.PathLike[str], image: np.ndarray, jpeg_quality: int = 92) -> None:
    """Encode with OpenCV by the file suffix (.jpg or .png) and write atomically.

    ``image`` is RGB for 3-channel JPEGs; PNGs are written channel for channel (label maps are not colour images).
    """
    suffix = Path(path).suffix.lower()
    if suffix in (".jpg", ".jpeg"):
        data = image[..., ::-1] if image.ndim == 3 else image
        ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(data), [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)])
    elif suffix == ".png":
        ok, buf = cv2.imencode(".png", np.ascontiguousarray(image), [cv2.IMWRITE_PNG_COMPRESSION, 3])
    else:
        raise ValueError(f"{path}: unsupported image suffix {suffix!r} (use .jpg or .png)")
    if not ok:
        raise ValueError(f"{path}: OpenCV could not encode an image of shape {image.shape}")
    write_bytes(path, buf.tobytes())
