"""OpenPose heatmap peaks (NMS + 7x7 refinement) and its cubic upsampling of network outputs, in NumPy.

OpenPose's C++ pipeline (``poseExtractorCaffe.cpp``) never parses the stride-8 network output directly: it first
resizes heatmaps and PAFs by the net decrease factor (8) back to the **network input resolution** (e.g. 368x656
for ``--net_resolution -1x368`` on a 16:9 image; 480 rows for BODY_135), then runs NMS and the PAF line integrals
there, and finally multiplies the coordinates by ``scaleNetToOutput`` to reach image pixels. ``upsample_maps``
reproduces that resize (the CUDA ``resizeKernel`` of ``resizeAndMergeBase.cu``: Catmull-Rom cubic, ``a = -0.5``,
with its exact source-coordinate mapping and border clamping), and ``find_peaks`` the CUDA NMS of ``nmsBase.cu``
(the path BODY_135 takes, as it only runs on GPU builds).

Coordinates follow OpenPose: a peak at pixel column ``i`` of the map is reported at ``i + offset`` (the C++ code adds
``0.5 / scaleNetToOutput``, "to keep Matlab format"), so with ``scale = 1`` a keypoint rendered at integer pixel
``i`` comes back as ``i + 0.5``.
"""

from __future__ import annotations

import numpy as np

# nmsBase.cu: ``dWidth = dHeight = 3``, i.e. a 7x7 score-weighted mean around each integer peak.
PEAK_REFINE_RADIUS = 3
# poseParameters.hpp: ``POSE_MAX_PEOPLE = 127u``, the most peaks kept per part (in raster order).
POSE_MAX_PEAKS = 127
# poseParameters.cpp: ``getPoseNetDecreaseFactor`` (stride of the network output); the default upsampling ratio.
NET_DECREASE_FACTOR = 8


