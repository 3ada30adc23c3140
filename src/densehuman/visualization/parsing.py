"""Pictures of human parsing results: part labels in the CIHP palette with contours between the parts, and the
people's instances.

The palette is the one the CIHP and LIP releases colour their label maps with (``Categories/`` and the LIP
visualisations): PASCAL VOC's bit-interleaved colour map, label 0 black. MHP v2.0's 59 classes use the same map.
Images are uint8 RGB (H, W, 3); label maps (H, W) uint8.
"""

from __future__ import annotations

import cv2
import numpy as np


def parsing_palette(num_classes: int = 256) -> np.ndarray:
    """(num_classes, 3) uint8 RGB: the VOC colour map (label bits spread over the three channels, high bit
    first)."""
    palette = np.zeros((num_classes, 3), dtype=np.uint8)
    for label in range(num_classes):
        value, colour = label, [0, 0, 0]
        for shift in range(7, -1, -1):
            for channel in range(3):
                colour[channel] |= ((value >> channel) & 1) << shift
            value >>= 3
        palette[label] = colour
    return palette


PALETTE = parsing_palette()


def part_boundaries(labels: np.ndarray) -> np.ndarray:
    """(H, W) bool: pixels whose right or lower neighbour has another label (the lines between parts and around
    the people)."""
    edge = np.zeros(labels.shape, dtype=bool)
    edge[:, :-1] |= labels[:, :-1] != labels[:, 1:]
    edge[:-1, :] |= labels[:-1, :] != labels[1:, :]
    return edge


def parsing_image(
    image: np.ndarray, labels: np.ndarray, alpha: float = 0.6, contour: tuple[int, int, int] | None = (255, 255, 255)
) -> np.ndarray:
    """The image with every labelled pixel blended with its class colour (``alpha`` of the colour) and the part
    boundaries drawn in ``contour`` (None: no lines); background pixels keep the image."""
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"image must be (H, W, 3) uint8 RGB, got {image.shape} {image.dtype}")
    if labels.shape != image.shape[:2]:
        raise ValueError(f"labels {labels.shape} do not fit the image {image.shape[:2]}")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    out = image.astype(np.float32)
    person = labels > 0
    colours = PALETTE[labels].astype(np.float32)
    out[person] = (1 - alpha) * out[person] + alpha * colours[person]
    result = np.clip(np.rint(out), 0, 255).astype(np.uint8)
    if contour is not None:
        result[part_boundaries(labels)] = contour
    return result


def label_image(labels: np.ndarray) -> np.ndarray:
    """The label map alone in the palette (what the CIHP release's ``Categories/`` pictures show)."""
    return np.ascontiguousarray(PALETTE[labels])


def instance_image(image: np.ndarray, instances: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """The image with each person (instance ids 1..K) in its own colour and outlined."""
    colours = parsing_palette(int(instances.max()) + 2)[1:] if instances.size else PALETTE[1:2]
    tinted = image.astype(np.float32)
    person = instances > 0
    tinted[person] = (1 - alpha) * tinted[person] + alpha * colours[instances[person] - 1]
    out = np.clip(np.rint(tinted), 0, 255).astype(np.uint8)
    outline = cv2.dilate(part_boundaries(instances).astype(np.uint8), np.ones((2, 2), np.uint8)) > 0
    out[outline] = (255, 255, 255)
    return out
