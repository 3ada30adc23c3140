"""BODY_135 training targets: known answers from openpose_caffe_train's ``putGaussianMaps`` / ``putVectorMaps`` and a
cell-by-cell loop port of ``generateLabelMap``."""

from __future__ import annotations

import math

import numpy as np
import pytest

from densehuman.keypoints.layouts import (
    BODY135_FLIP_INDEX,
    BODY135_FLIP_PAIRS,
    BODY135_KEYPOINT_NAMES,
    BODY135_PAF_PAIRS,
    NUM_BODY135,
)
from densehuman.models.bottomup.targets import (
    NUM_HEATMAPS,
    NUM_PAF_CHANNELS,
    TargetConfig,
    Targets,
    flip_keypoints,
    make_targets,
)

ALL = np.ones(NUM_BODY135, dtype=bool)
NAME = {name: k for k, name in enumerate(BODY135_KEYPOINT_NAMES)}
PAIR = {pair: i for i, pair in enumerate(BODY135_PAF_PAIRS)}


def people(*points: dict[int, tuple[float, float]]) -> np.ndarray:
    """(P, 135, 3) keypoints: every listed part gets v = 2, the rest v = 0."""
    out = np.zeros((len(points), NUM_BODY135, 3))
    for p, parts in enumerate(points):
        for k, (x, y) in parts.items():
            out[p, k] = (x, y, 2)
    return out


# ------------------------------------------------------------------------------------------------ channels
def test_channel_counts_and_defaults() -> None:
    cfg = TargetConfig()
    assert (cfg.stride, cfg.sigma, cfg.max_exponent, cfg.paf_threshold) == (8, 7.0, 4.6052, 1.0)
    sigmas = cfg.sigmas()
    assert sigmas.shape == (135,)
    np.testing.assert_allclose(sigmas[:25], 7.0)
    np.testing.assert_allclose(sigmas[25:], 5.75)  # 7 * (5.75 / 7) for the 40 hand and 70 face points
    assert NUM_HEATMAPS == 135  # BODY_135 has no background channel
    assert NUM_PAF_CHANNELS == 304 == 2 * len(BODY135_PAF_PAIRS)

    t = make_targets(people({0: (100.0, 100.0)}), (368, 480), ALL)
    assert isinstance(t, Targets)
    assert t.heatmaps.shape == t.heatmap_weights.shape == (135, 46, 60)
    assert t.pafs.shape == t.paf_weights.shape == (304, 46, 60)
    for a in (t.heatmaps, t.pafs, t.heatmap_weights, t.paf_weights):
        assert a.dtype == np.float32


def test_no_people_gives_zero_targets_and_full_weights() -> None:
    t = make_targets(np.zeros((0, 135, 3)), (64, 64), ALL)
    assert not t.heatmaps.any()
    assert not t.pafs.any()
    assert (t.heatmap_weights == 1).all()
    assert (t.paf_weights == 1).all()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"keypoints": np.zeros((1, 133, 3))}, "keypoints"),
        ({"labeled_parts": np.ones(133, dtype=bool)}, "labeled_parts"),
        ({"ignore_mask": np.zeros((10, 10), dtype=bool)}, "ignore_mask"),
        ({"image_size": (4, 64)}, "smaller"),
    ],
)
def test_bad_inputs_raise(kwargs: dict[str, object], match: str) -> None:
    args: dict[str, object] = {"keypoints": np.zeros((1, 135, 3)), "image_size": (64, 64), "labeled_parts": ALL}
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        make_targets(**args)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------- confidence maps
def test_single_body_keypoint_gaussian_known_answer() -> None:
    # Cell (gy, gx) samples pixel (8 gy + 3.5, 8 gx + 3.5); sigma = 7 -> 2 sigma^2 = 98.
    t = make_targets(people({NAME["LShoulder"]: (100.0, 60.0)}), (368, 368), ALL)
    hm = t.heatmaps[NAME["LShoulder"]]
    assert np.unravel_index(hm.argmax(), hm.shape) == (7, 12)  # (59.5, 99.5) is the nearest sample
    assert hm[7, 12] == pytest.approx(math.exp(-(0.5**2 + 0.5**2) / 98), abs=1e-6)  # 0.99491
    assert hm[7, 13] == pytest.approx(math.exp(-(7.5**2 + 0.5**2) / 98), abs=1e-6)  # x = 107.5
    assert hm[8, 12] == pytest.approx(math.exp(-(0.5**2 + 7.5**2) / 98), abs=1e-6)  # y = 67.5
    assert hm[7, 14] == pytest.approx(math.exp(-(15.5**2 + 0.5**2) / 98), abs=1e-6)  # exponent 2.45
    assert hm[6, 11] == pytest.approx(math.exp(-(8.5**2 + 8.5**2) / 98), abs=1e-6)  # (51.5, 91.5)


