"""Per-person annotations read off a rendered scene, in the real datasets' conventions.

- COCO person fields: ``bbox`` [x, y, w, h] of the visible mask (pixel edges), ``area`` (mask pixels), RLE
  ``segmentation``, 17 ``keypoints`` with v = 0 (outside the image; x = y = 0), 1 (in the image but hidden),
  2 (visible), ``num_keypoints``.
- DensePose-COCO ``dp_*`` fields for people big enough and visible enough, sampled like the paper's annotators:
  the visible region of each coarse part is split into roughly equal areas by k-means and one point is taken per
  cluster (at most 14 per part). ``dp_x``/``dp_y`` are in the box scaled to 256 (detectron2's training
  convention: ``x = x0 + dp_x * w / 256``; the stored point is a pixel centre). ``dp_masks`` holds the 14 coarse
  parts on the 256 x 256 grid over the box.
- COCO-WholeBody part fields with face and hand boxes and validity flags.

Visibility of a keypoint comes from the depth buffer: it is visible when its pixel shows the same person and the
visible surface there is no nearer than the keypoint minus twice its depth below the skin (``inner_depth``: the
limb's thickness around a joint) and a margin.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
from pycocotools import mask as mask_utils
from scipy.cluster.vq import kmeans2
from scipy.spatial import cKDTree

from densehuman.keypoints.layouts import BODY, FACE, FOOT, LEFT_HAND, RIGHT_HAND
from densehuman.synth.camera import Camera

DP_GRID = 256
JOINT_DEPTH_FACTOR = 2.0
N_COARSE = 14


@dataclass(frozen=True)
class AnnotationConfig:
    """When a person counts as annotatable, and how points are sampled."""

    dp_min_area: int = 1200  # visible pixels a person needs to get DensePose points
    dp_min_visible_keypoints: int = 4  # visible body keypoints a person needs to get DensePose points
    dp_points: tuple[int, int] = (100, 150)  # points per person, drawn uniformly in this range
    dp_max_points_per_part: int = 14
    dp_min_part_pixels: int = 12  # a coarse part smaller than this gets no points
    visibility_margin_m: float = 0.03
    face_min_px: float = 12.0  # face box side needed for face keypoints to be valid
    hand_min_px: float = 10.0
    part_min_labelled: float = 0.5  # fraction of a part's points inside the image for the part to be valid
    part_min_visible: float = 0.3  # fraction of a part's points visible for the part to be valid


@dataclass(frozen=True)
class PersonLabels:
    """Everything written about one visible person."""

    track: int  # index of the person in the scene
    bbox: list[float]
    area: int
    segmentation: dict[str, Any]
    keypoints: np.ndarray  # (133, 3) x, y, v
    extras: np.ndarray  # (4, 3) UpperNeck, HeadTop, RPupil, LPupil with x, y, v
    densepose: dict[str, Any] | None  # dp_x, dp_y, dp_I, dp_U, dp_V, dp_masks

    def coco_fields(self) -> dict[str, Any]:
        body = self.keypoints[BODY]
        return {
            "category_id": 1,
            "iscrowd": 0,
            "bbox": self.bbox,
            "area": self.area,
            "segmentation": self.segmentation,
            "keypoints": _flat_keypoints(body),
            "num_keypoints": int((body[:, 2] > 0).sum()),
        }

    def densepose_fields(self) -> dict[str, Any]:
        out = self.coco_fields()
        if self.densepose is not None:
            out.update(self.densepose)
        return out

    def wholebody_fields(self, config: AnnotationConfig) -> dict[str, Any]:
        out = self.coco_fields()
        kp = self.keypoints
        foot_valid = part_valid(kp[FOOT], 0.0, config)
        out["foot_kpts"] = _flat_keypoints(kp[FOOT]) if foot_valid else [0] * 18
        out["foot_valid"] = foot_valid
        for name, part, min_px in (
            ("face", FACE, config.face_min_px),
            ("lefthand", LEFT_HAND, config.hand_min_px),
            ("righthand", RIGHT_HAND, config.hand_min_px),
        ):
            valid = part_valid(kp[part], min_px, config)
            out[f"{name}_box"] = part_box(kp[part]) if valid else [0.0, 0.0, 0.0, 0.0]
            out[f"{name}_kpts"] = _flat_keypoints(kp[part]) if valid else [0] * (3 * (part.stop - part.start))
            out[f"{name}_valid"] = valid
        return out


def part_box(points: np.ndarray) -> list[float]:
    """Minimal [x, y, w, h] around a part's labelled (v > 0) keypoints."""
    labelled = np.floor(points[points[:, 2] > 0, :2] * 100.0) / 100.0  # as written (see _flat_keypoints)
    if labelled.shape[0] == 0:
        return [0.0, 0.0, 0.0, 0.0]
    lo, hi = labelled.min(axis=0), labelled.max(axis=0)
    return [round(float(v), 2) for v in (lo[0], lo[1], hi[0] - lo[0], hi[1] - lo[1])]


def part_valid(points: np.ndarray, min_px: float, config: AnnotationConfig) -> bool:
    n = points.shape[0]
    labelled = int((points[:, 2] > 0).sum())
    visible = int((points[:, 2] == 2).sum())
    if labelled < config.part_min_labelled * n or visible < max(1.0, config.part_min_visible * n):
        return False
    _, _, w, h = part_box(points)
    return max(w, h) >= min_px


