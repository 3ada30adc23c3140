"""OpenPose's person filters (``removePeopleBelowThresholdsAndFillFaces`` in ``bodyPartConnectorBase.cpp``): the
part-count and score thresholds with the face, hands and feet counted as OpenPose counts them, the rerun without the
feet rule when nobody is kept, and the face fill that merges detached face fragments into the person they overlap.
The people come from ``assembly``'s greedy connection step (``People``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from densehuman.models.bottomup.assembly import AssemblyConfig

FACE_PARTS = (65, 135)
RIGHT_HAND_PARTS = (45, 65)
LEFT_HAND_PARTS = (25, 45)
FOOT_PARTS = (19, 25)
MAX_COUNTER_WITHOUT_FEET = 4  # "Remove legs that are duplicated and that do not have upper torso"
FACE_INVALID_MARGIN = 0.2
FACE_VALID_MARGIN = 0.1
FACE_MERGE_ROI = 0.3
FACE_MERGE_ROI_FEW_FACES = 0.01
FEW_FACES = 3


@dataclass
class People:
    """People after the greedy assembly: per person the global peak id of each part (-1: none; an empty list for a
    person merged away), the part count, the score, and whether it is still a person (not merged away)."""

    slots: list[list[int]]
    counts: list[int]
    scores: list[float]
    alive: list[bool]


def _collapse(counter: int, row: list[int], span: tuple[int, int], minimum: int) -> int:
    """``getKeypointCounter``: parts in ``span`` count as at most ``minimum``."""
    found = sum(1 for part in range(span[0], min(span[1], len(row))) if row[part] >= 0)
    return counter + minimum - found if found > minimum else counter


def _face_roi(row: list[int], points: np.ndarray, margin: float) -> tuple[float, float, float, float, int, int]:
    """``getRoiDiameterAndBounds`` over the face parts, quirks included: the margin is a fraction of the maximum
    x / y (not of the width / height) and the width and height end up as ``max + 2 margin + 1 - (min - margin)``.
    Returns x, y, width, height, first face part found, last one + 1."""
    big = float(np.finfo(np.float32).max)
    x0, y0, x1, y1 = big, big, 0.0, 0.0
    first = last = -1
    for part in range(FACE_PARTS[0], min(FACE_PARTS[1], len(row))):
        glob = row[part]
        if glob >= 0 and points[glob, 2] > 0:
            x, y = float(points[glob, 0]), float(points[glob, 1])
            x0, y0, x1, y1 = min(x0, x), min(y0, y), max(x1, x), max(y1, y)
            first = part if first < 0 else first
            last = part
    if last > -1:
        margin_x, margin_y = x1 * margin, y1 * margin
        x0, y0 = x0 - margin_x, y0 - margin_y
        x1, y1 = x1 + 2 * margin_x, y1 + 2 * margin_y
        last += 1
        x1, y1 = x1 + 1 - x0, y1 + 1 - y0
    return x0, y0, x1, y1, first, last


def _roi_overlap(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    """``getKeypointsRoi``: intersection over union of two (x, y, width, height) rectangles."""
    left, top = max(a[0], b[0]), max(a[1], b[1])
    right, bottom = min(a[0] + a[2], b[0] + b[2]), min(a[1] + a[3], b[1] + b[3])
    if left < right and top < bottom:
        inter = (right - left) * (bottom - top)
        return inter / (a[2] * a[3] + b[2] * b[3] - inter)
    return 0.0


def filter_people(
    people: People, candidates: list[int], points: np.ndarray, cfg: AssemblyConfig, maximize_positives: bool
) -> list[int]:
    """``removePeopleBelowThresholdsAndFillFaces``: the kept people (indices into ``people``), faces filled."""
    num_parts = len(people.slots[0]) if people.slots else 0
    valid: list[int] = []
    face_valid: list[int] = []
    face_invalid: list[int] = []
    for person in candidates:
        row = people.slots[person]
        counter = people.counts[person]
        if num_parts >= FACE_PARTS[1]:
            before = counter
            counter = _collapse(counter, row, FACE_PARTS, 1)
            if counter == 1:
                face_invalid.append(person)
                continue
            if before != counter:
                face_valid.append(person)
            counter = _collapse(counter, row, RIGHT_HAND_PARTS, 1)
            counter = _collapse(counter, row, LEFT_HAND_PARTS, 1)
        if not maximize_positives and (num_parts == 25 or num_parts > 70):
            before = counter
            counter = _collapse(counter, row, FOOT_PARTS, 0)
            if counter != before and counter <= MAX_COUNTER_WITHOUT_FEET:
                continue
        if (
            counter > 0
            and counter >= cfg.connect_min_subset_cnt
            and people.scores[person] / counter >= cfg.connect_min_subset_score
        ):
            valid.append(person)
    if valid:  # standalone facial keypoints -> merge them into the best overlapping face
        for invalid in face_invalid:
            *roi_invalid, first, last = _face_roi(people.slots[invalid], points, FACE_INVALID_MARGIN)
            best, best_person = 0.0, -1
            for candidate in face_valid:
                *roi_valid, _, _ = _face_roi(people.slots[candidate], points, FACE_VALID_MARGIN)
                overlap = _roi_overlap(tuple(roi_valid), tuple(roi_invalid))
                if best < overlap:
                    best, best_person = overlap, candidate
            if best > FACE_MERGE_ROI or (best > FACE_MERGE_ROI_FEW_FACES and len(face_valid) < FEW_FACES):
                target, source = people.slots[best_person], people.slots[invalid]
                for part in range(first, last):
                    glob = source[part]
                    if glob < 0:
                        continue
                    new = float(points[glob, 2])
                    if target[part] < 0:
                        target[part] = glob
                        people.scores[best_person] += new
                    elif float(points[target[part], 2]) < new:
                        people.scores[best_person] += new - float(points[target[part], 2])
                        target[part] = glob
    if not valid and not maximize_positives:
        return filter_people(people, candidates, points, cfg, True)
    return valid