def test_gaussian_is_cut_at_one_percent() -> None:
    t = make_targets(people({NAME["LShoulder"]: (100.0, 60.0)}), (368, 368), ALL)
    hm = t.heatmaps[NAME["LShoulder"]]
    assert hm[9, 10] == 0.0  # exponent (16.5^2 + 15.5^2) / 98 = 5.23 > 4.6052, although exp(-5.23) = 0.0054
    assert hm[7, 15] == 0.0  # exponent (23.5^2 + 0.5^2) / 98 = 5.64
    assert hm[7, 9] == 0.0  # x = 75.5: exponent (24.5^2 + 0.5^2) / 98 = 6.13
    assert hm[9, 11] == pytest.approx(math.exp(-(8.5**2 + 15.5**2) / 98), abs=1e-6)  # exponent 3.19: kept
    assert hm.min() == 0.0
    assert (hm[hm > 0] >= 0.01 - 1e-6).all()
    assert np.count_nonzero(hm) == 21  # the samples within 7 * sqrt(2 * 4.6052) = 21.2 px of (100, 60)


def test_face_keypoint_uses_the_smaller_sigma() -> None:
    k = NAME["REye0"]
    t = make_targets(people({k: (100.0, 60.0)}), (368, 368), ALL)
    m = 2 * 5.75**2  # 66.125
    assert t.heatmaps[k, 7, 13] == pytest.approx(math.exp(-(7.5**2 + 0.5**2) / m), abs=1e-6)
    assert t.heatmaps[k, 7, 14] == pytest.approx(math.exp(-(15.5**2 + 0.5**2) / m), abs=1e-6)  # exponent 3.64
    assert t.heatmaps[k, 9, 11] == 0.0  # (8.5^2 + 15.5^2) / 66.125 = 4.73 > 4.6052 (kept with sigma 7)


def test_two_close_people_merge_with_max_not_sum() -> None:
    k = NAME["Nose"]
    p1, p2 = {k: (100.0, 100.0)}, {k: (116.0, 100.0)}
    both = make_targets(people(p1, p2), (368, 368), ALL).heatmaps[k]
    one = make_targets(people(p1), (368, 368), ALL).heatmaps[k]
    two = make_targets(people(p2), (368, 368), ALL).heatmaps[k]
    np.testing.assert_array_equal(both, np.maximum(one, two))
    # The cell between them (x = 107.5) is 7.5 px from one and 8.5 px from the other: it holds the larger value,
    # while a sum would pass 1 (0.562 + 0.477) and be clipped there.
    assert both[12, 13] == pytest.approx(math.exp(-(7.5**2 + 0.5**2) / 98), abs=1e-6)
    assert one[12, 13] + two[12, 13] > 1.0 > both[12, 13]
    assert both.max() <= 1.0


# ------------------------------------------------------------------------------------------------- PAFs
def test_paf_is_the_unit_vector_inside_the_limb_and_zero_outside() -> None:
    a, b = NAME["LShoulder"], NAME["LElbow"]
    i = PAIR[(a, b)]
    # In grid units A = (10, 10), B = (20, 10). The box is x in [round(9), round(21)) = 9..20 and
    # y in [round(9), round(11)) = 9..10: row 11 is within 1 cell of the line but outside the box.
    t = make_targets(people({a: (80.0, 80.0), b: (160.0, 80.0)}), (368, 368), ALL)
    expected = np.zeros((46, 46), dtype=np.float32)
    expected[9:11, 9:21] = 1.0
    np.testing.assert_array_equal(t.pafs[2 * i], expected)
    assert not t.pafs[2 * i + 1].any()
    others = np.delete(t.pafs, [2 * i, 2 * i + 1], axis=0)
    assert not others.any()  # the other limbs lack an end point


