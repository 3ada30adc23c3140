"""Keypoint layouts (COCO, COCO-WholeBody, BODY_135) and the whole-body landmarks on posed Anny bodies."""

from __future__ import annotations

import re

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from densehuman.keypoints.layouts import (
    BODY,
    BODY135_EXTRA_INDICES,
    BODY135_KEYPOINT_NAMES,
    BODY135_PAF_PAIRS,
    BODY135_TO_WHOLEBODY,
    COCO_FLIP_INDEX,
    COCO_KEYPOINT_NAMES,
    COCO_SKELETON,
    FACE,
    FACE68_FLIP_PAIRS,
    FOOT,
    LEFT_HAND,
    MMPOSE_WHOLEBODY_SKELETON,
    RIGHT_HAND,
    WHOLEBODY_FLIP_INDEX,
    WHOLEBODY_FLIP_PAIRS,
    WHOLEBODY_KEYPOINT_NAMES,
    WHOLEBODY_SIGMAS,
    WHOLEBODY_SKELETON,
    WHOLEBODY_TO_BODY135,
    body135_to_wholebody,
    wholebody_to_body135,
)
from densehuman.numerics import assert_float32_close
from densehuman.synth.body_model import AnnyBody, PosedBodies
from densehuman.synth.landmarks import WholeBodyLandmarks

# ------------------------------------------------------------------------------------------------- layouts


def test_layout_sizes_and_blocks() -> None:
    assert len(COCO_KEYPOINT_NAMES) == 17
    assert len(WHOLEBODY_KEYPOINT_NAMES) == 133 == len(set(WHOLEBODY_KEYPOINT_NAMES))
    assert len(BODY135_KEYPOINT_NAMES) == 135 == len(set(BODY135_KEYPOINT_NAMES))
    assert WHOLEBODY_KEYPOINT_NAMES[BODY] == COCO_KEYPOINT_NAMES
    assert WHOLEBODY_KEYPOINT_NAMES[FOOT.start] == "left_big_toe"
    assert WHOLEBODY_KEYPOINT_NAMES[FACE.start] == "face-0"
    assert WHOLEBODY_KEYPOINT_NAMES[FACE.stop - 1] == "face-67"
    assert WHOLEBODY_KEYPOINT_NAMES[91] == "left_hand_root"
    assert WHOLEBODY_KEYPOINT_NAMES[112] == "right_hand_root"
    assert WHOLEBODY_KEYPOINT_NAMES[92:97] == (
        "left_thumb1",
        "left_thumb2",
        "left_thumb3",
        "left_thumb4",
        "left_forefinger1",
    )
    assert WHOLEBODY_KEYPOINT_NAMES[-1] == "right_pinky_finger4"
    assert (LEFT_HAND.stop - LEFT_HAND.start, RIGHT_HAND.stop - RIGHT_HAND.start) == (21, 21)


def test_sigmas() -> None:
    assert WHOLEBODY_SIGMAS.shape == (133,)
    coco = np.array([0.26, 0.25, 0.25, 0.35, 0.35, 0.79, 0.79, 0.72, 0.72, 0.62, 0.62, 1.07, 1.07, 0.87, 0.87])
    np.testing.assert_allclose(WHOLEBODY_SIGMAS[:15], coco / 10)
    assert WHOLEBODY_SIGMAS[FACE.start] == 0.042
    assert WHOLEBODY_SIGMAS[FACE.start + 47] == 0.034
    assert WHOLEBODY_SIGMAS[91] == WHOLEBODY_SIGMAS[112] == 0.029  # hand roots, not the wrists' 0.062
    np.testing.assert_array_equal(WHOLEBODY_SIGMAS[LEFT_HAND], WHOLEBODY_SIGMAS[RIGHT_HAND])
    assert not WHOLEBODY_SIGMAS.flags.writeable


def _swap_sides(name: str) -> str:
    return name.replace("left", "@").replace("right", "left").replace("@", "right")


def test_flip_pairs() -> None:
    for perm, n in ((COCO_FLIP_INDEX, 17), (WHOLEBODY_FLIP_INDEX, 133)):
        np.testing.assert_array_equal(perm[perm], np.arange(n))  # an involution
    flat = [i for pair in WHOLEBODY_FLIP_PAIRS for i in pair]
    assert len(flat) == len(set(flat))
    for k, name in enumerate(WHOLEBODY_KEYPOINT_NAMES):
        if not name.startswith("face"):
            assert WHOLEBODY_KEYPOINT_NAMES[WHOLEBODY_FLIP_INDEX[k]] == _swap_sides(name)
    face = dict(FACE68_FLIP_PAIRS)
    assert all(face[k] == 16 - k for k in range(8))  # jaw
    assert (face[36], face[39], face[48], face[60]) == (45, 42, 54, 64)
    midline = set(range(68)) - {i for pair in FACE68_FLIP_PAIRS for i in pair}
    assert midline == {8, 27, 28, 29, 30, 33, 51, 57, 62, 66}


