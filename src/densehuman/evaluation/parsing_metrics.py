"""The arithmetic of the official human-parsing evaluation (soeaver/Parsing-R-CNN
``utils/data/evaluation/parsing_eval.py``; ``shared/reference/parsing.md`` section 1.9), as functions of arrays.

- ``fast_hist`` / ``class_iou``: the confusion histogram ``hist[gt, pred]`` (GT values >= n ignored) and the
  per-class IoU ``diag / (rowsum + colsum - diag)``, NaN for a class absent from both maps;
- ``person_ious``: the same per-class IoU of one detection against each GT person over the full image, as
  ``cal_one_mean_iou`` computes it, but from the pixels where both are non-zero only (see its docstring);
- ``part_ap``: APp and PCP, the official greedy matching in score order;
- ``region_ap``: QANet's AP for APr and APh (each prediction against its best GT, no one-to-one matching);
- ``voc_ap``: VOC all-point interpolated AP (``use_07_metric=False``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

APP_THRESHOLDS: tuple[float, ...] = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)  # APp, PCP and APr
APH_THRESHOLDS: tuple[float, ...] = (0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95)  # QANet maskiouThrs
APP_SCORE_THRESHOLD = 0.001  # PRCNN.SCORE_THRESH: eval_parsing_ap skips detections scoring less
EPS = float(np.finfo(np.float64).eps)


def fast_hist(gt: np.ndarray, pred: np.ndarray, n: int) -> np.ndarray:
    """(n, n) int64 ``hist[gt, pred]`` over the pixels with ``gt < n`` (``fast_hist(a, b, n)`` of the official
    code, with ``a`` the GT). ``pred`` must hold labels below n."""
    gt = np.asarray(gt).ravel()
    pred = np.asarray(pred).ravel()
    # Every uint8 GT value gets a row, so no mask is needed: the rows >= n are dropped after counting.
    rows = max(int(gt.max(initial=0)) + 1, n)
    counts = np.bincount(gt.astype(np.intp) * n + pred, minlength=rows * n)
    return counts.reshape(rows, n)[:n].astype(np.int64)


def class_iou(hist: np.ndarray) -> np.ndarray:
    """(n,) per-class IoU of a histogram: ``diag / (rowsum + colsum - diag)``; NaN where the class is in neither
    map (0 / 0), exactly as NumPy computes the official expression."""
    hist = np.asarray(hist, dtype=np.float64)
    diag = np.diag(hist)
    with np.errstate(divide="ignore", invalid="ignore"):
        return diag / (hist.sum(1) + hist.sum(0) - diag)


def nanmean(values: np.ndarray, axis: int | None = None) -> np.ndarray:
    """``np.nanmean`` without the all-NaN warning (an all-NaN mean is NaN, as in the official code); a 0-d array
    when ``axis`` is None."""
    values = np.asarray(values, dtype=np.float64)
    valid = ~np.isnan(values)
    count = valid.sum(axis=axis)
    total = np.where(valid, values, 0.0).sum(axis=axis)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.asarray(total / count)


def voc_ap(rec: np.ndarray, prec: np.ndarray) -> float:
    """VOC all-point interpolated AP: sentinels (0, 1) on recall and (0, 0) on precision, the precision envelope
    (running maximum from the right), then the sum of recall steps times the envelope after each step. NaN
    recalls (no GT at all) propagate to a NaN AP as in the official loop."""
    mrec = np.concatenate(([0.0], np.asarray(rec, np.float64), [1.0]))
    mpre = np.concatenate(([0.0], np.asarray(prec, np.float64), [0.0]))
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]  # the loop mpre[i-1] = max(mpre[i-1], mpre[i]), i descending
    steps = np.flatnonzero(mrec[1:] != mrec[:-1])
    return float(np.sum((mrec[steps + 1] - mrec[steps]) * mpre[steps + 1]))


def _pr_curve(tp: np.ndarray, fp: np.ndarray, npos: float) -> tuple[np.ndarray, np.ndarray]:
    """Cumulated recall and precision along the score order (last axis), as the official code computes them."""
    tp, fp = np.cumsum(tp, axis=-1), np.cumsum(fp, axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        rec = tp / float(npos)
    return rec, tp / np.maximum(tp + fp, EPS)


@dataclass(frozen=True)
class PersonTruth:
    """One GT person of an image, kept as the window holding its pixels: ``labels`` (its part labels there, 0 off
    the person, values >= n ignored), ``mask`` (its pixels, for APh), and over the full image ``counts`` (pixels
    of each class < n, background included) and ``ignored`` (pixels with a value >= n)."""

    rows: slice
    cols: slice
    labels: np.ndarray
    mask: np.ndarray
    counts: np.ndarray
    ignored: int

    @staticmethod
    def from_window(
        rows: slice, cols: slice, labels: np.ndarray, mask: np.ndarray, image_pixels: int, n: int
    ) -> PersonTruth:
        binned = np.bincount(np.minimum(labels, n).ravel(), minlength=n + 1)
        counts = binned[:n].astype(np.int64)
        counts[0] += image_pixels - labels.size  # the rest of the image is background
        return PersonTruth(rows, cols, labels, mask, counts, int(binned[n]))

    @property
    def pcp_d(self) -> int:
        """The number of distinct part labels of the person (1..n-1): PCP's denominator."""
        return int(np.count_nonzero(self.counts[1:]))