def test_diagonal_paf_matches_the_perpendicular_distance_rule() -> None:
    a, b = NAME["RHip"], NAME["RKnee"]
    i = PAIR[(a, b)]
    pa, pb = np.array([64.0, 40.0]), np.array([144.0, 100.0])  # direction (0.8, 0.6)
    t = make_targets(people({a: tuple(pa), b: tuple(pb)}), (200, 200), ALL)
    gy, gx = np.mgrid[0:25, 0:25]
    ga = pa / 8
    dist = np.abs((gx - ga[0]) * 0.6 - (gy - ga[1]) * 0.8)
    box = (gx >= 7) & (gx < 19) & (gy >= 4) & (gy < 14)  # round(8 - 1), round(18 + 1); round(5 - 1), round(12.5 + 1)
    on = (dist <= 1) & box
    assert on.sum() > 20
    np.testing.assert_allclose(t.pafs[2 * i][on], 0.8, atol=1e-6)
    np.testing.assert_allclose(t.pafs[2 * i + 1][on], 0.6, atol=1e-6)
    assert not t.pafs[2 * i][~on].any()
    assert not t.pafs[2 * i + 1][~on].any()
    np.testing.assert_array_equal(t.paf_weights[2 * i][on], 1.0)


def test_overlapping_limbs_of_two_people_average() -> None:
    a, b = NAME["LShoulder"], NAME["LElbow"]
    i = PAIR[(a, b)]
    horizontal = {a: (80.0, 120.0), b: (200.0, 120.0)}  # (1, 0) along grid row 15
    vertical = {a: (136.0, 64.0), b: (136.0, 184.0)}  # (0, 1) along grid column 17
    t = make_targets(people(horizontal, vertical), (368, 368), ALL)
    px, py = t.pafs[2 * i], t.pafs[2 * i + 1]
    assert (px[15, 17], py[15, 17]) == pytest.approx((0.5, 0.5))  # both limbs: the mean, not the sum
    assert (px[15, 12], py[15, 12]) == (1.0, 0.0)  # horizontal only
    assert (px[10, 17], py[10, 17]) == (0.0, 1.0)  # vertical only
    # Opposite directions on the same cells cancel, and the cells stay trained (weight 1).
    back = {a: (200.0, 120.0), b: (80.0, 120.0)}
    t2 = make_targets(people(horizontal, back), (368, 368), ALL)
    assert t2.pafs[2 * i, 15, 12] == 0.0
    assert t2.paf_weights[2 * i, 15, 12] == 1.0


def test_keypoint_with_v0_makes_no_peak_and_no_limbs() -> None:
    nose, leye = NAME["Nose"], NAME["LEye"]
    kpts = people({nose: (100.0, 100.0), leye: (110.0, 90.0)})
    kpts[0, leye, 2] = 0  # coordinates present, but not labeled
    t = make_targets(kpts, (368, 368), ALL)
    assert t.heatmaps[nose].max() > 0.99
    assert not t.heatmaps[leye].any()
    touching = [i for i, (p, q) in enumerate(BODY135_PAF_PAIRS) if leye in (p, q)]
    assert touching
    for i in touching:
        assert not t.pafs[2 * i : 2 * i + 2].any()
    # A part the dataset labels stays trained where this person lacks it: it teaches "no LEye here", as in the C++.
    assert (t.heatmap_weights[leye] == 1).all()


def test_occluded_keypoint_v1_is_drawn() -> None:
    kpts = people({NAME["Nose"]: (100.0, 100.0)})
    kpts[0, NAME["Nose"], 2] = 1
    assert make_targets(kpts, (368, 368), ALL).heatmaps[NAME["Nose"]].max() > 0.99