def test_skeletons() -> None:
    assert len(COCO_SKELETON) == 19
    assert all(1 <= i <= 17 and 1 <= j <= 17 for i, j in COCO_SKELETON)
    assert (16, 14) in COCO_SKELETON
    assert (6, 7) in COCO_SKELETON
    assert len(MMPOSE_WHOLEBODY_SKELETON) == 65
    assert WHOLEBODY_SKELETON[:65] == MMPOSE_WHOLEBODY_SKELETON
    assert all(0 <= i < 133 and 0 <= j < 133 and i != j for i, j in WHOLEBODY_SKELETON)
    assert (91, 92) in WHOLEBODY_SKELETON
    assert (112, 129) in WHOLEBODY_SKELETON
    assert (9, 91) not in WHOLEBODY_SKELETON
    assert (FACE.start + 41, FACE.start + 36) in WHOLEBODY_SKELETON  # closed eye loop
    drawn = {i for link in WHOLEBODY_SKELETON for i in link}
    assert drawn == set(range(133))


def _coco_wb_name(body135: str) -> str:
    """Translate a BODY_135 body or hand name to COCO-WholeBody's."""
    side = {"L": "left", "R": "right"}
    if body135 == "Nose":
        return "nose"
    fingers = {"Thumb": "thumb", "Index": "forefinger", "Middle": "middle_finger", "Ring": "ring_finger"}
    fingers["Pinky"] = "pinky_finger"
    hand = re.fullmatch(r"([LR])(Thumb|Index|Middle|Ring|Pinky)([1-4]).*", body135)
    if hand:
        return f"{side[hand[1]]}_{fingers[hand[2]]}{hand[3]}"
    part = re.sub(r"(?<!^)([A-Z])", r"_\1", body135[1:]).lower()  # BigToe -> big_toe
    return f"{side[body135[0]]}_{part}"


def test_body135_names_match_wholebody() -> None:
    for k, name in enumerate(BODY135_KEYPOINT_NAMES):
        source = WHOLEBODY_TO_BODY135[k]
        if k in BODY135_EXTRA_INDICES:
            assert source == -1
        elif k >= 65:
            assert WHOLEBODY_KEYPOINT_NAMES[source] == f"face-{k - 65}"
        else:
            assert WHOLEBODY_KEYPOINT_NAMES[source] == _coco_wb_name(name), name
    # iBUG landmarks under their OpenPose names.
    named = {"FaceContour0": 0, "REyeBrow0": 17, "LEyeBrow0": 26, "NoseUpper3": 30, "REye3": 39, "LEye0": 42}
    named |= {"OMouth0": 48, "IMouth0": 60, "IMouth7": 67}
    for name, ibug in named.items():
        assert WHOLEBODY_TO_BODY135[BODY135_KEYPOINT_NAMES.index(name)] == FACE.start + ibug
    assert WHOLEBODY_TO_BODY135[65] == 23


def test_body135_paf_pairs() -> None:
    assert len(BODY135_PAF_PAIRS) == 152
    assert all(0 <= a < 135 and 0 <= b < 135 and a != b for a, b in BODY135_PAF_PAIRS)
    assert len(set(BODY135_PAF_PAIRS)) == 152
    assert BODY135_PAF_PAIRS[0] == (0, 1)
    assert BODY135_PAF_PAIRS[23] == (17, 18)
    assert BODY135_PAF_PAIRS[35] == (9, 25)
    assert BODY135_PAF_PAIRS[55] == (10, 45)
    assert BODY135_PAF_PAIRS[75] == (0, 95)  # Nose -> nose tip (iBUG 30)
    assert BODY135_PAF_PAIRS[76] == (2, 104)
    assert BODY135_PAF_PAIRS[77] == (1, 107)
    assert BODY135_PAF_PAIRS[94] == (65, 82)
    assert BODY135_PAF_PAIRS[127] == (98, 116)
    assert BODY135_PAF_PAIRS[139] == (113, 125)
    assert BODY135_PAF_PAIRS[151] == (110, 134)
    reached, frontier = {0}, [0]  # the PAF graph connects every part
    while frontier:
        k = frontier.pop()
        for a, b in BODY135_PAF_PAIRS:
            for u, v in ((a, b), (b, a)):
                if u == k and v not in reached:
                    reached.add(v)
                    frontier.append(v)
    assert reached == set(range(135))


