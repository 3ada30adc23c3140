"""Pictures of whole-body (BODY_135) keypoints: the skeleton of every person, coloured by part group.

Limbs are BODY_135's PAF pairs (``BODY135_PAF_PAIRS``) without 10 of its 11 redundant body pairs (ears to each
other and to the shoulders, wrists to each other and to the hips, ...; the hip-to-hip pair stays), which only help
the assembly. A limb is drawn when
both its keypoints score above the threshold (OpenPose's ``--render_threshold``, 0.05), in its group's colour: the
group of its second keypoint (the hands hang off the wrists, the face off the nose and eyes). Images are uint8 RGB
(H, W, 3); line widths grow with the image size.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np

from densehuman.keypoints.layouts import BODY135_PAF_PAIRS, NUM_BODY135

RENDER_THRESHOLD = 0.05
# BODY135_PAF_PAIRS 24..34, (6,17) (3,4) (3,5) (4,6) (5,9) (6,10) (9,10) (9,11) (10,12) (11,12) (15,16), but for
# the hips (11,12), which close the pelvis
REDUNDANT_PAIRS = frozenset(range(24, 35)) - {33}
SKELETON: tuple[tuple[int, int], ...] = tuple(
    pair for k, pair in enumerate(BODY135_PAF_PAIRS) if k not in REDUNDANT_PAIRS
)
GROUPS = ("body", "feet", "left_hand", "right_hand", "face")
GROUP_COLOURS: dict[str, tuple[int, int, int]] = {  # RGB
    "body": (255, 64, 64),
    "feet": (255, 170, 0),
    "left_hand": (0, 200, 80),
    "right_hand": (40, 120, 255),
    "face": (240, 240, 240),
}
LEFT_SIDE_COLOUR = (64, 160, 255)  # left-side body limbs, so that left and right can be told apart


def keypoint_group(index: int) -> str:
    """The part group of a BODY_135 keypoint index (upper neck and head top are body)."""
    if not 0 <= index < NUM_BODY135:
        raise ValueError(f"BODY_135 keypoint index out of range: {index}")
    if index < 19:
        return "body"
    if index < 25:
        return "feet"
    if index < 45:
        return "left_hand"
    if index < 65:
        return "right_hand"
    return "face"


_LEFT_BODY = {1, 3, 5, 7, 9, 11, 13, 15}


def _limb_colour(a: int, b: int) -> tuple[int, int, int]:
    group = keypoint_group(b)
    if group == "body" and b in _LEFT_BODY and (a in _LEFT_BODY or a == 0):
        return LEFT_SIDE_COLOUR
    return GROUP_COLOURS[group]


def draw_wholebody(image: np.ndarray, people: Sequence[Any], threshold: float = RENDER_THRESHOLD) -> np.ndarray:
    """``image`` (H, W, 3) uint8 RGB with every person's skeleton drawn on a copy. ``people``: objects with a
    ``keypoints`` (135, 3) attribute (``WholeBodyPerson``) or (135, 3) arrays, in image pixels."""
    canvas = np.ascontiguousarray(image, dtype=np.uint8).copy()
    if canvas.ndim != 3 or canvas.shape[2] != 3:
        raise ValueError(f"image must be (H, W, 3) uint8 RGB, got shape {canvas.shape}")
    h, w = canvas.shape[:2]
    body_width = max(1, round(min(h, w) / 160))
    fine_width = max(1, body_width // 2)
    shift = 4  # sub-pixel drawing: coordinates in 1/16 pixel
    for person in people:
        points = np.asarray(getattr(person, "keypoints", person), dtype=np.float64)
        if points.shape != (NUM_BODY135, 3):
            raise ValueError(f"each person needs ({NUM_BODY135}, 3) keypoints, got {points.shape}")
        shown = points[:, 2] > threshold
        fixed = np.round(points[:, :2] * (1 << shift)).astype(np.int64)
        for a, b in SKELETON:
            if not (shown[a] and shown[b]):
                continue
            group = keypoint_group(b)
            width = body_width if group in ("body", "feet") else fine_width
            pa, pb = (int(fixed[a, 0]), int(fixed[a, 1])), (int(fixed[b, 0]), int(fixed[b, 1]))
            cv2.line(canvas, pa, pb, _limb_colour(a, b), width, cv2.LINE_AA, shift)
        for k in np.flatnonzero(shown):
            group = keypoint_group(int(k))
            radius = body_width + 1 if group in ("body", "feet") else fine_width
            centre = (int(fixed[k, 0]), int(fixed[k, 1]))
            cv2.circle(canvas, centre, radius << shift, GROUP_COLOURS[group], -1, cv2.LINE_AA, shift)
    return canvas