def person_ious(
    window: tuple[slice, slice, np.ndarray] | None, people: Sequence[PersonTruth], image_pixels: int, n: int
) -> np.ndarray:
    """(K, n) per-class IoU of one detection (its pasted window) against each GT person, over the full image.

    Equal to ``class_iou(fast_hist(person_map, pasted_map, n))`` (``cal_one_mean_iou``) for each person, but
    counted where the two windows overlap only: outside the overlap at least one of the maps is 0, so with the
    joint histogram J of the overlap and the full-image class counts of each map, the diagonal, row and column sums
    the IoU needs follow exactly (GT-ignored pixels lie in the person's window and count nowhere).
    """
    out = np.empty((len(people), n), np.float64)
    if window is None:
        pred_counts = np.zeros(n, np.int64)
        prows = pcols = slice(0, 0)
        grid = np.zeros((0, 0), np.uint8)
    else:
        prows, pcols, grid = window
        pred_counts = np.bincount(grid.ravel(), minlength=n).astype(np.int64)
    pred_counts[0] += image_pixels - grid.size
    for k, person in enumerate(people):
        ya, yb = max(prows.start, person.rows.start), min(prows.stop, person.rows.stop)
        xa, xb = max(pcols.start, person.cols.start), min(pcols.stop, person.cols.stop)
        if ya < yb and xa < xb:
            gt = person.labels[
                ya - person.rows.start : yb - person.rows.start, xa - person.cols.start : xb - person.cols.start
            ]
            pr = grid[ya - prows.start : yb - prows.start, xa - pcols.start : xb - pcols.start]
            codes = np.minimum(gt, n).astype(np.intp) * n + pr
            joint = np.bincount(codes.ravel(), minlength=(n + 1) * n).reshape(n + 1, n)
        else:
            joint = np.zeros((n + 1, n), np.int64)
        rowsum = person.counts.astype(np.float64)
        colsum = (pred_counts - joint[n]).astype(np.float64)
        colsum[0] -= person.ignored - joint[n].sum()  # ignored pixels off the detection's window have pred 0
        diag = np.diag(joint[:n]).astype(np.float64)
        valid = image_pixels - person.ignored
        diag[0] = valid - rowsum[1:].sum() - colsum[1:].sum() + joint[1:n, 1:].sum()
        with np.errstate(divide="ignore", invalid="ignore"):
            out[k] = diag / (rowsum + colsum - diag)
    return out


