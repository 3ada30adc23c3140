"""OpenPose's C++ PAF parsing (the global greedy assembly BODY_135 uses), vectorized for the CPU.

This is the GPU-build path of OpenPose (``BodyPartConnectorCaffe::Forward_gpu`` -> ``connectBodyPartsGpu``), the
only one that runs BODY_135 (the CPU connector refuses it), step by step:

1. Peaks: ``find_peaks`` (``peaks.py``) on heatmaps at the network input resolution (the stride-8 outputs
   upsampled by 8 with ``upsample_maps``): NMS threshold 0.05, strict 3x3 maximum, 7x7 refinement, at most 127
   peaks per part, coordinates ``+ 0.5 / scale``.
2. PAF score of every candidate pair (A, B) of every PAF (``pafScoreKernel``/``process`` in
   ``bodyPartConnectorBase.cu``): ``n = max(5, min(25, round(sqrt(5 max(|dx|, |dy|)))))`` samples at
   ``round(A + lm (B - A) / n)``, ``lm = 0 .. n-1``; a sample counts when ``PAF . u > 0.05``; the pair scores the
   mean of the counted samples when more than 95 % count, ``nms_threshold + 1e-6`` when it fails but
   ``|B - A| < sqrt(W H) / 150``, and is rejected otherwise. All pairs of all PAFs are scored at once here; a
   pre-check on up to 4 of a pair's own samples, one at a time, rejects most pairs that cannot reach the 95 %
   (exact: with at most 25 samples, 2 failed samples already miss it), so only the rest get all n samples.
3. ``pafPtrIntoVector``: keep scores ``> 1e-6``, sort all of them, over all PAFs, by
   ``paf + 0.1 scoreA + 0.1 scoreB`` (descending; ties by PAF score, pair index, peak indices, all descending).
4. ``pafVectorIntoPeopleVector``: greedy assembly (new person / extend a person lacking that part / add the PAF
   score to the same person / merge two people whose part sets are disjoint).
5. ``removePeopleBelowThresholdsAndFillFaces``: face points count as one part, each hand as one, feet as none
   (and a person whose count drops to <= 4 by removing feet is dropped); keep people with >= 3 counted parts and
   score / counted parts >= 0.4; if someone is kept, each face-only fragment is merged into the person (with >= 2
   face points) whose padded face box overlaps it best (IoU > 0.3, or > 0.01 when fewer than 3 such faces exist);
   when nobody is kept, filter again with ``maximize_positives`` (feet count; same thresholds): ``person_filters``.
6. Output: keypoints ``(x scale, y scale, peak score)`` (zeros when missing) and
   ``score / (number of parts + number of PAFs)``.

Constants are named as in OpenPose's ``poseParameters.cpp`` (see ``AssemblyConfig``) and the reference notes
(``/work/shared/reference/wholebody.md`` section 4.1). Person scores are accumulated in float64 (OpenPose: float32);
everything else runs in float32 in OpenPose's order of operations.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from densehuman.keypoints.layouts import BODY135_PAF_PAIRS
from densehuman.models.bottomup.coarse_maps import RowSampledMaps, find_peaks_coarse
from densehuman.models.bottomup.peaks import POSE_MAX_PEAKS, find_peaks
from densehuman.models.bottomup.person_filters import People, filter_people

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
# pafPtrIntoVector: ``totalScore = scoreAB + 0.1 * scoreA + 0.1 * scoreB``.
PEAK_SCORE_WEIGHT = 0.1
# removePeopleBelowThresholdsAndFillFaces (BODY_135 index ranges, half-open).

# PAF pair i of BODY_135 reads PAF channels 2i (x) and 2i + 1 (y): ``POSE_MAP_INDEX[BODY_135]`` is 0..303.
BODY135_PAF_CHANNELS: tuple[tuple[int, int], ...] = tuple((2 * i, 2 * i + 1) for i in range(len(BODY135_PAF_PAIRS)))


@dataclass(frozen=True)
class AssemblyConfig:
    """OpenPose's parsing constants (``poseParameters.cpp``, non-MPI models; defaults: ``maximizePositives=false``).

    ``nms_threshold``: heatmap peak threshold (``getPoseDefaultNmsThreshold``); also the score given to very close
    pairs. ``connect_inter_threshold``: per-sample ``PAF . u`` threshold. ``connect_inter_min_above_threshold``:
    fraction of samples that must pass. ``connect_min_subset_cnt`` / ``connect_min_subset_score``: the person filters
    (counted parts, mean score per counted part). ``max_peaks``: ``POSE_MAX_PEOPLE``, peaks kept per part.
    ``maximize_positives``: the ``--maximize_positives`` flag (feet count in the person filter);
    ``AssemblyConfig.maximizing_positives()`` gives all of that flag's values.
    """

    nms_threshold: float = 0.05
    connect_inter_threshold: float = 0.05
    connect_inter_min_above_threshold: float = 0.95
    connect_min_subset_cnt: int = 3
    connect_min_subset_score: float = 0.4
    max_peaks: int = POSE_MAX_PEAKS
    maximize_positives: bool = False

    def __post_init__(self) -> None:
        if not 0.0 <= self.nms_threshold <= 1.0:
            raise ValueError(f"nms_threshold must be in [0, 1], got {self.nms_threshold}")
        if self.max_peaks < 1:
            raise ValueError(f"max_peaks must be positive, got {self.max_peaks}")

    @classmethod
    def maximizing_positives(cls) -> AssemblyConfig:
        """OpenPose's ``--maximize_positives true`` values: 0.02 / 0.01 / 0.75 / 2 / 0.05."""
        return cls(0.02, 0.01, 0.75, 2, 0.05, maximize_positives=True)


