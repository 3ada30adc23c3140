"""COCO-WholeBody keypoint evaluation, as the benchmark defines it.

The benchmark scores each part with xtcocotools: ``COCOeval(gt, dt, 'keypoints_<part>', sigmas_<part>,
use_area=True)`` for body (17 points), foot (6), face (68), lefthand (21), righthand (21) and wholebody (133), and
papers and mmpose report "hand" as the mean of the lefthand and righthand figures. This module is that computation
in NumPy, step for step (xtcocotools 1.14.3 ``cocoeval.py`` and ``coco.py``): its wheel is built against NumPy 1
and will not import under NumPy 2, and its source package does not build in an isolated environment.

For one part:

- OKS between a detection and a GT person: ``e = (dx² + dy²) / (2σ)² / (area + eps) / 2`` per keypoint with the
  part's sigmas, ``area`` the GT's ``area`` field (the person's, for every part), averaged as ``exp(-e)`` over the
  GT's labelled (v > 0) part keypoints. A GT with no labelled part keypoints is scored by the distance of every
  detected part keypoint to the GT box doubled (COCO's ignore-region rule).
- A GT person is ignored for the part if it is a crowd or has no labelled part keypoints; a detection is dropped for
  the part if none of its part keypoints has a score > 0.
- Detections are ranked by ``<part>_score`` (``wholebody_score`` for the whole body, ``score`` for the body) where
  present, else by ``score``; at most 20 per image; greedy matching at OKS 0.50:0.05:0.95; precision at 101 recall
  points; area ranges all / medium (32² to 96²) / large (from 96²) on the GT ``area`` (a detection's area, used for
  unmatched ones, is its ``bbox`` area when the first detection has a box, else the box of its 17 body keypoints).
- Statistics as ``COCOeval.summarize()``: AP, AP50, AP75, APm, APl, AR, AR50, AR75, ARm, ARl; -1 where the part has
  no GT person that counts.
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from densehuman.keypoints.layouts import BODY, FACE, FOOT, LEFT_HAND, RIGHT_HAND, WHOLEBODY_SIGMAS
from densehuman.validation import read_json
from densehuman.validation.coco import validate_coco
from densehuman.validation.wholebody_results import (
    COCO_WHOLEBODY_GT,
    WHOLEBODY_KEYPOINT_FIELDS,
    WholeBodyResult,
    validate_wholebody_results,
)

STAT_KEYS = ("AP", "AP50", "AP75", "APm", "APl", "AR", "AR50", "AR75", "ARm", "ARl")
# The parts xtcocotools evaluates: (keypoint indices in the 133 order, the detection score field that ranks them)
PARTS: dict[str, tuple[slice, str]] = {
    "body": (BODY, "score"),
    "foot": (FOOT, "foot_score"),
    "face": (FACE, "face_score"),
    "lefthand": (LEFT_HAND, "lefthand_score"),
    "righthand": (RIGHT_HAND, "righthand_score"),
    "wholebody": (slice(0, 133), "wholebody_score"),
}
# What is reported, in this order: the six parts and "hand", the mean of lefthand and righthand
REPORTED_PARTS = ("body", "foot", "face", "lefthand", "righthand", "hand", "wholebody")

# COCOeval's keypoint parameters (Params.setKpParams)
IOU_THRESHOLDS = np.linspace(0.5, 0.95, int(np.round((0.95 - 0.5) / 0.05)) + 1, endpoint=True)
RECALL_THRESHOLDS = np.linspace(0.0, 1.00, int(np.round((1.00 - 0.0) / 0.01)) + 1, endpoint=True)
MAX_DETS = 20
AREA_RANGES = ((0.0**2, 1e5**2), (32.0**2, 96.0**2), (96.0**2, 1e5**2))
AREA_LABELS = ("all", "medium", "large")


@dataclass(frozen=True)
class _Gt:
    id: int
    image_id: int
    category_id: int
    keypoints: np.ndarray  # (133, 3)
    bbox: tuple[float, float, float, float]
    area: float
    iscrowd: bool


@dataclass(frozen=True)
class _Dt:
    id: int  # 1-based position in the results list, as loadRes numbers them
    image_id: int
    category_id: int
    keypoints: np.ndarray  # (133, 3)
    area: float
    scores: Mapping[str, float]


@dataclass
class _ImageEval:
    dt_scores: np.ndarray  # (D,)
    dt_matches: np.ndarray  # (T, D) matched GT id or -1
    dt_ignore: np.ndarray  # (T, D) bool
    gt_ignore: np.ndarray  # (G,) bool


def evaluate_wholebody(
    gt: str | os.PathLike[str] | Mapping[str, Any], results: str | os.PathLike[str] | Sequence[Any]
) -> dict[str, Any]:
    """Score COCO-WholeBody results against a COCO-WholeBody ground truth (a file or its parsed content).

    Returns ``{"parts": {part: {"AP": ..., ..., "ARl": ...}}, "images", "gt_people", "detections",
    "ranked_by": {part: score field}}`` with the parts of ``REPORTED_PARTS``; figures are fractions in [0, 1], or -1
    where a part has nothing to score (as COCOeval). ``ranked_by`` says which field ranked each part's detections:
    its ``<part>_score``, ``score`` (the fallback; xtcocotools warns) or ``mixed`` (some detections have the part
    score). Bad inputs are ``InputError``s naming file, item and field.
    """
    gt_source, gt_data = _load(gt, "ground truth", "COCO-WholeBody ground-truth file")
    index = validate_coco(gt_data, gt_source, COCO_WHOLEBODY_GT)
    res_source, res_data = _load(results, "results", "results file")
    checked = validate_wholebody_results(res_data, res_source, index.images, index.categories)
    gts = [_gt(a) for a in index.annotations]
    dts = [_dt(r, boxes=bool(checked) and checked[0].bbox is not None) for r in checked]
    image_ids = sorted(index.images)
    category_ids = sorted(index.categories)
    parts: dict[str, dict[str, float]] = {}
    ranked_by: dict[str, str] = {}
    for part, (columns, score_key) in PARTS.items():
        stats = _evaluate_part(gts, dts, columns, score_key, image_ids, category_ids)
        parts[part] = dict(zip(STAT_KEYS, (float(v) for v in stats), strict=True))
        with_score = sum(score_key in d.scores for d in dts)
        ranked_by[part] = score_key if not dts or with_score == len(dts) else "score" if not with_score else "mixed"
    parts["hand"] = {k: _mean_known(parts["lefthand"][k], parts["righthand"][k]) for k in STAT_KEYS}
    return {
        "task": "wholebody",
        "images": len(image_ids),
        "gt_people": sum(not g.iscrowd for g in gts),
        "detections": len(dts),
        "parts": {p: parts[p] for p in REPORTED_PARTS},
        "ranked_by": ranked_by,
    }


def format_wholebody_report(figures: Mapping[str, Any], keys: Sequence[str] = ("AP", "AP50", "AP75", "AR")) -> str:
    """A table with a row per part and a column per statistic (in percent; '-' where there is nothing to score)."""
    lines = [
        f"COCO-WholeBody: {figures['images']} images, {figures['gt_people']} GT people, "
        f"{figures['detections']} detections (OKS with use_area, maxDets 20; hand = mean of left and right)",
        f"{'part':10}" + "".join(f"{k:>7}" for k in keys),
    ]
    for part, row in figures["parts"].items():
        lines.append(f"{part:10}" + "".join(f"{100 * row[k]:7.2f}" if row[k] >= 0 else f"{'-':>7}" for k in keys))
    if "seconds" in figures:
        lines.append(f"({figures['seconds']:.2f} s)")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------------- inputs
def _load(value: Any, name: str, what: str) -> tuple[str, Any]:
    if isinstance(value, str | os.PathLike):
        return str(value), read_json(Path(value), what)
    return f"<{name}>", value


def _gt(ann: Mapping[str, Any]) -> _Gt:
    keypoints = np.concatenate(
        [np.asarray(ann[key], dtype=np.float64).reshape(count, 3) for key, count in WHOLEBODY_KEYPOINT_FIELDS]
    )
    x, y, w, h = (float(v) for v in ann["bbox"])
    return _Gt(
        int(ann["id"]),
        int(ann["image_id"]),
        int(ann["category_id"]),
        keypoints,
        (x, y, w, h),
        float(ann["area"]),
        bool(ann.get("iscrowd", False)),
    )


def _dt(result: WholeBodyResult, boxes: bool) -> _Dt:
    if boxes:  # loadRes' 'bbox' branch: the area of the box
        assert result.bbox is not None
        area = result.bbox[2] * result.bbox[3]
    else:  # loadRes' 'keypoints' branch: the box of the 17 body keypoints, unlabelled ones included
        body = result.keypoints[BODY]
        area = float((body[:, 0].max() - body[:, 0].min()) * (body[:, 1].max() - body[:, 1].min()))
    scores = {"score": result.score, **result.part_scores}
    return _Dt(result.index + 1, result.image_id, result.category_id, result.keypoints, area, scores)


def _mean_known(a: float, b: float) -> float:
    known = [v for v in (a, b) if v > -1]
    return float(np.mean(known)) if known else -1.0


# --------------------------------------------------------------------------------------------------- COCOeval
def _evaluate_part(
    gts: list[_Gt],
    dts: list[_Dt],
    columns: slice,
    score_key: str,
    image_ids: list[int],
    category_ids: list[int],
) -> np.ndarray:
    """``COCOeval(..., 'keypoints_<part>', sigmas, use_area=True)``: evaluate, accumulate, summarize."""
    sigmas = WHOLEBODY_SIGMAS[columns]
    gt_by: dict[tuple[int, int], list[_Gt]] = defaultdict(list)
    ignore: dict[int, bool] = {}
    for g in gts:  # _prepare: crowds and people without labelled part keypoints are ignored
        ignore[id(g)] = g.iscrowd or int(np.count_nonzero(g.keypoints[columns, 2] > 0)) == 0
        gt_by[g.image_id, g.category_id].append(g)
    dt_by: dict[tuple[int, int], list[_Dt]] = defaultdict(list)
    for d in dts:  # _prepare: detections without a positive part keypoint score are dropped
        if np.count_nonzero(d.keypoints[columns, 2] > 0):
            dt_by[d.image_id, d.category_id].append(d)

    def score(d: _Dt) -> float:
        return d.scores.get(score_key, d.scores["score"])

    # evaluate(): per category, area range and image (the order accumulate() indexes them in)
    evals: list[list[list[_ImageEval | None]]] = []
    for cat in category_ids:
        per_area: list[list[_ImageEval | None]] = [[] for _ in AREA_RANGES]
        for image in image_ids:
            g_list, d_list = gt_by.get((image, cat), []), dt_by.get((image, cat), [])
            order = np.argsort([-score(d) for d in d_list], kind="mergesort")
            d_sorted = [d_list[i] for i in order][:MAX_DETS]
            ious = _oks(g_list, d_sorted, columns, sigmas)
            for a, area_range in enumerate(AREA_RANGES):
                per_area[a].append(_evaluate_image(g_list, d_sorted, ious, ignore, area_range, score))
        evals.append(per_area)
    precision, recall = _accumulate(evals)
    return _summarize(precision, recall)


def _oks(gts: list[_Gt], dts: list[_Dt], columns: slice, sigmas: np.ndarray) -> np.ndarray:
    """``computeOks``: (D, G) OKS of the score-sorted detections against the GT people in file order."""
    if not gts or not dts:
        return np.zeros((0, 0))
    variances = (sigmas * 2) ** 2
    count = len(sigmas)
    d = np.stack([dt.keypoints[columns] for dt in dts])  # (D, K, 3)
    xd, yd = d[:, :, 0], d[:, :, 1]
    ious = np.zeros((len(dts), len(gts)))
    for j, gt in enumerate(gts):
        g = gt.keypoints[columns]
        xg, yg, vg = g[:, 0], g[:, 1], g[:, 2]
        labelled = vg > 0
        if np.count_nonzero(labelled) > 0:
            dx, dy = xd - xg, yd - yg
        else:  # distance to the GT box doubled (x0..x1, y0..y1), zero inside it
            bx, by, bw, bh = gt.bbox
            x0, x1, y0, y1 = bx - bw, bx + bw * 2, by - bh, by + bh * 2
            z = np.zeros((len(dts), count))
            dx = np.max((z, x0 - xd), axis=0) + np.max((z, xd - x1), axis=0)
            dy = np.max((z, y0 - yd), axis=0) + np.max((z, yd - y1), axis=0)
        e = (dx**2 + dy**2) / variances / (gt.area + np.spacing(1)) / 2
        if np.count_nonzero(labelled) > 0:
            e = e[:, labelled]
        for i in range(len(dts)):  # summed row by row, as the reference sums each pair
            ious[i, j] = np.sum(np.exp(-e[i])) / e.shape[1]
    return ious


def _evaluate_image(
    gts: list[_Gt],
    dts: list[_Dt],
    ious: np.ndarray,
    ignore: Mapping[int, bool],
    area_range: tuple[float, float],
    score: Callable[[_Dt], float],
) -> _ImageEval | None:
    """``evaluateImg`` for one image, category and area range; ``dts`` already sorted and cut to maxDets."""
    if not gts and not dts:
        return None
    gt_ignore_flags = [ignore[id(g)] or g.area < area_range[0] or g.area > area_range[1] for g in gts]
    gt_order = np.argsort(np.asarray(gt_ignore_flags, dtype=np.int64), kind="mergesort")
    g_sorted = [gts[i] for i in gt_order]
    gt_ignore = np.asarray([gt_ignore_flags[i] for i in gt_order], dtype=bool)
    crowd = [g.iscrowd for g in g_sorted]
    table = ious[:, gt_order].tolist() if ious.size else []
    num_t, num_g, num_d = len(IOU_THRESHOLDS), len(g_sorted), len(dts)
    gt_matched = np.full((num_t, num_g), -1, dtype=np.int64)
    dt_matches = np.full((num_t, num_d), -1, dtype=np.int64)
    dt_ignore = np.zeros((num_t, num_d), dtype=bool)
    if table:
        for t, threshold in enumerate(IOU_THRESHOLDS):
            for di, d in enumerate(dts):
                best = min(float(threshold), 1 - 1e-10)
                m = -1
                row = table[di]
                for gi in range(num_g):
                    if gt_matched[t, gi] >= 0 and not crowd[gi]:
                        continue
                    if m > -1 and not gt_ignore[m] and gt_ignore[gi]:
                        break
                    if row[gi] < best:
                        continue
                    best = row[gi]
                    m = gi
                if m == -1:
                    continue
                dt_ignore[t, di] = gt_ignore[m]
                dt_matches[t, di] = g_sorted[m].id  # the GT id, as COCOeval stores it
                gt_matched[t, m] = d.id
    outside = np.array([d.area < area_range[0] or d.area > area_range[1] for d in dts], dtype=bool).reshape(1, num_d)
    dt_ignore = np.logical_or(dt_ignore, np.logical_and(dt_matches < 0, np.repeat(outside, num_t, 0)))
    scores = np.asarray([score(d) for d in dts], dtype=np.float64)
    return _ImageEval(scores, dt_matches, dt_ignore, gt_ignore)


def _accumulate(evals: list[list[list[_ImageEval | None]]]) -> tuple[np.ndarray, np.ndarray]:
    """``accumulate``: precision (T, R, K, A) at the recall thresholds, and recall (T, K, A); maxDets is one."""
    num_t, num_r, num_k, num_a = len(IOU_THRESHOLDS), len(RECALL_THRESHOLDS), len(evals), len(AREA_RANGES)
    precision = -np.ones((num_t, num_r, num_k, num_a))
    recall = -np.ones((num_t, num_k, num_a))
    for k, per_area in enumerate(evals):
        for a, per_image in enumerate(per_area):
            present = [e for e in per_image if e is not None]
            if not present:
                continue
            dt_scores = np.concatenate([e.dt_scores[:MAX_DETS] for e in present])
            order = np.argsort(-dt_scores, kind="mergesort")
            dtm = np.concatenate([e.dt_matches[:, :MAX_DETS] for e in present], axis=1)[:, order]
            dt_ig = np.concatenate([e.dt_ignore[:, :MAX_DETS] for e in present], axis=1)[:, order]
            gt_ig = np.concatenate([e.gt_ignore for e in present])
            npig = np.count_nonzero(gt_ig == 0)
            if npig == 0:
                continue
            tps = np.logical_and(dtm >= 0, np.logical_not(dt_ig))
            fps = np.logical_and(dtm < 0, np.logical_not(dt_ig))
            tp_sum = np.cumsum(tps, axis=1).astype(dtype=np.float64)
            fp_sum = np.cumsum(fps, axis=1).astype(dtype=np.float64)
            for t, (tp, fp) in enumerate(zip(tp_sum, fp_sum, strict=True)):
                nd = len(tp)
                rc = tp / npig
                pr = tp / (fp + tp + np.spacing(1))
                recall[t, k, a] = rc[-1] if nd else 0
                # precision made monotone from the right, then read at each recall threshold (0 past the end)
                pr = np.maximum.accumulate(pr[::-1])[::-1] if nd else pr
                inds = np.searchsorted(rc, RECALL_THRESHOLDS, side="left")
                q = np.zeros(num_r)
                inside = inds < nd
                q[inside] = pr[inds[inside]]
                precision[t, :, k, a] = q
    return precision, recall


def _summarize(precision: np.ndarray, recall: np.ndarray) -> np.ndarray:
    """``summarize`` for keypoints (``_summarizeKps``): the ten statistics."""

    def one(ap: bool, threshold: float | None = None, area: str = "all") -> float:
        a = AREA_LABELS.index(area)
        s = precision if ap else recall
        if threshold is not None:
            s = s[np.where(threshold == IOU_THRESHOLDS)[0]]
        s = s[..., a]
        return float(np.mean(s[s > -1])) if np.any(s > -1) else -1.0

    return np.array(
        [
            one(True),
            one(True, 0.5),
            one(True, 0.75),
            one(True, area="medium"),
            one(True, area="large"),
            one(False),
            one(False, 0.5),
            one(False, 0.75),
            one(False, area="medium"),
            one(False, area="large"),
        ]
    )