# ---------------------------------------------------------------------------------------------- weights
def test_unlabeled_parts_get_zero_weight_and_ignore_regions_are_masked() -> None:
    coco = np.zeros(135, dtype=bool)
    coco[:17] = True  # a COCO-17 source: feet, neck, head top, hands and face are not labeled
    ignore = np.zeros((368, 368), dtype=bool)
    ignore[200:300, 240:360] = True  # an unlabeled crowd: cells 25..37 x 30..45
    kpts = people({NAME["LShoulder"]: (80.0, 80.0), NAME["LElbow"]: (160.0, 80.0), NAME["LBigToe"]: (90.0, 90.0)})
    t = make_targets(kpts, (368, 368), coco, ignore_mask=ignore)

    assert not t.heatmap_weights[17:].any()
    assert not t.heatmaps[NAME["LBigToe"]].any()  # an unlabeled part is not drawn even with v = 2
    cells = np.ones((46, 46), dtype=np.float32)
    cells[25:38, 30:45] = 0.0
    for k in range(17):
        np.testing.assert_array_equal(t.heatmap_weights[k], cells)

    for i, (p, q) in enumerate(BODY135_PAF_PAIRS):
        w = t.paf_weights[2 * i : 2 * i + 2]
        if p < 17 and q < 17:
            expected = cells.copy()
            expected[t.pafs[2 * i] != 0] = 1.0
            np.testing.assert_array_equal(w[0], expected)
            np.testing.assert_array_equal(w[1], expected)
        else:
            assert not w.any(), (i, p, q)  # PAFs with an unlabeled end are masked everywhere


def test_drawn_cells_are_trained_inside_ignore_regions() -> None:
    ignore = np.zeros((368, 368), dtype=bool)
    ignore[40:120, 40:120] = True
    t = make_targets(people({NAME["Nose"]: (80.0, 80.0)}), (368, 368), ALL, ignore_mask=ignore)
    drawn = t.heatmaps[NAME["Nose"]] > 0
    assert (t.heatmap_weights[NAME["Nose"]][drawn] == 1).all()  # the C++ sets the mask where it writes
    assert t.heatmap_weights[NAME["LEye"], 9, 9] == 0.0


def test_ignore_reduction_any_and_area() -> None:
    ignore = np.zeros((64, 64), dtype=bool)
    ignore[0:8, 0:4] = True  # half of cell (0, 0)
    ignore[8:16, 8:16] = True  # all of cell (1, 1)
    kpts = np.zeros((0, 135, 3))
    w_any = make_targets(kpts, (64, 64), ALL, ignore_mask=ignore).heatmap_weights[0]
    w_area = make_targets(kpts, (64, 64), ALL, ignore, TargetConfig(ignore_reduction="area")).heatmap_weights[0]
    assert (w_any[0, 0], w_any[1, 1], w_any[0, 1]) == (0.0, 0.0, 1.0)
    assert (w_area[0, 0], w_area[1, 1], w_area[0, 1]) == (0.5, 0.0, 1.0)


def test_sigma_ratio_weights_option() -> None:
    kpts = people({NAME["REye0"]: (100.0, 60.0), NAME["Nose"]: (200.0, 200.0)})
    t = make_targets(kpts, (368, 368), ALL, config=TargetConfig(sigma_ratio_weights=True))
    assert t.heatmap_weights[NAME["REye0"], 7, 12] == pytest.approx(7 / 5.75)
    assert t.heatmap_weights[NAME["REye0"], 30, 30] == 1.0
    assert t.heatmap_weights[NAME["Nose"], 24, 24] == 1.0


# ------------------------------------------------------------------------------- loop port of the C++
def _cround(v: float) -> int:
    return math.floor(v + 0.5) if v >= 0 else -math.floor(-v + 0.5)


