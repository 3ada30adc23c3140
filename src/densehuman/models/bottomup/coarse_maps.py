"""Parsing straight from the stride-8 network outputs, without upsampling all of them (the fast path).

OpenPose upsamples all 135 heatmaps and 304 PAFs x8 to the net input size before it parses (``peaks.py``). On a
CPU that resize dominates the parse (about 100 million values written for a 368x656 input), although the parse
reads a tiny part of it: the neighbourhoods of the heatmap peaks and the pixels the PAF line integrals sample.
This module computes only those, with OpenPose's own cubic resize (``cubic_resize_matrix``):

* ``find_peaks_coarse``: heatmap peaks as ``find_peaks(upsampled maps)`` finds them, computed in 46x46-pixel tiles
  around the stride-8 local maxima (cells ``>=`` their 8 neighbours and above ``threshold / B``, ``B`` the largest
  sum of absolute cubic weights, so no fine pixel above the threshold is lost to the cell's own value). A tile
  covers the 5x5 cells around its maximum plus the 3-pixel margin of the NMS and the 7x7 refinement; a fine peak is
  found when it lies within two cells of a coarse maximum. That holds for the smooth maps networks and ground truth
  produce, also for two people's same part side by side (one cell apart the second peak need not be a coarse
  maximum, hence two cells); the tests compare both paths on crowded scenes. It is not a theorem: a fine peak on a
  long ridge of the coarse map can be missed, which ``exact_maps=True`` rules out. Peaks and their refinement are
  computed exactly as ``find_peaks`` does on the full maps (float32 rounding aside).
* ``paf_sampler.PafSampler``: PAF values at the pixels the line integrals sample, each from the 4x4 stride-8
  cells its cubic taps read.

``WholeBodyPredictor(exact_maps=True)`` keeps OpenPose's full upsampling.
"""

from __future__ import annotations

import numpy as np

from densehuman.models.bottomup.peaks import PEAK_REFINE_RADIUS, POSE_MAX_PEAKS, cubic_resize_matrix

TAPS = 4  # Catmull-Rom: 4 source samples per output pixel
HALO = PEAK_REFINE_RADIUS  # the NMS needs 1 pixel around a peak, the refinement 3
# A tile covers its maximum's cell and TILE_REACH cells on each side (40 pixels at stride 8) plus the halo; its
# pixels read the source cells ``i - SOURCE_REACH .. i + SOURCE_REACH`` (the cubic taps reach 2 cells further).
TILE_REACH = 2
SOURCE_REACH = TILE_REACH + 2


