"""OpenPose BODY_135 PAF parsing on the CPU: median milliseconds for 1, 5, 10 and 20 people.

    OMP_NUM_THREADS=1 python benchmarks/wholebody_assembly.py [--runs 5] [--people 1 5 10 20]

Maps are made the way OpenPose makes them at inference: synthetic whole-body people (a frontal BODY_135 template
with random limb and head rotations) are drawn as OpenPose's ground truth on the stride-8 grid of a 368x656 net
input (OpenPose's default ``--net_resolution -1x368`` on a 16:9 image): Gaussians with sigma 7 px (body, feet) and
5.75 px (hands, face), truncated at 1 %, merged with max; PAFs of half-width 1 cell, averaged over people. These
46x82 maps (135 heatmaps, 304 PAF channels) are upsampled by 8 to 368x656 with ``upsample_maps`` (OpenPose's GPU
cubic resize), the resolution OpenPose parses at. Up to 5 people stand in one row, 300 px tall; 10 and 20 stand
in two rows, 166 px tall, neighbours' arms overlapping at 20.

Columns: ``peaks`` is ``find_peaks`` (NMS + 7x7 refinement over the 135 maps); ``connect+assemble`` is
``assemble_from_peaks`` (line integrals of all candidate pairs of the 152 PAFs, global sort, greedy assembly,
filters); ``upsample`` is the one-off 8x resize of all 439 channels; ``found`` is the number of people assembled;
``pairs`` the number of candidate pairs scored.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from functools import partial

import numpy as np

from densehuman.keypoints.layouts import BODY135_PAF_PAIRS, NUM_BODY135
from densehuman.models.bottomup.assembly import BODY135_PAF_CHANNELS, AssemblyConfig, assemble_from_peaks
from densehuman.models.bottomup.peaks import find_peaks, upsample_maps

NET_H, NET_W, STRIDE = 368, 656, 8
PAIRS = np.asarray(BODY135_PAF_PAIRS)
F = 65


def template() -> np.ndarray:
    """(135, 2) frontal pose of height 1 (x right, y down, hips at 0); the same template as the tests use."""
    t = np.zeros((NUM_BODY135, 2))
    body = [
        (0, -0.395), (0.03, -0.425), (-0.03, -0.425), (0.065, -0.41), (-0.065, -0.41), (0.13, -0.27),
        (-0.13, -0.27), (0.17, -0.10), (-0.17, -0.10), (0.19, 0.05), (-0.19, 0.05), (0.08, 0.02), (-0.08, 0.02),
        (0.09, 0.24), (-0.09, 0.24), (0.09, 0.45), (-0.09, 0.45), (0, -0.32), (0, -0.53), (0.13, 0.49),
        (0.16, 0.48), (0.085, 0.475), (-0.13, 0.49), (-0.16, 0.48), (-0.085, 0.475),
    ]  # fmt: skip
    t[:25] = body
    for side, wrist, first in ((1, 9, 25), (-1, 10, 45)):
        for finger in range(5):
            angle = np.deg2rad(-40 + 20 * finger) * side
            reach = (0.02, 0.035, 0.05, 0.065) if finger == 0 else (0.05, 0.068, 0.086, 0.104)
            for j in range(4):
                t[first + 4 * finger + j] = t[wrist] + reach[j] * np.array([np.sin(angle), np.cos(angle)])
    theta = np.pi * np.arange(17) / 16
    t[F : F + 17] = np.stack([-0.065 * np.cos(theta), -0.43 + 0.08 * np.sin(theta)], 1)
    brow = np.linspace(0, 1, 5)
    t[F + 17 : F + 22] = np.stack([-0.05 + 0.04 * brow, -0.46 - 0.006 * np.sin(np.pi * brow)], 1)
    t[F + 22 : F + 27] = np.stack([0.01 + 0.04 * brow, -0.46 - 0.006 * np.sin(np.pi * brow)], 1)
    t[F + 27 : F + 31] = np.stack([np.zeros(4), np.linspace(-0.45, -0.41, 4)], 1)
    t[F + 31 : F + 36] = np.stack([np.linspace(-0.02, 0.02, 5), np.full(5, -0.40)], 1)
    eye = [(-0.012, 0), (-0.004, -0.005), (0.004, -0.005), (0.012, 0), (0.004, 0.005), (-0.004, 0.005)]
    for k, (ex, ey) in enumerate(eye):
        t[F + 36 + k] = (-0.03 + ex, -0.435 + ey)
        t[F + 42 + k] = (0.03 + ex, -0.435 + ey)
    angle = np.pi + 2 * np.pi * np.arange(12) / 12
    t[F + 48 : F + 60] = np.stack([0.025 * np.cos(angle), -0.375 + 0.01 * np.sin(angle)], 1)
    angle = np.pi + 2 * np.pi * np.arange(8) / 8
    t[F + 60 : F + 68] = np.stack([0.016 * np.cos(angle), -0.375 + 0.005 * np.sin(angle)], 1)
    t[F + 68], t[F + 69] = (-0.03, -0.435), (0.03, -0.435)
    return t


def rotate(points: np.ndarray, index: list[int], pivot: int, angle: float) -> None:
    c, s = np.cos(angle), np.sin(angle)
    points[index] = points[pivot] + (points[index] - points[pivot]) @ np.array([[c, s], [-s, c]])


def random_person(rng: np.random.Generator, center: tuple[float, float], height: float) -> np.ndarray:
    p = template()
    for chain, pivot, elbow in (([7, 9, *range(25, 45)], 5, 7), ([8, 10, *range(45, 65)], 6, 8)):
        rotate(p, chain, pivot, rng.uniform(-0.6, 0.6))
        rotate(p, chain[1:], elbow, rng.uniform(-0.6, 0.6))
    for chain, pivot, knee in (([13, 15, 19, 20, 21], 11, 13), ([14, 16, 22, 23, 24], 12, 14)):
        rotate(p, chain, pivot, rng.uniform(-0.3, 0.3))
        rotate(p, chain[1:], knee, rng.uniform(-0.3, 0.3))
    rotate(p, [0, 1, 2, 3, 4, 18, *range(65, 135)], 17, rng.uniform(-0.25, 0.25))
    rotate(p, list(range(NUM_BODY135)), 17, rng.uniform(-0.2, 0.2))
    return p * height + np.asarray(center)


def people_layout(rng: np.random.Generator, count: int) -> list[np.ndarray]:
    rows = 1 if count <= 5 else 2
    per_row = -(-count // rows)
    height = min(300.0, 0.9 * NET_H / rows)
    people = []
    for n in range(count):
        row, col = divmod(n, per_row)
        center = ((col + 0.5) * NET_W / per_row, (row + 0.5) * NET_H / rows + 0.03 * height)
        people.append(random_person(rng, center, height))
    return people


def render_stride8(people: list[np.ndarray]) -> np.ndarray:
    """(135 + 304, 46, 82) OpenPose ground truth on the stride-8 grid (putGaussianMaps / putVectorMaps)."""
    gh, gw = NET_H // STRIDE, NET_W // STRIDE
    gy, gx = np.mgrid[0:gh, 0:gw].astype(np.float64)
    px, py = STRIDE / 2 - 0.5 + gx * STRIDE, STRIDE / 2 - 0.5 + gy * STRIDE  # grid samples in input pixels
    heat = np.zeros((NUM_BODY135, gh, gw), np.float32)
    paf_sum = np.zeros((2 * len(PAIRS), gh, gw), np.float32)
    paf_count = np.zeros((len(PAIRS), gh, gw), np.float32)
    for person in people:
        for k in range(NUM_BODY135):
            sigma = 7.0 if k < 25 else 5.75
            exponent = ((px - person[k, 0]) ** 2 + (py - person[k, 1]) ** 2) / (2 * sigma**2)
            np.maximum(heat[k], np.where(exponent <= 4.6052, np.exp(-exponent), 0), out=heat[k])
        for i, (a, b) in enumerate(PAIRS):
            pa, pb = person[a] / STRIDE, person[b] / STRIDE
            length = np.linalg.norm(pb - pa)
            if length < 1e-6:
                continue
            u = (pb - pa) / length
            rx, ry = gx - pa[0], gy - pa[1]
            lo, hi = np.minimum(pa, pb) - 1, np.maximum(pa, pb) + 1
            on = (np.abs(rx * u[1] - ry * u[0]) <= 1) & (gx >= lo[0]) & (gx <= hi[0]) & (gy >= lo[1]) & (gy <= hi[1])
            paf_sum[2 * i] += on * np.float32(u[0])
            paf_sum[2 * i + 1] += on * np.float32(u[1])
            paf_count[i] += on
    pafs = paf_sum / np.maximum(np.repeat(paf_count, 2, axis=0), 1)
    return np.concatenate([heat, pafs])


def median_ms(fn: Callable[[], object], runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--people", type=int, nargs="+", default=[1, 5, 10, 20])
    args = parser.parse_args()
    config = AssemblyConfig()
    print(f"maps {NET_H}x{NET_W} (46x82 upsampled x8), BODY_135, median of {args.runs} runs")
    print(f"{'people':>6} {'upsample ms':>11} {'peaks ms':>9} {'connect+assemble ms':>19} {'found':>5} {'pairs':>7}")
    for count in args.people:
        rng = np.random.default_rng(count)
        net = render_stride8(people_layout(rng, count))
        start = time.perf_counter()
        maps = upsample_maps(net, STRIDE)
        upsample = (time.perf_counter() - start) * 1e3
        heat, pafs = maps[:NUM_BODY135], np.ascontiguousarray(maps[NUM_BODY135:])
        peaks = find_peaks(heat, config.nms_threshold)
        keypoints, _ = assemble_from_peaks(peaks, pafs, BODY135_PAF_PAIRS, BODY135_PAF_CHANNELS, config)
        pairs = sum(len(peaks[a]) * len(peaks[b]) for a, b in BODY135_PAF_PAIRS)
        t_peaks = median_ms(partial(find_peaks, heat, config.nms_threshold), args.runs)
        connect = partial(assemble_from_peaks, peaks, pafs, BODY135_PAF_PAIRS, BODY135_PAF_CHANNELS, config)
        t_assemble = median_ms(connect, args.runs)
        print(f"{count:>6} {upsample:>11.0f} {t_peaks:>9.1f} {t_assemble:>19.1f} {len(keypoints):>5} {pairs:>7}")


if __name__ == "__main__":
    main()
