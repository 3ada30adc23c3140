"""COCO-style matching, accumulation and summary with the DensePose evaluator's own rules.

This follows ``DensePoseCocoEval`` (detectron2 ``densepose/evaluation/densepose_coco_evaluation.py``) step for
step, including its quirks, so the numbers agree with the official protocol:

- GT people without DensePose points are *ignore* GTs (``ignore = "dp_x" not in gt``, which overrides iscrowd).
- Detections are sorted by score (stable) and cut to ``max_dets`` per image; GTs are sorted ignore-last.
- Greedy matching per threshold: a detection takes the best still-free GT with similarity >= threshold and > 0; a
  detection matched to an ignore GT is ignored.
- If every GT of an image is ignored, every detection of that image is ignored; so is every detection of an image
  without any GT (``np.all`` of an empty array is true): false positives there do not count.
- Extra DensePose pass: a detection still unmatched at the *last* threshold takes the free GT with the best box IoU
  >= 0.8; its ignore flag (at every threshold) becomes that GT's, and if that GT is an ignore GT the match is recorded
  (at the last threshold only). So detections of people without DensePose points are not false positives.
- Unmatched detections whose (box) area is outside the area range are ignored.
- Precision is interpolated at 101 recall points; -1 marks settings without GT.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

AREA_RANGES: dict[str, tuple[float, float]] = {
    "all": (0.0, 1e5**2),
    "medium": (32.0**2, 96.0**2),
    "large": (96.0**2, 1e5**2),
}


def iou_thresholds(minimum: float = 0.5) -> np.ndarray:
    """The evaluator's thresholds, ``minimum:0.05:0.95`` built exactly as detectron2 builds them."""
    return np.linspace(minimum, 0.95, int(np.round((0.95 - minimum) / 0.05)) + 1, endpoint=True)


RECALL_THRESHOLDS = np.linspace(0.0, 1.00, int(np.round((1.00 - 0.0) / 0.01)) + 1, endpoint=True)


@dataclass(frozen=True)
class ImageSimilarity:
    """Everything matching needs for one (image, category): detections already sorted by score and cut."""

    gt_ids: np.ndarray  # (G,) annotation ids
    gt_ignore: np.ndarray  # (G,) bool: no DensePose points (or otherwise ignored)
    gt_area: np.ndarray  # (G,)
    gt_crowd: np.ndarray  # (G,) bool
    dt_ids: np.ndarray  # (D,)
    dt_scores: np.ndarray  # (D,)
    dt_area: np.ndarray  # (D,)
    similarity: np.ndarray  # (D, G): GPS, mask IoU or sqrt(GPS * IoU); 0 for ignore GTs where not computed
    box_iou: np.ndarray  # (D, G)


@dataclass
class ImageResult:
    dt_scores: np.ndarray
    dt_matches: np.ndarray  # (T, D) matched GT id or 0
    dt_ignore: np.ndarray  # (T, D) bool
    gt_ignore: np.ndarray  # (G,) bool


def evaluate_image(sim: ImageSimilarity, area: tuple[float, float], thresholds: np.ndarray) -> ImageResult | None:
    """Match one image's detections to its GTs in one area range (``evaluateImg``)."""
    n_gt, n_dt = sim.gt_ids.shape[0], sim.dt_ids.shape[0]
    if n_gt == 0 and n_dt == 0:
        return None
    g_ignore = sim.gt_ignore | (sim.gt_area < area[0]) | (sim.gt_area > area[1])
    order = np.argsort(g_ignore, kind="mergesort")
    g_ignore = g_ignore[order]
    gt_ids = sim.gt_ids[order]
    crowd = sim.gt_crowd[order]
    ious = sim.similarity[:, order] if n_dt and n_gt else np.zeros((n_dt, n_gt))
    boxes = sim.box_iou[:, order] if n_dt and n_gt else np.zeros((n_dt, n_gt))
    n_thr = thresholds.shape[0]
    gtm = np.zeros((n_thr, n_gt), dtype=np.int64)
    dtm = np.zeros((n_thr, n_dt), dtype=np.int64)
    dt_ig = np.zeros((n_thr, n_dt), dtype=bool)
    if g_ignore.all():  # as the official code: np.all of no GTs is True, so detections in GT-free images are ignored
        dt_ig[:] = True
    if n_dt and n_gt:
        for t, thr in enumerate(thresholds):
            for d in range(n_dt):
                best = min(float(thr), 1 - 1e-10)
                m = -1
                for g in range(n_gt):
                    if gtm[t, g] > 0 and not crowd[g]:
                        continue
                    if m > -1 and not g_ignore[m] and g_ignore[g]:
                        break
                    value = ious[d, g]
                    if value < best or value == 0.0:
                        continue
                    best = value
                    m = g
                if m == -1:
                    continue
                dt_ig[t, d] = g_ignore[m]
                dtm[t, d] = gt_ids[m]
                gtm[t, m] = sim.dt_ids[d]
        last = n_thr - 1
        for d in range(n_dt):
            if dtm[last, d] != 0:
                continue
            best = 0.8
            m = -1
            for g in range(n_gt):
                if gtm[last, g] > 0 and not crowd[g]:
                    continue
                if boxes[d, g] < best:
                    continue
                best = boxes[d, g]
                m = g
            if m > -1:
                dt_ig[:, d] = g_ignore[m]
                if g_ignore[m]:
                    dtm[last, d] = gt_ids[m]
                    gtm[last, m] = sim.dt_ids[d]
    outside = (sim.dt_area < area[0]) | (sim.dt_area > area[1])
    dt_ig |= (dtm == 0) & outside[None, :]
    return ImageResult(sim.dt_scores, dtm, dt_ig, g_ignore)