def cubic_taps(source: int, target: int, keep: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The nonzero taps of ``cubic_resize_matrix(source, target)[:keep]``: (keep, 4) source indices and float32
    weights (padded with index 0, weight 0 where clamping merged taps)."""
    matrix = cubic_resize_matrix(source, target)[: target if keep is None else keep]
    index = np.zeros((matrix.shape[0], TAPS), np.int64)
    weight = np.zeros((matrix.shape[0], TAPS), np.float32)
    rows, cols = np.nonzero(matrix)
    slot = np.arange(rows.size) - np.searchsorted(rows, rows)
    index[rows, slot] = cols
    weight[rows, slot] = matrix[rows, cols]
    return index, weight


def _windows(source: int, target: int, keep: int) -> tuple[np.ndarray, np.ndarray]:
    """Per source cell i: the slice of the cubic matrix for the tile's fine rows ``8 (i - TILE_REACH) - HALO ..``
    and the source rows ``i - SOURCE_REACH .. i + SOURCE_REACH``, and which of those fine rows are in the map."""
    factor = target // source
    size = (2 * TILE_REACH + 1) * factor + 2 * HALO
    matrix = np.zeros((target + 2 * size, source + 2 * SOURCE_REACH), np.float32)
    matrix[size : size + keep, SOURCE_REACH : SOURCE_REACH + source] = cubic_resize_matrix(source, target)[:keep]
    cells = np.arange(source)
    fine = factor * (cells - TILE_REACH) - HALO  # first fine row of each tile
    rows = fine[:, None] + np.arange(size)[None, :]
    cols = cells[:, None] + np.arange(2 * SOURCE_REACH + 1)[None, :]
    windows = matrix[(rows + size)[:, :, None], cols[:, None, :]]
    return windows, (rows >= 0) & (rows < keep)


def coarse_maxima(maps: np.ndarray, floor: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(channel, row, col) of the cells of (K, h, w) ``maps`` above ``floor`` and ``>=`` their 8 neighbours."""
    padded = np.pad(maps, ((0, 0), (1, 1), (1, 1)), constant_values=-np.inf)
    h, w = maps.shape[1:]
    keep = maps > floor
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            if dy or dx:
                keep &= maps >= padded[:, 1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w]
    channel, row, col = np.nonzero(keep)
    return channel, row, col


def find_peaks_coarse(
    maps: np.ndarray,
    content: tuple[int, int],
    threshold: float = 0.05,
    *,
    factor: int = 8,
    max_peaks: int = POSE_MAX_PEAKS,
    offset: float = 0.5,
) -> list[np.ndarray]:
    """``find_peaks(upsample_maps(maps)[:, :content[0], :content[1]], threshold, ...)`` from the stride-``factor``
    (K, h, w) ``maps``, computing the upsampled values in tiles around the coarse maxima only (module docstring).
    Returns K float32 arrays (n_k, 3): x, y, score."""
    maps = np.asarray(maps, dtype=np.float32)
    if maps.ndim != 3:
        raise ValueError(f"maps must have shape (K, h, w), got {maps.shape}")
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must be in [0, 1], got {threshold}")
    count, h, w = maps.shape
    height, width = (int(v) for v in content)
    if not (0 < height <= factor * h and 0 < width <= factor * w):
        raise ValueError(f"content {content} is outside the {factor * h}x{factor * w} net input")
    empty = [np.zeros((0, 3), np.float32) for _ in range(count)]
    if height < 3 or width < 3:
        return empty
    row_win, row_ok = _windows(h, factor * h, height)
    col_win, col_ok = _windows(w, factor * w, width)
    bound = float(np.abs(row_win).sum(axis=2).max() * np.abs(col_win).sum(axis=2).max())
    channel, cell_y, cell_x = coarse_maxima(maps, threshold / max(bound, 1.0))
    if channel.size == 0:
        return empty
    reach = SOURCE_REACH
    padded = np.pad(maps, ((0, 0), (reach, reach), (reach, reach)))
    span = np.arange(2 * reach + 1)
    source = padded[channel[:, None, None], (cell_y[:, None] + span)[:, :, None], (cell_x[:, None] + span)[:, None, :]]
    tiles = np.matmul(np.matmul(row_win[cell_y], source), col_win[cell_x].transpose(0, 2, 1))  # (n, S, S)
    inside = row_ok[cell_y][:, :, None] & col_ok[cell_x][:, None, :]
    tiles = np.where(inside, tiles, np.float32(0)).astype(np.float32)
    size = tiles.shape[1]
    core = slice(HALO, size - HALO)
    centre = tiles[:, core, core]
    is_peak = centre > np.float32(threshold)
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            if dy or dx:
                is_peak &= centre > tiles[:, HALO + dy : size - HALO + dy, HALO + dx : size - HALO + dx]
    tile, a, b = np.nonzero(is_peak)
    first_y = factor * (cell_y - TILE_REACH) - HALO
    first_x = factor * (cell_x - TILE_REACH) - HALO
    y, x = first_y[tile] + HALO + a, first_x[tile] + HALO + b
    inner = (y > 0) & (y < height - 1) & (x > 0) & (x < width - 1)  # the border is never a peak
    tile, a, b, y, x = tile[inner], a[inner], b[inner], y[inner], x[inner]
    key = (channel[tile] * height + y) * width + x
    key, first = np.unique(key, return_index=True)  # neighbouring tiles overlap; sorted = raster order per part
    tile, a, b, y, x = tile[first], a[first] + HALO, b[first] + HALO, y[first], x[first]
    part = channel[tile]
    starts = np.searchsorted(part, np.arange(count + 1))
    keep = np.arange(part.size) - starts[part] < max_peaks
    tile, a, b, y, x, part = tile[keep], a[keep], b[keep], y[keep], x[keep], part[keep]
    x_acc = np.zeros(tile.size, np.float32)
    y_acc = np.zeros(tile.size, np.float32)
    s_acc = np.zeros(tile.size, np.float32)
    for dy in range(-HALO, HALO + 1):
        for dx in range(-HALO, HALO + 1):
            score = tiles[tile, a + dy, b + dx]
            score = np.where(score > 0, score, np.float32(0))  # outside the map: 0, as the clipped C++ window
            x_acc += (x + dx).astype(np.float32) * score
            y_acc += (y + dy).astype(np.float32) * score
            s_acc += score
    out = np.empty((tile.size, 3), np.float32)
    shift = np.float32(offset)
    out[:, 0] = x_acc / s_acc + shift
    out[:, 1] = y_acc / s_acc + shift
    out[:, 2] = tiles[tile, a, b]
    starts = np.searchsorted(part, np.arange(count + 1))
    return [out[starts[k] : starts[k + 1]] for k in range(count)]
