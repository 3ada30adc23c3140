"""The original DensePose repository's per-image PNGs: ``*_IUV.png`` and ``*_INDS.png``.

``*_IUV.png`` is a 3-channel uint8 image whose channels, as ``cv2.imread`` returns them, are I (chart 0..24),
U * 255 and V * 255. ``*_INDS.png`` is a 1-channel uint8 image of instance indices (0 = background, k = the
image's k-th person; in synth data, the k-th annotation of the image in annotation-id order).
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np


def encode_iuv(chart: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """(H, W) I, U, V -> (H, W, 3) uint8 in the file's channel order."""
    return np.stack(
        [
            chart.astype(np.uint8),
            np.clip(np.round(u * 255.0), 0, 255).astype(np.uint8),
            np.clip(np.round(v * 255.0), 0, 255).astype(np.uint8),
        ],
        axis=-1,
    )


def read_iuv(path: str | os.PathLike[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Read an ``*_IUV.png`` -> I (H, W) uint8, U and V (H, W) float32 in [0, 1]."""
    data = _read(path, cv2.IMREAD_UNCHANGED)
    if data.ndim != 3 or data.shape[2] != 3:
        raise ValueError(f"{path}: an IUV PNG has 3 channels, this one has shape {data.shape}")
    if data[..., 0].max() > 24:
        raise ValueError(f"{path}: chart values above 24 ({int(data[..., 0].max())}); not an IUV PNG")
    return data[..., 0], data[..., 1].astype(np.float32) / 255.0, data[..., 2].astype(np.float32) / 255.0


def read_inds(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an ``*_INDS.png`` -> (H, W) uint8 instance indices."""
    data = _read(path, cv2.IMREAD_UNCHANGED)
    if data.ndim != 2:
        raise ValueError(f"{path}: an INDS PNG has 1 channel, this one has shape {data.shape}")
    return data


def _read(path: str | os.PathLike[str], flags: int) -> np.ndarray:
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{p}: no such file")
    data = cv2.imread(str(p), flags)
    if data is None:
        raise ValueError(f"{p}: not a readable image (corrupt or not a PNG)")
    return np.asarray(data)
