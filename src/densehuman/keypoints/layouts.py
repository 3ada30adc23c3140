"""Keypoint layouts: COCO-17, COCO-WholeBody-133 (mmpose order) and OpenPose BODY_135, and conversions.

Conventions:

* "left" / "right" are the person's own sides (a person facing the camera has their right on the image left).
* Indices are 0-based everywhere except ``COCO_SKELETON``, which is 1-based exactly as the ``skeleton`` field of the
  COCO person category.
* Flip pairs list each left/right pair once as ``(i, j)``; points on the midline are not listed. A horizontal image
  flip maps keypoint ``i`` to ``j`` and back (``flip_permutation`` builds the full index map).
* Face points follow the iBUG-68 order: 0-16 jaw contour from the person's right ear round the chin to the left one,
  17-21 right brow, 22-26 left brow, 27-30 nose bridge, 31-35 lower nose, 36-41 right eye, 42-47 left eye, 48-59
  outer lip, 60-67 inner lip.

Sources: mmpose ``configs/_base_/datasets/coco_wholebody.py`` (names, drawing skeleton, sigmas; the sigmas are the
xtcocotools ``demo_coco_wholebody.py`` values) and OpenPose ``src/openpose/pose/poseParameters.cpp`` (BODY_135 names
and PAF pairs).
"""

from __future__ import annotations

import numpy as np

# --------------------------------------------------------------------------------------------------- COCO-17
COCO_KEYPOINT_NAMES: tuple[str, ...] = (
    "nose",
    "left_eye",
    "right_eye",
    "left_ear",
    "right_ear",
    "left_shoulder",
    "right_shoulder",
    "left_elbow",
    "right_elbow",
    "left_wrist",
    "right_wrist",
    "left_hip",
    "right_hip",
    "left_knee",
    "right_knee",
    "left_ankle",
    "right_ankle",
)

# The COCO person category's ``skeleton`` (1-based keypoint numbers).
COCO_SKELETON: tuple[tuple[int, int], ...] = (
    (16, 14), (14, 12), (17, 15), (15, 13), (12, 13), (6, 12), (7, 13), (6, 7), (6, 8), (7, 9),
    (8, 10), (9, 11), (2, 3), (1, 2), (1, 3), (2, 4), (3, 5), (4, 6), (5, 7),
)  # fmt: skip

COCO_FLIP_PAIRS: tuple[tuple[int, int], ...] = tuple((k, k + 1) for k in range(1, 17, 2))

# ------------------------------------------------------------------------------------------ COCO-WholeBody
FOOT_KEYPOINT_NAMES: tuple[str, ...] = (
    "left_big_toe",
    "left_small_toe",
    "left_heel",
    "right_big_toe",
    "right_small_toe",
    "right_heel",
)
FACE_KEYPOINT_NAMES: tuple[str, ...] = tuple(f"face-{k}" for k in range(68))
_FINGERS = ("thumb", "forefinger", "middle_finger", "ring_finger", "pinky_finger")


def _hand_names(side: str) -> tuple[str, ...]:
    return (f"{side}_hand_root", *(f"{side}_{finger}{k}" for finger in _FINGERS for k in range(1, 5)))


WHOLEBODY_KEYPOINT_NAMES: tuple[str, ...] = (
    COCO_KEYPOINT_NAMES + FOOT_KEYPOINT_NAMES + FACE_KEYPOINT_NAMES + _hand_names("left") + _hand_names("right")
)
NUM_WHOLEBODY = 133

BODY = slice(0, 17)
FOOT = slice(17, 23)
FACE = slice(23, 91)
LEFT_HAND = slice(91, 112)
RIGHT_HAND = slice(112, 133)

# OKS sigmas, verbatim (body 17, foot 6, face 68, left hand 21, right hand 21).
WHOLEBODY_SIGMAS: np.ndarray = np.array([
    0.026, 0.025, 0.025, 0.035, 0.035, 0.079, 0.079, 0.072, 0.072, 0.062,
    0.062, 0.107, 0.107, 0.087, 0.087, 0.089, 0.089, 0.068, 0.066, 0.066,
    0.092, 0.094, 0.094, 0.042, 0.043, 0.044, 0.043, 0.040, 0.035, 0.031,
    0.025, 0.020, 0.023, 0.029, 0.032, 0.037, 0.038, 0.043, 0.041, 0.045,
    0.013, 0.012, 0.011, 0.011, 0.012, 0.012, 0.011, 0.011, 0.013, 0.015,
    0.009, 0.007, 0.007, 0.007, 0.012, 0.009, 0.008, 0.016, 0.010, 0.017,
    0.011, 0.009, 0.011, 0.009, 0.007, 0.013, 0.008, 0.011, 0.012, 0.010,
    0.034, 0.008, 0.008, 0.009, 0.008, 0.008, 0.007, 0.010, 0.008, 0.009,
    0.009, 0.009, 0.007, 0.007, 0.008, 0.011, 0.008, 0.008, 0.008, 0.01,
    0.008, 0.029, 0.022, 0.035, 0.037, 0.047, 0.026, 0.025, 0.024, 0.035,
    0.018, 0.024, 0.022, 0.026, 0.017, 0.021, 0.021, 0.032, 0.02, 0.019,
    0.022, 0.031, 0.029, 0.022, 0.035, 0.037, 0.047, 0.026, 0.025, 0.024,
    0.035, 0.018, 0.024, 0.022, 0.026, 0.017, 0.021, 0.021, 0.032, 0.02,
    0.019, 0.022, 0.031,
])  # fmt: skip
WHOLEBODY_SIGMAS.setflags(write=False)

