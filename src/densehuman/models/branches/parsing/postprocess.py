"""Part probabilities on the RoI grid -> labels in the image, as Parsing R-CNN's ``parsing_results`` (Detectron's
mask paste): the (C, S, S) probabilities are padded by one pixel, the box is expanded by ``(S + 2) / S`` about its
centre and truncated to integers, the padded map is resized to that box with OpenCV's bilinear ``INTER_LINEAR``, the
labels are its argmax, and the part inside the image is painted."""

from __future__ import annotations

import cv2
import numpy as np


def _expanded_box(box: np.ndarray, scale: float) -> tuple[int, int, int, int]:
    """Detectron's ``expand_boxes`` then ``astype(int32)`` (truncation towards zero)."""
    x0, y0, x1, y1 = (float(v) for v in box)
    half_w, half_h = (x1 - x0) * 0.5 * scale, (y1 - y0) * 0.5 * scale
    cx, cy = (x1 + x0) * 0.5, (y1 + y0) * 0.5
    return int(cx - half_w), int(cy - half_h), int(cx + half_w), int(cy + half_h)


def box_labels(probs: np.ndarray, box: np.ndarray) -> tuple[np.ndarray, tuple[int, int]]:
    """The labels of one detection over its expanded integer box: ((h, w) uint8 labels, (x0, y0) of its corner).

    ``probs`` (C, S, S) float; ``box`` (4,) xyxy in image pixels."""
    classes, size = probs.shape[0], probs.shape[-1]
    padded = np.zeros((size + 2, size + 2, classes), dtype=np.float32)
    padded[1:-1, 1:-1] = np.moveaxis(probs, 0, -1)
    x0, y0, x1, y1 = _expanded_box(box, (size + 2.0) / size)
    w, h = max(x1 - x0 + 1, 1), max(y1 - y0 + 1, 1)
    resized = cv2.resize(padded, (w, h), interpolation=cv2.INTER_LINEAR)
    if resized.ndim == 2:  # one class: OpenCV drops the channel axis
        resized = resized[..., None]
    return resized.argmax(axis=-1).astype(np.uint8), (x0, y0)


def paste_parsing(probs: np.ndarray, box: np.ndarray, image_size: tuple[int, int]) -> np.ndarray:
    """(H, W) uint8 labels of one detection over the whole image (0 outside its expanded box)."""
    height, width = image_size
    out = np.zeros((height, width), dtype=np.uint8)
    labels, (x0, y0) = box_labels(probs, box)
    h, w = labels.shape
    ix0, iy0, ix1, iy1 = max(x0, 0), max(y0, 0), min(x0 + w, width), min(y0 + h, height)
    if ix1 > ix0 and iy1 > iy0:
        out[iy0:iy1, ix0:ix1] = labels[iy0 - y0 : iy1 - y0, ix0 - x0 : ix1 - x0]
    return out


def parsing_at_box(probs: np.ndarray, box: np.ndarray, grid: tuple[int, int]) -> np.ndarray:
    """The pasted labels on the detection's box grid: ``grid`` (h, w) pixels from image pixel (int(x0), int(y0))
    (the results files' layout; labels the paste puts outside that grid are left out)."""
    labels, (x0, y0) = box_labels(probs, box)
    gx, gy = int(float(box[0])), int(float(box[1]))
    out = np.zeros(grid, dtype=np.uint8)
    h, w = labels.shape
    # the overlap of the label window [x0, x0 + w) x [y0, y0 + h) with the grid [gx, gx + gw) x [gy, gy + gh)
    ox0, oy0 = max(x0, gx), max(y0, gy)
    ox1, oy1 = min(x0 + w, gx + grid[1]), min(y0 + h, gy + grid[0])
    if ox1 > ox0 and oy1 > oy0:
        out[oy0 - gy : oy1 - gy, ox0 - gx : ox1 - gx] = labels[oy0 - y0 : oy1 - y0, ox0 - x0 : ox1 - x0]
    return out
