"""Per-pair similarities of the DensePose evaluation: GPS (geodesic point similarity) and the mask IoU.

GPS of a detection against a GT person, as the official evaluator computes it (``computeOgps``):

1. GT point k (``dp_x``, ``dp_y`` in the box scaled to 256) goes to the detection's box pixel
   ``px = int(dp_x * w_gt / 255 + x_gt - x_dt)`` (note **/255**, and truncation toward zero); points outside
   ``[0, int(w_dt)) x [0, int(h_dt))`` read chart 0. If no point lands inside, GPS = 0.
2. The detection's quantized (I, U*255, V*255) at those pixels is looked up; U, V = q / 255.
3. GT and predicted (I, U, V) go to the nearest UV-space vertex of their chart; both to geodesic table vertices.
4. d = geodesic distance (0 for the same vertex, infinite for a pixel the detection calls background).
5. GPS = mean over GT points of exp(-d^2 / (2 kappa^2)) with kappa per GT point from its coarse group
   (``MEAN_DISTANCES[COARSE_PARTS[I]]``), or one kappa for all (the paper's 0.255).

This implementation vectorizes every step: GT vertices are found once per GT, predicted vertices through a lookup
table over the quantized (I, u8, v8) values that fills as it is needed, and distances by one indexed read of the
condensed table.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from pycocotools import mask as mask_utils
from scipy.ndimage import zoom

from densehuman.evaluation.geodesic_data import GeodesicEvalData

# Per coarse group kappa (torso, hands, feet, upper legs, lower legs, upper arms, lower arms, head), verbatim from
# the official evaluator, and the chart -> group table.
MEAN_DISTANCES = np.array([0, 0.351, 0.107, 0.126, 0.237, 0.173, 0.142, 0.128, 0.150])
COARSE_PARTS = np.array([0, 1, 1, 2, 2, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 6, 6, 6, 6, 7, 7, 7, 7, 8, 8])
PAPER_KAPPA = 0.255
OFFICIAL_POINT_SCALE = 255.0  # the evaluator's dp_x -> pixel scale (training code uses 256; see prepare_gt_points)


@dataclass(frozen=True)
class GtPoints:
    """One GT person's DensePose points, prepared once."""

    offset_x: np.ndarray  # (P,) dp_x * w / 255 + x (the official expression, before subtracting the detection's x)
    offset_y: np.ndarray
    charts: np.ndarray  # (P,) int64 dp_I
    vertex: np.ndarray  # (P,) int64 1-based table vertex of each point (0 if dp_I is 0)
    kappa: np.ndarray  # (P,) float64


def prepare_gt_points(
    annotations: Sequence[dict[str, Any]],
    body: GeodesicEvalData,
    kappa: float | None,
    point_scale: float = OFFICIAL_POINT_SCALE,
) -> list[GtPoints]:
    """GT points of every annotation with ``dp_x`` (kappa None: the official per-part table).

    ``point_scale`` 255 reads ``dp_x`` as the official evaluator does; 256 reads it as detectron2's training code and
    ``densehuman synth`` write it (``x = x0 + dp_x * w / 256``), which puts each point on the pixel it was taken from.
    """
    sizes = [len(a["dp_x"]) for a in annotations]
    charts = (
        np.concatenate([np.asarray(a["dp_I"], dtype=np.float64) for a in annotations]) if annotations else np.zeros(0)
    )
    charts_i = charts.astype(np.int64)
    u = np.concatenate([np.asarray(a["dp_U"], dtype=np.float64) for a in annotations]) if annotations else np.zeros(0)
    v = np.concatenate([np.asarray(a["dp_V"], dtype=np.float64) for a in annotations]) if annotations else np.zeros(0)
    vertices = body.nearest_vertices(charts_i, u, v) if charts_i.size else np.zeros(0, dtype=np.int64)
    out = []
    start = 0
    for ann, n in zip(annotations, sizes, strict=True):
        x, y, w, h = (float(b) for b in ann["bbox"])
        dp_x = np.asarray(ann["dp_x"], dtype=np.float64) * w / point_scale
        dp_y = np.asarray(ann["dp_y"], dtype=np.float64) * h / point_scale
        c = charts_i[start : start + n]
        k = MEAN_DISTANCES[COARSE_PARTS[c]] if kappa is None else np.full(n, float(kappa))
        out.append(GtPoints(dp_x + x, dp_y + y, c, vertices[start : start + n], k))
        start += n
    return out