# iBUG-68 left/right pairs (indices within the face block).
FACE68_FLIP_PAIRS: tuple[tuple[int, int], ...] = (
    *((k, 16 - k) for k in range(8)),  # jaw
    (17, 26), (18, 25), (19, 24), (20, 23), (21, 22),  # brows
    (31, 35), (32, 34),  # lower nose
    (36, 45), (37, 44), (38, 43), (39, 42), (40, 47), (41, 46),  # eyes
    (48, 54), (49, 53), (50, 52), (55, 59), (56, 58),  # outer lip
    (60, 64), (61, 63), (65, 67),  # inner lip
)  # fmt: skip

WHOLEBODY_FLIP_PAIRS: tuple[tuple[int, int], ...] = (
    *COCO_FLIP_PAIRS,
    *((17, 20), (18, 21), (19, 22)),
    *((FACE.start + i, FACE.start + j) for i, j in FACE68_FLIP_PAIRS),
    *((LEFT_HAND.start + k, RIGHT_HAND.start + k) for k in range(21)),
)


def flip_permutation(pairs: tuple[tuple[int, int], ...], count: int) -> np.ndarray:
    """(count,) index map of a horizontal flip: ``flipped = keypoints[..., perm, :]`` after mirroring x."""
    perm = np.arange(count)
    for i, j in pairs:
        if not (0 <= i < count and 0 <= j < count):
            raise ValueError(f"flip pair ({i}, {j}) is out of range for {count} keypoints")
        perm[i], perm[j] = j, i
    return perm


COCO_FLIP_INDEX = flip_permutation(COCO_FLIP_PAIRS, 17)
WHOLEBODY_FLIP_INDEX = flip_permutation(WHOLEBODY_FLIP_PAIRS, NUM_WHOLEBODY)


def _chain(indices: range | list[int], closed: bool = False) -> tuple[tuple[int, int], ...]:
    idx = list(indices)
    links = [(idx[k], idx[k + 1]) for k in range(len(idx) - 1)]
    if closed:
        links.append((idx[-1], idx[0]))
    return tuple(links)


# A drawing skeleton for the face (indices within the face block): contours, brows, nose, closed eye and lip loops.
FACE68_SKELETON: tuple[tuple[int, int], ...] = (
    _chain(range(0, 17))
    + _chain(range(17, 22))
    + _chain(range(22, 27))
    + _chain(range(27, 31))
    + ((30, 33),)
    + _chain(range(31, 36))
    + _chain(range(36, 42), closed=True)
    + _chain(range(42, 48), closed=True)
    + _chain(range(48, 60), closed=True)
    + _chain(range(60, 68), closed=True)
)


def _hand_skeleton(root: int) -> tuple[tuple[int, int], ...]:
    links: list[tuple[int, int]] = []
    for finger in range(5):
        base = root + 1 + 4 * finger
        links += [(root, base), *_chain(range(base, base + 4))]
    return tuple(links)


# mmpose's 65-link drawing skeleton (body, feet, hands; 0-based) plus the face links above.
MMPOSE_WHOLEBODY_SKELETON: tuple[tuple[int, int], ...] = (
    (15, 13), (13, 11), (16, 14), (14, 12), (11, 12), (5, 11), (6, 12), (5, 6), (5, 7), (6, 8),
    (7, 9), (8, 10), (1, 2), (0, 1), (0, 2), (1, 3), (2, 4), (3, 5), (4, 6),
    (15, 17), (15, 18), (15, 19), (16, 20), (16, 21), (16, 22),
    *_hand_skeleton(LEFT_HAND.start), *_hand_skeleton(RIGHT_HAND.start),
)  # fmt: skip
WHOLEBODY_SKELETON: tuple[tuple[int, int], ...] = (
    *MMPOSE_WHOLEBODY_SKELETON,
    *((FACE.start + i, FACE.start + j) for i, j in FACE68_SKELETON),
)

