"""What whole-body inference writes: OpenPose JSON per image or frame, and COCO-WholeBody results.

OpenPose JSON (``--write_json``; reference notes ``wholebody.md`` §1.4, OpenPose ``doc/02_output.md``): one object
per image, ``{"version": 1.3, "people": [...]}``, each person with the fields OpenPose >= 1.5 writes, in its order:
``person_id`` ([-1]: no tracking), ``pose_keypoints_2d`` (all 135 BODY_135 points as ``x0, y0, c0, x1, ...``, 405
numbers; missing points ``0, 0, 0``), then ``face_keypoints_2d``, ``hand_left_keypoints_2d``,
``hand_right_keypoints_2d`` and the four ``*_3d`` lists. With BODY_135 the face and hands are part of the pose, and
those lists (the separate face and hand detectors' outputs) stay empty, as OpenPose writes them without ``--face``
and ``--hand``. Coordinates are original image pixels (``--keypoint_scale 0``).

COCO-WholeBody results (``densehuman.evaluation.wholebody`` reads them, as xtcocotools): a list of
``{"image_id", "category_id": 1, "keypoints": 17 x 3, "foot_kpts": 6 x 3, "face_kpts": 68 x 3, "lefthand_kpts":
21 x 3, "righthand_kpts": 21 x 3, "score", "foot_score", "face_score", "lefthand_score", "righthand_score",
"wholebody_score"}``: the 135 points converted with ``body135_to_wholebody`` (the hand roots are the body wrists;
upper neck, head top and pupils have no slot), the keypoint score as the third value, and the person's score for
every part score (a bottom-up person has one score).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from densehuman import atomic
from densehuman.inference.wholebody import WholeBodyPerson, WholeBodyResult
from densehuman.keypoints.layouts import BODY, FACE, FOOT, LEFT_HAND, RIGHT_HAND

OPENPOSE_JSON_VERSION = 1.3
OPENPOSE_PERSON_FIELDS = (
    "person_id",
    "pose_keypoints_2d",
    "face_keypoints_2d",
    "hand_left_keypoints_2d",
    "hand_right_keypoints_2d",
    "pose_keypoints_3d",
    "face_keypoints_3d",
    "hand_left_keypoints_3d",
    "hand_right_keypoints_3d",
)
COCO_PART_FIELDS = (
    ("keypoints", BODY),
    ("foot_kpts", FOOT),
    ("face_kpts", FACE),
    ("lefthand_kpts", LEFT_HAND),
    ("righthand_kpts", RIGHT_HAND),
)
COCO_PART_SCORES = ("foot_score", "face_score", "lefthand_score", "righthand_score", "wholebody_score")
DECIMALS = 4


def _flat(points: np.ndarray) -> list[float]:
    return [round(float(v), DECIMALS) for v in np.asarray(points, dtype=np.float64).reshape(-1)]


def openpose_person(person: WholeBodyPerson) -> dict[str, Any]:
    """One person as OpenPose's JSON writes it (module docstring)."""
    entry: dict[str, Any] = {name: [] for name in OPENPOSE_PERSON_FIELDS}
    entry["person_id"] = [-1]
    entry["pose_keypoints_2d"] = _flat(person.keypoints)
    return entry


def openpose_json(result: WholeBodyResult | list[WholeBodyPerson]) -> dict[str, Any]:
    """One image's (or frame's) OpenPose JSON object."""
    people = result.people if isinstance(result, WholeBodyResult) else result
    return {"version": OPENPOSE_JSON_VERSION, "people": [openpose_person(p) for p in people]}


def write_openpose_json(path: str | Path, result: WholeBodyResult | list[WholeBodyPerson]) -> None:
    """``openpose_json`` written atomically."""
    atomic.write_json(path, openpose_json(result))


def coco_wholebody_results(
    result: WholeBodyResult | list[WholeBodyPerson], image_id: int, category_id: int = 1
) -> list[dict[str, Any]]:
    """The people of one image as COCO-WholeBody result entries (module docstring)."""
    people = result.people if isinstance(result, WholeBodyResult) else result
    entries = []
    for person in people:
        points = person.wholebody()
        entry: dict[str, Any] = {"image_id": int(image_id), "category_id": int(category_id)}
        for name, part in COCO_PART_FIELDS:
            entry[name] = _flat(points[part])
        entry["score"] = round(float(person.score), 6)
        for name in COCO_PART_SCORES:
            entry[name] = entry["score"]
        entries.append(entry)
    return entries


def write_coco_wholebody_results(path: str | Path, entries: list[dict[str, Any]]) -> None:
    """A COCO-WholeBody results list written atomically."""
    atomic.write_json(path, entries)
