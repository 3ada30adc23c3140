"""PAF values at chosen pixels of the x8-upsampled maps, computed from the stride-8 maps (the fast parse).

OpenPose resizes all 304 PAF channels to the net input (``peaks.upsample_maps``, a separable cubic resize) and the
line integrals then read a few tens of thousands of pixels of it. ``PafSampler`` computes just those pixels from the
stride-8 maps: a fine pixel (y, x) is ``sum_i sum_j wr_i(y) wc_j(x) P[r + i, c + j]`` over the 4x4 source cells of
its window (``r = window_row[y]``, ``c = window_col[x]``) with the resize matrix's own weights. The x and y channels
of each PAF pair are stored interleaved, (pairs, h, w, 2), so a window row of both channels (4 cells x 2 channels,
32 bytes) is one read, and all of it fits a CPU's L2 cache (1.1 MB for BODY_135 at 368x656).

``window_active`` bounds what any pixel of a window can hold, which lets ``connections`` reject most candidate pairs
without computing their samples.
"""

from __future__ import annotations

import numpy as np

from densehuman.models.bottomup.peaks import cubic_resize_matrix

TAPS = 4  # Catmull-Rom: 4 source samples per output pixel along each axis
NORM_CHUNK = 8  # PAF pairs per step of ``window_active``


