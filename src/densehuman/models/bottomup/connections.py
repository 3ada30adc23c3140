"""Step 2 of OpenPose's parsing (``assembly``): the PAF score of every candidate pair of every PAF, vectorized.

``pafScoreKernel``/``process`` in ``bodyPartConnectorBase.cu``: a pair (A, B) gets
``n = max(5, min(25, round(sqrt(5 max(|dx|, |dy|)))))`` samples at ``round(A + lm (B - A) / n)``, ``lm = 0 .. n-1``;
a sample counts when ``PAF . u > 0.05``; the pair scores the mean of the counted samples when more than 95 % count,
``nms_threshold + 1e-6`` when it fails but ``|B - A| < sqrt(W H) / 150``, and is rejected otherwise.

All pairs of all PAFs are scored at once. Almost all of them are wrong (a 20-person crowd has about 60,000 candidate
pairs, 3,000 of them kept) and most of the work is rejecting those, so exact pre-checks run first. With at most 25
samples, 2 failed samples already miss the 95 %, so a pair is dropped as soon as more of its samples surely fail
than it may have:

1. The bound check (with a ``PafSampler``, the stride-8 parse, and many candidates): a sample costs a 4x4x2-cell
   cubic sum, but it *provably* fails when an upper bound of ``|PAF . u|`` over the 4x4 source cells its taps read
   (``PafSampler.window_active``, one read of a small array) is at most the threshold. Looked at: up to 4 probe
   samples (``PROBE_ORDER``), then 8 more for long lines. In the benchmarks' 20-person crowd: 60,705 -> 5,205.
2. The remaining pairs' probe samples are computed exactly, one probe at a time (5,205 -> 3,600).

Only the survivors get their other samples (3,136 pairs pass). Both checks only drop pairs the full test rejects, so
the result is OpenPose's (the tests compare with the full computation).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from densehuman.keypoints.layouts import BODY135_PAF_PAIRS
from densehuman.models.bottomup.paf_sampler import PafSampler
from densehuman.models.bottomup.parse_config import AssemblyConfig

# bodyPartConnectorBase: ``numberPointsInLine = max(5, min(25, intRound(sqrt(5 * max(|dx|, |dy|)))))``.
MIN_LINE_SAMPLES = 5
MAX_LINE_SAMPLES = 25
LINE_SAMPLES_FACTOR = 5
# Coincident peaks (``vectorNorm <= 1e-6``) are never connected; scores ``<= 1e-6`` are not candidates.
MIN_VECTOR_NORM = 1e-6
MIN_PAIR_SCORE = 1e-6
# ``l2Dist < sqrt(W * H) / 150`` ("3.3 for 368x656") gets the score ``nmsThreshold + 1e-6``.
CLOSE_DISTANCE_DIVISOR = 150
CLOSE_SCORE_EPSILON = 1e-6
# Pre-check samples (not in OpenPose; exact): samples ``((2 j + 1) n) // 8`` for j in this order.
PROBE_ORDER = (1, 2, 0, 3)

# The bound check (pre-check 1) costs a pass over all stride-8 cells of all PAF pairs (``window_active``); it pays off
# when the candidates number at least 1/16 of those cells (about 36,000 for BODY_135 at 368x656: a crowd).
BOUND_CHECK_MIN_RATIO = 16

# Samples the bound check adds for the long lines the probes leave in doubt.
EXTRA_BOUND_SAMPLES = 8

# PAF pair i of BODY_135 reads PAF channels 2i (x) and 2i + 1 (y): ``POSE_MAP_INDEX[BODY_135]`` is 0..303.
BODY135_PAF_CHANNELS: tuple[tuple[int, int], ...] = tuple((2 * i, 2 * i + 1) for i in range(len(BODY135_PAF_PAIRS)))


def check_pairs(
    pairs: Sequence[tuple[int, int]], paf_channel_pairs: Sequence[tuple[int, int]], parts: int, channels: int
) -> tuple[np.ndarray, np.ndarray]:
    """(P, 2) part pairs and (P, 2) PAF channel pairs as int64 arrays, checked against the part and channel counts."""
    pair_arr = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    chan_arr = np.asarray(paf_channel_pairs, dtype=np.int64).reshape(-1, 2)
    if len(pair_arr) != len(chan_arr):
        raise ValueError(f"{len(pair_arr)} pairs but {len(chan_arr)} PAF channel pairs")
    if pair_arr.size and (pair_arr.min() < 0 or pair_arr.max() >= parts):
        raise ValueError(f"pairs reference parts outside 0..{parts - 1}")
    if chan_arr.size and (chan_arr.min() < 0 or chan_arr.max() >= channels):
        raise ValueError(f"PAF channel pairs reference channels outside 0..{channels - 1}")
    return pair_arr, chan_arr


def _min_passing_counts(ratio: np.float32) -> np.ndarray:
    """For n = 0..25 samples, the fewest passing samples with ``count / n > ratio`` in float32 (n + 1: none)."""
    out = np.zeros(MAX_LINE_SAMPLES + 1, np.int64)
    for n in range(1, MAX_LINE_SAMPLES + 1):
        ok = np.flatnonzero(np.arange(n + 1, dtype=np.float32) / np.float32(n) > ratio)
        out[n] = int(ok[0]) if ok.size else n + 1
    return out


class _Lines:
    """The candidate lines: per candidate (columns of ``geometry``) start x, y and step x, y (float32), B - A, the
    longer side of B - A, its sample count and PAF pair; the PAFs are full (C, H, W) maps or a ``PafSampler``. The
    unit vector and |B - A| are computed for the candidates that need them (``unit``, ``norm``)."""

    def __init__(
        self,
        points: np.ndarray,
        glob_a: np.ndarray,
        glob_b: np.ndarray,
        pair: np.ndarray,
        chan_arr: np.ndarray,
        pafs: np.ndarray | PafSampler,
    ) -> None:
        size = len(glob_a)
        # Rows: start x, y; step x, y (float32, the C++ operations); B - A.
        self.geometry = geometry = np.empty((4, size), np.float32)
        start_x, start_y = (
            np.take(points[:, 0], glob_a, out=geometry[0]),
            np.take(points[:, 1], glob_a, out=geometry[1]),
        )
        dx, dy = points[:, 0].take(glob_b), points[:, 1].take(glob_b)
        dx -= start_x
        dy -= start_y
        self.dx, self.dy = dx, dy
        longest = np.maximum(np.abs(dx), np.abs(dy))
        self.longest = longest.copy()
        longest *= np.float32(LINE_SAMPLES_FACTOR)
        rounded = (np.sqrt(longest, out=longest) + np.float32(0.5)).astype(np.int64)
        self.samples = np.clip(rounded, MIN_LINE_SAMPLES, MAX_LINE_SAMPLES, out=rounded)
        count_f = self.samples.astype(np.float32)
        np.divide(dx, count_f, out=geometry[2])
        np.divide(dy, count_f, out=geometry[3])
        self.size = size
        self.pair, self.chan_arr, self.pafs = pair, chan_arr, pafs
        self.height, self.width = pafs.shape[1:]
        self.flat = None if isinstance(pafs, PafSampler) else pafs.reshape(-1)

    def of(self, array: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """``array[..., rows]`` of a per-candidate array; the array itself when ``rows`` are all candidates (they are
        sorted and distinct, so all of them are ``0 .. size - 1``)."""
        return array if rows.size == self.size else np.take(array, rows, axis=-1)

    def xy(self, rows: np.ndarray, lm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """x, y of sample ``lm[..., i]`` of candidate ``rows[i]`` (the C++ rounding, clamped to the map)."""
        geo = self.of(self.geometry, rows)
        lm_f = lm.astype(np.float32, copy=False)
        pixels = []
        for origin, step, size in ((geo[0], geo[2], self.width), (geo[1], geo[3], self.height)):
            coordinate = lm_f * step
            coordinate += origin
            coordinate += np.float32(0.5)
            pixel = coordinate.astype(np.int64)
            pixels.append(np.clip(pixel, 0, size - 1, out=pixel))
        return pixels[0], pixels[1]

    def norm(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """|B - A| of candidates ``rows`` and whether it exceeds 1e-6 (coincident peaks are never connected)."""
        dx, dy = self.dx.take(rows), self.dy.take(rows)
        norm = np.sqrt(dx * dx + dy * dy)
        return norm, norm.astype(np.float64) > MIN_VECTOR_NORM

    def unit(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The unit vector u = (B - A) / |B - A| of candidates ``rows`` (0 for coincident peaks)."""
        norm, valid = self.norm(rows)
        safe = np.where(valid, norm, np.float32(1))
        return self.dx.take(rows) / safe, self.dy.take(rows) / safe

    def along(
        self, rows: np.ndarray, mx: np.ndarray, my: np.ndarray, unit: tuple[np.ndarray, np.ndarray] | None = None
    ) -> np.ndarray:
        """float32 ``PAF . u`` of candidate ``rows[i]`` at pixel (my[i], mx[i]); ``unit``: their u where known."""
        ux, uy = self.unit(rows) if unit is None else unit
        pair = self.pair.take(rows)
        if self.flat is None:
            assert isinstance(self.pafs, PafSampler)
            return self.pafs.dot(pair, my, mx, ux, uy)
        plane = self.height * self.width
        pixel = my * self.width + mx
        chan_x, chan_y = self.chan_arr[pair, 0], self.chan_arr[pair, 1]
        return ux * self.flat[chan_x * plane + pixel] + uy * self.flat[chan_y * plane + pixel]