def _check_pairs(
    pairs: Sequence[tuple[int, int]], paf_channel_pairs: Sequence[tuple[int, int]], parts: int, channels: int
) -> tuple[np.ndarray, np.ndarray]:
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


def score_connections(
    peaks: Sequence[np.ndarray],
    pafs: np.ndarray | RowSampledMaps,
    pairs: Sequence[tuple[int, int]] = BODY135_PAF_PAIRS,
    paf_channel_pairs: Sequence[tuple[int, int]] = BODY135_PAF_CHANNELS,
    config: AssemblyConfig | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """PAF scores of all candidate pairs of all PAFs, kept where ``> 1e-6`` (unsorted).

    ``peaks``: per part (n_k, 3) x, y, score as ``find_peaks`` returns them, in the pixel frame of ``pafs``
    (C, H, W), or a ``RowSampledMaps`` of them (``coarse_maps``: only the sampled pixels are computed). Returns
    ``(pair_index, peak_index_a, peak_index_b, paf_score)``; the peak indices are 0-based within the pair's parts A
    and B.
    """
    cfg = config or AssemblyConfig()
    reader = pafs if isinstance(pafs, RowSampledMaps) else None
    if reader is None:
        flat = np.ascontiguousarray(pafs, dtype=np.float32)
        if flat.ndim != 3:
            raise ValueError(f"pafs must have shape (C, H, W), got {flat.shape}")
        channels, height, width = flat.shape
        flat = flat.reshape(-1)
    else:
        channels, height, width = reader.shape
    pair_arr, chan_arr = _check_pairs(pairs, paf_channel_pairs, len(peaks), channels)
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
    pid = np.repeat(np.arange(len(pair_arr)), per_pair)
    local = np.arange(pid.size) - np.repeat(np.cumsum(per_pair) - per_pair, per_pair)
    index_a, index_b = local // n_b[pid], local % n_b[pid]
    glob_a = offsets[pair_arr[pid, 0]] + index_a
    glob_b = offsets[pair_arr[pid, 1]] + index_b

    start_x, start_y = points[glob_a, 0], points[glob_a, 1]
    dx, dy = points[glob_b, 0] - start_x, points[glob_b, 1] - start_y
    longest = np.maximum(np.abs(dx), np.abs(dy))
    rounded = (np.sqrt(np.float32(LINE_SAMPLES_FACTOR) * longest) + np.float32(0.5)).astype(np.int64)
    samples = np.clip(rounded, MIN_LINE_SAMPLES, MAX_LINE_SAMPLES)
    norm = np.sqrt(dx * dx + dy * dy)
    valid = norm.astype(np.float64) > MIN_VECTOR_NORM
    safe = np.where(valid, norm, np.float32(1))
    count_f = samples.astype(np.float32)
    # Per candidate (columns): start x, y; step x, y; unit vector x, y; and the flat offsets of its x, y channels.
    geometry = np.stack([start_x, start_y, dx / count_f, dy / count_f, dx / safe, dy / safe])
    channel = np.ascontiguousarray(chan_arr[pid].T)

    def along(rows: np.ndarray, lm: np.ndarray) -> np.ndarray:
        """float32 ``PAF . u`` at sample ``lm[i]`` of candidate ``rows[i]``."""
        geo, chan = np.take(geometry, rows, axis=1), np.take(channel, rows, axis=1)
        lm_f = lm.astype(np.float32)
        mx = np.clip((geo[0] + lm_f * geo[2] + np.float32(0.5)).astype(np.int64), 0, width - 1)
        my = np.clip((geo[1] + lm_f * geo[3] + np.float32(0.5)).astype(np.int64), 0, height - 1)
        if reader is not None:
            return reader.dot(chan[0], chan[1], my, mx, geo[4], geo[5])
        pixel = my * width + mx
        return geo[4] * flat[chan[0] * (height * width) + pixel] + geo[5] * flat[chan[1] * (height * width) + pixel]

    threshold = np.float32(cfg.connect_inter_threshold)
    ratio = np.float32(cfg.connect_inter_min_above_threshold)
    min_count = _min_passing_counts(ratio)
    max_fail = np.arange(MAX_LINE_SAMPLES + 1) - min_count  # negative: the fraction test can never pass
    rows = np.flatnonzero(valid)
    most_fails = int(max_fail[MIN_LINE_SAMPLES:].max())
    if most_fails < 0:
        rows = rows[:0]
    elif most_fails < len(PROBE_ORDER):
        # Pre-check on a few of the pair's own samples (distinct for n >= 5): more failures among them than the
        # pair may have in total rejects it, exactly as the full test would. Most wrong pairs go after 2 samples.
        fails = np.zeros(rows.size, np.int64)
        for slot in PROBE_ORDER:
            n = samples[rows]
            fails += ~(along(rows, ((2 * slot + 1) * n) // (2 * len(PROBE_ORDER))) > threshold)
            keep = fails <= max_fail[n]
            if not keep.all():
                rows, fails = rows[keep], fails[keep]

    result = np.full(pid.size, -1.0, np.float32)
    close_limit = np.sqrt(np.float32(width * height)) / np.float32(CLOSE_DISTANCE_DIVISOR)
    close = valid & (norm < close_limit)
    result[close] = np.float32(float(np.float32(cfg.nms_threshold)) + CLOSE_SCORE_EPSILON)
    if rows.size:
        # Every sample of the remaining pairs, flattened (pair r has samples[r] of them, lm = 0 .. n-1).
        n = samples[rows]
        which = np.repeat(np.arange(rows.size), n)
        lm = np.arange(which.size) - np.repeat(np.cumsum(n) - n, n)
        score = along(rows[which], lm)
        passed = score > threshold
        padded = np.zeros((rows.size, int(n.max())), np.float32)
        padded[which[passed], lm[passed]] = score[passed]
        total = np.zeros(rows.size, np.float32)
        for column in padded.T:  # the C++ loop's summation order (adding exact zeros changes nothing)
            total += column
        count = np.bincount(which[passed], minlength=rows.size)
        ok = count.astype(np.float32) / n.astype(np.float32) > ratio
        result[rows[ok]] = total[ok] / count[ok].astype(np.float32)
    keep = result.astype(np.float64) > MIN_PAIR_SCORE
    return pid[keep], index_a[keep], index_b[keep], result[keep]


def _assemble_people(
    part_a: list[int],
    part_b: list[int],
    glob_a: list[int],
    glob_b: list[int],
    paf_scores: list[float],
    peak_scores: list[float],
    num_parts: int,
) -> People:
    """``pafVectorIntoPeopleVector`` over connections already sorted by total score: connection c joins peak
    ``glob_a[c]`` of part ``part_a[c]`` and peak ``glob_b[c]`` of part ``part_b[c]`` (global peak ids, indexing
    ``peak_scores``) with PAF score ``paf_scores[c]``."""
    assigned = [-1] * len(peak_scores)
    people = People([], [], [], [], [], [])
    slots, masks, counts, scores, parts = people.slots, people.masks, people.counts, people.scores, people.parts
    for pa_part, pb_part, ga, gb, paf in zip(part_a, part_b, glob_a, glob_b, paf_scores, strict=True):
        who_a, who_b = assigned[ga], assigned[gb]
        if who_a < 0 and who_b < 0:  # 1. new person
            row = [-1] * num_parts
            row[pa_part], row[pb_part] = ga, gb
            assigned[ga] = assigned[gb] = len(slots)
            slots.append(row)
            masks.append((1 << pa_part) | (1 << pb_part))
            counts.append(2)
            scores.append(peak_scores[ga] + peak_scores[gb] + paf)
            parts.append([pa_part, pb_part])
            people.alive.append(True)
        elif who_a < 0 or who_b < 0:  # 2./3. extend the person of the assigned one, if it lacks the other part
            person = who_a if who_a >= 0 else who_b
            part, glob = (pb_part, gb) if who_a >= 0 else (pa_part, ga)
            if slots[person][part] < 0:
                slots[person][part] = glob
                masks[person] |= 1 << part
                counts[person] += 1
                scores[person] += peak_scores[glob] + paf
                parts[person].append(part)
                assigned[glob] = person
        elif who_a == who_b:  # 4. redundant or cyclic PAF inside one person
            scores[who_a] += paf
        else:  # 5. merge two people with disjoint part sets into the older one
            keep, gone = min(who_a, who_b), max(who_a, who_b)
            if masks[keep] & masks[gone] == 0:
                for part in parts[gone]:
                    glob = slots[gone][part]
                    slots[keep][part] = glob
                    assigned[glob] = keep
                parts[keep].extend(parts[gone])
                masks[keep] |= masks[gone]
                counts[keep] += counts[gone]
                scores[keep] += scores[gone] + paf
                people.alive[gone] = False
    return people


def assemble_from_peaks(
    peaks: Sequence[np.ndarray],
    pafs: np.ndarray | RowSampledMaps,
    pairs: Sequence[tuple[int, int]] = BODY135_PAF_PAIRS,
    paf_channel_pairs: Sequence[tuple[int, int]] = BODY135_PAF_CHANNELS,
    config: AssemblyConfig | None = None,
    *,
    scale: float = 1.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Steps 2-6 of the module docstring on given peaks (per part (n_k, 3) x, y, score in the pixel frame of
    ``pafs``). Returns ``(keypoints (P, K, 3) float32, scores (P,) float32)``; missing keypoints are zeros and
    coordinates are multiplied by ``scale`` (OpenPose's ``scaleNetToOutput``)."""
    cfg = config or AssemblyConfig()
    num_parts = len(peaks)
    channels = pafs.shape[0] if isinstance(pafs, RowSampledMaps) else np.shape(pafs)[0]
    pair_arr, _ = _check_pairs(pairs, paf_channel_pairs, num_parts, channels)
    points = (
        np.concatenate([np.asarray(p, np.float32).reshape(-1, 3) for p in peaks])
        if num_parts
        else np.zeros((0, 3), np.float32)
    )
    offsets = np.concatenate([[0], np.cumsum([len(p) for p in peaks])]).astype(np.int64)
    pid, index_a, index_b, paf = score_connections(peaks, pafs, pairs, paf_channel_pairs, cfg)
    weight = np.float32(PEAK_SCORE_WEIGHT)
    glob_a = offsets[pair_arr[pid, 0]] + index_a
    glob_b = offsets[pair_arr[pid, 1]] + index_b
    total = paf + weight * points[glob_a, 2] + weight * points[glob_b, 2]
    order = np.lexsort((-index_b, -index_a, -pid, -paf, -total))
    people = _assemble_people(
        pair_arr[pid[order], 0].tolist(),
        pair_arr[pid[order], 1].tolist(),
        glob_a[order].tolist(),
        glob_b[order].tolist(),
        paf[order].astype(np.float64).tolist(),
        points[:, 2].astype(np.float64).tolist(),
        num_parts,
    )
    alive = [p for p, keep in enumerate(people.alive) if keep]
    kept = filter_people(people, alive, points, cfg, cfg.maximize_positives) if alive else []
    keypoints = np.zeros((len(kept), num_parts, 3), np.float32)
    if kept:
        rows = np.array([people.slots[p] for p in kept], dtype=np.int64)
        found = rows >= 0
        keypoints[found] = points[rows[found]]
        keypoints[..., :2] *= np.float32(scale)
    denominator = num_parts + len(pair_arr)
    scores = np.array([people.scores[p] / denominator for p in kept], dtype=np.float32)
    return keypoints, scores


def assemble(
    heatmaps: np.ndarray,
    pafs: np.ndarray,
    pairs: Sequence[tuple[int, int]] = BODY135_PAF_PAIRS,
    paf_channel_pairs: Sequence[tuple[int, int]] | None = None,
    config: AssemblyConfig | None = None,
    *,
    scale: float = 1.0,
) -> tuple[np.ndarray, np.ndarray]:
    """People from (K, H, W) heatmaps and (C, H, W) PAFs, as OpenPose's C++ (GPU-build) parsing finds them.

    The maps must be at the resolution OpenPose parses at: the **network input resolution**, i.e. the stride-8
    network outputs upsampled by 8 (``peaks.upsample_maps``), e.g. 368x656. ``pairs`` are the PAF pairs (default
    BODY_135's 152); ``paf_channel_pairs[i]`` are the x and y channels of pair i in ``pafs`` (default ``(2i, 2i+1)``).
    ``scale`` maps that resolution to the output (image) pixels: peaks get ``+ 0.5 / scale`` and coordinates are
    multiplied by ``scale``, so the output is ``scale * pixel + 0.5``.

    Returns ``(keypoints, scores)``: (P, K, 3) float32 x, y, peak score (all 0 for a missing part) and (P,) float32
    person scores (``sum of peak and PAF scores / (K + number of pairs)``), people in OpenPose's order (that in
    which the assembly created them).

    As in OpenPose, the person filter picks its rules by the part count and uses OpenPose's index ranges: with
    K >= 135 the BODY_135 face (65-134) and hands (25-44, 45-64), with K == 25 or K > 70 the feet (19-24). Other
    layouts of that size (e.g. COCO-WholeBody's 133) must be put in BODY_135 order first.
    """
    cfg = config or AssemblyConfig()
    heatmaps = np.asarray(heatmaps)
    pafs = np.asarray(pafs)
    if heatmaps.ndim != 3 or pafs.ndim != 3 or heatmaps.shape[1:] != pafs.shape[1:]:
        raise ValueError(f"heatmaps (K, H, W) and pafs (C, H, W) must share H, W; got {heatmaps.shape}, {pafs.shape}")
    if scale <= 0:
        raise ValueError(f"scale must be positive, got {scale}")
    channels = paf_channel_pairs if paf_channel_pairs is not None else [(2 * i, 2 * i + 1) for i in range(len(pairs))]
    peaks = find_peaks(heatmaps, cfg.nms_threshold, max_peaks=cfg.max_peaks, offset=float(0.5 / scale))
    return assemble_from_peaks(peaks, pafs, pairs, channels, cfg, scale=scale)


def assemble_coarse(
    heatmaps: np.ndarray,
    pafs: np.ndarray,
    content: tuple[int, int],
    pairs: Sequence[tuple[int, int]] = BODY135_PAF_PAIRS,
    paf_channel_pairs: Sequence[tuple[int, int]] | None = None,
    config: AssemblyConfig | None = None,
    *,
    scale: float = 1.0,
    factor: int = 8,
) -> tuple[np.ndarray, np.ndarray]:
    """``assemble(upsampled heatmaps, upsampled PAFs)`` from the stride-``factor`` network outputs, without the
    full upsampling: peaks in tiles around the coarse maxima, PAFs read at their samples only (``coarse_maps``).
    ``content``: (H, W) of the parsed part of the ``factor``-times larger net input (the image without padding)."""
    cfg = config or AssemblyConfig()
    if np.ndim(heatmaps) != 3 or np.ndim(pafs) != 3 or np.shape(heatmaps)[1:] != np.shape(pafs)[1:]:
        raise ValueError(
            f"heatmaps (K, h, w) and pafs (C, h, w) must share h, w; got {np.shape(heatmaps)}, {np.shape(pafs)}"
        )
    if scale <= 0:
        raise ValueError(f"scale must be positive, got {scale}")
    channels = paf_channel_pairs if paf_channel_pairs is not None else [(2 * i, 2 * i + 1) for i in range(len(pairs))]
    peaks, reader = coarse_parse_inputs(heatmaps, pafs, content, cfg, scale=scale, factor=factor)
    return assemble_from_peaks(peaks, reader, pairs, channels, cfg, scale=scale)


def coarse_parse_inputs(
    heatmaps: np.ndarray,
    pafs: np.ndarray,
    content: tuple[int, int],
    config: AssemblyConfig,
    *,
    scale: float = 1.0,
    factor: int = 8,
) -> tuple[list[np.ndarray], RowSampledMaps]:
    """What ``assemble_from_peaks`` parses, from stride-``factor`` maps: the heatmap peaks (``find_peaks_coarse``,
    coordinates ``+ 0.5 / scale`` as ``assemble`` gives them) and the PAFs as a ``RowSampledMaps``."""
    peaks = find_peaks_coarse(
        np.asarray(heatmaps, dtype=np.float32),
        content,
        config.nms_threshold,
        factor=factor,
        max_peaks=config.max_peaks,
        offset=float(0.5 / scale),
    )
    return peaks, RowSampledMaps(pafs, content, factor)
