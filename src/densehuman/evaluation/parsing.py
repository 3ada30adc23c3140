"""Instance-level human-parsing evaluation as the official code computes it (``shared/reference/parsing.md`` 1.9):

- **mIoU**, pixel and mean accuracy (Parsing R-CNN ``parsing_png`` + ``parsing_iou``): per image the detections
  scoring at least the dataset's threshold (0.3 CIHP, 0.05 MHP) are painted in ascending score order into one
  global map, compared with the GT global map; IoU per class over the summed histogram, mean over every class
  with background;
- **APp** at 0.1..0.9, APp_vol, **PCP50** (``eval_parsing_ap``): each detection against each GT person of its
  image over the full image, mean part IoU with background, greedy matching in score order;
- **APr** (CIHP part instances only) and **APh** at 0.5..0.95, as QANet computes them (``parsing_regions``).

Each GT image is read once and each detection pasted once; the per-detection IoUs are computed while its image's
ground truth is in memory, and the score-ordered matching runs over them at the end.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np
from tqdm import tqdm

from densehuman.data.parsing_folders import ParsingEntry, ParsingSplit, image_size, read_part_instances, read_people
from densehuman.data.parsing_folders import read_global as read_global_map
from densehuman.evaluation.parsing_metrics import (
    APH_THRESHOLDS,
    APP_SCORE_THRESHOLD,
    APP_THRESHOLDS,
    PartAP,
    PersonTruth,
    class_iou,
    fast_hist,
    nanmean,
    part_ap,
    person_ious,
    region_ap,
)
from densehuman.evaluation.parsing_regions import (
    image_human_regions,
    image_part_regions,
    instance_maps,
    part_class_table,
)
from densehuman.evaluation.parsing_results import ParsingDetection
from densehuman.validation import InputError
from densehuman.validation.images import read_label_map

STAGES = ("read ground truth", "mIoU", "APp", "APr/APh", "matching")


def read_image_truth(entry: ParsingEntry, split: ParsingSplit) -> tuple[np.ndarray, list[PersonTruth]]:
    """An image's GT global map (H, W) and its people, each file read once.

    CIHP: the global map is ``Category_ids``; person k is ``Category_ids * (Human_ids == k)`` (QANet's
    construction, as ``read_people``) and its APh mask ``Human_ids == k``. MHP: person k is its own file, its mask
    its labelled pixels, and the global map paints later people over earlier ones (as ``read_global``)."""
    n = split.classes.num_classes
    height, width = size = image_size(entry)
    pixels = height * width
    people: list[PersonTruth] = []
    if entry.person_maps or entry.human is None:
        maps = read_people(entry, split.classes)
        global_map = np.zeros(size, np.uint8)
        for labels in maps:
            global_map = np.where(labels > 0, labels, global_map)
            rows, cols = np.flatnonzero(labels.any(axis=1)), np.flatnonzero(labels.any(axis=0))
            if rows.size == 0:
                window = (slice(0, 0), slice(0, 0))
            else:
                window = (slice(int(rows[0]), int(rows[-1]) + 1), slice(int(cols[0]), int(cols[-1]) + 1))
            crop = labels[window]
            people.append(PersonTruth.from_window(*window, crop, crop > 0, pixels, n))
        return global_map, people
    global_map = read_global_map(entry, split.classes)
    human = read_label_map(entry.human, ignore=None)
    if human.shape != size:
        raise InputError(entry.human, f"label map is {human.shape[1]}x{human.shape[0]}, its image {width}x{height}")
    for k in range(1, int(human.max()) + 1):
        x, y, w, h = cv2.boundingRect((human == k).view(np.uint8))  # faster than ndimage.find_objects
        if w == 0:
            continue  # no such human id
        window = slice(y, y + h), slice(x, x + w)
        mask = human[window] == k
        crop = np.where(mask, global_map[window], 0).astype(np.uint8)
        people.append(PersonTruth.from_window(window[0], window[1], crop, mask, pixels, n))
    return global_map, people


def _check_part_instances(
    entry: ParsingEntry, parts: np.ndarray, rows: Sequence[tuple[int, int, int]], size: tuple[int, ...]
) -> None:
    """The part instance map matches the image and its table gives each part id one class (a part listed twice
    would be counted as a GT part of each of its classes)."""
    if parts.shape != size:
        raise InputError(entry.instance or entry.image, f"label map is {parts.shape[::-1]}, its image {size[::-1]}")
    seen: set[int] = set()
    for part_id, _, _ in rows:
        if part_id in seen:
            raise InputError(entry.instance_table or entry.image, f"part instance {part_id} is listed twice")
        seen.add(part_id)


def _none(value: float) -> float | None:
    return None if not np.isfinite(value) else float(value)


class _Stopwatch:
    """Seconds spent per stage, summed over images (``lap(stage)`` charges the time since the last lap)."""

    def __init__(self) -> None:
        self.seconds = dict.fromkeys(STAGES, 0.0)
        self._last = time.perf_counter()

    def lap(self, stage: str) -> None:
        now = time.perf_counter()
        self.seconds[stage] += now - self._last
        self._last = now


@dataclass
class _Tally:
    """What the images add up to: the mIoU histogram, each detection's best GT person (APp), and the region
    outcomes (APr, APh)."""

    hist: np.ndarray
    ovmax: np.ndarray
    jmax: np.ndarray
    best_ious: np.ndarray
    pcp_d: np.ndarray
    npos: int = 0
    num_humans: int = 0
    num_parts: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = field(default_factory=list)  # (class, score, IoU)
    humans: list[tuple[np.ndarray, np.ndarray]] = field(default_factory=list)  # (score, IoU)


class ParsingEvaluation:
    """mIoU, APp/PCP, APr and APh of parsing detections on a split; ``run()`` gives the figures (JSON-ready)."""

    def __init__(self, split: ParsingSplit, detections: Sequence[ParsingDetection], progress: bool = False) -> None:
        self.split = split
        self.detections = list(detections)
        self.progress = progress
        known = {e.image_id for e in split}
        n = split.classes.num_classes
        for i, d in enumerate(self.detections):
            if d.image_id not in known:
                raise ValueError(f"detection {i}: image_id {d.image_id} is not an image of the split {split.root}")
            if d.parsing.size and int(d.parsing.max()) >= n:
                raise ValueError(f"detection {i} (image {d.image_id}): label {int(d.parsing.max())} >= {n} classes")
        self.regions = split.has_part_instances  # APr needs every image's part instance files
        self.by_image: dict[int, list[int]] = {}
        for i, d in enumerate(self.detections):
            self.by_image.setdefault(d.image_id, []).append(i)

    def run(self) -> dict[str, Any]:
        n, nd = self.split.classes.num_classes, len(self.detections)
        tally = _Tally(
            hist=np.zeros((n, n), np.int64),
            ovmax=np.full(nd, -np.inf),
            jmax=np.full(nd, -1, np.int64),
            best_ious=np.full((nd, n), np.nan),
            pcp_d=np.zeros(nd, np.int64),
            num_parts=np.zeros(n, np.int64),
        )
        clock = _Stopwatch()
        for entry in tqdm(self.split.entries, desc="parsing eval", unit="img", disable=not self.progress):
            self._add_image(entry, tally, clock)
        scores = np.array([d.score for d in self.detections], np.float64)
        app = part_ap(scores, tally.ovmax, tally.jmax, tally.best_ious, tally.pcp_d, tally.npos)
        figures = self._figures(tally.hist, app, tally.npos)
        figures.update(_human_figures(tally.humans, tally.num_humans))
        if self.regions:
            figures.update(_part_figures(tally.parts, tally.num_parts, self.split.classes.categories))
        clock.lap("matching")
        figures["seconds"] = {k: round(v, 4) for k, v in clock.seconds.items()}
        return figures

    def _add_image(self, entry: ParsingEntry, tally: _Tally, clock: _Stopwatch) -> None:
        """Score one image's detections against its ground truth, read once; each detection is pasted once (its
        window) and used by every metric."""
        classes = self.split.classes
        n = classes.num_classes
        global_gt, people = read_image_truth(entry, self.split)
        size = global_gt.shape
        if self.regions:
            gt_parts, part_rows = read_part_instances(entry)
            _check_part_instances(entry, gt_parts, part_rows, size)
        mine = self.by_image.get(entry.image_id, [])
        windows = [self.detections[i].window(size) for i in mine]
        scores = [self.detections[i].score for i in mine]
        clock.lap("read ground truth")
        # mIoU: parsing_png's global map, detections by ascending score so that higher ones are painted last
        predicted = np.zeros(size, np.uint8)
        for k in np.argsort(np.asarray(scores), kind="stable"):
            window = windows[k]
            if scores[k] >= classes.score_threshold and window is not None:
                np.copyto(predicted[window[0], window[1]], window[2], where=window[2] > 0)
        tally.hist += fast_hist(global_gt, predicted, n)
        clock.lap("mIoU")
        # APp: each detection against each person of its image; the matching waits for every image
        for k, i in enumerate(mine):
            if scores[k] < APP_SCORE_THRESHOLD or not people:
                continue
            ious = person_ious(windows[k], people, size[0] * size[1], n)
            means = nanmean(ious, axis=1)
            means[np.isnan(means)] = -np.inf  # an all-NaN mean never beats the official loop's -inf start
            best = int(np.argmax(means))  # the first of equal means, as the strict > of the official loop
            if np.isfinite(means[best]):
                tally.ovmax[i], tally.jmax[i] = means[best], tally.npos + best
                tally.best_ious[i], tally.pcp_d[i] = ious[best], people[best].pcp_d
        tally.npos += len(people)
        clock.lap("APp")
        # APr and APh: QANet's instance maps
        maps = instance_maps(size, windows, scores)
        with_pixels = [p for p in people if p.mask.any()]
        tally.num_humans += len(with_pixels)
        if maps.visible.size:
            tally.humans.append((maps.human_scores, image_human_regions(maps, with_pixels)))
        if self.regions:
            part_classes, part_scores, best_iou, gt_count = image_part_regions(
                maps, gt_parts, part_class_table(part_rows, n), n
            )
            tally.num_parts += gt_count
            tally.parts.append((part_classes, part_scores, best_iou))
        clock.lap("APr/APh")

    def _figures(self, hist: np.ndarray, app: PartAP, npos: int) -> dict[str, Any]:
        classes = self.split.classes
        iou = class_iou(hist)
        diag = np.diag(hist).astype(np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            pixel_acc = diag.sum() / hist.sum()
            mean_acc = nanmean(diag / hist.sum(1))
        return {
            "dataset": classes.name,
            "split": self.split.split,
            "images": len(self.split),
            "gt_people": npos,
            "detections": len(self.detections),
            "mIoU": _none(float(nanmean(iou))),
            "pixel_acc": _none(pixel_acc),
            "mean_acc": _none(float(mean_acc)),
            "per_class_IoU": [{"class": c, "IoU": _none(v)} for c, v in zip(classes.categories, iou, strict=True)],
            "APp50": _none(app.ap[APP_THRESHOLDS.index(0.5)]),
            "APp_vol": _none(float(np.mean(app.ap))),
            "PCP50": _none(app.pcp[APP_THRESHOLDS.index(0.5)]),
            "APp_thresholds": list(APP_THRESHOLDS),
            "APp": [_none(v) for v in app.ap],
            "PCP": [_none(v) for v in app.pcp],
        }


def _human_figures(found: list[tuple[np.ndarray, np.ndarray]], num_gt: int) -> dict[str, Any]:
    scores = np.concatenate([s for s, _ in found]) if found else np.zeros(0)
    best = np.concatenate([b for _, b in found]) if found else np.zeros(0)
    ap = region_ap(scores, best, num_gt, APH_THRESHOLDS)
    return {
        "APh_thresholds": list(APH_THRESHOLDS),
        "APh": [_none(v) for v in ap],
        "APh_vol": _none(float(nanmean(ap))),
        "APh50": _none(ap[0]),
        "APh75": _none(ap[APH_THRESHOLDS.index(0.75)]),
    }


def _part_figures(
    found: list[tuple[np.ndarray, np.ndarray, np.ndarray]], num_gt: np.ndarray, names: Sequence[str]
) -> dict[str, Any]:
    classes = np.concatenate([c for c, _, _ in found]) if found else np.zeros(0, np.int64)
    scores = np.concatenate([s for _, s, _ in found]) if found else np.zeros(0)
    best = np.concatenate([b for _, _, b in found]) if found else np.zeros(0)
    per_class = np.array(
        [
            region_ap(scores[classes == c], best[classes == c], int(num_gt[c]), APP_THRESHOLDS)
            for c in range(1, len(names))
        ]
    )  # (n - 1, T): classes absent from GT and predictions score 0, predicted but absent from GT NaN (QANet)
    mean = nanmean(per_class, axis=0)
    return {
        "APr_thresholds": list(APP_THRESHOLDS),
        "APr": [_none(v) for v in mean],
        "APr_vol": _none(float(nanmean(mean))),
        "APr50": _none(mean[APP_THRESHOLDS.index(0.5)]),
        "APr_per_class": [
            {"class": names[c], "gt_parts": int(num_gt[c]), "AP": [_none(v) for v in per_class[c - 1]]}
            for c in range(1, len(names))
        ],
    }


def _pct(value: float | None) -> str:
    return f"{100 * value:7.2f}" if value is not None else f"{'-':>7}"


def format_parsing_report(figures: dict[str, Any]) -> str:
    """The figures as a table: the headline numbers, the APs per threshold, then IoU per class."""
    lines = [
        f"{figures['dataset']} {figures['split']}: {figures['images']} images, {figures['gt_people']} GT people, "
        f"{figures['detections']} detections",
        f"mIoU {_pct(figures['mIoU'])}   pixel acc {_pct(figures['pixel_acc'])}   mean acc {_pct(figures['mean_acc'])}",
        f"APp50 {_pct(figures['APp50'])}   APp_vol {_pct(figures['APp_vol'])}   PCP50 {_pct(figures['PCP50'])}",
    ]
    if "APr" in figures:
        lines.append(f"APr50 {_pct(figures['APr50'])}   APr_vol {_pct(figures['APr_vol'])}")
    lines.append(
        f"APh50 {_pct(figures['APh50'])}   APh75 {_pct(figures['APh75'])}   APh_vol {_pct(figures['APh_vol'])}"
    )
    for key in ("APp", "PCP", "APr", "APh"):
        if key in figures:
            thresholds = figures["APh_thresholds" if key == "APh" else "APp_thresholds"]
            lines.append(f"{key:4} " + "".join(f"{t:>7.2f}" for t in thresholds))
            lines.append(f"{'':4} " + "".join(_pct(v) for v in figures[key]))
    lines.append("IoU per class:")
    lines.extend(f"  {row['class']:<28} {_pct(row['IoU'])}" for row in figures["per_class_IoU"])
    if "seconds" in figures:
        lines.append("(" + ", ".join(f"{k} {v:.2f} s" for k, v in figures["seconds"].items()) + ")")
    return "\n".join(lines)