def find_peaks(
    heatmaps: np.ndarray,
    threshold: float = 0.05,
    *,
    max_peaks: int = POSE_MAX_PEAKS,
    offset: float = 0.5,
) -> list[np.ndarray]:
    """Per-part peaks of (K, H, W) heatmaps as OpenPose's CUDA NMS finds them.

    A pixel is a peak when its value is ``> threshold`` and strictly greater than all 8 neighbours; the outermost
    row and column are never peaks. Only the first ``max_peaks`` peaks of a part in raster order are kept. Each peak
    moves to the score-weighted mean of the positive values in the 7x7 window around it (clipped to the map), plus
    ``offset`` on both axes; its score is the heatmap value at the integer peak.

    Returns K float32 arrays of shape (n_k, 3): x, y, score. The maps must not hold NaN.
    """
    maps = np.ascontiguousarray(heatmaps, dtype=np.float32)
    if maps.ndim != 3:
        raise ValueError(f"heatmaps must have shape (K, H, W), got {maps.shape}")
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must be in [0, 1], got {threshold}")  # the nmsCpu sanity check
    count, height, width = maps.shape
    empty = [np.zeros((0, 3), np.float32) for _ in range(count)]
    if height < 3 or width < 3:
        return empty
    flat = maps.reshape(-1)
    # Candidates: the pixels above the threshold (a small part of the maps). A candidate beats its left / right
    # neighbour for sure when that neighbour is not a candidate (it is <= threshold), so the horizontal test only
    # compares consecutive candidates; the 6 other neighbours are then read for the few survivors. Exact, and far
    # faster than dense 3x3 maximum filtering.
    cand = np.flatnonzero(flat > np.float32(threshold))
    value = flat[cand]
    adjacent = np.diff(cand) == 1
    keep = np.ones(cand.size, bool)
    keep[1:] &= ~adjacent | (value[1:] > value[:-1])
    keep[:-1] &= ~adjacent | (value[:-1] > value[1:])
    cand, value = cand[keep], value[keep]
    col = cand % width
    row = (cand // width) % height
    keep = (col > 0) & (col < width - 1) & (row > 0) & (row < height - 1)  # the border is never a peak
    cand, value = cand[keep], value[keep]
    for delta in (-width - 1, -width, -width + 1, width - 1, width, width + 1):
        keep = value > flat[cand + delta]
        cand, value = cand[keep], value[keep]
    channel = cand // (height * width)
    # Raster order inside a channel is the flat order; keep the first ``max_peaks`` of each channel.
    starts = np.searchsorted(channel, np.arange(count + 1))
    rank = np.arange(cand.size) - starts[channel]
    keep = rank < max_peaks
    cand, channel = cand[keep], channel[keep]
    pixel = cand % (height * width)
    peak_y, peak_x = pixel // width, pixel % width
    refined = _refine(flat, channel, peak_x, peak_y, height, width, offset)
    starts = np.searchsorted(channel, np.arange(count + 1))
    return [refined[starts[k] : starts[k + 1]] for k in range(count)]


def _refine(
    flat: np.ndarray,
    channel: np.ndarray,
    peak_x: np.ndarray,
    peak_y: np.ndarray,
    height: int,
    width: int,
    offset: float,
) -> np.ndarray:
    """(n, 3) x, y, score: the 7x7 score-weighted mean of ``nmsAccuratePeakPosition``, in its float32 order."""
    out = np.zeros((peak_x.size, 3), np.float32)
    if peak_x.size == 0:
        return out
    x_acc = np.zeros(peak_x.size, np.float32)
    y_acc = np.zeros(peak_x.size, np.float32)
    s_acc = np.zeros(peak_x.size, np.float32)
    base = channel * (height * width)
    radius = PEAK_REFINE_RADIUS
    for dy in range(-radius, radius + 1):
        y = peak_y + dy
        y_ok = (y >= 0) & (y < height)
        for dx in range(-radius, radius + 1):
            x = peak_x + dx
            ok = y_ok & (x >= 0) & (x < width)
            score = np.where(ok, flat[base + np.clip(y, 0, height - 1) * width + np.clip(x, 0, width - 1)], 0)
            score = np.where(score > 0, score, np.float32(0))
            # Adding exact zeros leaves the accumulators unchanged, so the C++ summation order is kept.
            x_acc += x.astype(np.float32) * score
            y_acc += y.astype(np.float32) * score
            s_acc += score
    shift = np.float32(offset)
    out[:, 0] = x_acc / s_acc + shift
    out[:, 1] = y_acc / s_acc + shift
    out[:, 2] = flat[base + peak_y * width + peak_x]
    return out


def cubic_resize_matrix(source: int, target: int) -> np.ndarray:
    """(target, source) float32 matrix of OpenPose's GPU cubic resize along one axis.

    ``resizeKernel``: the source coordinate of target pixel ``t`` is ``(t + 0.5) * source / target - 0.5``; the base
    tap is ``int(coordinate + 1e-5)`` (truncated toward zero, so the first target pixels extrapolate with a negative
    fraction) clamped to the map, the other taps are clamped to the map, and the weights are Catmull-Rom's
    (``cubicInterpolate`` in ``cuda.hu``).
    """
    if source < 1 or target < 1:
        raise ValueError(f"sizes must be positive, got {source} -> {target}")
    t = np.arange(target, dtype=np.float32)
    coord = (t + np.float32(0.5)) * np.float32(source) / np.float32(target) - np.float32(0.5)
    x1 = np.clip(np.trunc(coord.astype(np.float64) + 1e-5).astype(np.int64), 0, source - 1)
    x0 = np.maximum(0, x1 - 1)
    x2 = np.minimum(source - 1, x1 + 1)
    x3 = np.minimum(source - 1, x2 + 1)
    d = (coord - x1.astype(np.float32)).astype(np.float64)
    d2, d3 = d * d, d * d * d
    weights = (
        -0.5 * d3 + d2 - 0.5 * d,
        1.5 * d3 - 2.5 * d2 + 1.0,
        -1.5 * d3 + 2.0 * d2 + 0.5 * d,
        0.5 * d3 - 0.5 * d2,
    )
    matrix = np.zeros((target, source), np.float64)
    rows = np.arange(target)
    for index, weight in zip((x0, x1, x2, x3), weights, strict=True):
        np.add.at(matrix, (rows, index), weight)
    return matrix.astype(np.float32)


def resize_maps_cubic(maps: np.ndarray, height: int, width: int, *, chunk: int = 32) -> np.ndarray:
    """Resize (C, h, w) maps to (C, height, width) with OpenPose's GPU cubic kernel (see ``cubic_resize_matrix``).

    The resize is separable and linear, so it runs as two float32 matrix products (rounding differs from the CUDA
    kernel's by float32 ulps). ``chunk`` channels are resized at a time to bound the temporaries.
    """
    maps = np.asarray(maps, dtype=np.float32)
    if maps.ndim != 3:
        raise ValueError(f"maps must have shape (C, h, w), got {maps.shape}")
    channels, source_h, source_w = maps.shape
    rows = cubic_resize_matrix(source_h, height)
    cols_t = np.ascontiguousarray(cubic_resize_matrix(source_w, width).T)
    out = np.empty((channels, height, width), np.float32)
    for start in range(0, channels, chunk):
        part = maps[start : start + chunk] @ cols_t  # (c, h, width)
        out[start : start + chunk] = rows @ part  # (c, height, width)
    return out


def upsample_maps(maps: np.ndarray, factor: float = NET_DECREASE_FACTOR) -> np.ndarray:
    """Upsample (C, h, w) network outputs by ``factor`` (OpenPose: the net decrease factor, 8) to the net input size.

    The target size is ``factor * h x factor * w``; for a 368x656 input and a stride-8 network that
    is 46x82 -> 368x656. Sizes round half up, as OpenPose's ``positiveIntRound``.
    """
    maps = np.asarray(maps)
    if maps.ndim != 3:
        raise ValueError(f"maps must have shape (C, h, w), got {maps.shape}")
    if factor <= 0:
        raise ValueError(f"factor must be positive, got {factor}")
    return resize_maps_cubic(maps, int(factor * maps.shape[1] + 0.5), int(factor * maps.shape[2] + 0.5))