def _sample_pixels(
    lines: _Lines, rows: np.ndarray, numerators: Sequence[int], denominator: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Samples ``(k n) // denominator`` for k in ``numerators`` of candidates ``rows``: (len(numerators), rows) sample
    indices and their x and y pixels."""
    table = (np.array(numerators, np.int64)[:, None] * np.arange(MAX_LINE_SAMPLES + 1)) // denominator
    n = lines.of(lines.samples, rows)
    mx, my = lines.xy(rows, np.take(table.astype(np.float32), n, axis=1))
    return np.take(table, n, axis=1), mx, my


def _probe_pixels(
    lines: _Lines, rows: np.ndarray, probes: Sequence[int] = PROBE_ORDER
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The pre-check samples of candidates ``rows``: (probes, rows) sample indices ``((2 j + 1) n) // 8`` for j in
    ``probes`` (distinct for n >= 5) and their x and y pixels."""
    return _sample_pixels(lines, rows, [2 * slot + 1 for slot in probes], 2 * len(PROBE_ORDER))


def _proven_fails(
    lines: _Lines, rows: np.ndarray, sampler: PafSampler, mx: np.ndarray, my: np.ndarray, threshold: float
) -> np.ndarray:
    """Per candidate of ``rows``: how many of its samples at pixels ``(mx, my)`` (k, rows) provably fail: their
    window holds no PAF vector longer than ``threshold / gain`` (``PafSampler.window_active``; the bound raised by
    1e-4 for the float32 rounding of the sums)."""
    active = sampler.window_active((threshold / (sampler.gain * (1 + 1e-4))) ** 2)
    windows_h, windows_w = active.shape[1:]
    window = sampler.window_row.take(my)
    window *= windows_w
    window += sampler.window_col.take(mx)
    window += (lines.of(lines.pair, rows) * (windows_h * windows_w))[None, :]
    return window.shape[0] - np.count_nonzero(active.reshape(-1).take(window), axis=0)


def _bound_check(
    lines: _Lines, rows: np.ndarray, sampler: PafSampler, proven: np.ndarray, threshold: float, max_fail: np.ndarray
) -> np.ndarray:
    """Pre-check 1 (module docstring): which of ``rows`` are not provably rejected (``proven``: failures known
    before). First the first two probes of all rows, then the other two of the rows still in doubt; the survivors
    with ``n >= 16`` samples are then bounded at 8 more samples, ``((2 j + 1) n) // 16`` (distinct from the probes
    and sample 0 for such n): in a crowd, lines between people cross other people's limbs at the probes but rarely
    at all their samples."""
    n = lines.samples.take(rows)
    half = len(PROBE_ORDER) // 2
    _, mx, my = _probe_pixels(lines, rows, PROBE_ORDER[:half])
    proven = proven + _proven_fails(lines, rows, sampler, mx, my, threshold)
    keep = proven <= max_fail[n]
    long = n >= 2 * EXTRA_BOUND_SAMPLES
    stages = (
        (lambda sub: _probe_pixels(lines, sub, PROBE_ORDER[half:]), np.ones(rows.size, bool)),
        (lambda sub: _sample_pixels(lines, sub, range(1, 2 * EXTRA_BOUND_SAMPLES, 4), 2 * EXTRA_BOUND_SAMPLES), long),
        (lambda sub: _sample_pixels(lines, sub, range(3, 2 * EXTRA_BOUND_SAMPLES, 4), 2 * EXTRA_BOUND_SAMPLES), long),
    )
    for pixels, eligible in stages:
        more = np.flatnonzero(keep & eligible)
        if more.size:
            sub = rows.take(more)
            _, mx, my = pixels(sub)
            total = proven.take(more) + _proven_fails(lines, sub, sampler, mx, my, threshold)
            proven[more] = total
            keep[more] = total <= max_fail[n.take(more)]
    return keep


def _exact_check(
    lines: _Lines,
    rows: np.ndarray,
    probes: tuple[np.ndarray, np.ndarray, np.ndarray],
    fails: np.ndarray,
    threshold: np.float32,
    max_fail: np.ndarray,
    *,
    together: bool = False,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pre-check 2 (module docstring): the rows whose probe samples do not already fail too often (``fails``:
    failures known before), with their probe sample indices and values, (probes, rows). One probe at a time, or
    with ``together`` all at once (fewer, larger steps: for rows that mostly pass, as after the bound check)."""
    lm, mx, my = probes
    n = lines.samples.take(rows)
    if together:
        ux, uy = lines.unit(rows)
        unit = (np.tile(ux, len(lm)), np.tile(uy, len(lm)))
        values = lines.along(np.tile(rows, len(lm)), mx.reshape(-1), my.reshape(-1), unit).reshape(lm.shape)
        keep = fails + np.count_nonzero(~(values > threshold), axis=0) <= max_fail[n]
        return rows[keep], lm[:, keep], values[:, keep]
    values = np.zeros(lm.shape, np.float32)
    alive = np.arange(rows.size)
    for k in range(len(PROBE_ORDER)):
        values[k, alive] = value = lines.along(rows.take(alive), mx[k].take(alive), my[k].take(alive))
        fails += ~(value > threshold)
        keep = fails <= max_fail[n.take(alive)]
        if not keep.all():
            alive, fails = alive[keep], fails[keep]
    return rows.take(alive), lm.take(alive, axis=1), values.take(alive, axis=1)


def _line_scores(
    lines: _Lines, rows: np.ndarray, probe_lm: np.ndarray, probe_values: np.ndarray, threshold: np.float32
) -> tuple[np.ndarray, np.ndarray]:
    """Per candidate in ``rows``: the float32 sum and the count of its samples with ``PAF . u > threshold``, in the
    C++ loop's order; ``probe_values`` (probes, rows) are the samples at ``probe_lm`` already computed."""
    n = lines.samples[rows]
    first = np.cumsum(n) - n
    which = np.repeat(np.arange(rows.size), n)
    lm = np.arange(which.size) - np.repeat(first, n)
    score = np.empty(which.size, np.float32)
    known = np.zeros(which.size, bool)
    if probe_lm.size:
        at = first[None, :] + probe_lm
        score[at.reshape(-1)] = probe_values.reshape(-1)
        known[at.reshape(-1)] = True
    todo = np.flatnonzero(~known)
    owner = which.take(todo)
    candidate = rows.take(owner)
    ux, uy = lines.unit(rows)
    unit = (ux.take(owner), uy.take(owner))
    score[todo] = lines.along(candidate, *lines.xy(candidate, lm.take(todo)), unit)
    passed = score > threshold
    padded = np.zeros((rows.size, int(n.max())), np.float32)
    padded[which[passed], lm[passed]] = score[passed]
    total = np.zeros(rows.size, np.float32)
    for column in padded.T:  # the C++ loop's summation order (adding exact zeros changes nothing)
        total += column
    return total, np.bincount(which[passed], minlength=rows.size)


@dataclass(frozen=True)
class _Checks:
    """What ``_score_rows`` needs besides the lines: the test's thresholds, the failures each sample count allows
    (negative: the fraction test can never pass), and whether to run the bound check."""

    threshold: np.float32
    ratio: np.float32
    max_fail: np.ndarray
    bound: bool


def _score_rows(lines: _Lines, rows: np.ndarray, checks: _Checks) -> tuple[np.ndarray, np.ndarray]:
    """The candidates of ``rows`` that pass the 95 % test and their float32 scores (the pre-checks, then all the
    samples of the rest)."""
    threshold, max_fail = checks.threshold, checks.max_fail
    most_fails = int(max_fail[MIN_LINE_SAMPLES:].max())
    probe_lm, probe_values = np.zeros((0, 0), np.int64), np.zeros((0, 0), np.float32)
    if most_fails < 0:
        rows = rows[:0]
    elif most_fails < len(PROBE_ORDER):
        fails = np.zeros(rows.size, np.int64)
        if checks.bound:
            assert isinstance(lines.pafs, PafSampler)
            keep = _bound_check(lines, rows, lines.pafs, fails, float(threshold), max_fail)
            rows, fails = rows[keep], fails[keep]
        probes = _probe_pixels(lines, rows)
        rows, probe_lm, probe_values = _exact_check(
            lines, rows, probes, fails, threshold, max_fail, together=checks.bound
        )
    if rows.size == 0:
        return rows, np.zeros(0, np.float32)
    total, count = _line_scores(lines, rows, probe_lm, probe_values, threshold)
    ok = count.astype(np.float32) / lines.samples[rows].astype(np.float32) > checks.ratio
    return rows[ok], total[ok] / count[ok].astype(np.float32)


def score_connections(
    peaks: Sequence[np.ndarray],
    pafs: np.ndarray | PafSampler,
    pairs: Sequence[tuple[int, int]] = BODY135_PAF_PAIRS,
    paf_channel_pairs: Sequence[tuple[int, int]] = BODY135_PAF_CHANNELS,
    config: AssemblyConfig | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """PAF scores of all candidate pairs of all PAFs, kept where ``> 1e-6`` (unsorted).

    ``peaks``: per part (n_k, 3) x, y, score as ``find_peaks`` returns them, in the pixel frame of ``pafs``
    (C, H, W), or a ``PafSampler`` of them (only the sampled pixels are computed; its channel pairs must be
    ``paf_channel_pairs``). Returns
    ``(pair_index, peak_index_a, peak_index_b, paf_score)``; the peak indices are 0-based within the pair's parts A
    and B.
    """
    cfg = config or AssemblyConfig()
    if not isinstance(pafs, PafSampler):
        pafs = np.ascontiguousarray(pafs, dtype=np.float32)
        if pafs.ndim != 3:
            raise ValueError(f"pafs must have shape (C, H, W), got {pafs.shape}")
    channels, height, width = pafs.shape
    pair_arr, chan_arr = check_pairs(pairs, paf_channel_pairs, len(peaks), channels)
    if isinstance(pafs, PafSampler) and not np.array_equal(pafs.channel_pairs, chan_arr):
        raise ValueError("the PafSampler was made for other PAF channel pairs than paf_channel_pairs")
    counts = np.array([len(p) for p in peaks], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(counts)])
    empty = (np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32))
    if len(pair_arr) == 0 or offsets[-1] == 0:
        return empty
    points = np.concatenate([np.asarray(p, np.float32).reshape(-1, 3) for p in peaks])
    n_a, n_b = counts[pair_arr[:, 0]], counts[pair_arr[:, 1]]
    per_pair = n_a * n_b
    if per_pair.sum() == 0:
        return empty
    # Candidates in order: pair p, then its peak A i, then its peak B j. One block of n_b[p] candidates per (p, i).
    pid = np.repeat(np.arange(len(pair_arr)), per_pair)
    block_pair = np.repeat(np.arange(len(pair_arr)), n_a)
    block_a = np.arange(block_pair.size) - np.repeat(np.cumsum(n_a) - n_a, n_a)
    block_size = n_b[block_pair]
    index_a = np.repeat(block_a, block_size)
    glob_a = np.repeat(offsets[pair_arr[block_pair, 0]] + block_a, block_size)
    block_start = np.cumsum(block_size) - block_size
    index_b = np.arange(pid.size) - np.repeat(block_start, block_size)
    glob_b = index_b + np.repeat(offsets[pair_arr[block_pair, 1]], block_size)
    lines = _Lines(points, glob_a, glob_b, pid, chan_arr, pafs)

    threshold = np.float32(cfg.connect_inter_threshold)
    ratio = np.float32(cfg.connect_inter_min_above_threshold)
    max_fail = np.arange(MAX_LINE_SAMPLES + 1) - _min_passing_counts(ratio)
    # Coincident peaks (|B - A| <= 1e-6, so the longer side too) are never connected.
    rows = np.arange(pid.size)
    tiny = np.flatnonzero(lines.longest <= MIN_VECTOR_NORM)
    if tiny.size:
        rows = np.setdiff1d(rows, tiny[~lines.norm(tiny)[1]], assume_unique=True)
    bound = isinstance(pafs, PafSampler) and rows.size * BOUND_CHECK_MIN_RATIO >= pafs.cells
    passed, score = _score_rows(lines, rows, _Checks(threshold, ratio, max_fail, bound))

    result = np.full(pid.size, -1.0, np.float32)
    close_limit = np.sqrt(np.float32(width * height)) / np.float32(CLOSE_DISTANCE_DIVISOR)
    near = np.flatnonzero(lines.longest < close_limit)  # |B - A| >= the longer side
    norm, valid = lines.norm(near)
    result[near[valid & (norm < close_limit)]] = np.float32(float(np.float32(cfg.nms_threshold)) + CLOSE_SCORE_EPSILON)
    result[passed] = score
    keep = result.astype(np.float64) > MIN_PAIR_SCORE
    return pid[keep], index_a[keep], index_b[keep], result[keep]