# ---------------------------------------------------------------------------------------- OpenPose BODY_135
_OP_FINGERS = (
    ("Thumb", ("1CMC", "2Knuckles", "3IP", "4FingerTip")),
    *((name, ("1Knuckles", "2PIP", "3DIP", "4FingerTip")) for name in ("Index", "Middle", "Ring", "Pinky")),
)


def _op_hand(side: str) -> tuple[str, ...]:
    return tuple(f"{side}{finger}{part}" for finger, parts in _OP_FINGERS for part in parts)


BODY135_KEYPOINT_NAMES: tuple[str, ...] = (
    *("Nose", "LEye", "REye", "LEar", "REar", "LShoulder", "RShoulder", "LElbow", "RElbow", "LWrist", "RWrist"),
    *("LHip", "RHip", "LKnee", "RKnee", "LAnkle", "RAnkle", "UpperNeck", "HeadTop"),
    *("LBigToe", "LSmallToe", "LHeel", "RBigToe", "RSmallToe", "RHeel"),
    *_op_hand("L"),
    *_op_hand("R"),
    *(f"FaceContour{k}" for k in range(17)),
    *(f"REyeBrow{k}" for k in range(5)),
    *(f"LEyeBrow{k}" for k in range(4, -1, -1)),
    *(f"NoseUpper{k}" for k in range(4)),
    *(f"NoseLower{k}" for k in range(5)),
    *(f"REye{k}" for k in range(6)),
    *(f"LEye{k}" for k in range(6)),
    *(f"OMouth{k}" for k in range(12)),
    *(f"IMouth{k}" for k in range(8)),
    "RPupil",
    "LPupil",
)
NUM_BODY135 = 135
_H135 = 25  # first left-hand point
_F135 = 65  # first face point

# BODY_135 points with no COCO-WholeBody counterpart, in the order ``extras`` arrays use.
BODY135_EXTRA_NAMES: tuple[str, ...] = ("UpperNeck", "HeadTop", "RPupil", "LPupil")
BODY135_EXTRA_INDICES: tuple[int, ...] = (17, 18, 133, 134)


def _body135_pairs() -> tuple[tuple[int, int], ...]:
    h, f = _H135, _F135
    pairs: list[tuple[int, int]] = [
        (0, 1), (0, 2), (1, 3), (2, 4), (0, 5), (0, 6), (5, 7), (6, 8), (7, 9), (8, 10), (5, 11), (6, 12),
        (11, 13), (12, 14), (13, 15), (14, 16),  # COCO body tree
        (15, 19), (19, 20), (15, 21), (16, 22), (22, 23), (16, 24),  # feet
        (5, 17), (17, 18),  # MPII neck / head top
        (6, 17), (3, 4), (3, 5), (4, 6), (5, 9), (6, 10), (9, 10), (9, 11), (10, 12), (11, 12), (15, 16),  # redundant
    ]  # fmt: skip
    for wrist, first in ((9, h), (10, h + 20)):  # every finger base hangs off the body wrist
        for finger in range(5):
            base = first + 4 * finger
            pairs += [(wrist, base), *_chain(range(base, base + 4))]
    pairs += [(0, f + 30), (2, f + 39), (1, f + 42)]  # nose -> nose tip, eyes -> inner eye corners
    pairs += [(f + a, f + b) for a, b in _chain(range(0, 17))]  # contour
    pairs += [(f + 0, f + 17), (f + 16, f + 26)] + [(f + a, f + b) for a, b in _chain(range(17, 27))]  # brows
    pairs += [(f + 21, f + 27), (f + 22, f + 27)] + [(f + a, f + b) for a, b in _chain(range(27, 31))]  # bridge
    pairs += [(f + 30, f + 33), (f + 33, f + 32), (f + 32, f + 31), (f + 33, f + 34), (f + 34, f + 35)]
    pairs += [(f + 27, f + 39), (f + 27, f + 42)]
    pairs += [(f + a, f + b) for a, b in _chain(range(36, 42)) + _chain(range(42, 48))]  # eyes (open chains)
    pairs += [(f + 33, f + 51)] + [(f + a, f + b) for a, b in _chain(range(48, 60))]  # outer mouth
    pairs += [(f + 48, f + 60), (f + 54, f + 64)] + [(f + a, f + b) for a, b in _chain(range(60, 68))]  # inner
    pairs += [(f + 36, f + 68), (f + 39, f + 68), (f + 42, f + 69), (f + 45, f + 69)]  # eye corners -> pupils
    return tuple(pairs)


