"""Image-level ignore regions (PoseTrack-DensePose's ``ignore_regions_x`` / ``ignore_regions_y`` polygons).

The official evaluator's rule (``_checkIgnore``), kept as it is:

- A person (GT or detection) whose int box has zero area is dropped.
- If the region does not touch the int box (clipped to the image on the right and bottom), the person is kept.
- A GT, or a detection without a chart, is dropped when at least 70 % of its int box lies in the region.
- A detection with a chart is dropped when ``iou(chart mask, region crop, iscrowd=1) >= 0.9``, i.e. when 90 % of its
  mask lies in the region.

Dropped people are removed before matching (a dropped GT is not an ignore GT). Detections of an image that has no GT
annotation at all are never checked, as in the official code.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from pycocotools import mask as mask_utils

BOX_THRESHOLD = 0.7
CHART_THRESHOLD = 0.9


def region_mask(image: dict[str, Any]) -> np.ndarray | None:
    """The union of an image's ignore polygons as an (H, W) uint8 mask, or None when it has none."""
    xs = image.get("ignore_regions_x") or []
    ys = image.get("ignore_regions_y") or []
    if len(xs) == 0:
        return None
    if len(xs) != len(ys):
        raise ValueError(f"image {image.get('id')}: ignore_regions_x and ignore_regions_y differ in length")
    polygons = [[v for xy in zip(rx, ry, strict=True) for v in xy] for rx, ry in zip(xs, ys, strict=True)]
    rles = mask_utils.frPyObjects(polygons, int(image["height"]), int(image["width"]))
    return np.asarray(mask_utils.decode(mask_utils.merge(rles)))


def keep_person(bbox: Sequence[float], chart_labels: np.ndarray | None, region: np.ndarray | None) -> bool:
    """Whether a GT (``chart_labels`` None) or a detection survives the image's ignore region."""
    if region is None:
        return True
    bb = np.array(bbox).astype(int)
    x1, y1, x2, y2 = bb[0], bb[1], bb[0] + bb[2], bb[1] + bb[3]
    x2 = min(x2, region.shape[1])
    y2 = min(y2, region.shape[0])
    if bb[2] * bb[3] == 0:
        return False
    crop = region[y1:y2, x1:x2]
    if crop.sum() == 0:
        return True
    if chart_labels is None:
        return bool(crop.sum() / bb[2] / bb[3] < BOX_THRESHOLD)
    inside = np.asfortranarray(crop.astype(np.uint8))
    uv = np.asfortranarray((chart_labels > 0).astype(np.uint8))
    iou = mask_utils.iou([mask_utils.encode(uv)], [mask_utils.encode(inside)], [1])[0]
    return bool(np.asarray(iou).ravel()[0] < CHART_THRESHOLD)