def _tap_windows(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per row of a (target, source) cubic resize matrix: the first of the 4 consecutive source indices holding
    all its nonzero weights (at most ``max(source, 4) - 4``) and the (target, 4) float32 weights on them."""
    target, source = matrix.shape
    padded = np.zeros((target, max(source, TAPS)), np.float32)
    padded[:, :source] = matrix
    nonzero = padded != 0
    first = np.minimum(np.argmax(nonzero, axis=1), padded.shape[1] - TAPS)
    last = padded.shape[1] - 1 - np.argmax(nonzero[:, ::-1], axis=1)
    if np.any(last >= first + TAPS):
        raise AssertionError("a resize row's cubic taps are not 4 consecutive source cells")
    weights = np.take_along_axis(padded, first[:, None] + np.arange(TAPS), axis=1)
    return first.astype(np.int64), np.ascontiguousarray(weights)


def _as_items(array: np.ndarray, floats: int, step: int) -> np.ndarray:
    """A view of the flat float32 ``array`` whose item i holds floats ``step i .. step i + floats - 1`` (one
    ``floats * 4``-byte item: gathering items is several times faster than gathering their floats)."""
    flat = array.reshape(-1)
    count = (flat.size - floats) // step + 1
    return np.ndarray(shape=(count,), dtype=np.dtype((np.void, 4 * floats)), buffer=flat, strides=(4 * step,))


class PafSampler:
    """PAF pairs of (C, h, w) stride-``factor`` maps, read at pixels of the ``factor``-times upsampled maps
    cropped to ``content`` (H, W), the net input without padding, as ``upsample_maps`` would give them.

    ``channel_pairs``: (P, 2) the x and y channels of each PAF pair (BODY_135: ``(2 i, 2 i + 1)``).
    """

    def __init__(self, maps: np.ndarray, content: tuple[int, int], channel_pairs: np.ndarray, factor: int = 8) -> None:
        maps = np.asarray(maps, dtype=np.float32)
        if maps.ndim != 3:
            raise ValueError(f"maps must have shape (C, h, w), got {maps.shape}")
        channels, h, w = maps.shape
        height, width = (int(v) for v in content)
        if not (0 < height <= factor * h and 0 < width <= factor * w):
            raise ValueError(f"content {content} is outside the {factor * h}x{factor * w} net input")
        pairs = np.asarray(channel_pairs, dtype=np.int64).reshape(-1, 2)
        if pairs.size and (pairs.min() < 0 or pairs.max() >= channels):
            raise ValueError(f"PAF channel pairs reference channels outside 0..{channels - 1}")
        self.channel_pairs = pairs
        self.shape = (channels, height, width)
        self.rows, self.cols = max(h, TAPS), max(w, TAPS)
        self.cells = len(pairs) * h * w  # stride-8 cells of all pairs
        interleaved = np.zeros((len(pairs), self.rows, self.cols, 2), np.float32)
        interleaved[:, :h, :w, 0] = maps[pairs[:, 0]]
        interleaved[:, :h, :w, 1] = maps[pairs[:, 1]]
        self.interleaved = interleaved
        self._active: tuple[float, np.ndarray] | None = None
        self._windows = _as_items(interleaved, 2 * TAPS, 2)  # item i: cells i .. i + 3 of a row, both channels
        self.window_row, row_weight = _tap_windows(cubic_resize_matrix(h, factor * h)[:height])
        self.window_col, col_weight = _tap_windows(cubic_resize_matrix(w, factor * w)[:width])
        self._row_items, self._col_items = _as_items(row_weight, TAPS, TAPS), _as_items(col_weight, TAPS, TAPS)
        # The largest sum of |weights| of a fine pixel (``window_active``).
        self.gain = float(np.abs(row_weight).sum(1).max()) * float(np.abs(col_weight).sum(1).max())

    def _gather(self, pair: np.ndarray, y: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(N, 4, 8) source cells of the pixels' windows (row; column and channel), (N, 4) row and column
        weights."""
        first = (pair * self.rows + self.window_row.take(y)) * self.cols + self.window_col.take(x)
        cells = self._windows[first[:, None] + np.arange(TAPS) * self.cols].view(np.float32).reshape(-1, TAPS, 8)
        row_w = self._row_items.take(y).view(np.float32).reshape(-1, TAPS)
        col_w = self._col_items.take(x).view(np.float32).reshape(-1, TAPS)
        return cells, row_w, col_w

    def dot(self, pair: np.ndarray, y: np.ndarray, x: np.ndarray, ux: np.ndarray, uy: np.ndarray) -> np.ndarray:
        """float32 ``ux * PAF_x + uy * PAF_y`` of PAF pair ``pair[i]`` at fine pixel (y[i], x[i]) (1-D int arrays
        inside the content): ``sum_i wr_i sum_j (wc_j ux) x_ij + (wc_j uy) y_ij``."""
        cells, row_w, col_w = self._gather(pair, y, x)
        weight = np.empty((len(pair), TAPS, 2), np.float32)  # the column weights times u, as the cells are laid out
        np.multiply(col_w, ux[:, None], out=weight[:, :, 0])
        np.multiply(col_w, uy[:, None], out=weight[:, :, 1])
        return np.einsum("ni,ni->n", np.einsum("nik,nk->ni", cells, weight.reshape(-1, 2 * TAPS)), row_w)

    def values(self, pair: np.ndarray, y: np.ndarray, x: np.ndarray) -> np.ndarray:
        """(N, 2) float32 x and y channel values of PAF pair ``pair[i]`` at fine pixel (y[i], x[i])."""
        one, zero = np.ones(len(pair), np.float32), np.zeros(len(pair), np.float32)
        return np.stack([self.dot(pair, y, x, one, zero), self.dot(pair, y, x, zero, one)], axis=1)

    def window_active(self, limit: float) -> np.ndarray:
        """Per pair and 4x4 window of source cells, whether some source vector (x, y) in it has ``x^2 + y^2 > limit``:
        (P, h', w') bool, read at ``[pair, window_row[y], window_col[x]]`` for the fine pixel (y, x).

        A fine value is a weighted sum of its window's cells, so where a window is not active, every fine pixel
        reading it has ``|u . value| <= |value| <= gain * sqrt(limit)`` for a unit ``u``. Kept for the last limit."""
        if self._active is None or self._active[0] != limit:
            pairs = len(self.channel_pairs)
            active = np.empty((pairs, self.rows - TAPS + 1, self.cols - TAPS + 1), bool)
            bar = np.float32(limit)
            for start in range(0, pairs, NORM_CHUNK):  # chunks of pairs stay in the CPU's cache
                vectors = self.interleaved[start : start + NORM_CHUNK]  # zero-padded to 4x4 cells at least
                norm = np.square(vectors[..., 0])
                norm += np.square(vectors[..., 1])
                cell = norm > bar
                two = cell[:, :, :-1] | cell[:, :, 1:]  # windows of 2, then of 4 columns
                four = two[:, :, :-2] | two[:, :, 2:]
                two = four[:, :-1] | four[:, 1:]
                np.logical_or(two[:, :-2], two[:, 2:], out=active[start : start + NORM_CHUNK])
            self._active = (limit, active)
        return self._active[1]
