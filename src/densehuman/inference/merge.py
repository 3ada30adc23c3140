"""One list of people from the two kinds of model: region detections (box, dense pose, parts) and whole-body people.

A region model (top-down, one box per person) and the whole-body network (bottom-up, one skeleton per person) are
different networks with different inputs, so they are not put in one model file; ``densehuman predict
--wholebody-model M`` runs both on each image and merges their people here. A skeleton goes with the box that holds
the largest share of its found body and foot points (BODY_135 points 0-24, or all its points when none of those was
found), one-to-one over the image (Hungarian assignment on that share), when that share is at least ``min_share``;
the rest stay unmatched and are listed alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

BODY_POINTS = 25
MIN_SHARE = 0.5


@dataclass(frozen=True)
class MergedPerson:
    """One person: ``region`` index into the region result's people (None: the whole-body network only),
    ``wholebody`` index into the whole-body result's people (None: the region model only), and the share of the
    skeleton's points inside the box (0 when unmatched)."""

    region: int | None
    wholebody: int | None
    share: float


def _share_inside(points: np.ndarray, box: np.ndarray) -> float:
    counted = points[:BODY_POINTS] if (points[:BODY_POINTS, 2] > 0).any() else points
    body = counted[counted[:, 2] > 0]
    if len(body) == 0:
        return 0.0
    x0, y0, x1, y1 = box
    inside = (body[:, 0] >= x0) & (body[:, 0] <= x1) & (body[:, 1] >= y0) & (body[:, 1] <= y1)
    return float(inside.mean())


def merge_people(boxes: np.ndarray, skeletons: list[np.ndarray], min_share: float = MIN_SHARE) -> list[MergedPerson]:
    """Match region ``boxes`` ((N, 4) x0, y0, x1, y1, image pixels) with whole-body ``skeletons`` ((135, 3) each,
    image pixels, score 0 where missing). Returns matched people in box order, then the unmatched boxes, then the
    unmatched skeletons."""
    from scipy.optimize import linear_sum_assignment

    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    if not 0.0 < min_share <= 1.0:
        raise ValueError(f"min_share must be in (0, 1], got {min_share}")
    share = np.array([[_share_inside(np.asarray(s), b) for s in skeletons] for b in boxes]).reshape(
        len(boxes), len(skeletons)
    )
    pairs: dict[int, tuple[int, float]] = {}
    if share.size:
        rows, cols = linear_sum_assignment(-share)
        pairs = {
            int(r): (int(c), float(share[r, c])) for r, c in zip(rows, cols, strict=True) if share[r, c] >= min_share
        }
    merged = [MergedPerson(r, pairs[r][0], pairs[r][1]) for r in range(len(boxes)) if r in pairs]
    merged += [MergedPerson(r, None, 0.0) for r in range(len(boxes)) if r not in pairs]
    used = {c for c, _ in pairs.values()}
    merged += [MergedPerson(None, c, 0.0) for c in range(len(skeletons)) if c not in used]
    return merged


def people_json(region: Any, wholebody: Any, min_share: float = MIN_SHARE) -> dict[str, Any]:
    """The merged people of one image as JSON: per person its region detection (box, score) and whole-body keypoints
    (OpenPose's groups, flat ``x, y, score`` lists) where it has them. ``region``: a ``Predictor`` result;
    ``wholebody``: a ``WholeBodyPredictor`` result."""
    boxes = np.array([p.box for p in region.people], dtype=np.float64).reshape(-1, 4)
    skeletons = [np.asarray(p.keypoints) for p in wholebody.people]
    people = []
    for person in merge_people(boxes, skeletons, min_share):
        entry: dict[str, Any] = {"region_index": person.region, "wholebody_index": person.wholebody}
        if person.region is not None:
            detection = region.people[person.region]
            entry["box"] = [round(float(v), 2) for v in detection.box]
            entry["score"] = round(float(detection.score), 4)
        if person.wholebody is not None:
            body = wholebody.people[person.wholebody]
            entry["wholebody_score"] = round(float(body.score), 4)
            entry["share_in_box"] = round(person.share, 3)
            for name in ("body", "feet", "face", "left_hand", "right_hand"):
                entry[f"{name}_keypoints"] = [round(float(v), 2) for v in np.asarray(getattr(body, name)).reshape(-1)]
        people.append(entry)
    return {"version": 1, "people": people}
