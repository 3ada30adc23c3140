"""OpenPose PAF parsing (``densehuman.models.bottomup``) on synthetic BODY_135 heatmaps and PAFs.

People are random whole-body poses (a frontal template with random limb, head and global rotations), rendered as
OpenPose-style maps at the parsing resolution: a Gaussian per keypoint (merged over people with max) and, per PAF
pair, the unit vector A -> B within ``PAF_HALF_WIDTH`` px of the segment (averaged over people). OpenPose reports
a peak at pixel ``i`` as ``i + 0.5`` (``offset = 0.5 / scale``), so recovered keypoints are compared with the
rendered position + 0.5.
"""

from __future__ import annotations

import numpy as np
import pytest

from densehuman.keypoints.layouts import BODY135_PAF_PAIRS, NUM_BODY135
from densehuman.models.bottomup.assembly import (
    BODY135_PAF_CHANNELS,
    AssemblyConfig,
    _assemble_people,
    assemble,
    assemble_coarse,
    assemble_from_peaks,
    score_connections,
)
from densehuman.models.bottomup.coarse_maps import cubic_taps, find_peaks_coarse
from densehuman.models.bottomup.connections import BOUND_CHECK_MIN_RATIO, _Lines, _proven_fails
from densehuman.models.bottomup.paf_sampler import PafSampler
from densehuman.models.bottomup.peaks import cubic_resize_matrix, find_peaks, resize_maps_cubic, upsample_maps
from densehuman.models.bottomup.targets import make_targets

PAIRS = np.asarray(BODY135_PAF_PAIRS)
SIGMA_BODY = 2.0
SIGMA_FINE = 1.5  # hands and face (OpenPose: 5.75 / 7 of the body sigma)
PAF_HALF_WIDTH = 2.5
F = 65  # first face point
LEFT_ARM = [7, 9, *range(25, 45)]
RIGHT_ARM = [8, 10, *range(45, 65)]
LEFT_LEG = [13, 15, 19, 20, 21]
RIGHT_LEG = [14, 16, 22, 23, 24]
HEAD = [0, 1, 2, 3, 4, 18, *range(65, 135)]


# ------------------------------------------------------------------------------------------- synthetic people
def template() -> np.ndarray:
    """(135, 2) frontal whole-body pose, person height 1 (x to the image right, y down, hips at 0)."""
    t = np.zeros((NUM_BODY135, 2))
    body = {
        0: (0, -0.395), 1: (0.03, -0.425), 2: (-0.03, -0.425), 3: (0.065, -0.41), 4: (-0.065, -0.41),
        5: (0.13, -0.27), 6: (-0.13, -0.27), 7: (0.17, -0.10), 8: (-0.17, -0.10), 9: (0.19, 0.05),
        10: (-0.19, 0.05), 11: (0.08, 0.02), 12: (-0.08, 0.02), 13: (0.09, 0.24), 14: (-0.09, 0.24),
        15: (0.09, 0.45), 16: (-0.09, 0.45), 17: (0, -0.32), 18: (0, -0.53),
        19: (0.13, 0.49), 20: (0.16, 0.48), 21: (0.085, 0.475),
        22: (-0.13, 0.49), 23: (-0.16, 0.48), 24: (-0.085, 0.475),
    }  # fmt: skip
    for k, xy in body.items():
        t[k] = xy
    for side, wrist, first in ((1, 9, 25), (-1, 10, 45)):
        for finger in range(5):
            angle = np.deg2rad(-40 + 20 * finger) * side
            direction = np.array([np.sin(angle), np.cos(angle)])
            reach = (0.02, 0.035, 0.05, 0.065) if finger == 0 else (0.05, 0.068, 0.086, 0.104)
            for j in range(4):
                t[first + 4 * finger + j] = t[wrist] + reach[j] * direction
    theta = np.pi * np.arange(17) / 16
    t[F : F + 17] = np.stack([-0.065 * np.cos(theta), -0.43 + 0.08 * np.sin(theta)], 1)  # jaw
    brow = np.linspace(0, 1, 5)
    t[F + 17 : F + 22] = np.stack([-0.05 + 0.04 * brow, -0.46 - 0.006 * np.sin(np.pi * brow)], 1)
    t[F + 22 : F + 27] = np.stack([0.01 + 0.04 * brow, -0.46 - 0.006 * np.sin(np.pi * brow)], 1)
    t[F + 27 : F + 31] = np.stack([np.zeros(4), np.linspace(-0.45, -0.41, 4)], 1)  # bridge
    t[F + 31 : F + 36] = np.stack([np.linspace(-0.02, 0.02, 5), np.full(5, -0.40)], 1)  # lower nose
    eye = [(-0.012, 0), (-0.004, -0.005), (0.004, -0.005), (0.012, 0), (0.004, 0.005), (-0.004, 0.005)]
    for k, (ex, ey) in enumerate(eye):
        t[F + 36 + k] = (-0.03 + ex, -0.435 + ey)  # right eye, outer corner first
        t[F + 42 + k] = (0.03 + ex, -0.435 + ey)  # left eye, inner corner first
    angle = np.pi + 2 * np.pi * np.arange(12) / 12
    t[F + 48 : F + 60] = np.stack([0.025 * np.cos(angle), -0.375 + 0.01 * np.sin(angle)], 1)
    angle = np.pi + 2 * np.pi * np.arange(8) / 8
    t[F + 60 : F + 68] = np.stack([0.016 * np.cos(angle), -0.375 + 0.005 * np.sin(angle)], 1)
    t[F + 68], t[F + 69] = (-0.03, -0.435), (0.03, -0.435)
    return t


