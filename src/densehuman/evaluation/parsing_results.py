"""Human-parsing results files: one detection per person with its part labels on the box grid.

A results file is a JSON list with one object per detection, in the DensePose results style
(``densehuman.evaluation.predictions``)::

    {"image_id": int, "category_id": 1, "bbox": [x, y, w, h], "score": float, "parsing": str}

``bbox`` is in image pixels (floats, top-left origin); ``parsing`` is the base64 of a single-channel 8-bit PNG of
the person's part labels (0 = background) on the box grid ``chart_shape(bbox)`` = ``(max(int(h), 1),
max(int(w), 1))``. The grid is placed in the image at ``(int(x), int(y))`` and clipped to it (``paste``): the
official evaluators score full-image instance maps, and this is the one way to turn a box grid into one that
needs no resampling, so every pixel of the file is scored as written.

``load_parsing_results`` checks every record before anything is scored; each problem is an ``InputError`` naming
the file, the detection (index and image) and the field: ``"res.json: detection 17 (image 3): parsing: ..."``.
"""

from __future__ import annotations

import base64
import binascii
import math
import struct
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from densehuman import atomic
from densehuman.data.parsing_folders import ParsingSplit, read_people
from densehuman.evaluation.predictions import chart_shape
from densehuman.validation import InputError, read_json
from densehuman.validation.errors import describe
from densehuman.validation.images import MAX_IMAGE_SIDE

BBox = tuple[float, float, float, float]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
Window = tuple[slice, slice, np.ndarray]


@dataclass(frozen=True, eq=False)
class ParsingDetection:
    """One detected person: ``bbox`` (x, y, w, h) in image pixels, ``score``, and ``parsing``, the (H, W) uint8 part
    labels on the box grid ``chart_shape(bbox)``."""

    image_id: int
    category_id: int
    bbox: BBox
    score: float
    parsing: np.ndarray

    def __post_init__(self) -> None:
        bbox = tuple(float(v) for v in self.bbox)
        if len(bbox) != 4 or not all(math.isfinite(v) for v in bbox):
            raise ValueError(f"bbox must be 4 finite numbers (x, y, w, h), got {self.bbox}")
        if bbox[2] < 0 or bbox[3] < 0:
            raise ValueError(f"bbox has a negative size: {bbox}")
        if not math.isfinite(self.score):
            raise ValueError(f"score must be finite, got {self.score}")
        labels = np.asarray(self.parsing)
        if not np.issubdtype(labels.dtype, np.integer):
            raise ValueError(f"parsing must hold integer labels, got {labels.dtype}")
        if labels.dtype != np.uint8 and labels.size and not (labels.min() >= 0 and labels.max() <= 255):
            raise ValueError(f"parsing labels must be 8-bit (0..255), got {labels.min()}..{labels.max()}")
        if labels.ndim != 2 or labels.shape != chart_shape(bbox):
            raise ValueError(f"parsing is {labels.shape}, the box {bbox} needs the grid {chart_shape(bbox)} (H, W)")
        object.__setattr__(self, "bbox", bbox)
        object.__setattr__(self, "image_id", int(self.image_id))
        object.__setattr__(self, "category_id", int(self.category_id))
        object.__setattr__(self, "score", float(self.score))
        object.__setattr__(self, "parsing", np.ascontiguousarray(labels, dtype=np.uint8))

    def to_record(self) -> dict[str, Any]:
        """The JSON record, with the labels as a base64 single-channel PNG."""
        ok, buf = cv2.imencode(".png", self.parsing, [cv2.IMWRITE_PNG_COMPRESSION, 3])
        if not ok:
            raise ValueError(f"OpenCV could not encode a parsing grid of shape {self.parsing.shape}")
        return {
            "image_id": self.image_id,
            "category_id": self.category_id,
            "bbox": list(self.bbox),
            "score": self.score,
            "parsing": base64.b64encode(buf.tobytes()).decode("ascii"),
        }

    def window(self, image_size: tuple[int, int]) -> Window | None:
        """(rows, cols, labels): where the grid lands in an image of ``image_size`` (H, W), clipped to it, and the
        part of the grid that lands there; None when the grid lies wholly outside the image. Scoring works inside
        this window only: the pasted map is 0 everywhere else."""
        height, width = image_size
        x0, y0 = int(self.bbox[0]), int(self.bbox[1])
        rows, cols = self.parsing.shape
        ya, yb = max(y0, 0), min(y0 + rows, height)
        xa, xb = max(x0, 0), min(x0 + cols, width)
        if ya >= yb or xa >= xb:
            return None
        return slice(ya, yb), slice(xa, xb), self.parsing[ya - y0 : yb - y0, xa - x0 : xb - x0]

    def paste(self, image_size: tuple[int, int]) -> np.ndarray:
        """(H, W) uint8: the full-image instance map (the grid at ``(int(x), int(y))``, 0 elsewhere)."""
        out = np.zeros(image_size, np.uint8)
        placed = self.window(image_size)
        if placed is not None:
            rows, cols, labels = placed
            out[rows, cols] = labels
        return out


