"""QANet's region-level (APr) and human-level (APh) parsing AP, one image at a time (soeaver/QANet
``lib/data/evaluation/parsing_eval.py``: ``generate_parsing_result``, ``_compute_class_apr``, ``computeAPh``).

QANet scores files it writes per image, which ``instance_maps`` builds in memory the same way:

- the instance map: detections by score ascending (ties in input order), those under ``PARSING.SCORE_THRESH``
  (0.01) skipped, each painted over the others where its labels are non-zero, so a person keeps the pixels no
  higher-scoring person covers; its visible region is the human instance APh scores;
- the part instances: each visible person split by class, persons in ascending score and classes ascending, ids
  1, 2, ...; QANet's uint8 map drops the 255th and later ones, and so does this.

A part instance is scored with its detection's score (QANet has per-part scores; a results file has one score).
GT part instances are ``Instance_ids`` values listed in its table with a class 1..n-1; GT people are
``Human_ids`` values (MHP: each person file's labelled pixels).
The counts are accumulated over images by the caller and turned into AP by ``parsing_metrics.region_ap``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from densehuman.evaluation.parsing_metrics import PersonTruth

QANET_SCORE_THRESHOLD = 0.01  # QANet's PARSING.SCORE_THRESH: the instance maps keep detections scoring this or more
MAX_PART_ID = 254  # part instance ids of QANet's uint8 map; the 255th part and later ones are dropped


@dataclass(frozen=True)
class InstanceMaps:
    """An image's predicted instances: ``humans`` (H, W) is k where the k-th kept detection (1-based, ascending
    score) is on top and ``labels`` its part label there; ``kept_scores`` (K,) their scores; ``visible`` the ids
    still on the map, ascending (QANet renumbers them 1..P in this order, which changes nothing here)."""

    humans: np.ndarray
    labels: np.ndarray
    kept_scores: np.ndarray
    visible: np.ndarray

    @property
    def human_scores(self) -> np.ndarray:
        return self.kept_scores[self.visible - 1]


def instance_maps(
    image_size: tuple[int, int],
    windows: Sequence[tuple[slice, slice, np.ndarray] | None],
    scores: Sequence[float],
    score_threshold: float = QANET_SCORE_THRESHOLD,
) -> InstanceMaps:
    """QANet's instance map of one image from its detections' pasted windows."""
    humans = np.zeros(image_size, np.int32)
    labels = np.zeros(image_size, np.uint8)
    kept: list[float] = []
    for d in np.argsort(np.asarray(scores, np.float64), kind="stable"):
        if scores[d] < score_threshold:
            continue
        kept.append(float(scores[d]))  # the instance id counts every kept detection, painted or not
        window = windows[d]
        if window is None:
            continue
        rows, cols, grid = window
        on = grid > 0
        humans[rows, cols][on] = len(kept)
        labels[rows, cols][on] = grid[on]
    visible = np.flatnonzero(np.bincount(humans.ravel(), minlength=len(kept) + 1)[1:]) + 1
    return InstanceMaps(humans, labels, np.asarray(kept, np.float64), visible)


def part_class_table(rows: Sequence[tuple[int, int, int]], n: int) -> np.ndarray:
    """(256,) class of each GT part instance id of an ``Instance_ids`` table (-1: not a part of classes 1..n-1,
    which QANet's per-class loop never counts)."""
    table = np.full(256, -1, np.int64)
    for part_id, class_id, _ in rows:
        if 0 < part_id < 256 and 0 < class_id < n:
            table[part_id] = class_id
    return table


def image_part_regions(
    maps: InstanceMaps, gt_parts: np.ndarray, gt_class: np.ndarray, n: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """APr counts of one image: the predicted parts' classes and scores, each one's IoU with its best GT part of
    its class (-inf without one), and the number of GT parts of each class present in the map (n,).

    A predicted part is a (visible person, class) pair; one joint histogram of (person, class, GT part id) gives
    every intersection and area at once. Pairs come in person then class order, QANet's part id order, and those
    past the 254th are dropped as its uint8 map drops them."""
    kept = maps.kept_scores.size
    codes = (maps.humans.astype(np.intp) * n + maps.labels) * 256 + gt_parts
    joint = np.bincount(codes.ravel(), minlength=(kept + 1) * n * 256).reshape((kept + 1) * n, 256)
    gt_area = joint.sum(0)
    classes = np.where(gt_area > 0, gt_class, -1)
    classes[0] = -1
    num_gt = np.bincount(classes[classes > 0], minlength=n)
    area = joint.sum(1)
    area[:n] = 0  # person 0: no prediction
    pairs = np.flatnonzero(area)[:MAX_PART_ID]
    part_classes = pairs % n
    inter = joint[pairs].astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = inter / (area[pairs][:, None] + gt_area[None, :] - inter)
    iou = np.where(classes[None, :] == part_classes[:, None], iou, -np.inf)
    best = iou.max(axis=1) if pairs.size else np.zeros(0)
    return part_classes, maps.kept_scores[pairs // n - 1], best, num_gt


def image_human_regions(maps: InstanceMaps, people: Sequence[PersonTruth]) -> np.ndarray:
    """APh of one image: each visible predicted person's IoU with its best GT person (-inf without any)."""
    visible = maps.visible
    if not people:
        return np.full(visible.size, -np.inf)
    kept = maps.kept_scores.size
    pred_area = np.bincount(maps.humans.ravel(), minlength=kept + 1)[visible]
    inter = np.empty((visible.size, len(people)), np.float64)
    gt_area = np.empty(len(people), np.float64)
    for k, person in enumerate(people):
        inter[:, k] = np.bincount(maps.humans[person.rows, person.cols][person.mask], minlength=kept + 1)[visible]
        gt_area[k] = np.count_nonzero(person.mask)
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = inter / (pred_area[:, None] + gt_area[None, :] - inter)
    return iou.max(axis=1)
