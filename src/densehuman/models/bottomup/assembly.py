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
   ``|B - A| < sqrt(W H) / 150``, and is rejected otherwise: ``connections.score_connections``, all pairs of all
   PAFs at once, with exact pre-checks that reject most wrong pairs before all their samples are computed.
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

import numpy as np

from densehuman.keypoints.layouts import BODY135_PAF_PAIRS
from densehuman.models.bottomup.coarse_maps import find_peaks_coarse
from densehuman.models.bottomup.connections import BODY135_PAF_CHANNELS, check_pairs, score_connections
from densehuman.models.bottomup.paf_sampler import PafSampler
from densehuman.models.bottomup.parse_config import AssemblyConfig
from densehuman.models.bottomup.peaks import find_peaks
from densehuman.models.bottomup.person_filters import People, filter_people

__all__ = [
    "BODY135_PAF_CHANNELS",
    "AssemblyConfig",
    "assemble",
    "assemble_coarse",
    "assemble_from_peaks",
    "coarse_parse_inputs",
    "score_connections",
]

# pafPtrIntoVector: ``totalScore = scoreAB + 0.1 * scoreA + 0.1 * scoreB``.
PEAK_SCORE_WEIGHT = 0.1


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
    ``peak_scores``) with PAF score ``paf_scores[c]``.

    OpenPose moves the merged person's parts into the kept one; here a merge only links the two (union-find:
    ``parent``), a peak's person is its link's root, and the part slots are filled once at the end. Part bitmasks
    stand for the slots in the tests "lacks that part" and "part sets disjoint"."""
    assigned = [-1] * len(peak_scores)  # a person of each peak placed (follow ``parent`` to the person now)
    part_of = [-1] * len(peak_scores)
    parent: list[int] = []
    masks: list[int] = []
    counts: list[int] = []
    scores: list[float] = []
    for pa_part, pb_part, ga, gb, paf in zip(part_a, part_b, glob_a, glob_b, paf_scores, strict=True):
        who_a, who_b = assigned[ga], assigned[gb]
        if who_a >= 0 and parent[who_a] != who_a:
            while parent[who_a] != who_a:
                who_a = parent[who_a]
            assigned[ga] = who_a
        if who_b >= 0 and parent[who_b] != who_b:
            while parent[who_b] != who_b:
                who_b = parent[who_b]
            assigned[gb] = who_b
        if who_a < 0 and who_b < 0:  # 1. new person
            person = len(parent)
            parent.append(person)
            masks.append((1 << pa_part) | (1 << pb_part))
            counts.append(2)
            scores.append(peak_scores[ga] + peak_scores[gb] + paf)
            assigned[ga] = assigned[gb] = person
            part_of[ga], part_of[gb] = pa_part, pb_part
        elif who_a < 0 or who_b < 0:  # 2./3. extend the person of the assigned one, if it lacks the other part
            person = who_a if who_a >= 0 else who_b
            part, glob = (pb_part, gb) if who_a >= 0 else (pa_part, ga)
            if not (masks[person] >> part) & 1:
                masks[person] |= 1 << part
                counts[person] += 1
                scores[person] += peak_scores[glob] + paf
                assigned[glob], part_of[glob] = person, part
        elif who_a == who_b:  # 4. redundant or cyclic PAF inside one person
            scores[who_a] += paf
        else:  # 5. merge two people with disjoint part sets into the older one
            keep, gone = (who_a, who_b) if who_a < who_b else (who_b, who_a)
            if masks[keep] & masks[gone] == 0:
                parent[gone] = keep
                masks[keep] |= masks[gone]
                counts[keep] += counts[gone]
                scores[keep] += scores[gone] + paf
    alive = [parent[p] == p for p in range(len(parent))]
    slots: list[list[int]] = [[-1] * num_parts if keep else [] for keep in alive]
    for glob, person in enumerate(assigned):
        if person >= 0:
            while parent[person] != person:
                person = parent[person]
            slots[person][part_of[glob]] = glob
    return People(slots, counts, scores, alive)


def assemble_from_peaks(
    peaks: Sequence[np.ndarray],
    pafs: np.ndarray | PafSampler,
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
    channels = pafs.shape[0] if isinstance(pafs, PafSampler) else np.shape(pafs)[0]
    pair_arr, _ = check_pairs(pairs, paf_channel_pairs, num_parts, channels)
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
    peaks, reader = coarse_parse_inputs(heatmaps, pafs, content, cfg, channels, scale=scale, factor=factor)
    return assemble_from_peaks(peaks, reader, pairs, channels, cfg, scale=scale)


def coarse_parse_inputs(
    heatmaps: np.ndarray,
    pafs: np.ndarray,
    content: tuple[int, int],
    config: AssemblyConfig,
    paf_channel_pairs: Sequence[tuple[int, int]] = BODY135_PAF_CHANNELS,
    *,
    scale: float = 1.0,
    factor: int = 8,
) -> tuple[list[np.ndarray], PafSampler]:
    """What ``assemble_from_peaks`` parses, from stride-``factor`` maps: the heatmap peaks (``find_peaks_coarse``,
    coordinates ``+ 0.5 / scale`` as ``assemble`` gives them) and the PAFs as a ``PafSampler`` of
    ``paf_channel_pairs``."""
    peaks = find_peaks_coarse(
        np.asarray(heatmaps, dtype=np.float32),
        content,
        config.nms_threshold,
        factor=factor,
        max_peaks=config.max_peaks,
        offset=float(0.5 / scale),
    )
    return peaks, PafSampler(pafs, content, np.asarray(paf_channel_pairs, np.int64), factor)