def test_body135_round_trips() -> None:
    rng = np.random.default_rng(0)
    kpts = rng.normal(size=(2, 3, 133, 3))
    extras = rng.normal(size=(2, 3, 4, 3))
    op = wholebody_to_body135(kpts, extras)
    assert op.shape == (2, 3, 135, 3)
    np.testing.assert_array_equal(op[..., list(BODY135_EXTRA_INDICES), :], extras)
    np.testing.assert_array_equal(op[..., 65, :], kpts[..., 23, :])
    back = body135_to_wholebody(op)
    hand_roots = [91, 112]
    np.testing.assert_array_equal(np.delete(back, hand_roots, axis=-2), np.delete(kpts, hand_roots, axis=-2))
    np.testing.assert_array_equal(back[..., hand_roots, :], kpts[..., [9, 10], :])  # roots come from the wrists
    np.testing.assert_array_equal(wholebody_to_body135(back, extras), op)
    assert (wholebody_to_body135(kpts)[..., list(BODY135_EXTRA_INDICES), :] == 0).all()
    assert BODY135_TO_WHOLEBODY[91] == 9
    assert BODY135_TO_WHOLEBODY[23] == 65


def test_conversion_rejects_bad_shapes() -> None:
    with pytest.raises(ValueError, match="133"):
        wholebody_to_body135(np.zeros((132, 3)))
    with pytest.raises(ValueError, match="extras"):
        wholebody_to_body135(np.zeros((133, 3)), np.zeros((3, 3)))
    with pytest.raises(ValueError, match="135"):
        body135_to_wholebody(np.zeros((133, 3)))


# ----------------------------------------------------------------------------------------------- landmarks
B = 4
REST, JAW_OPEN, HEAD_TURN, MOVED = range(B)
TRANSLATION = np.array([0.3, -1.2, 0.9])
HEAD_ROTATION = Rotation.from_euler("zx", [35.0, -15.0], degrees=True).as_matrix()


@pytest.fixture(scope="module")
def landmarks(anny_body: AnnyBody) -> WholeBodyLandmarks:
    return WholeBodyLandmarks(anny_body)


@pytest.fixture(scope="module")
def posed(anny_body: AnnyBody) -> PosedBodies:
    """Identity pose, the same with the jaw open, with the head turned, and moved by TRANSLATION."""
    rotations = np.tile(np.eye(3), (B, anny_body.bone_count, 1, 1))
    rotations[HEAD_TURN, anny_body.bone_index("head")] = HEAD_ROTATION
    translation = np.zeros((B, 3))
    translation[MOVED] = TRANSLATION
    jaw = np.zeros(B)
    jaw[JAW_OPEN] = 1.0
    return anny_body.pose(rotations, translation, {}, {"jawOpen": jaw})


def _mirror(kpts: np.ndarray) -> np.ndarray:
    out = kpts[..., WHOLEBODY_FLIP_INDEX, :].copy()
    out[..., 0] *= -1.0
    return out


def test_shapes(landmarks: WholeBodyLandmarks, posed: PosedBodies) -> None:
    kpts, extras = landmarks(posed), landmarks.extras(posed)
    assert kpts.shape == (B, 133, 3)
    assert extras.shape == (B, 4, 3)
    assert np.isfinite(kpts).all()
    assert np.isfinite(extras).all()
    assert landmarks.inner_depth.shape == (133,)
    assert landmarks.rest.shape == (133, 3)


def test_body_and_feet_come_from_the_coco_regressor(
    anny_body: AnnyBody, landmarks: WholeBodyLandmarks, posed: PosedBodies
) -> None:
    kpts = landmarks(posed)
    labels = list(anny_body.coco_regressor.labels)
    for k, name in enumerate(WHOLEBODY_KEYPOINT_NAMES[:23]):
        np.testing.assert_array_equal(kpts[:, k], posed.coco_keypoints[:, labels.index(name)])
    assert kpts[REST, 17, 0] > 0 > kpts[REST, 20, 0]  # left big toe on +x