def rotate(points: np.ndarray, index: list[int], pivot: int, angle: float) -> None:
    c, s = np.cos(angle), np.sin(angle)
    rel = points[index] - points[pivot]
    points[index] = points[pivot] + rel @ np.array([[c, s], [-s, c]])


def random_person(rng: np.random.Generator, center: tuple[float, float], height: float) -> np.ndarray:
    """(135, 2) pixel positions of a random pose around ``center``."""
    p = template()
    rotate(p, LEFT_ARM, 5, rng.uniform(-0.6, 0.6))
    rotate(p, LEFT_ARM[1:], 7, rng.uniform(-0.6, 0.6))
    rotate(p, RIGHT_ARM, 6, rng.uniform(-0.6, 0.6))
    rotate(p, RIGHT_ARM[1:], 8, rng.uniform(-0.6, 0.6))
    rotate(p, LEFT_LEG, 11, rng.uniform(-0.3, 0.3))
    rotate(p, LEFT_LEG[1:], 13, rng.uniform(-0.3, 0.3))
    rotate(p, RIGHT_LEG, 12, rng.uniform(-0.3, 0.3))
    rotate(p, RIGHT_LEG[1:], 14, rng.uniform(-0.3, 0.3))
    rotate(p, HEAD, 17, rng.uniform(-0.25, 0.25))
    rotate(p, list(range(NUM_BODY135)), 17, rng.uniform(-0.2, 0.2))
    return p * height * rng.uniform(0.95, 1.05) + np.asarray(center)


