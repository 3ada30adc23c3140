from __future__ import annotations

import numpy as np
import pytest

from densehuman.body.charts import (
    CHART_IS_FRONT,
    CHART_NAMES,
    CHART_SIDE,
    COARSE_PART_NAMES,
    FINE_TO_COARSE,
    MASK_LABEL_SYMMETRIES,
    POINT_LABEL_SYMMETRIES,
    chart_id,
    fine_to_coarse,
    flip_chart_labels,
)

# detectron2 densepose/data/samplers/densepose_base.py, verbatim.
DETECTRON2_FINE_TO_COARSE = {
    1: 1, 2: 1, 3: 2, 4: 3, 5: 4, 6: 5, 7: 6, 8: 7, 9: 6, 10: 7, 11: 8, 12: 9, 13: 8, 14: 9,
    15: 10, 16: 11, 17: 10, 18: 11, 19: 12, 20: 13, 21: 12, 22: 13, 23: 14, 24: 14,
}  # fmt: skip


def test_fine_to_coarse_matches_detectron2() -> None:
    assert {i: FINE_TO_COARSE[i] for i in range(1, 25)} == DETECTRON2_FINE_TO_COARSE
    assert fine_to_coarse(np.array([[0, 23], [7, 9]])).tolist() == [[0, 14], [6, 6]]


def test_symmetry_tables_are_involutions_that_swap_sides() -> None:
    sym = np.asarray(POINT_LABEL_SYMMETRIES)
    assert (sym[sym] == np.arange(25)).all()
    mask_sym = np.asarray(MASK_LABEL_SYMMETRIES)
    assert (mask_sym[mask_sym] == np.arange(15)).all()
    for i in range(1, 25):
        j = sym[i]
        assert CHART_SIDE[j] == -CHART_SIDE[i]
        assert CHART_IS_FRONT[j] == CHART_IS_FRONT[i]
        assert CHART_NAMES[j].replace("right", "X").replace("left", "right").replace("X", "left") == CHART_NAMES[i]
        # The chart flip and the coarse-part flip agree.
        assert FINE_TO_COARSE[j] == MASK_LABEL_SYMMETRIES[FINE_TO_COARSE[i]]
    assert flip_chart_labels(np.array([3, 4, 23])).tolist() == [4, 3, 24]


def test_chart_names_follow_coarse_parts() -> None:
    for i in range(1, 25):
        coarse = COARSE_PART_NAMES[FINE_TO_COARSE[i]]
        name = CHART_NAMES[i]
        assert coarse.replace("_", "") in name.replace("_", "").replace("front", "").replace("back", "") or (
            coarse == "head" and name.startswith("head")
        ), (name, coarse)


def test_chart_id() -> None:
    assert chart_id("torso_front") == 2
    assert chart_id("head_left") == 24
    with pytest.raises(KeyError, match="unknown chart"):
        chart_id("tail")