def test_mirror_consistency(landmarks: WholeBodyLandmarks, posed: PosedBodies) -> None:
    rest = landmarks.rest
    assert np.abs(_mirror(rest) - rest).max() < 1e-6  # the face and hand choice is exactly symmetric
    kpts = landmarks(posed)[REST]
    assert np.linalg.norm(_mirror(kpts) - kpts, axis=-1).max() < 0.002
    right_pupil, left_pupil = landmarks.rest_extras[2:]
    np.testing.assert_allclose(right_pupil * [-1, 1, 1], left_pupil, atol=1e-6)


def test_face_lies_on_the_head_in_front_of_the_ears(landmarks: WholeBodyLandmarks) -> None:
    face, ears = landmarks.rest[FACE], landmarks.rest[[3, 4]]
    assert (face[:, 1] < ears[:, 1].min() - 0.02).all()
    assert (np.abs(face[:, 0]) < np.abs(ears[:, 0]).min()).all()
    assert (face[:, 2] > ears[:, 2].mean() - 0.12).all()
    assert (face[:, 2] < ears[:, 2].mean() + 0.06).all()
    assert (landmarks.inner_depth[FACE] == 0).all()


def test_jaw_runs_from_right_to_left_round_the_chin(landmarks: WholeBodyLandmarks) -> None:
    face = landmarks.rest[FACE]
    jaw = face[:17]
    assert (np.diff(jaw[:, 0]) > 0).all()
    assert np.argmin(jaw[:, 2]) == 8
    assert abs(jaw[8, 0]) < 1e-9
    assert abs(jaw[0, 2] - face[36, 2]) < 0.005  # the contour ends at the eye line
    assert (np.diff(jaw[:9, 2]) < 0).all()
    assert (np.diff(jaw[8:, 2]) > 0).all()


def test_eyes_brows_nose_and_lips_are_ordered(landmarks: WholeBodyLandmarks) -> None:
    f = landmarks.rest[FACE]
    assert f[36, 0] < f[39, 0] < 0 < f[42, 0] < f[45, 0]  # the person's right eye is on -x
    for upper, lower in ((37, 41), (38, 40), (43, 47), (44, 46)):
        assert f[upper, 2] > f[lower, 2]
    assert f[17:27, 2].min() > f[36:48, 2].max()  # brows above the eyes
    assert (np.diff(f[17:27, 0]) > 0).all()
    assert (np.diff(f[27:31, 2]) < 0).all()
    assert np.argmin(f[:, 1]) == 30
    assert f[30, 2] > f[33, 2] > f[51, 2] > f[62, 2] >= f[66, 2] > f[57, 2] > f[8, 2]
    assert (np.diff(f[31:36, 0]) > 0).all()
    assert (np.diff(f[48:55, 0]) > 0).all()
    assert (np.diff(f[60:65, 0]) > 0).all()


def test_inner_lips_open_with_the_jaw(landmarks: WholeBodyLandmarks, posed: PosedBodies) -> None:
    face = landmarks(posed)[:, FACE]
    gap = np.linalg.norm(face[:, 62] - face[:, 66], axis=-1)
    assert gap[REST] < 0.005
    assert gap[JAW_OPEN] > 0.02
    assert face[JAW_OPEN, 57, 2] < face[REST, 57, 2] - 0.02
    assert face[JAW_OPEN, 8, 2] < face[REST, 8, 2] - 0.02
    np.testing.assert_allclose(face[JAW_OPEN, 36:48], face[REST, 36:48], atol=0.002)  # the eyes stay


def test_face_follows_the_head(anny_body: AnnyBody, landmarks: WholeBodyLandmarks, posed: PosedBodies) -> None:
    head = posed.bone_poses[:, anny_body.bone_index("head")]
    kpts = landmarks(posed)
    local = np.einsum("bji,bkj->bki", head[:, :3, :3], kpts - head[:, None, :3, 3])  # in the head bone's frame
    rigid = slice(FACE.start + 17, FACE.start + 48)  # brows, nose and eyes
    np.testing.assert_allclose(local[HEAD_TURN, rigid], local[REST, rigid], atol=0.001)
    assert np.linalg.norm(kpts[HEAD_TURN, FACE] - kpts[REST, FACE], axis=-1).min() > 0.005
    body = np.r_[7:17, LEFT_HAND, RIGHT_HAND]  # elbows down and the hands stay (shoulders move a little)
    np.testing.assert_allclose(kpts[HEAD_TURN, body], kpts[REST, body], atol=1e-5)