def save_parsing_results(path: str | Path, detections: Sequence[ParsingDetection]) -> None:
    """Write detections as a results file, atomically."""
    atomic.write_json(path, [d.to_record() for d in detections])


def load_parsing_results(
    path: str | Path,
    image_ids: Collection[int] | None = None,
    category_ids: Collection[int] | None = None,
    num_classes: int | None = None,
) -> list[ParsingDetection]:
    """Read and check a results file, detections in file order.

    ``image_ids`` / ``category_ids``: the ground truth's; a detection on any other is an error (an evaluator would
    score it as nothing, silently). ``num_classes``: every label must be below it.
    """
    path = Path(path)
    data = read_json(path, "results file")
    if not isinstance(data, list):
        raise InputError(path, f"a results file is a JSON list of detections, got {describe(data)}")
    images = None if image_ids is None else {int(i) for i in image_ids}
    categories = None if category_ids is None else {int(c) for c in category_ids}
    return [_parse(record, i, path, images, categories, num_classes) for i, record in enumerate(data)]


def _parse(
    record: Any,
    index: int,
    path: Path,
    images: set[int] | None,
    categories: set[int] | None,
    num_classes: int | None,
) -> ParsingDetection:
    item = f"detection {index}"
    if not isinstance(record, Mapping):
        raise InputError(path, f"expected an object, got {describe(record)}", item=item)
    image_id = _integer(record, "image_id", path, item)
    item = f"detection {index} (image {image_id})"
    if images is not None and image_id not in images:
        raise InputError(path, f"{image_id} is not an image of the ground truth", item=item, field="image_id")
    category_id = _integer(record, "category_id", path, item)
    if categories is not None and category_id not in categories:
        raise InputError(
            path, f"{category_id} is not a category of the ground truth {sorted(categories)}", item=item,
            field="category_id",
        )  # fmt: skip
    bbox = _bbox(record, path, item)
    score = _field(record, "score", path, item)
    if not isinstance(score, int | float) or isinstance(score, bool) or not math.isfinite(score):
        raise InputError(path, f"expected a finite number, got {describe(score)}", item=item, field="score")
    labels = _decode_grid(_field(record, "parsing", path, item), chart_shape(bbox), path, item)
    if num_classes is not None and labels.size and int(labels.max()) >= num_classes:
        raise InputError(
            path, f"label {int(labels.max())} is not one of the {num_classes} classes (0..{num_classes - 1})",
            item=item, field="parsing",
        )  # fmt: skip
    return ParsingDetection(image_id, category_id, bbox, float(score), labels)


def _field(record: Mapping[str, Any], key: str, path: Path, item: str) -> Any:
    if key not in record:
        raise InputError(path, "missing", item=item, field=key)
    return record[key]


def _integer(record: Mapping[str, Any], key: str, path: Path, item: str) -> int:
    value = _field(record, key, path, item)
    if not isinstance(value, int) or isinstance(value, bool):
        raise InputError(path, f"expected an integer, got {describe(value)}", item=item, field=key)
    return value


def _bbox(record: Mapping[str, Any], path: Path, item: str) -> BBox:
    value = _field(record, "bbox", path, item)
    numbers = isinstance(value, list) and all(
        isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in value
    )
    if not numbers or len(value) != 4:
        raise InputError(
            path, f"expected 4 finite numbers [x, y, w, h], got {describe(value)}", item=item, field="bbox"
        )
    x, y, w, h = (float(v) for v in value)
    if w < 0 or h < 0:
        raise InputError(path, f"negative width or height in {value}", item=item, field="bbox")
    return x, y, w, h