@dataclass(frozen=True)
class PartAP:
    """APp and PCP at each threshold, and the per-detection outcome (score order) for inspection."""

    thresholds: tuple[float, ...]
    ap: np.ndarray  # (T,)
    pcp: np.ndarray  # (T,)
    tp: np.ndarray  # (T, D) in score order
    fp: np.ndarray


def part_ap(
    scores: np.ndarray,
    ovmax: np.ndarray,
    jmax: np.ndarray,
    best_ious: np.ndarray,
    pcp_d: np.ndarray,
    npos: int,
    thresholds: Sequence[float] = APP_THRESHOLDS,
    score_threshold: float = APP_SCORE_THRESHOLD,
) -> PartAP:
    """APp and PCP (``eval_parsing_ap``) from each detection's best GT person.

    Per detection: ``ovmax`` its best mean part IoU (-inf when its image has no person it overlaps with a finite
    mean), ``jmax`` that person's index over the dataset (-1: none), ``best_ious`` (D, n) the per-class IoUs
    against it and ``pcp_d`` its number of distinct part labels. Detections are taken by score, descending (ties
    in input order); those scoring under ``score_threshold`` stay in the arrays with neither TP nor FP. At each
    threshold t, ``ovmax > t`` on a person not yet matched at t is a TP (PCP: the fraction of the person's parts
    with IoU > t, NaN counting as not), anything else an FP, a second hit on a matched person included.
    """
    thr = np.asarray(thresholds, np.float64)
    order = np.argsort(-np.asarray(scores, np.float64), kind="stable")
    nd, nt = order.size, thr.size
    tp, fp = np.zeros((nt, nd)), np.zeros((nt, nd))
    matched = np.zeros((nt, max(npos, 1)), bool)
    pcp: list[list[float]] = [[] for _ in range(nt)]
    for rank, d in enumerate(order):
        if scores[d] < score_threshold:
            continue
        j = int(jmax[d])
        new = (ovmax[d] > thr) & ~matched[:, j] if j >= 0 else np.zeros(nt, bool)
        tp[new, rank] = 1.0
        fp[~new, rank] = 1.0
        if j < 0 or not new.any():
            continue
        matched[new, j] = True
        with np.errstate(invalid="ignore"):
            correct = (best_ious[d, 1:][None, :] > thr[new][:, None]).sum(axis=1)
        for t, count in zip(np.flatnonzero(new), correct, strict=True):
            pcp[t].append(float(count) / pcp_d[d] if pcp_d[d] > 0 else 0.0)
    rec, prec = _pr_curve(tp, fp, npos)
    ap = np.array([voc_ap(rec[t], prec[t]) for t in range(nt)])
    with np.errstate(invalid="ignore"):
        mean_pcp = np.array([np.sum(p) / npos if npos else np.nan for p in pcp])  # unmatched people count 0
    return PartAP(tuple(float(t) for t in thr), ap, mean_pcp, tp, fp)


def region_ap(scores: np.ndarray, max_iou: np.ndarray, num_gt: int, thresholds: Sequence[float]) -> np.ndarray:
    """(T,) QANet's AP of predicted regions (APr per class, APh): each prediction is a TP at t when its IoU with
    its best GT exceeds t (``max_iou``, -inf without any GT), with no one-to-one matching, so two predictions of
    one GT are both TPs. Scores descending (ties in input order). No prediction gives AP 0; predictions without any
    GT give NaN (recall 0 / 0), both as the official code computes them."""
    thr = np.asarray(thresholds, np.float64)
    order = np.argsort(-np.asarray(scores, np.float64), kind="stable")
    ious = np.asarray(max_iou, np.float64)[order]
    tp = (ious[None, :] > thr[:, None]).astype(np.float64)
    rec, prec = _pr_curve(tp, 1.0 - tp, num_gt)
    return np.array([voc_ap(rec[t], prec[t]) for t in range(thr.size)])
