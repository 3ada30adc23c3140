"""COCO-WholeBody keypoint evaluation inputs: the ground truth as the metric needs it, and results files.

- ``COCO_WHOLEBODY_GT``: a COCO-WholeBody file (``coco.COCO_WHOLEBODY``) in which every annotation also has the
  ``area`` (OKS is normalised by it), the 17 body ``keypoints`` and all four part lists, as xtcocotools reads them.
- ``validate_wholebody_results``: a results list as xtcocotools / mmpose write it, one object per detection:
  ``image_id``, ``category_id``, ``keypoints`` (17 x 3), ``foot_kpts`` (6 x 3), ``face_kpts`` (68 x 3),
  ``lefthand_kpts`` / ``righthand_kpts`` (21 x 3), ``score``; optional ``foot_score``, ``face_score``,
  ``lefthand_score``, ``righthand_score``, ``wholebody_score`` and ``bbox``. Every number must be finite, and the
  image and category must be the ground truth's (xtcocotools asserts the images and silently drops the rest).
  Errors name the file, the detection (index and image) and the field:
  ``res.json: detection 3 (image 7): foot_kpts: expected 18 numbers, got 15``.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from densehuman.validation.coco import COCO_WHOLEBODY, RleChecks, check_wholebody
from densehuman.validation.errors import InputError, describe
from densehuman.validation.records import Record

# (field, keypoint count) in the flattened 133 order: body, foot, face, left hand, right hand
WHOLEBODY_KEYPOINT_FIELDS: tuple[tuple[str, int], ...] = (
    ("keypoints", 17),
    ("foot_kpts", 6),
    ("face_kpts", 68),
    ("lefthand_kpts", 21),
    ("righthand_kpts", 21),
)
PART_SCORE_FIELDS = ("foot_score", "face_score", "lefthand_score", "righthand_score", "wholebody_score")


def require_wholebody_parts(record: Record, image: Mapping[str, Any], rles: RleChecks) -> None:
    """The four part lists the metric reads on every annotation (``check_wholebody`` checks their content)."""
    for key, _count in WHOLEBODY_KEYPOINT_FIELDS[1:]:
        if not record.has(key):
            record.fail(key, "missing (the COCO-WholeBody metric reads all five keypoint lists of every annotation)")


COCO_WHOLEBODY_GT = replace(
    COCO_WHOLEBODY,
    kind="COCO-WholeBody ground-truth file",
    area=True,
    keypoints_required=True,
    checks=(check_wholebody, require_wholebody_parts),
)


@dataclass(frozen=True)
class WholeBodyResult:
    """One checked detection: its 133 keypoints as (x, y, score) rows in the flattened COCO-WholeBody order."""

    index: int
    image_id: int
    category_id: int
    keypoints: np.ndarray  # (133, 3) float64
    score: float
    part_scores: dict[str, float]  # the optional <part>_score fields present
    bbox: tuple[float, float, float, float] | None


def validate_wholebody_results(
    data: Any, source: str, image_ids: Collection[int], category_ids: Collection[int]
) -> list[WholeBodyResult]:
    """Check a parsed results list and return its detections in file order.

    A ``bbox`` is read where present (an empty list is no box); when the first detection has one, xtcocotools'
    ``loadRes`` takes every detection's area from its box, so then every detection needs one.
    """
    if not isinstance(data, list):
        raise InputError(source, f"a results file is a JSON list of detections, got {describe(data)}")
    images = {int(i) for i in image_ids}
    categories = {int(c) for c in category_ids}
    boxes_needed = bool(data) and _has_box(data[0])
    results = []
    for index, value in enumerate(data):
        record = Record(source, f"detection {index}", value)
        image_id = record.integer("image_id")
        record.item = f"detection {index} (image {image_id})"
        if image_id not in images:
            record.fail("image_id", f"{image_id} is not an image of the ground truth")
        category_id = record.integer("category_id")
        if category_id not in categories:
            record.fail("category_id", f"{category_id} is not a category of the ground truth ({sorted(categories)})")
        parts = [record.numbers(key, length=3 * count).reshape(count, 3) for key, count in WHOLEBODY_KEYPOINT_FIELDS]
        score = record.number("score")
        part_scores = {key: record.number(key) for key in PART_SCORE_FIELDS if record.has(key)}
        bbox = None
        if _has_box(record.value):
            bbox = record.box_xywh("bbox")
        elif boxes_needed:
            record.fail("bbox", "missing (detection 0 has a box, so the detection areas are taken from the boxes)")
        results.append(WholeBodyResult(index, image_id, category_id, np.concatenate(parts), score, part_scores, bbox))
    return results


def _has_box(value: Any) -> bool:
    return (
        isinstance(value, Mapping) and "bbox" in value and not (isinstance(value["bbox"], list) and not value["bbox"])
    )