class PredictedVertexTable:
    """Nearest table vertex of every quantized (I, u8, v8) a detection can output, filled on demand."""

    def __init__(self, body: GeodesicEvalData) -> None:
        self.body = body
        self.table = np.full(25 * 256 * 256, -1, dtype=np.int64)
        self.table[: 256 * 256] = 0  # chart 0: background, no vertex

    def lookup(self, charts: np.ndarray, u8: np.ndarray, v8: np.ndarray) -> np.ndarray:
        key = (charts.astype(np.int64) * 256 + u8.astype(np.int64)) * 256 + v8.astype(np.int64)
        missing = np.unique(key[self.table[key] < 0])
        if missing.size:
            c = missing // 65536
            u = (missing // 256) % 256 / 255.0
            v = missing % 256 / 255.0
            self.table[missing] = self.body.nearest_vertices(c, u, v)
        return self.table[key]


def pair_distances(
    gt: GtPoints, box: Sequence[float], chart: np.ndarray, vertex_table: PredictedVertexTable, body: GeodesicEvalData
) -> np.ndarray | None:
    """Geodesic distance of every GT point with a vertex to what the detection says is there (inf where it says
    background or the point falls outside its box); None when no GT point falls inside the box (GPS = 0)."""
    x, y, w, h = box
    px = (gt.offset_x - x).astype(int)
    py = (gt.offset_y - y).astype(int)
    inside = (px >= 0) & (py >= 0) & (px < int(w)) & (py < int(h))
    if not inside.any():
        return None
    # A box larger than its chart array (a malformed detection) reads as background beyond the array.
    inside &= (py < chart.shape[1]) & (px < chart.shape[2])
    px = np.where(inside, px, 0)
    py = np.where(inside, py, 0)
    charts = np.where(inside, chart[0, py, px], 0)
    dt_vertex = vertex_table.lookup(charts, chart[1, py, px], chart[2, py, px])
    keep = gt.vertex > 0  # GT points with chart 0 have no vertex and are left out, as in the official code
    return body.distances(gt.vertex[keep], dt_vertex[keep])


def gps_matrix(
    gts: Sequence[GtPoints | None],
    dt_boxes: np.ndarray,
    dt_charts: Sequence[np.ndarray | None],
    body: GeodesicEvalData,
    vertex_table: PredictedVertexTable,
) -> np.ndarray:
    """(D, G) GPS of every detection against every GT (0 for ignore GTs, given as None)."""
    n_dt, n_gt = dt_boxes.shape[0], len(gts)
    out = np.zeros((n_dt, n_gt))
    for g, gt in enumerate(gts):
        if gt is None or gt.charts.size == 0:
            continue
        kappa = gt.kappa[gt.vertex > 0]
        for d in range(n_dt):
            chart = dt_charts[d]
            if chart is None:
                continue
            dist = pair_distances(gt, dt_boxes[d], chart, vertex_table, body)
            if dist is None or dist.size == 0:
                continue
            out[d, g] = float(np.mean(np.exp(-(dist**2) / (2 * kappa**2))))
    return out


def gt_mask_rle(ann: dict[str, Any], height: int, width: int) -> dict[str, Any]:
    """The GT mask the evaluator uses: the union of the 14 ``dp_masks`` resized to the box (order-1 zoom, > 0.5)
    and pasted at the int box; else the annotation's segmentation; else an empty mask."""
    if "dp_masks" in ann:
        # The official code paints parts 1..14 into a label map and clips it to 1: that is the union of the parts.
        parts = [rle for rle in ann["dp_masks"][:14] if rle]
        grid = np.zeros((256, 256))
        if parts:
            grid[mask_utils.decode(mask_utils.merge(parts, intersect=False)) > 0] = 1.0
        _, _, w, h = ann["bbox"]
        scaled = zoom(grid, (float(max(h, 1)) / 256, float(max(w, 1)) / 256), order=1, prefilter=False)
        return paste_mask(np.asarray(scaled > 0.5, dtype=np.uint8), ann["bbox"], height, width)
    seg = ann.get("segmentation")
    if isinstance(seg, list) and seg:
        return dict(mask_utils.merge(mask_utils.frPyObjects(seg, height, width)))
    if isinstance(seg, dict):
        if isinstance(seg.get("counts"), list):
            return dict(mask_utils.frPyObjects(seg, height, width))
        return seg
    return paste_mask(None, ann["bbox"], height, width)


def paste_mask(mask: np.ndarray | None, bbox: Sequence[float], height: int, width: int) -> dict[str, Any]:
    """A box-sized mask pasted into the image at the int box, clipped as the official code clips it, as RLE."""
    image = np.zeros((height, width), dtype=np.uint8, order="F")
    if mask is not None:
        x, y, w, h = bbox
        x0, y0 = max(int(x), 0), max(int(y), 0)
        x1 = min(int(x + w), width, int(x) + mask.shape[1])
        y1 = min(int(y + h), height, int(y) + mask.shape[0])
        if x1 > x0 and y1 > y0:
            image[y0:y1, x0:x1] = mask[y0 - int(y) : y1 - int(y), x0 - int(x) : x1 - int(x)] > 0
    return dict(mask_utils.encode(image))


def mask_iou_matrix(
    gt_masks: Sequence[dict[str, Any]], dt_masks: Sequence[dict[str, Any]], crowd: Sequence[int]
) -> np.ndarray:
    if not gt_masks or not dt_masks:
        return np.zeros((len(dt_masks), len(gt_masks)))
    return np.asarray(mask_utils.iou(list(dt_masks), list(gt_masks), list(crowd)), dtype=np.float64)


def box_iou_matrix(gt_boxes: np.ndarray, dt_boxes: np.ndarray, crowd: Sequence[int]) -> np.ndarray:
    if gt_boxes.shape[0] == 0 or dt_boxes.shape[0] == 0:
        return np.zeros((dt_boxes.shape[0], gt_boxes.shape[0]))
    return np.asarray(mask_utils.iou(dt_boxes.tolist(), gt_boxes.tolist(), list(crowd)), dtype=np.float64)
