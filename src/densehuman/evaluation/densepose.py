"""DensePose evaluation of a results file against DensePose-COCO ground truth: GPS, GPSm and IOU AP/AR (the
official protocol, see ``matching.py`` and ``gps.py``), box AP through pycocotools, and the paper's RCP."""

from __future__ import annotations

import contextlib
import io
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from densehuman.evaluation.geodesic_data import GeodesicEvalData
from densehuman.evaluation.gps import (
    OFFICIAL_POINT_SCALE,
    GtPoints,
    PredictedVertexTable,
    box_iou_matrix,
    gps_matrix,
    gt_mask_rle,
    mask_iou_matrix,
    pair_distances,
    paste_mask,
    prepare_gt_points,
)
from densehuman.evaluation.ignore_regions import keep_person, region_mask
from densehuman.evaluation.matching import (
    AREA_RANGES,
    ImageResult,
    ImageSimilarity,
    accumulate,
    evaluate_image,
    iou_thresholds,
    summarize,
)
from densehuman.evaluation.predictions import Detection
from densehuman.evaluation.rcp import PointErrors, summarize_rcp

MODES = ("gps", "gpsm", "iou")


@dataclass(frozen=True)
class DensePoseEvalConfig:
    modes: tuple[str, ...] = MODES
    kappa: float | None = None  # None: the official per-part table; 0.255: the paper's single kappa
    max_dets: int = 20
    min_threshold: float = 0.5  # 0.5 -> thresholds 0.50:0.05:0.95 (0.2 gives the APex setting)
    box_ap: bool = True
    rcp: bool = True
    point_scale: float = OFFICIAL_POINT_SCALE  # 255: the official evaluator's quirk; 256: where the points were put

    def __post_init__(self) -> None:
        unknown = set(self.modes) - set(MODES)
        if unknown or not self.modes:
            raise ValueError(f"unknown evaluation mode(s) {sorted(unknown)}; choose from {MODES}")
        if self.kappa is not None and not self.kappa > 0:
            raise ValueError(f"kappa must be positive, got {self.kappa}")
        if self.point_scale not in (255.0, 256.0):
            raise ValueError(f"point_scale must be 255 (official) or 256 (exact), got {self.point_scale}")
        if not 0.05 <= self.min_threshold <= 0.95:
            raise ValueError(f"min_threshold must be in [0.05, 0.95], got {self.min_threshold}")


def load_ground_truth(path: str | Path) -> dict[str, Any]:
    """A DensePose-COCO JSON, checked whole by ``densehuman.validation.coco`` (ids, references, boxes, DensePose
    points and masks): every problem is an ``InputError`` naming the file, the annotation and the field."""
    from densehuman.validation import read_json
    from densehuman.validation.coco import DENSEPOSE_GT, validate_coco

    data = read_json(path, "ground-truth file")
    validate_coco(data, path, DENSEPOSE_GT)
    return dict(data)