# PAF pair i uses the PAF channels 2i (x) and 2i + 1 (y).
BODY135_PAF_PAIRS: tuple[tuple[int, int], ...] = _body135_pairs()

# Left/right pairs of BODY_135, in the order of openpose_caffe_train ``poseModel.cpp`` ``SWAP_LEFT_RIGHT_KEYPOINTS``:
# COCO body, feet, hands (left point k <-> right point k), then the face through the iBUG-68 table and the pupils.
# UpperNeck and HeadTop are on the midline.
BODY135_FLIP_PAIRS: tuple[tuple[int, int], ...] = (
    *COCO_FLIP_PAIRS,
    (19, 22), (20, 23), (21, 24),  # feet
    *((_H135 + k, _H135 + 20 + k) for k in range(20)),
    *((_F135 + i, _F135 + j) for i, j in FACE68_FLIP_PAIRS),
    (_F135 + 68, _F135 + 69),  # RPupil, LPupil
)  # fmt: skip
BODY135_FLIP_INDEX = flip_permutation(BODY135_FLIP_PAIRS, NUM_BODY135)


def _wholebody_to_body135() -> np.ndarray:
    index = np.full(NUM_BODY135, -1, dtype=np.int64)
    index[0:17] = np.arange(17)  # body
    index[19:25] = np.arange(FOOT.start, FOOT.stop)  # feet
    index[_H135 : _H135 + 20] = np.arange(LEFT_HAND.start + 1, LEFT_HAND.stop)  # hands without their roots
    index[_H135 + 20 : _H135 + 40] = np.arange(RIGHT_HAND.start + 1, RIGHT_HAND.stop)
    index[_F135 : _F135 + 68] = np.arange(FACE.start, FACE.stop)  # face
    return index


# For each BODY_135 point, the COCO-WholeBody index it comes from; -1 for the four extras.
WHOLEBODY_TO_BODY135: np.ndarray = _wholebody_to_body135()
WHOLEBODY_TO_BODY135.setflags(write=False)


def _body135_to_wholebody() -> np.ndarray:
    index = np.full(NUM_WHOLEBODY, -1, dtype=np.int64)
    known = WHOLEBODY_TO_BODY135 >= 0
    index[WHOLEBODY_TO_BODY135[known]] = np.flatnonzero(known)
    index[LEFT_HAND.start] = 9  # BODY_135 has no hand roots: take the body wrists
    index[RIGHT_HAND.start] = 10
    return index


# For each COCO-WholeBody point, the BODY_135 index it comes from (hand roots from the wrists).
BODY135_TO_WHOLEBODY: np.ndarray = _body135_to_wholebody()
BODY135_TO_WHOLEBODY.setflags(write=False)


def _check_points(name: str, points: np.ndarray, count: int) -> None:
    if points.ndim < 2 or points.shape[-2] != count:
        raise ValueError(f"{name} must have shape (..., {count}, C), got {points.shape}")


def wholebody_to_body135(kpts133: np.ndarray, extras: np.ndarray | None = None) -> np.ndarray:
    """COCO-WholeBody (..., 133, C) keypoints to BODY_135 order (..., 135, C).

    ``extras`` (..., 4, C) holds UpperNeck, HeadTop, RPupil, LPupil (``BODY135_EXTRA_NAMES``); without it they are
    zeros (OpenPose's "missing"). The COCO-WholeBody hand roots have no BODY_135 slot and are dropped.
    """
    kpts133 = np.asarray(kpts133)
    _check_points("kpts133", kpts133, NUM_WHOLEBODY)
    known = WHOLEBODY_TO_BODY135 >= 0
    out = np.zeros((*kpts133.shape[:-2], NUM_BODY135, kpts133.shape[-1]), dtype=kpts133.dtype)
    out[..., known, :] = kpts133[..., WHOLEBODY_TO_BODY135[known], :]
    if extras is not None:
        extras = np.asarray(extras)
        _check_points("extras", extras, len(BODY135_EXTRA_INDICES))
        if extras.shape[:-2] != kpts133.shape[:-2] or extras.shape[-1] != kpts133.shape[-1]:
            raise ValueError(f"extras {extras.shape} does not match kpts133 {kpts133.shape}")
        out[..., list(BODY135_EXTRA_INDICES), :] = extras
    return out


def body135_to_wholebody(kpts135: np.ndarray) -> np.ndarray:
    """BODY_135 (..., 135, C) keypoints to COCO-WholeBody order (..., 133, C); hand roots copy the body wrists."""
    kpts135 = np.asarray(kpts135)
    _check_points("kpts135", kpts135, NUM_BODY135)
    return kpts135[..., BODY135_TO_WHOLEBODY, :]