def _loop_targets(
    kpts: np.ndarray, size: tuple[int, int], labeled: np.ndarray, keep: np.ndarray
) -> tuple[np.ndarray, ...]:
    """``generateLabelMap`` for BODY_135, cell by cell (maskMiss = ``keep``, isVisible <= 1 <=> v > 0)."""
    gh, gw = size[0] // 8, size[1] // 8
    heat, heat_w = np.zeros((135, gh, gw)), np.zeros((135, gh, gw))
    paf, paf_w = np.zeros((304, gh, gw)), np.zeros((304, gh, gw))
    heat_w[:] = keep
    paf_w[:] = keep
    heat_w[~labeled] = 0  # getEmptyChannels: the parts and every PAF that uses them
    for i, (a, b) in enumerate(BODY135_PAF_PAIRS):
        if not (labeled[a] and labeled[b]):
            paf_w[2 * i : 2 * i + 2] = 0
    drawn = (kpts[..., 2] > 0) & labeled
    for part in range(135):
        sigma = 7.0 * (1.0 if part < 25 else 5.75 / 7.0)
        mult = 2.0 * sigma * sigma
        for p in range(len(kpts)):
            if not drawn[p, part]:
                continue
            cx, cy = kpts[p, part, :2]
            for gy in range(gh):
                y = 3.5 + gy * 8
                for gx in range(gw):
                    e = ((3.5 + gx * 8 - cx) ** 2 + (y - cy) ** 2) / mult
                    if e <= 4.6052:
                        heat[part, gy, gx] = min(1.0, max(heat[part, gy, gx], math.exp(-e)))
                        heat_w[part, gy, gx] = 1.0
    for i, (a, b) in enumerate(BODY135_PAF_PAIRS):
        count = np.zeros((gh, gw), dtype=np.int64)
        for p in range(len(kpts)):
            if not (drawn[p, a] and drawn[p, b]):
                continue
            ax, ay = kpts[p, a, :2] / 8
            bx, by = kpts[p, b, :2] / 8
            n = math.hypot(bx - ax, by - ay)
            if n == 0:
                continue
            ux, uy = (bx - ax) / n, (by - ay) / n
            x0, x1 = max(0, _cround(min(ax, bx) - 1)), min(gw, _cround(max(ax, bx) + 1))
            y0, y1 = max(0, _cround(min(ay, by) - 1)), min(gh, _cround(max(ay, by) + 1))
            for gy in range(y0, y1):
                for gx in range(x0, x1):
                    if abs((gx - ax) * uy - (gy - ay) * ux) <= 1:
                        c = count[gy, gx]
                        paf[2 * i, gy, gx] = (paf[2 * i, gy, gx] * c + ux) / (c + 1)
                        paf[2 * i + 1, gy, gx] = (paf[2 * i + 1, gy, gx] * c + uy) / (c + 1)
                        paf_w[2 * i : 2 * i + 2, gy, gx] = 1.0
                        count[gy, gx] += 1
    return heat, paf, heat_w, paf_w


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_a_cell_by_cell_port_of_the_cpp(seed: int) -> None:
    rng = np.random.default_rng(seed)
    size = (96, 128)
    n = 3
    centres = rng.uniform([10, 10], [118, 86], size=(n, 1, 2))
    kpts = np.zeros((n, 135, 3))
    kpts[..., :2] = centres + rng.normal(0, 25, size=(n, 135, 2))  # some fall outside the image
    kpts[..., 2] = rng.choice([0, 1, 2], size=(n, 135), p=[0.2, 0.3, 0.5])
    kpts[0, 7, :2] = kpts[0, 5, :2]  # a zero-length limb (LShoulder -> LElbow): skipped
    kpts[1, 5:7, :2] = [[40.0, 44.0], [40.0, 60.0]]  # halves: exercises std::round in the limb box
    kpts[1, 5:7, 2] = 2
    labeled = rng.random(135) < 0.8
    ignore = np.zeros(size, dtype=bool)
    ignore[16:48, 64:112] = True
    keep = np.ones((12, 16))
    keep[2:6, 8:14] = 0

    t = make_targets(kpts, size, labeled, ignore_mask=ignore)
    heat, paf, heat_w, paf_w = _loop_targets(kpts, size, labeled, keep)
    np.testing.assert_allclose(t.heatmaps, heat, atol=1e-6)
    np.testing.assert_allclose(t.pafs, paf, atol=1e-6)
    np.testing.assert_array_equal(t.heatmap_weights, heat_w)
    np.testing.assert_array_equal(t.paf_weights, paf_w)
    assert t.heatmaps.any()
    assert t.pafs.any()