class DensePoseEvaluation:
    """Evaluate ``detections`` against ``gt`` (a loaded DensePose-COCO dict) on ``body``."""

    def __init__(
        self,
        gt: dict[str, Any],
        detections: Sequence[Detection],
        body: GeodesicEvalData,
        config: DensePoseEvalConfig | None = None,
        progress: bool = False,
    ) -> None:
        self.gt = gt
        self.body = body
        self.config = config or DensePoseEvalConfig()
        self.progress = progress
        self.images = {int(im["id"]): (int(im["height"]), int(im["width"])) for im in gt["images"]}
        self.categories = sorted({int(c["id"]) for c in gt.get("categories", [])} or {1})
        # Ignore regions (PoseTrack) are looked at only for images that have GT annotations, as officially.
        with_gt = {int(a["image_id"]) for a in gt["annotations"]}
        regions = {int(im["id"]): region_mask(im) for im in gt["images"] if int(im["id"]) in with_gt}
        self.gts: dict[tuple[int, int], list[dict[str, Any]]] = defaultdict(list)
        for ann in gt["annotations"]:
            if keep_person(ann["bbox"], None, regions.get(int(ann["image_id"]))):
                self.gts[int(ann["image_id"]), int(ann["category_id"])].append(ann)
        self.points: dict[int, GtPoints] = {}  # prepared GT points by id() of the annotation, filled by run()
        self.dts: dict[tuple[int, int], list[tuple[int, Detection]]] = defaultdict(list)
        for index, det in enumerate(detections):
            if det.image_id not in self.images:
                raise ValueError(f"detection {index}: image_id {det.image_id} is not in the ground truth")
            labels = det.chart.labels_uv_uint8[0] if det.chart is not None else None
            if det.image_id in regions and not keep_person(det.bbox, labels, regions[det.image_id]):
                continue
            # Detection ids as pycocotools' loadRes gives them: position in the results list + 1.
            self.dts[det.image_id, det.category_id].append((index + 1, det))

    def run(self) -> dict[str, Any]:
        cfg = self.config
        thresholds = iou_thresholds(cfg.min_threshold)
        table = PredictedVertexTable(self.body)
        # GT points of every annotated person at once (one nearest-vertex query for the whole set).
        annotated = [a for anns in self.gts.values() for a in anns if "dp_x" in a]
        prepared = prepare_gt_points(annotated, self.body, cfg.kappa, cfg.point_scale)
        self.points = {id(a): p for a, p in zip(annotated, prepared, strict=True)}
        sims: dict[str, list[ImageSimilarity]] = {m: [] for m in cfg.modes}
        errors: list[np.ndarray] = []
        charts: list[np.ndarray] = []
        keys = [(i, c) for c in self.categories for i in sorted(self.images)]
        for key in tqdm(keys, desc="densepose eval", unit="img", disable=not self.progress):
            per_mode, point_errors = self._image(key, table)
            for mode, sim in per_mode.items():
                sims[mode].append(sim)
            for dist, chart in point_errors:
                errors.append(dist)
                charts.append(chart)
        out: dict[str, Any] = {
            "body": self.body.name,
            "images": len(self.images),
            "gt_people": sum(len(v) for v in self.gts.values()),
            "gt_people_with_points": sum(1 for v in self.gts.values() for a in v if "dp_x" in a),
            "detections": sum(len(v) for v in self.dts.values()),
            "kappa": "per-part (official)" if cfg.kappa is None else cfg.kappa,
            "point_scale": cfg.point_scale,
        }
        for mode in cfg.modes:
            results: dict[str, list[ImageResult | None]] = {
                area: [evaluate_image(s, rng, thresholds) for s in sims[mode]] for area, rng in AREA_RANGES.items()
            }
            out[mode] = summarize(accumulate(results, thresholds, cfg.max_dets))
        if cfg.box_ap:
            out["bbox"] = self._box_ap()
        if cfg.rcp:
            dist = np.concatenate(errors) if errors else np.zeros(0)
            chart = np.concatenate(charts) if charts else np.zeros(0, dtype=np.int64)
            out["rcp"] = summarize_rcp(PointErrors(dist, chart))
        return out

    def _image(
        self, key: tuple[int, int], table: PredictedVertexTable
    ) -> tuple[dict[str, ImageSimilarity], list[tuple[np.ndarray, np.ndarray]]]:
        cfg = self.config
        height, width = self.images[key[0]]
        gts = self.gts.get(key, [])
        dts = sorted(self.dts.get(key, []), key=lambda t: -t[1].score)[: cfg.max_dets]  # stable, as mergesort
        if not gts and not dts:
            return {}, []
        ignore = np.array([("dp_x" not in g) for g in gts], dtype=bool)
        crowd = [int(g.get("iscrowd", 0)) for g in gts]
        gt_boxes = np.array([g["bbox"] for g in gts], dtype=np.float64).reshape(-1, 4)
        dt_boxes = np.array([d.bbox for _, d in dts], dtype=np.float64).reshape(-1, 4)
        charts = [d.chart.labels_uv_uint8 if d.chart is not None else None for _, d in dts]
        points = [self.points.get(id(g)) for g in gts]
        need_gps = bool({"gps", "gpsm"} & set(cfg.modes))
        need_iou = bool({"gpsm", "iou"} & set(cfg.modes))
        gps = gps_matrix(points, dt_boxes, charts, self.body, table) if need_gps and gts and dts else None
        iou = None
        if need_iou and gts and dts:
            gt_masks = [gt_mask_rle(g, height, width) for g in gts]
            dt_masks = [
                paste_mask(c[0] > 0 if c is not None else None, d.bbox, height, width)
                for c, (_, d) in zip(charts, dts, strict=True)
            ]
            iou = mask_iou_matrix(gt_masks, dt_masks, crowd)
        boxes = box_iou_matrix(gt_boxes, dt_boxes, crowd)
        empty = np.zeros((len(dts), len(gts)))
        base = {
            "gt_ids": np.array([g["id"] for g in gts], dtype=np.int64),
            "gt_ignore": ignore,
            "gt_area": np.array([g["area"] for g in gts], dtype=np.float64),
            "gt_crowd": np.array(crowd, dtype=bool),
            "dt_ids": np.array([i for i, _ in dts], dtype=np.int64),
            "dt_scores": np.array([d.score for _, d in dts], dtype=np.float64),
            "dt_area": dt_boxes[:, 2] * dt_boxes[:, 3],
            "box_iou": boxes,
        }
        per_mode = {}
        for mode in cfg.modes:
            if mode == "gps":
                sim = gps if gps is not None else empty
            elif mode == "iou":
                sim = iou if iou is not None else empty
            else:
                sim = np.sqrt(iou * gps) if iou is not None and gps is not None else empty
            per_mode[mode] = ImageSimilarity(similarity=sim, **base)
        point_errors = self._point_errors(points, gt_boxes, dt_boxes, charts, crowd, table) if cfg.rcp else []
        return per_mode, point_errors

    def _point_errors(
        self,
        points: list[GtPoints | None],
        gt_boxes: np.ndarray,
        dt_boxes: np.ndarray,
        charts: list[np.ndarray | None],
        crowd: list[int],
        table: PredictedVertexTable,
    ) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per annotated GT: distances of its points under the detection a box-IoU >= 0.5 matching gives it."""
        assigned: dict[int, int] = {}
        if len(points) and len(dt_boxes):
            ious = box_iou_matrix(gt_boxes, dt_boxes, crowd)
            for d in range(len(dt_boxes)):
                best, m = 0.5, -1
                for g, p in enumerate(points):
                    if p is None or g in assigned or ious[d, g] < best:
                        continue
                    best, m = ious[d, g], g
                if m > -1:
                    assigned[m] = d
        out = []
        for g, p in enumerate(points):
            if p is None:
                continue
            keep = p.vertex > 0
            dist = np.full(int(keep.sum()), np.inf)
            det = assigned.get(g)
            chart = charts[det] if det is not None else None
            if det is not None and chart is not None:
                found = pair_distances(p, dt_boxes[det], chart, table, self.body)
                if found is not None:
                    dist = found
            out.append((dist, p.charts[keep]))
        return out

    def _box_ap(self) -> dict[str, float]:
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval

        results = [
            {"image_id": d.image_id, "category_id": d.category_id, "bbox": list(d.bbox), "score": d.score}
            for dets in self.dts.values()
            for _, d in dets
        ]
        names = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl")
        if not results:
            return dict.fromkeys(names, 0.0)
        with contextlib.redirect_stdout(io.StringIO()):
            coco = COCO()
            coco.dataset = {
                "images": self.gt["images"],
                "annotations": self.gt["annotations"],
                "categories": self.gt.get("categories") or [{"id": 1, "name": "person"}],
            }
            coco.createIndex()
            coco_dt = coco.loadRes(results)
            ev = COCOeval(coco, coco_dt, "bbox")
            ev.evaluate()
            ev.accumulate()
            ev.summarize()
        return {n: float(v) for n, v in zip(names, ev.stats, strict=True)}