def _decode_grid(value: Any, shape: tuple[int, int], path: Path, item: str) -> np.ndarray:
    """The labels of a base64 PNG, checked from its header before decoding: single-channel 8-bit (grayscale, not
    a palette or colour image whose decoding would change the values) and exactly the box grid, so that no
    oversized image is ever decoded."""

    def fail(problem: str) -> InputError:
        return InputError(path, problem, item=item, field="parsing")

    if not isinstance(value, str):
        raise fail(f"expected a base64 PNG string, got {describe(value)}")
    try:
        data = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as err:
        raise fail(f"bad base64 ({err})") from None
    if not data.startswith(PNG_SIGNATURE) or len(data) < 33 or data[12:16] != b"IHDR":
        raise fail("not a PNG (the base64 data does not start with a PNG signature and header)")
    width, height, depth, colour = struct.unpack(">IIBB", data[16:26])
    if colour != 0 or depth != 8:
        kind = {0: "grayscale", 2: "RGB", 3: "palette", 4: "grayscale+alpha", 6: "RGBA"}.get(colour, f"type {colour}")
        raise fail(f"not a single-channel 8-bit PNG ({kind}, {depth}-bit)")
    if max(width, height) > MAX_IMAGE_SIDE:
        raise fail(f"a {width}x{height} PNG exceeds the {MAX_IMAGE_SIDE}-pixel side limit")
    if (height, width) != shape:
        raise fail(
            f"the grid is {height} x {width} (H x W) but the box is rendered at max(int(h), 1) x max(int(w), 1) = "
            f"{shape[0]} x {shape[1]}"
        )
    if data[-8:-4] != b"IEND":
        raise fail("truncated PNG (it does not end with its IEND chunk)")
    labels = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if labels is None or labels.dtype != np.uint8 or labels.shape != shape:
        raise fail("a PNG that cannot be decoded (corrupt data)")
    return labels


# --- results from the ground truth ------------------------------------------------------------------------------


def parsing_results_from_split(split: ParsingSplit) -> list[ParsingDetection]:
    """Perfect results: one detection per GT person of ``split``, in image then person order.

    A person's box is the bounding box of its labelled pixels (labels 1..C-1; ignore values are left out) and its
    grid is its labels cropped there, so the pasted map is the person's map exactly. Scores are distinct, in
    (0.5, 1], above both datasets' mIoU threshold; they decrease from image to image, and within an image the
    last person scores highest: the predicted global map paints higher scores over lower ones, and MHP's global
    ground truth paints later people over earlier ones, so overlaps resolve alike. A person without any labelled
    pixel gets no detection (there is no box to give it).
    """
    classes = split.classes
    found: list[tuple[int, BBox, np.ndarray]] = []
    for entry in split:
        people = read_people(entry, classes)
        for labels in people[::-1]:  # the last person first: it gets the higher score
            valid = (labels > 0) & (labels < classes.num_classes)
            if not valid.any():
                continue
            rows, cols = np.flatnonzero(valid.any(axis=1)), np.flatnonzero(valid.any(axis=0))
            y0, y1, x0, x1 = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
            grid = np.where(valid, labels, 0)[y0:y1, x0:x1].astype(np.uint8)
            found.append((entry.image_id, (float(x0), float(y0), float(x1 - x0), float(y1 - y0)), grid))
    total = max(len(found), 1)
    detections = [
        ParsingDetection(image_id, 1, bbox, 1.0 - 0.5 * i / total, grid)
        for i, (image_id, bbox, grid) in enumerate(found)
    ]
    # image order, people in order within it (their scores increase)
    return sorted(detections, key=lambda d: (d.image_id, d.score))


def read_image_index(path: str | Path, split: ParsingSplit) -> dict[int, int]:
    """Results image id -> split ``image_id``, from an ``images.json`` (a list of ``{"id", "file_name", ...}``):
    each id maps to the split entry whose name is the file's stem. An image the split does not have is an error
    (its detections could not be scored)."""
    from densehuman.evaluation.image_index import read_image_index as read_index

    return read_index(path, {e.name: e.image_id for e in split}, f"the split {split.root}")