# --------------------------------------------------------------------------------------------------- flip
def test_flip_pairs_are_an_involution_and_flipping_twice_is_the_identity() -> None:
    assert (BODY135_FLIP_INDEX[BODY135_FLIP_INDEX] == np.arange(135)).all()
    flat = [k for pair in BODY135_FLIP_PAIRS for k in pair]
    assert len(flat) == len(set(flat))
    rng = np.random.default_rng(0)
    kpts = np.concatenate([rng.uniform(0, 300, (4, 135, 2)), rng.integers(0, 3, (4, 135, 1))], axis=-1)
    np.testing.assert_allclose(flip_keypoints(flip_keypoints(kpts, 300), 300), kpts)
    np.testing.assert_allclose(flip_keypoints(flip_keypoints(kpts[..., :2], 300), 300), kpts[..., :2])


def test_every_left_name_maps_to_its_right_name() -> None:
    def mirror(name: str) -> str:
        for prefix, count, rule in (
            ("FaceContour", 17, lambda k: 16 - k),
            ("NoseLower", 5, lambda k: 4 - k),
            ("OMouth", 12, lambda k: (6 - k) % 12),
            ("IMouth", 8, lambda k: (4 - k) % 8),
            ("NoseUpper", 4, lambda k: k),
        ):
            if name.startswith(prefix) and name[len(prefix) :].isdigit():
                k = int(name[len(prefix) :])
                assert 0 <= k < count
                return f"{prefix}{rule(k)}"
        if name[:4] in ("REye", "LEye") and name[4:].isdigit():  # iBUG eyes run the same way round: 36 <-> 45
            return f"{'L' if name[0] == 'R' else 'R'}Eye{(3 - int(name[4:])) % 6}"
        if name[0] in "LR" and name[1].isupper():
            return ("R" if name[0] == "L" else "L") + name[1:]
        return name  # Nose, UpperNeck, HeadTop

    mirrored = 0
    for k, name in enumerate(BODY135_KEYPOINT_NAMES):
        partner = mirror(name)
        assert BODY135_FLIP_INDEX[k] == NAME[partner], (name, partner)
        mirrored += partner != name
    assert mirrored == 2 * len(BODY135_FLIP_PAIRS)
    for left in ("LShoulder", "LBigToe", "LThumb1CMC", "LPinky4FingerTip", "LEyeBrow0", "LPupil"):
        assert BODY135_KEYPOINT_NAMES[BODY135_FLIP_INDEX[NAME[left]]] == "R" + left[1:]


def test_flip_keypoints_mirrors_x_and_keeps_missing_rows() -> None:
    kpts = people({NAME["LWrist"]: (10.0, 20.0)})
    flipped = flip_keypoints(kpts, 100)
    np.testing.assert_array_equal(flipped[0, NAME["RWrist"]], [89.0, 20.0, 2.0])  # x -> W - 1 - x
    np.testing.assert_array_equal(flipped[0, NAME["LWrist"]], [0.0, 0.0, 0.0])


def test_flipped_keypoints_give_mirrored_confidence_maps() -> None:
    rng = np.random.default_rng(3)
    kpts = np.zeros((2, 135, 3))
    kpts[..., :2] = rng.uniform([0, 0], [160, 96], size=(2, 135, 2))
    kpts[..., 2] = rng.choice([0, 2], size=(2, 135))
    ignore = np.zeros((96, 160), dtype=bool)
    ignore[10:50, 5:37] = True
    labeled = rng.random(135) < 0.9
    t = make_targets(kpts, (96, 160), labeled, ignore)
    f = make_targets(flip_keypoints(kpts, 160), (96, 160), labeled[BODY135_FLIP_INDEX], ignore[:, ::-1])
    np.testing.assert_allclose(f.heatmaps, t.heatmaps[BODY135_FLIP_INDEX, :, ::-1], atol=1e-6)
    np.testing.assert_array_equal(f.heatmap_weights, t.heatmap_weights[BODY135_FLIP_INDEX, :, ::-1])
