"""PoseTrack-style image ignore regions, with the official thresholds (70 % of a box, 90 % of a chart mask)."""

from __future__ import annotations

import numpy as np

from densehuman.evaluation.ignore_regions import keep_person, region_mask

IMAGE = {
    "id": 1,
    "height": 100,
    "width": 200,
    "ignore_regions_x": [[0, 100, 100, 0]],
    "ignore_regions_y": [[0, 0, 100, 100]],
}


def test_region_mask_is_the_polygon() -> None:
    region = region_mask(IMAGE)
    assert region is not None
    assert region.shape == (100, 200)
    assert region[50, 10] == 1
    assert region[50, 150] == 0
    assert region_mask({"id": 2, "height": 10, "width": 10}) is None
    assert region_mask({**IMAGE, "ignore_regions_x": []}) is None


def test_boxes_and_charts_against_the_thresholds() -> None:
    region = region_mask(IMAGE)
    assert not keep_person([10, 10, 40, 40], None, region)  # a GT box entirely inside
    assert keep_person([120, 10, 40, 40], None, region)  # entirely outside
    assert keep_person([80, 10, 40, 40], None, region)  # half inside: below 70 %
    assert not keep_person([70, 10, 40, 40], None, region)  # 75 % inside
    assert not keep_person([10, 10, 0, 40], None, region)  # zero int area
    assert keep_person([10, 10, 40, 40], None, None)  # no region at all
    # A detection: its chart mask decides. Mostly outside the region's part of the box -> kept.
    labels = np.zeros((40, 40), dtype=np.uint8)
    labels[:, 35:] = 3
    assert keep_person([70, 10, 40, 40], labels, region)
    labels[:, :] = 3
    assert not keep_person([10, 10, 40, 40], labels, region)