@dataclass
class Accumulated:
    precision: np.ndarray  # (T, R, A) with -1 where undefined
    recall: np.ndarray  # (T, A)
    thresholds: np.ndarray
    areas: tuple[str, ...]
    max_dets: int
    per_image: dict[str, list[ImageResult]] = field(default_factory=dict)


def accumulate(results: dict[str, list[ImageResult | None]], thresholds: np.ndarray, max_dets: int) -> Accumulated:
    """101-point interpolated precision and max recall per threshold and area range (``accumulate``)."""
    areas = tuple(results)
    n_thr, n_rec = thresholds.shape[0], RECALL_THRESHOLDS.shape[0]
    precision = -np.ones((n_thr, n_rec, len(areas)))
    recall = -np.ones((n_thr, len(areas)))
    for a, name in enumerate(areas):
        images = [r for r in results[name] if r is not None]
        if not images:
            continue
        scores = np.concatenate([r.dt_scores[:max_dets] for r in images])
        order = np.argsort(-scores, kind="mergesort")
        dtm = np.concatenate([r.dt_matches[:, :max_dets] for r in images], axis=1)[:, order]
        dt_ig = np.concatenate([r.dt_ignore[:, :max_dets] for r in images], axis=1)[:, order]
        gt_ig = np.concatenate([r.gt_ignore for r in images])
        positives = int(np.count_nonzero(gt_ig == 0))
        if positives == 0:
            continue
        tps = (dtm != 0) & ~dt_ig
        fps = (dtm == 0) & ~dt_ig
        tp_sum = np.cumsum(tps, axis=1).astype(np.float64)
        fp_sum = np.cumsum(fps, axis=1).astype(np.float64)
        for t in range(n_thr):
            tp, fp = tp_sum[t], fp_sum[t]
            n_d = tp.shape[0]
            rc = tp / positives
            pr = tp / (fp + tp + np.spacing(1))
            recall[t, a] = rc[-1] if n_d else 0
            # Precision envelope (monotone from the right), then sampled at the recall thresholds.
            pr = np.maximum.accumulate(pr[::-1])[::-1] if n_d else pr
            idx = np.searchsorted(rc, RECALL_THRESHOLDS, side="left")
            q = np.zeros(n_rec)
            valid = idx < n_d
            q[valid] = pr[idx[valid]]
            # The official loop stops at the first recall threshold beyond the reached recall.
            if not valid.all():
                q[np.argmin(valid) :] = 0.0
            precision[t, :, a] = q
    return Accumulated(precision, recall, thresholds, areas, max_dets)


SUMMARY_KEYS = ("AP", "AP50", "AP75", "APm", "APl", "AR", "AR50", "AR75", "ARm", "ARl")


def summarize(acc: Accumulated) -> dict[str, float]:
    """The DensePose summary (``_summarizeUvs``): AP, [AP20, AP30, AP40], AP50, AP75, APm, APl, AR, AR50, ..."""

    def pick(ap: bool, thr: float | None = None, area: str = "all") -> float:
        a = acc.areas.index(area)
        s = acc.precision[:, :, a] if ap else acc.recall[:, a]
        if thr is not None:
            s = s[np.where(np.abs(thr - acc.thresholds) < 0.001)[0]]
        valid = s[s > -1]
        return float(np.mean(valid)) if valid.size else -1.0

    out = {"AP": pick(True)}
    low = float(acc.thresholds.min())
    for extra in (0.2, 0.3, 0.4):
        if low <= extra + 0.001:
            out[f"AP{int(extra * 100)}"] = pick(True, extra)
    out.update(
        {
            "AP50": pick(True, 0.5),
            "AP75": pick(True, 0.75),
            "APm": pick(True, area="medium"),
            "APl": pick(True, area="large"),
            "AR": pick(False),
            "AR50": pick(False, 0.5),
            "AR75": pick(False, 0.75),
            "ARm": pick(False, area="medium"),
            "ARl": pick(False, area="large"),
        }
    )
    return out
