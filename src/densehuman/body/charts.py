"""DensePose's 24 surface charts and 14 coarse parts: numbering, names, flip tables, fine-to-coarse map.

Numbering and semantics follow DensePose-COCO (``DensePose/challenge/2019_COCO_DensePose/data_format.md``); the
front/back and left/right assignment within each pair follows the part names of the original DensePose tools
(``Torso_Back`` = 1, ``Torso_Front`` = 2, ..., ``RFace`` = 23, ``LFace`` = 24), which agree with the flip table
``POINT_LABEL_SYMMETRIES``: a horizontal flip swaps left and right and keeps front and back. "Left" is always the
person's own left. "Front" is the half of a segment that faces the body's forward direction in the rest pose.
"""

from __future__ import annotations

import numpy as np

NUM_CHARTS = 24
NUM_COARSE_PARTS = 14

# Index 0 is the background in every table below, so a chart id I indexes them directly.
CHART_NAMES: tuple[str, ...] = (
    "background",
    "torso_back",
    "torso_front",
    "right_hand",
    "left_hand",
    "left_foot",
    "right_foot",
    "upper_leg_right_back",
    "upper_leg_left_back",
    "upper_leg_right_front",
    "upper_leg_left_front",
    "lower_leg_right_back",
    "lower_leg_left_back",
    "lower_leg_right_front",
    "lower_leg_left_front",
    "upper_arm_left_front",
    "upper_arm_right_front",
    "upper_arm_left_back",
    "upper_arm_right_back",
    "lower_arm_left_back",
    "lower_arm_right_back",
    "lower_arm_left_front",
    "lower_arm_right_front",
    "head_right",
    "head_left",
)

COARSE_PART_NAMES: tuple[str, ...] = (
    "background",
    "torso",
    "right_hand",
    "left_hand",
    "left_foot",
    "right_foot",
    "upper_leg_right",
    "upper_leg_left",
    "lower_leg_right",
    "lower_leg_left",
    "upper_arm_left",
    "upper_arm_right",
    "lower_arm_left",
    "lower_arm_right",
    "head",
)

# detectron2 densepose/data/samplers/densepose_base.py, FINE_TO_COARSE_SEGMENTATION, with 0 -> 0 prepended.
FINE_TO_COARSE: tuple[int, ...] = (0, 1, 1, 2, 3, 4, 5, 6, 7, 6, 7, 8, 9, 8, 9, 10, 11, 10, 11, 12, 13, 12, 13, 14, 14)

# detectron2 densepose/structures/transform_data.py (identical in the Caffe2 repository's densepose_methods.py).
POINT_LABEL_SYMMETRIES: tuple[int, ...] = (
    0, 1, 2, 4, 3, 6, 5, 8, 7, 10, 9, 12, 11, 14, 13, 16, 15, 18, 17, 20, 19, 22, 21, 24, 23,
)  # fmt: skip
MASK_LABEL_SYMMETRIES: tuple[int, ...] = (0, 1, 3, 2, 5, 4, 7, 6, 9, 8, 11, 10, 13, 12, 14)

# Which side of the body each chart lies on (+1 the person's left, -1 right, 0 both) and whether it is the
# front half of its segment (None where front/back does not apply: hands, feet, head).
CHART_SIDE: tuple[int, ...] = tuple(
    0 if i == 0 or "torso" in n else (1 if "left" in n else -1) for i, n in enumerate(CHART_NAMES)
)
CHART_IS_FRONT: tuple[bool | None, ...] = tuple(
    True if n.endswith("front") else False if n.endswith("back") else None for n in CHART_NAMES
)


def chart_id(name: str) -> int:
    """Chart index (1..24) of a chart name from ``CHART_NAMES``."""
    try:
        return CHART_NAMES.index(name)
    except ValueError:
        raise KeyError(f"unknown chart {name!r}; charts are {', '.join(CHART_NAMES[1:])}") from None


def fine_to_coarse(labels: np.ndarray) -> np.ndarray:
    """Map chart labels (any shape, 0..24) to the 14 coarse parts of ``dp_masks`` (0..14)."""
    return np.asarray(FINE_TO_COARSE, dtype=np.uint8)[np.asarray(labels)]


def flip_chart_labels(labels: np.ndarray) -> np.ndarray:
    """Chart labels after a horizontal flip of the image (left and right swap)."""
    return np.asarray(POINT_LABEL_SYMMETRIES, dtype=np.asarray(labels).dtype)[np.asarray(labels)]