def keypoint_visibility(
    camera: Camera,
    points: np.ndarray,
    inner_depth: np.ndarray,
    person_id: int,
    instance: np.ndarray,
    depth: np.ndarray,
    margin: float,
) -> np.ndarray:
    """(K, 3) world points -> (K, 3) pixel x, y and COCO visibility v in {0, 1, 2} (x = y = 0 where v = 0)."""
    xy, z = camera.project(points)
    height, width = instance.shape
    inside = (xy[:, 0] >= 0) & (xy[:, 0] < width) & (xy[:, 1] >= 0) & (xy[:, 1] < height) & (z > 0)
    col = np.clip(np.floor(xy[:, 0]).astype(np.int64), 0, width - 1)
    row = np.clip(np.floor(xy[:, 1]).astype(np.int64), 0, height - 1)
    shows_person = instance[row, col] == person_id
    # A joint sits inside its limb: seen from any side, the skin in front of it is up to about twice its depth under
    # the nearest skin away (the limb's thickness), so that much of the person's own surface does not hide it.
    not_hidden = depth[row, col] >= z - JOINT_DEPTH_FACTOR * inner_depth - margin
    v = np.where(inside, np.where(shows_person & not_hidden, 2, 1), 0)
    out = np.zeros((points.shape[0], 3))
    out[inside, :2] = xy[inside]
    out[:, 2] = v
    return out


def encode_mask(mask: np.ndarray) -> dict[str, Any]:
    """COCO compressed RLE of a boolean mask, with ``counts`` as a str (JSON-ready)."""
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(rle["size"][0]), int(rle["size"][1])], "counts": rle["counts"].decode("ascii")}


def sample_densepose(
    rng: np.random.Generator,
    mask: np.ndarray,
    bbox: list[float],
    coarse: np.ndarray,
    chart: np.ndarray,
    u: np.ndarray,
    v: np.ndarray,
    config: AnnotationConfig,
) -> dict[str, Any]:
    """DensePose-COCO point and mask annotations of one person (see the module docstring)."""
    x0, y0, w, h = (round(b) for b in bbox)
    rows, cols = np.nonzero(mask)
    parts = coarse[rows, cols]
    total = int(rng.integers(config.dp_points[0], config.dp_points[1] + 1))
    xs: list[np.ndarray] = []
    ys: list[np.ndarray] = []
    for part in range(1, N_COARSE + 1):
        sel = np.flatnonzero(parts == part)
        if sel.size < config.dp_min_part_pixels:
            continue
        k = int(np.clip(round(total * sel.size / rows.size), 1, config.dp_max_points_per_part))
        pix = np.stack([cols[sel], rows[sel]], axis=1).astype(np.float64) + 0.5
        chosen = _kmeans_points(rng, pix, k)
        xs.append(chosen[:, 0])
        ys.append(chosen[:, 1])
    px = np.concatenate(xs) if xs else np.zeros(0)
    py = np.concatenate(ys) if ys else np.zeros(0)
    c = np.floor(px).astype(np.int64)
    r = np.floor(py).astype(np.int64)
    grid = np.zeros((h, w), dtype=np.uint8)
    crop = (coarse * mask)[y0 : y0 + h, x0 : x0 + w]
    grid[: crop.shape[0], : crop.shape[1]] = crop
    resized = cv2.resize(grid, (DP_GRID, DP_GRID), interpolation=cv2.INTER_NEAREST)
    masks: list[Any] = []
    for part in range(1, N_COARSE + 1):
        m = resized == part
        masks.append(encode_mask(m) if m.any() else [])
    return {
        "dp_x": [round(float(x), 4) for x in (px - x0) * DP_GRID / w],
        "dp_y": [round(float(y), 4) for y in (py - y0) * DP_GRID / h],
        "dp_I": [float(i) for i in chart[r, c]],
        "dp_U": [round(float(x), 6) for x in u[r, c]],
        "dp_V": [round(float(x), 6) for x in v[r, c]],
        "dp_masks": masks,
    }


def _kmeans_points(rng: np.random.Generator, pixels: np.ndarray, k: int) -> np.ndarray:
    """k roughly equidistant pixel centres of a region: k-means centres snapped to the nearest region pixel."""
    if pixels.shape[0] <= k:
        return pixels
    subset = pixels
    if pixels.shape[0] > 4000:
        subset = pixels[rng.choice(pixels.shape[0], 4000, replace=False)]
    centres, _ = kmeans2(subset, k, iter=10, minit="++", seed=rng)
    d = ((pixels[:, None, :] - centres[None]) ** 2).sum(-1) if pixels.shape[0] * k < 2_000_000 else None
    if d is None:
        _, idx = cKDTree(pixels).query(centres)
    else:
        idx = d.argmin(axis=0)
    return pixels[np.unique(idx)]


def _flat_keypoints(points: np.ndarray) -> list[float | int]:
    """(K, 3) -> [x, y, v, ...] with x, y cut to 0.01 px and v an int, as COCO writes them.

    Coordinates are truncated, not rounded, so a keypoint stays in the pixel its visibility was decided in.
    """
    out: list[float | int] = []
    for x, y, vis in points:
        out += [_cut(x), _cut(y), round(float(vis))]
    return out


def _cut(value: float) -> float:
    return float(np.floor(float(value) * 100.0) / 100.0)