def check_translation(landmarks: WholeBodyLandmarks, posed: PosedBodies, translation: np.ndarray) -> None:
    """Every keypoint moves by ``translation``, up to float32 rounding: Anny poses in float32 and the COCO
    keypoints are regressed over every vertex, a reduction as long as the mesh."""
    kpts, extras = landmarks(posed), landmarks.extras(posed)
    length = posed.vertices.shape[1]
    scale = float(np.abs(kpts).max())
    moved = np.broadcast_to(translation, (133, 3))
    assert_float32_close(kpts[MOVED] - kpts[REST], moved, length, scale=scale, what="keypoints")
    moved = np.broadcast_to(translation, (4, 3))
    assert_float32_close(extras[MOVED] - extras[REST], moved, length, scale=scale, what="extras")


@pytest.mark.numerics
def test_translation_moves_everything(landmarks: WholeBodyLandmarks, posed: PosedBodies) -> None:
    check_translation(landmarks, posed, TRANSLATION)
    with pytest.raises(AssertionError):  # the tolerance (about 0.1 mm here) still sees a 1 mm error
        check_translation(landmarks, posed, TRANSLATION + np.array([0.0, 0.001, 0.0]))


def test_hand_tips_lie_beyond_the_knuckles(landmarks: WholeBodyLandmarks, posed: PosedBodies) -> None:
    for kpts in (landmarks.rest, landmarks(posed)[REST]):
        for hand, sign in ((LEFT_HAND, 1.0), (RIGHT_HAND, -1.0)):
            points = kpts[hand]
            assert (sign * points[:, 0] > 0.1).all()
            reach = np.linalg.norm(points[1:] - points[0], axis=-1).reshape(5, 4)  # fingers x (1, 2, 3, tip)
            assert (reach[:, 3] > reach[:, 0]).all()
            assert (reach[:, 3] > reach[:, 2]).all()
            assert (np.diff(reach[1:], axis=1) > 0).all()  # along each long finger away from the wrist
            np.testing.assert_allclose(points[0], kpts[9 if sign > 0 else 10], atol=0.02)  # root near the wrist


def test_extras(landmarks: WholeBodyLandmarks, posed: PosedBodies) -> None:
    face = landmarks.rest[FACE]
    upper_neck, head_top, right_pupil, left_pupil = landmarks.rest_extras
    assert head_top[2] > landmarks.rest[:, 2].max()
    assert abs(head_top[0]) < 1e-9
    assert landmarks.rest[6, 2] < upper_neck[2] < face[8, 2] + 0.08
    assert upper_neck[1] > face[8, 1]
    for pupil, (outer, inner, lids) in ((right_pupil, (36, 39, [37, 38, 40, 41])), (left_pupil, (45, 42, [43, 44]))):
        assert min(face[outer, 0], face[inner, 0]) < pupil[0] < max(face[outer, 0], face[inner, 0])
        assert abs(pupil[2] - face[lids, 2].mean()) < 0.006
    # Posed with identity rotations the body keeps its shape up to the root shift (and < 1.5 cm of reorientation).
    nose, extras = landmarks(posed)[REST, 0], landmarks.extras(posed)[REST]
    np.testing.assert_allclose(extras - nose, landmarks.rest_extras - landmarks.rest[0], atol=0.015)


def test_inner_depth(landmarks: WholeBodyLandmarks) -> None:
    depth = landmarks.inner_depth
    tips = [hand.start + 4 * finger + 4 for hand in (LEFT_HAND, RIGHT_HAND) for finger in range(5)]
    assert (depth[tips] == 0).all()
    assert (depth[FACE] == 0).all()
    assert (depth[11:13] > 0.04).all()
    assert (depth[5:7] > 0.015).all()
    assert (depth[[91, 112]] > 0.005).all()
    assert (depth < 0.12).all()
    assert landmarks.extras_inner_depth[1] == 0
    assert landmarks.extras_inner_depth[0] > 0.02


def test_the_choice_is_deterministic(anny_body: AnnyBody, landmarks: WholeBodyLandmarks) -> None:
    again = WholeBodyLandmarks(anny_body)
    np.testing.assert_array_equal(again.rest, landmarks.rest)
    np.testing.assert_array_equal(again.inner_depth, landmarks.inner_depth)


def test_rejects_other_meshes(landmarks: WholeBodyLandmarks, posed: PosedBodies) -> None:
    bad = PosedBodies(posed.vertices[:, :100], posed.bone_poses, posed.coco_keypoints)
    with pytest.raises(ValueError, match="vertices"):
        landmarks(bad)