def render(
    people: list[np.ndarray],
    shape: tuple[int, int],
    visible: list[np.ndarray] | None = None,
    drop_pairs: list[set[int]] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(135, H, W) heatmaps (max over people) and (304, H, W) PAFs (mean over people)."""
    height, width = shape
    heat = np.zeros((NUM_BODY135, height, width), np.float32)
    paf_sum = np.zeros((2 * len(PAIRS), height, width), np.float32)
    paf_count = np.zeros((len(PAIRS), height, width), np.float32)
    for n, person in enumerate(people):
        vis = visible[n] if visible is not None else np.ones(NUM_BODY135, bool)
        dropped = drop_pairs[n] if drop_pairs is not None else set()
        for k in np.flatnonzero(vis):
            sigma = SIGMA_BODY if k < 25 else SIGMA_FINE
            x, y = person[k]
            x0, x1 = max(int(x - 4 * sigma), 0), min(int(x + 4 * sigma) + 2, width)
            y0, y1 = max(int(y - 4 * sigma), 0), min(int(y + 4 * sigma) + 2, height)
            gy, gx = np.mgrid[y0:y1, x0:x1]
            g = np.exp(-((gx - x) ** 2 + (gy - y) ** 2) / (2 * sigma**2)).astype(np.float32)
            np.maximum(heat[k, y0:y1, x0:x1], g, out=heat[k, y0:y1, x0:x1])
        for i, (a, b) in enumerate(PAIRS):
            if i in dropped or not (vis[a] and vis[b]):
                continue
            pa, pb = person[a], person[b]
            length = np.linalg.norm(pb - pa)
            assert length > 0.5, f"degenerate limb {i}"
            u = (pb - pa) / length
            w = PAF_HALF_WIDTH
            x0, x1 = max(int(min(pa[0], pb[0]) - w) - 1, 0), min(int(max(pa[0], pb[0]) + w) + 2, width)
            y0, y1 = max(int(min(pa[1], pb[1]) - w) - 1, 0), min(int(max(pa[1], pb[1]) + w) + 2, height)
            gy, gx = np.mgrid[y0:y1, x0:x1]
            rx, ry = gx - pa[0], gy - pa[1]
            along = rx * u[0] + ry * u[1]
            on = (np.abs(rx * u[1] - ry * u[0]) <= w) & (along >= -w) & (along <= length + w)
            paf_sum[2 * i, y0:y1, x0:x1] += on * np.float32(u[0])
            paf_sum[2 * i + 1, y0:y1, x0:x1] += on * np.float32(u[1])
            paf_count[i, y0:y1, x0:x1] += on
    pafs = paf_sum / np.maximum(np.repeat(paf_count, 2, axis=0), 1)
    return heat, pafs


def match(found: np.ndarray, truth: list[np.ndarray]) -> list[int]:
    """For each true person, the found person nearest on the parts both have (found coordinates - 0.5)."""
    out = []
    for person in truth:
        dist = [np.abs(f[:, :2] - 0.5 - person).max(axis=1)[f[:, 2] > 0].mean() for f in found]
        out.append(int(np.argmin(dist)))
    return out


def assert_recovered(found: np.ndarray, truth: list[np.ndarray], missing: list[list[int]] | None = None) -> None:
    assert len(found) == len(truth)
    order = match(found, truth)
    assert sorted(order) == list(range(len(truth)))
    for n, (f, person) in enumerate(zip(found[order], truth, strict=True)):
        gone = missing[n] if missing else []
        present = np.setdiff1d(np.arange(NUM_BODY135), gone)
        assert (f[present, 2] > 0).all(), f"person {n} lost parts {present[f[present, 2] <= 0]}"
        err = np.abs(f[present, :2] - 0.5 - person[present]).max()
        assert err < 1.0, f"person {n}: max error {err:.2f} px"
        assert (f[gone] == 0).all()


def grid_people(rng: np.random.Generator, count: int, shape: tuple[int, int], height: float) -> list[np.ndarray]:
    step = shape[1] / count
    return [random_person(rng, (step * (i + 0.5), shape[0] * 0.5), height) for i in range(count)]


# ------------------------------------------------------------------------------------------------ assembly
@pytest.mark.parametrize("seed", [0, 1])
def test_every_person_recovered(seed: int) -> None:
    rng = np.random.default_rng(seed)
    shape = (200, 480)
    people = grid_people(rng, 3, shape, 160.0)
    heat, pafs = render(people, shape)
    keypoints, scores = assemble(heat, pafs)
    assert keypoints.shape == (3, NUM_BODY135, 3)
    assert scores.shape == (3,)
    assert_recovered(keypoints, people)
    assert (scores > 0).all()


def test_crossing_people_are_not_mixed() -> None:
    shape = (220, 260)
    first, second = template().copy(), template().copy()
    rotate(first, list(range(NUM_BODY135)), 11, 0.55)
    rotate(second, list(range(NUM_BODY135)), 11, -0.55)
    people = [first * 170 + (118, 112), second * 170 + (142, 112)]
    same_part = np.linalg.norm(people[0] - people[1], axis=1)
    assert same_part.min() > 6  # peaks of one part stay apart; the limbs cross
    heat, pafs = render(people, shape)
    keypoints, _ = assemble(heat, pafs)
    assert_recovered(keypoints, people)


def test_missing_part_stays_missing() -> None:
    rng = np.random.default_rng(3)
    shape = (200, 320)
    people = grid_people(rng, 2, shape, 160.0)
    visible = [np.ones(NUM_BODY135, bool), np.ones(NUM_BODY135, bool)]
    visible[0][7] = False  # LElbow: the wrist and hand still attach through the redundant shoulder-wrist PAF
    visible[1][F + 68] = False  # RPupil
    heat, pafs = render(people, shape, visible)
    keypoints, _ = assemble(heat, pafs)
    assert_recovered(keypoints, people, missing=[[7], [F + 68]])


def test_face_fragment_is_filled_into_its_person() -> None:
    rng = np.random.default_rng(4)
    shape = (200, 200)
    people = grid_people(rng, 1, shape, 160.0)
    jaw_links = {i for i, (a, b) in enumerate(PAIRS) if (a, b) in {(F, F + 17), (F + 16, F + 26)}}
    assert len(jaw_links) == 2
    heat, pafs = render(people, shape, drop_pairs=[jaw_links])  # the jaw contour becomes a face-only fragment
    keypoints, _ = assemble(heat, pafs)
    assert_recovered(keypoints, people)


def part_person(center: tuple[float, float], parts: list[int]) -> tuple[np.ndarray, np.ndarray]:
    person = template() * 160 + np.asarray(center)
    visible = np.zeros(NUM_BODY135, bool)
    visible[parts] = True
    return person, visible


def test_part_count_and_leg_filters() -> None:
    shape = (200, 640)
    full = template() * 160 + (80, 100)
    two, two_vis = part_person((240, 100), [13, 15])  # LKnee-LAnkle: 2 parts < 3
    three, three_vis = part_person((360, 100), [11, 13, 15])  # LHip-LKnee-LAnkle: kept
    leg, leg_vis = part_person((480, 100), [11, 13, 15, 19, 20, 21])  # 3 once feet are removed (<= 4): dropped
    hand, hand_vis = part_person((580, 100), list(range(45, 65)))  # a hand counts as one part
    people = [full, two, three, leg, hand]
    visible = [np.ones(NUM_BODY135, bool), two_vis, three_vis, leg_vis, hand_vis]
    heat, pafs = render(people, shape, visible)
    keypoints, _ = assemble(heat, pafs)
    assert len(keypoints) == 2
    assert_recovered(keypoints, [full, three], missing=[[], list(np.flatnonzero(~three_vis))])


def test_nobody_kept_retries_with_feet_counted() -> None:
    leg, leg_vis = part_person((100, 60), [11, 13, 15, 19, 20, 21])
    heat, pafs = render([leg], (200, 200), [leg_vis])
    keypoints, _ = assemble(heat, pafs)  # dropped by the feet rule, kept by the maximize_positives rerun
    assert_recovered(keypoints, [leg], missing=[list(np.flatnonzero(~leg_vis))])


def test_result_does_not_depend_on_person_order() -> None:
    rng = np.random.default_rng(5)
    shape = (200, 480)
    people = grid_people(rng, 3, shape, 160.0)
    results = []
    for order in ([0, 1, 2], [2, 0, 1]):
        heat, pafs = render([people[i] for i in order], shape)
        keypoints, scores = assemble(heat, pafs)
        rank = np.argsort(keypoints[:, 0, 0])
        results.append((keypoints[rank], scores[rank]))
    np.testing.assert_allclose(results[0][0], results[1][0], atol=1e-5)
    np.testing.assert_allclose(results[0][1], results[1][1], atol=1e-6)


def test_scale_multiplies_coordinates() -> None:
    rng = np.random.default_rng(6)
    shape = (200, 200)
    people = grid_people(rng, 1, shape, 160.0)
    heat, pafs = render(people, shape)
    base, _ = assemble(heat, pafs)
    scaled, _ = assemble(heat, pafs, scale=2.0)
    found = base[0, :, 2] > 0
    # OpenPose: (pixel + 0.5 / scale) * scale
    np.testing.assert_allclose(scaled[0, found, :2], (base[0, found, :2] - 0.5) * 2 + 0.5, atol=1e-3)


# --------------------------------------------------------------------------------------------------- peaks
def gaussian(shape: tuple[int, int], centers: list[tuple[float, float]], sigma: float = 2.0) -> np.ndarray:
    gy, gx = np.mgrid[0 : shape[0], 0 : shape[1]]
    maps = [np.exp(-((gx - x) ** 2 + (gy - y) ** 2) / (2 * sigma**2)) for x, y in centers]
    return np.max(maps, axis=0).astype(np.float32)


def test_close_peaks_merge_and_far_peaks_do_not() -> None:
    close = gaussian((40, 60), [(20.3, 15.0), (21.2, 15.0)])  # 0.9 px apart: one 3x3 maximum
    far = gaussian((40, 60), [(20.3, 15.0), (26.4, 15.0)])
    peaks = find_peaks(np.stack([close, far]), 0.05)
    assert len(peaks[0]) == 1
    assert 20.3 + 0.5 < peaks[0][0, 0] < 21.2 + 0.5
    assert len(peaks[1]) == 2


def test_peak_refinement_threshold_border_and_cap() -> None:
    sub = gaussian((30, 30), [(12.3, 17.6)])
    peaks = find_peaks(sub[None], 0.05)[0]
    window = sub[15:22, 9:16].astype(np.float64)  # the 7x7 window around the integer peak (12, 18)
    gy, gx = np.mgrid[15:22, 9:16]
    mean = [(gx * window).sum() / window.sum(), (gy * window).sum() / window.sum()]
    np.testing.assert_allclose(peaks[0], [mean[0] + 0.5, mean[1] + 0.5, sub[18, 12]], rtol=0, atol=1e-4)
    np.testing.assert_allclose(peaks[0, :2], [12.8, 18.1], atol=0.2)  # truncation pulls toward the pixel
    assert not find_peaks(sub[None] * 0.04, 0.05)[0].size  # below the threshold
    border = gaussian((30, 30), [(0.0, 12.0), (29.0, 20.0)])
    assert not find_peaks(border[None], 0.05)[0].size  # the outermost pixels are never peaks
    many = gaussian((40, 40), [(x, y) for y in (8, 20, 32) for x in (8, 20, 32)], sigma=1.5)
    capped = find_peaks(many[None], 0.05, max_peaks=4)[0]
    np.testing.assert_allclose(capped[:, :2] - 0.5, [(8, 8), (20, 8), (32, 8), (8, 20)], atol=0.05)


def test_peaks_match_dense_strict_nms() -> None:
    rng = np.random.default_rng(7)
    maps = rng.random((3, 40, 50)).astype(np.float32)
    maps[0] = np.round(maps[0] * 4) / 4  # plateaus: equal neighbours are not peaks
    peaks = find_peaks(maps, 0.3, max_peaks=1000, offset=0.0)
    inner = maps[:, 1:-1, 1:-1]
    strict = inner > 0.3
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            if dy or dx:
                strict &= inner > maps[:, 1 + dy : 39 + dy, 1 + dx : 49 + dx]
    for k in range(3):
        ys, xs = np.nonzero(strict[k])
        np.testing.assert_array_equal(peaks[k][:, 2], maps[k, ys + 1, xs + 1])


# ------------------------------------------------------------------------------- scalar OpenPose references
def reference_pair_score(
    a: np.ndarray, b: np.ndarray, map_x: np.ndarray, map_y: np.ndarray, cfg: AssemblyConfig
) -> np.float32:
    """``process()`` of bodyPartConnectorBase.cu, line by line in float32."""
    f = np.float32
    height, width = map_x.shape
    dx, dy = f(b[0]) - f(a[0]), f(b[1]) - f(a[1])
    n = max(5, min(25, int(np.sqrt(f(5) * max(abs(dx), abs(dy))) + f(0.5))))
    norm = f(np.sqrt(dx * dx + dy * dy))
    if float(norm) > 1e-6:
        ux, uy = dx / norm, dy / norm
        total, count = f(0), 0
        step_x, step_y = dx / f(n), dy / f(n)
        for lm in range(n):
            mx = max(0, min(width - 1, int(f(a[0]) + f(lm) * step_x + f(0.5))))
            my = max(0, min(height - 1, int(f(a[1]) + f(lm) * step_y + f(0.5))))
            score = ux * map_x[my, mx] + uy * map_y[my, mx]
            if score > f(cfg.connect_inter_threshold):
                total += score
                count += 1
        if f(count) / f(n) > f(cfg.connect_inter_min_above_threshold):
            return total / f(count)
        if norm < f(np.sqrt(f(width * height))) / f(150):
            return f(float(f(cfg.nms_threshold)) + 1e-6)
    return f(-1)


@pytest.mark.parametrize("config", [AssemblyConfig(), AssemblyConfig.maximizing_positives()])
def test_pair_scores_match_scalar_reference(config: AssemblyConfig) -> None:
    rng = np.random.default_rng(8)
    shape = (60, 200)
    limbs = [
        np.array([[10.0, 10.0], [40.0, 30.0]]),
        np.array([[60.0, 50.0], [20.0, 45.0]]),
        np.array([[8.0, 40.0], [190.0, 25.0]]),  # long enough for the 25-sample cap
    ]
    pafs = np.zeros((2 * len(limbs), *shape), np.float32)
    for i, (pa, pb) in enumerate(limbs):
        u = (pb - pa) / np.linalg.norm(pb - pa)
        gy, gx = np.mgrid[0 : shape[0], 0 : shape[1]]
        rx, ry = gx - pa[0], gy - pa[1]
        along = rx * u[0] + ry * u[1]
        on = (np.abs(rx * u[1] - ry * u[0]) <= 1.5) & (along >= 0) & (along <= np.linalg.norm(pb - pa))
        pafs[2 * i] += on * u[0] + rng.normal(0, 0.05, shape) * on
        pafs[2 * i + 1] += on * u[1]
    pafs += rng.normal(0, 0.03, pafs.shape).astype(np.float32)
    peaks = []
    for pa, pb in limbs:
        for end in (pa, pb):
            pts = np.concatenate([end + rng.normal(0, 0.7, (3, 2)), rng.uniform(1, 59, (5, 2)), [end + 0.8]])
            pts = np.clip(pts, 0, np.array(shape[::-1]) - 1)
            peaks.append(np.column_stack([pts, rng.uniform(0.1, 1, len(pts))]).astype(np.float32))
    peaks[1][0, :2] = peaks[0][0, :2]  # coincident: never connected
    peaks.append(peaks[0] + np.float32([0.3, 0.2, 0]))  # 0.36 px from part 0's peaks: the close-pair rule
    pairs, channels = [(0, 1), (2, 3), (0, 3), (4, 5), (0, 6)], [(0, 1), (2, 3), (0, 1), (4, 5), (0, 1)]
    pid, ia, ib, score = score_connections(peaks, pafs, pairs, channels, config)
    got = {(int(p), int(i), int(j)): s for p, i, j, s in zip(pid, ia, ib, score, strict=True)}
    expected = {}
    for p, ((a, b), (cx, cy)) in enumerate(zip(pairs, channels, strict=True)):
        for i in range(len(peaks[a])):
            for j in range(len(peaks[b])):
                s = reference_pair_score(peaks[a][i], peaks[b][j], pafs[cx], pafs[cy], config)
                if float(s) > 1e-6:
                    expected[(p, i, j)] = s
    assert got.keys() == expected.keys()
    assert len(expected) >= 6
    close = np.float32(float(np.float32(config.nms_threshold)) + 1e-6)
    assert sum(value == close for value in expected.values()) >= 3
    for key, value in expected.items():
        assert got[key] == value, key


def reference_people(
    connections: list[tuple[float, int, int, int]], pairs: list[tuple[int, int]], peak_scores: list[np.ndarray]
) -> list[tuple[list[int], float]]:
    """``pafVectorIntoPeopleVector`` as first written (people erased at once, indices shifted)."""
    num_parts = len(peak_scores)
    people: list[tuple[list[int], float]] = []
    assigned: dict[tuple[int, int], int] = {}
    for paf, pid, ia, ib in connections:
        part_a, part_b = pairs[pid]
        who_a, who_b = assigned.get((part_a, ia), -1), assigned.get((part_b, ib), -1)
        if who_a < 0 and who_b < 0:
            row = [0] * (num_parts + 1)
            row[part_a], row[part_b], row[-1] = ia + 1, ib + 1, 2
            assigned[(part_a, ia)] = assigned[(part_b, ib)] = len(people)
            people.append((row, float(peak_scores[part_a][ia]) + float(peak_scores[part_b][ib]) + paf))
        elif (who_a >= 0) != (who_b >= 0):
            one = who_a if who_a >= 0 else who_b
            part, index = (part_b, ib) if who_a >= 0 else (part_a, ia)
            row, score = people[one]
            if row[part] == 0:
                row[part] = index + 1
                row[-1] += 1
                people[one] = (row, score + (float(peak_scores[part][index]) + paf))  # C++: second += peak + paf
                assigned[(part, index)] = one
        elif who_a == who_b:
            people[who_a] = (people[who_a][0], people[who_a][1] + paf)
        else:
            one, two = min(who_a, who_b), max(who_a, who_b)
            row1, row2 = people[one][0], people[two][0]
            if all(not (row1[k] > 0 and row2[k] > 0) for k in range(num_parts)):
                for k in range(num_parts):
                    if row1[k] == 0:
                        row1[k] = row2[k]
                row1[-1] += row2[-1]
                people[one] = (row1, people[one][1] + (people[two][1] + paf))
                del people[two]
                for key, value in assigned.items():
                    assigned[key] = one if value == two else value - 1 if value > two else value
    return people


@pytest.mark.parametrize("seed", range(4))
def test_greedy_assembly_matches_reference(seed: int) -> None:
    rng = np.random.default_rng(seed)
    num_parts = 9
    pairs = [(0, 1), (1, 2), (2, 3), (0, 4), (4, 5), (1, 5), (5, 6), (6, 7), (7, 8), (3, 8), (0, 8), (2, 6)]
    counts = rng.integers(1, 5, num_parts)
    peak_scores = [rng.uniform(0.1, 1, c) for c in counts]
    connections = [
        (float(rng.uniform(0.05, 1)), p, i, j)
        for p, (a, b) in enumerate(pairs)
        for i in range(counts[a])
        for j in range(counts[b])
        if rng.random() < 0.7
    ]
    rng.shuffle(connections)  # any order: the function takes it as sorted
    expected = reference_people(connections, pairs, peak_scores)
    offsets = np.concatenate([[0], np.cumsum(counts)])
    people = _assemble_people(
        [pairs[c[1]][0] for c in connections],
        [pairs[c[1]][1] for c in connections],
        [offsets[pairs[c[1]][0]] + c[2] for c in connections],
        [offsets[pairs[c[1]][1]] + c[3] for c in connections],
        [c[0] for c in connections],
        np.concatenate(peak_scores).tolist(),
        num_parts,
    )
    alive = [p for p, keep in enumerate(people.alive) if keep]
    assert len(alive) == len(expected)
    for p, (row, score) in zip(alive, expected, strict=True):
        slots = people.slots[p]
        assert [s - offsets[k] + 1 if s >= 0 else 0 for k, s in enumerate(slots)] == row[:-1]
        assert people.counts[p] == row[-1]
        assert people.scores[p] == score


# ---------------------------------------------------------------------------------------------- upsampling
def reference_resize(source: np.ndarray, height: int, width: int) -> np.ndarray:
    """``resizeKernel`` + ``bicubicInterpolate`` (cuda.hu), per pixel in float32."""
    f = np.float32
    src_h, src_w = source.shape

    def cubic(v0: np.float32, v1: np.float32, v2: np.float32, v3: np.float32, d: np.float32) -> np.float32:
        return (
            (f(-0.5) * v0 + f(1.5) * v1 - f(1.5) * v2 + f(0.5) * v3) * d * d * d
            + (v0 - f(2.5) * v1 + f(2) * v2 - f(0.5) * v3) * d * d
            - f(0.5) * (v0 - v2) * d
            + v1
        )

    def taps(coord: np.float32, size: int) -> tuple[list[int], np.float32]:
        i1 = min(max(int(float(coord) + 1e-5), 0), size - 1)
        i0, i2 = max(0, i1 - 1), min(size - 1, i1 + 1)
        return [i0, i1, i2, min(size - 1, i2 + 1)], coord - f(i1)

    out = np.zeros((height, width), np.float32)
    for y in range(height):
        ys, dy = taps((f(y) + f(0.5)) * f(src_h) / f(height) - f(0.5), src_h)
        for x in range(width):
            xs, dx = taps((f(x) + f(0.5)) * f(src_w) / f(width) - f(0.5), src_w)
            rows = [
                cubic(f(source[r, xs[0]]), f(source[r, xs[1]]), f(source[r, xs[2]]), f(source[r, xs[3]]), dx)
                for r in ys
            ]
            out[y, x] = cubic(rows[0], rows[1], rows[2], rows[3], dy)
    return out


def test_upsampling_matches_openpose_kernel() -> None:
    rng = np.random.default_rng(9)
    maps = rng.random((2, 4, 5)).astype(np.float32)
    up = upsample_maps(maps, 8)
    assert up.shape == (2, 32, 40)
    for k in range(2):
        np.testing.assert_allclose(up[k], reference_resize(maps[k], 32, 40), atol=2e-6)
    np.testing.assert_allclose(resize_maps_cubic(np.full((1, 3, 3), 0.7, np.float32), 13, 17), 0.7, atol=1e-6)
    np.testing.assert_allclose(cubic_resize_matrix(6, 48).sum(axis=1), 1.0, atol=1e-6)


def test_assemble_from_peaks_matches_assemble() -> None:
    rng = np.random.default_rng(10)
    shape = (200, 200)
    people = grid_people(rng, 1, shape, 160.0)
    heat, pafs = render(people, shape)
    direct = assemble(heat, pafs)
    peaks = find_peaks(heat, 0.05)
    staged = assemble_from_peaks(peaks, pafs, BODY135_PAF_PAIRS, BODY135_PAF_CHANNELS)
    np.testing.assert_array_equal(direct[0], staged[0])
    np.testing.assert_array_equal(direct[1], staged[1])


# ------------------------------------------------------------------------------------------------ coarse maps
def stride8_scene(count: int, shape: tuple[int, int], seed: int, noise: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Stride-8 ground-truth maps (``make_targets``) of ``count`` people in two overlapping rows, plus noise."""
    rng = np.random.default_rng(seed)
    per_row = -(-count // 2)
    people = [
        random_person(rng, ((n % per_row + 0.5) * shape[1] / per_row, (n // per_row + 0.45) * shape[0] / 2), 150.0)
        for n in range(count)
    ]
    keypoints = np.concatenate([np.stack(people), np.full((count, NUM_BODY135, 1), 2.0)], axis=-1)
    targets = make_targets(keypoints, shape, np.ones(NUM_BODY135, bool))
    heat = targets.heatmaps + rng.normal(0.0, noise, targets.heatmaps.shape).astype(np.float32)
    return heat.astype(np.float32), targets.pafs.astype(np.float32)


@pytest.mark.numerics
def test_cubic_taps_and_paf_sampler_match_the_full_resize() -> None:
    rng = np.random.default_rng(3)
    maps = rng.normal(size=(4, 9, 13)).astype(np.float32)
    index, weight = cubic_taps(9, 72, 70)
    dense = np.zeros((70, 9), np.float32)
    np.add.at(dense, (np.arange(70)[:, None], index), weight)
    np.testing.assert_allclose(dense, cubic_resize_matrix(9, 72)[:70], atol=1e-7)
    full = upsample_maps(maps)[:, :70, :101]
    channel_pairs = np.array([[2, 0], [1, 3], [3, 3]])
    sampler = PafSampler(maps, (70, 101), channel_pairs)
    pair, y, x = rng.integers(0, 3, 500), rng.integers(0, 70, 500), rng.integers(0, 101, 500)
    # the corners and edges, where the taps are clamped
    y[:4], x[:4] = [0, 0, 69, 69], [0, 100, 0, 100]
    values = sampler.values(pair, y, x)
    np.testing.assert_allclose(values[:, 0], full[channel_pairs[pair, 0], y, x], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(values[:, 1], full[channel_pairs[pair, 1], y, x], rtol=1e-5, atol=1e-5)
    ux, uy = rng.normal(size=500).astype(np.float32), rng.normal(size=500).astype(np.float32)
    expected = ux * full[channel_pairs[pair, 0], y, x] + uy * full[channel_pairs[pair, 1], y, x]
    np.testing.assert_allclose(sampler.dot(pair, y, x, ux, uy), expected, rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match="outside"):
        PafSampler(maps, (80, 101), channel_pairs)
    with pytest.raises(ValueError, match="channels outside"):
        PafSampler(maps, (70, 101), np.array([[0, 4]]))


@pytest.mark.numerics
@pytest.mark.parametrize("shape", [(9, 13), (3, 2)])
def test_window_active_bounds_every_fine_pixel(shape: tuple[int, int]) -> None:
    """The bound check's proof of failure: where a pixel's 4x4 window holds no PAF vector longer than
    ``sqrt(limit)``, ``|PAF| <= gain * sqrt(limit)`` at that fine pixel; and ``window_active`` is the brute-force
    maximum over each window."""
    rng = np.random.default_rng(4)
    maps = rng.normal(size=(4, *shape)).astype(np.float32) * (rng.random((4, *shape)) < 0.08)
    maps[0, 1, 1], maps[2:] = 1.0, 0.0  # pair 0 holds a vector, pair 1 none
    channel_pairs = np.array([[0, 1], [2, 3]])
    content = (8 * shape[0] - 3, 8 * shape[1] - 5)
    sampler = PafSampler(maps, content, channel_pairs)
    full = upsample_maps(maps)[:, : content[0], : content[1]]
    magnitude = np.hypot(full[0::2], full[1::2])
    norms = np.zeros((2, max(shape[0], 4), max(shape[1], 4)), np.float32)
    norms[:, : shape[0], : shape[1]] = maps[0::2] ** 2 + maps[1::2] ** 2
    for limit in (0.05, 0.5, 2.0):
        active = sampler.window_active(limit)
        brute = np.array(
            [
                [
                    [norms[p, r : r + 4, c : c + 4].max() > limit for c in range(active.shape[2])]
                    for r in range(active.shape[1])
                ]
                for p in range(2)
            ]
        )
        np.testing.assert_array_equal(active, brute)
        quiet = ~active[:, sampler.window_row[:, None], sampler.window_col[None, :]]
        assert quiet.any()
        assert limit > 0.05 or not quiet.all()
        assert np.all(magnitude[quiet] <= sampler.gain * np.sqrt(limit) * (1 + 1e-5) + 1e-7)


@pytest.mark.numerics
@pytest.mark.parametrize("subset", [False, True])
def test_proven_fails_read_each_pixels_own_taps(subset: bool) -> None:
    """A sample provably fails exactly when no stride-8 cell its cubic taps read holds a PAF vector longer than
    threshold / gain (brute force from ``cubic_taps``), and then its upsampled value is at most the threshold."""
    rng = np.random.default_rng(6)
    shape, content = (9, 13), (69, 101)
    maps = (0.2 * rng.normal(size=(4, *shape)) * (rng.random((4, *shape)) < 0.15)).astype(np.float32)
    channel_pairs = np.array([[0, 1], [2, 3]])
    sampler = PafSampler(maps, content, channel_pairs)
    points = np.column_stack([rng.uniform(0, 100, 40), rng.uniform(0, 68, 40), np.ones(40)]).astype(np.float32)
    count = 300
    pair = rng.integers(0, 2, count)
    lines = _Lines(points, rng.integers(0, 40, count), rng.integers(0, 40, count), pair, channel_pairs, sampler)
    rows = np.sort(rng.choice(count, 200, replace=False)) if subset else np.arange(count)
    mx, my = rng.integers(0, content[1], (3, rows.size)), rng.integers(0, content[0], (3, rows.size))
    threshold = 0.3
    got = _proven_fails(lines, rows, sampler, mx, my, threshold)
    limit = (threshold / (sampler.gain * (1 + 1e-4))) ** 2
    norms = maps[0::2] ** 2 + maps[1::2] ** 2
    row_taps, col_taps = cubic_taps(shape[0], 8 * shape[0], content[0]), cubic_taps(shape[1], 8 * shape[1], content[1])
    full = upsample_maps(maps)[:, : content[0], : content[1]]
    expected = np.zeros(rows.size, int)
    for k in range(3):
        for r, (x, y) in enumerate(zip(mx[k], my[k], strict=True)):
            p = pair[rows[r]]
            cells_y, cells_x = row_taps[0][y][row_taps[1][y] != 0], col_taps[0][x][col_taps[1][x] != 0]
            if norms[p][np.ix_(cells_y, cells_x)].max() <= limit:
                expected[r] += 1
                assert np.hypot(full[2 * p, y, x], full[2 * p + 1, y, x]) <= threshold
    interior = np.all((my >= 16) & (my < content[0] - 16) & (mx >= 16) & (mx < content[1] - 16), axis=0)
    assert np.all(got <= expected)  # never more than the taps prove (the window may hold a zero-weight cell more)
    np.testing.assert_array_equal(got[interior], expected[interior])
    assert 0 < expected.sum() < 3 * rows.size


@pytest.mark.numerics
@pytest.mark.parametrize(
    ("count", "noise", "config"),
    [(12, 0.0, AssemblyConfig()), (20, 0.02, AssemblyConfig()), (20, 0.01, AssemblyConfig.maximizing_positives())],
)
def test_pair_scores_from_the_sampler_equal_those_from_the_full_maps(
    count: int, noise: float, config: AssemblyConfig
) -> None:
    """The bound check only drops pairs the full test rejects: the same pairs come out as from the upsampled maps,
    with the same scores (float32 rounding aside); 20 people make enough candidates for the bound check."""
    heat, pafs = stride8_scene(count, (368, 656), seed=count)
    rng = np.random.default_rng(count)
    pafs = pafs + rng.normal(0.0, noise, pafs.shape).astype(np.float32)
    peaks = find_peaks(upsample_maps(heat), 0.05)
    full = score_connections(peaks, upsample_maps(pafs), config=config)
    sampler = PafSampler(pafs, (368, 656), np.asarray(BODY135_PAF_CHANNELS))
    sampled = score_connections(peaks, sampler, config=config)
    candidates = sum(len(peaks[a]) * len(peaks[b]) for a, b in BODY135_PAF_PAIRS)
    assert (candidates * BOUND_CHECK_MIN_RATIO >= sampler.cells) == (count == 20)
    assert len(full[0]) > count * 100
    want = {(p, i, j): v for p, i, j, v in zip(*(a.tolist() for a in full), strict=True)}
    got = {(p, i, j): v for p, i, j, v in zip(*(a.tolist() for a in sampled), strict=True)}
    # The two paths round differently (BLAS resize against 4x4 sums), so a sample within float32 rounding of the
    # threshold may fall either way: at most one pair in a thousand may differ, the rest score the same.
    assert len(want.keys() ^ got.keys()) <= len(want) // 1000
    common = sorted(want.keys() & got.keys())
    np.testing.assert_allclose([got[k] for k in common], [want[k] for k in common], rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="other PAF channel pairs"):
        score_connections(peaks, PafSampler(pafs, (368, 656), np.zeros((152, 2), np.int64)))


@pytest.mark.numerics
@pytest.mark.parametrize(("count", "noise", "content"), [(1, 0.0, (368, 656)), (12, 0.01, (361, 650))])
def test_coarse_parse_matches_the_upsampled_parse(count: int, noise: float, content: tuple[int, int]) -> None:
    heat, pafs = stride8_scene(count, (368, 656), seed=count, noise=noise)
    up_heat = upsample_maps(heat)[:, : content[0], : content[1]]
    up_pafs = upsample_maps(pafs)[:, : content[0], : content[1]]
    exact = find_peaks(up_heat, 0.05, offset=0.25)
    coarse = find_peaks_coarse(heat, content, 0.05, offset=0.25)
    assert sum(len(p) for p in exact) >= count * NUM_BODY135 * 0.9
    for want, got in zip(exact, coarse, strict=True):
        assert want.shape == got.shape
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-3)
    keypoints, scores = assemble(up_heat, up_pafs, scale=2.0)
    fast_keypoints, fast_scores = assemble_coarse(heat, pafs, content, scale=2.0)
    assert len(keypoints) >= count
    np.testing.assert_allclose(fast_keypoints, keypoints, rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(fast_scores, scores, rtol=1e-4, atol=1e-4)


@pytest.mark.numerics
def test_coarse_parse_in_a_crowd_finds_nearly_every_peak() -> None:
    """20 overlapping people: a same-part peak more than two cells from any coarse maximum can be missed (the
    documented limit of the fast path); almost all are found and the same people come out."""
    heat, pafs = stride8_scene(20, (368, 656), seed=1)
    exact = find_peaks(upsample_maps(heat), 0.05)
    coarse = find_peaks_coarse(heat, (368, 656), 0.05)
    found = missed = 0
    for want, got in zip(exact, coarse, strict=True):
        distance = np.abs(want[:, None, :2] - got[None, :, :2]).max(axis=2) if len(got) else np.full((len(want), 1), 9)
        hit = distance.min(axis=1) < 1e-3
        found, missed = found + int(hit.sum()), missed + int((~hit).sum())
        assert len(got) == int(hit.sum())  # nothing found that the full parse does not find
    assert missed <= 0.002 * (found + missed)
    keypoints, _ = assemble(upsample_maps(heat), upsample_maps(pafs))
    fast_keypoints, _ = assemble_coarse(heat, pafs, (368, 656))
    assert len(fast_keypoints) == len(keypoints) == 20
    assert abs(int((fast_keypoints[..., 2] > 0).sum()) - int((keypoints[..., 2] > 0).sum())) <= 3


def test_coarse_peaks_cap_and_empty_maps() -> None:
    heat, _ = stride8_scene(3, (368, 656), seed=5)
    exact = find_peaks(upsample_maps(heat), 0.05, max_peaks=2)
    coarse = find_peaks_coarse(heat, (368, 656), 0.05, max_peaks=2)
    assert max(len(p) for p in coarse) == 2
    for want, got in zip(exact, coarse, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-3)
    assert all(len(p) == 0 for p in find_peaks_coarse(np.zeros((4, 10, 10), np.float32), (80, 80)))
    with pytest.raises(ValueError, match="threshold"):
        find_peaks_coarse(heat, (368, 656), 1.5)
