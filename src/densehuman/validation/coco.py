"""COCO-style annotation files checked whole: DensePose-COCO, COCO instances / keypoints, COCO-WholeBody, BODY_135.

``validate_coco(data, path, spec)`` refuses anything a reader could trip on later, with the file, the item
(``images[2] (id 7)``, ``annotations[5] (id 31)``) and the field in the message:

- the top level: an object with ``images`` and ``annotations`` lists (and ``categories`` where the spec needs them);
- ids: integers, unique among images, annotations and categories;
- references: every annotation's ``image_id`` is an image, its ``category_id`` a category;
- geometry: image sizes positive integers, boxes four finite numbers with non-negative width and height, areas
  finite and non-negative, polygons of finite coordinates, keypoints finite with visibility 0, 1 or 2;
- labels: DensePose points in range (``dp_x``, ``dp_y`` in [0, 256], ``dp_I`` whole numbers 1..24, ``dp_U``,
  ``dp_V`` in [0, 1], all five lists as long as each other), 14 ``dp_masks`` entries;
- every RLE (segmentations and ``dp_masks``) well formed (``densehuman.validation.rle``) before pycocotools sees it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from densehuman.validation.errors import InputError, describe
from densehuman.validation.records import Record, is_int
from densehuman.validation.rle import rle_problems

DP_GRID = 256  # DensePose points and masks live on a 256 x 256 grid over the GT box
DP_POINT_KEYS = ("dp_x", "dp_y", "dp_I", "dp_U", "dp_V")
DP_TOLERANCE = 1e-3  # slack on the [0, 256] and [0, 1] ranges (rounding in the files)
NUM_CHARTS = 24
NUM_COARSE_PARTS = 14

# COCO-WholeBody's part fields: (keypoints field, count, box field, validity field)
WHOLEBODY_PARTS = (
    ("foot_kpts", 6, None, "foot_valid"),
    ("face_kpts", 68, "face_box", "face_valid"),
    ("lefthand_kpts", 21, "lefthand_box", "lefthand_valid"),
    ("righthand_kpts", 21, "righthand_box", "righthand_valid"),
)


class RleChecks:
    """RLEs met while checking a file, checked together at the end (vectorized) with their place for the message."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.rles: list[Any] = []
        self.places: list[tuple[str, str]] = []
        self.sizes: list[tuple[int, int] | None] = []

    def add(self, rle: Any, item: str, field_name: str, size: tuple[int, int] | None) -> None:
        self.rles.append(rle)
        self.places.append((item, field_name))
        self.sizes.append(size)

    def check(self) -> None:
        for size in [*sorted({s for s in self.sizes if s is not None}), None]:
            chosen = [k for k, s in enumerate(self.sizes) if s == size]
            if not chosen:
                continue
            problems = rle_problems([self.rles[k] for k in chosen], size)
            for k, problem in zip(chosen, problems, strict=True):
                if problem is not None:
                    item, field_name = self.places[k]
                    raise InputError(self.source, problem, item=item, field=field_name)


AnnotationCheck = Callable[[Record, Mapping[str, Any], RleChecks], None]


@dataclass(frozen=True)
class CocoSpec:
    """What a kind of COCO file must hold: ``bbox`` / ``category_id`` per annotation, ``file_name`` per image,
    ``keypoints`` (their count, or None for "optional, any multiple of 3"), and further per-annotation checks
    (given the record, its image and the file's RLE collector)."""

    kind: str
    bbox: bool = True
    categories: bool = True  # the file must have a non-empty ``categories`` list
    category_id: bool = True  # annotations must name a category (one of the list, when there is one)
    file_name: bool = True
    area: bool = False
    keypoints: int | None = None
    keypoints_required: bool = False
    checks: tuple[AnnotationCheck, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class CocoIndex:
    """A checked file: its images, categories (by id) and annotations (in file order)."""

    path: Path
    images: dict[int, Mapping[str, Any]]
    categories: dict[int, Mapping[str, Any]]
    annotations: list[Mapping[str, Any]]


def validate_coco(data: Any, path: str | Path, spec: CocoSpec) -> CocoIndex:
    source = str(path)
    if not isinstance(data, Mapping):
        raise InputError(source, f"a {spec.kind} is a JSON object at the top level, got {describe(data)}")
    wanted = ("images", "annotations", "categories") if spec.categories else ("images", "annotations")
    for key in wanted:
        if key not in data:
            raise InputError(source, f"no '{key}' list: not a {spec.kind}")
        if not isinstance(data[key], list):
            raise InputError(source, f"'{key}' must be a list, got {describe(data[key])}")
    if "categories" in data and not isinstance(data["categories"], list):
        raise InputError(source, f"'categories' must be a list, got {describe(data['categories'])}")
    categories: dict[int, Mapping[str, Any]] = {}
    for i, value in enumerate(data.get("categories") or []):
        record = Record(source, f"categories[{i}]", value)
        cid = record.integer("id")
        if cid in categories:
            record.fail("id", f"category id {cid} appears twice")
        if record.has("name"):
            record.string("name")
        categories[cid] = record.value
    if spec.categories and not categories:
        raise InputError(source, "'categories' is empty: a category is needed (person)")
    images: dict[int, Mapping[str, Any]] = {}
    for i, value in enumerate(data["images"]):
        record = Record(source, f"images[{i}]", value)
        iid = record.integer("id")
        record.item = f"images[{i}] (id {iid})"
        if iid in images:
            record.fail("id", f"image id {iid} appears twice")
        record.integer("height", minimum=1)
        record.integer("width", minimum=1)
        if spec.file_name:
            record.string("file_name")
        for key in ("ignore_regions_x", "ignore_regions_y"):
            if record.has(key):
                _polygons(record, key)
        images[iid] = record.value
    rles = RleChecks(source)
    seen: set[int] = set()
    for i, value in enumerate(data["annotations"]):
        record = Record(source, f"annotations[{i}]", value)
        aid = record.integer("id")
        record.item = f"annotations[{i}] (id {aid})"
        if aid in seen:
            record.fail("id", f"annotation id {aid} appears twice")
        seen.add(aid)
        iid = record.integer("image_id")
        if iid not in images:
            record.fail("image_id", f"{iid} is not the id of an image in the file")
        image = images[iid]
        if spec.category_id:
            cid = record.integer("category_id")
            if categories and cid not in categories:
                record.fail("category_id", f"{cid} is not a category of the file ({sorted(categories)})")
        if spec.bbox:
            record.box_xywh("bbox")
        if spec.area or record.has("area"):
            record.number("area", minimum=0.0)
        crowd = record.flag("iscrowd", False)
        if record.has("segmentation"):
            _segmentation(record, image, crowd, rles)
        if spec.keypoints_required or record.has("keypoints"):
            _keypoints(record, "keypoints", spec.keypoints)
        if record.has("num_keypoints"):
            record.integer("num_keypoints", minimum=0)
        for check in spec.checks:
            check(record, image, rles)
    rles.check()
    return CocoIndex(Path(path), images, categories, list(data["annotations"]))


def _polygons(record: Record, key: str) -> None:
    value = record.get(key)
    if not isinstance(value, list):
        record.fail(key, f"expected a list of polygons, got {describe(value)}")
    for k, polygon in enumerate(value):
        sub = Record(record.source, record.item, {f"{key}[{k}]": polygon})
        sub.numbers(f"{key}[{k}]")


def _segmentation(record: Record, image: Mapping[str, Any], crowd: bool, rles: RleChecks) -> None:
    value = record.get("segmentation")
    if isinstance(value, list):  # polygons [[x0, y0, x1, y1, ...], ...]
        for k, polygon in enumerate(value):
            sub = Record(record.source, record.item, {f"segmentation[{k}]": polygon})
            sub.numbers(f"segmentation[{k}]", multiple_of=2)
            if len(polygon) < 6:
                record.fail(f"segmentation[{k}]", f"a polygon needs at least 3 points, got {len(polygon) // 2}")
    elif isinstance(value, Mapping):
        rles.add(value, record.item, "segmentation", (int(image["height"]), int(image["width"])))
    else:
        record.fail("segmentation", f"expected polygons or an RLE object, got {describe(value)}")


def _keypoints(record: Record, key: str, count: int | None) -> None:
    values = record.numbers(key, multiple_of=3) if count is None else record.numbers(key, length=3 * count)
    visibility = values[2::3]
    bad = (visibility != 0) & (visibility != 1) & (visibility != 2)
    if bad.any():
        k = int(bad.argmax())
        record.fail(key, f"keypoint {k} has visibility {visibility[k]:g}; it must be 0, 1 or 2")


def check_densepose(record: Record, image: Mapping[str, Any], rles: RleChecks) -> None:
    """The DensePose-COCO fields of one annotation (absent: a plain person annotation)."""
    present = [k for k in DP_POINT_KEYS if record.has(k)]
    if present and len(present) != len(DP_POINT_KEYS):
        missing = [k for k in DP_POINT_KEYS if not record.has(k)]
        record.fail(missing[0], f"missing (the annotation has {', '.join(present)}: all five go together)")
    if present:
        ranges = {"dp_x": DP_GRID, "dp_y": DP_GRID, "dp_U": 1.0, "dp_V": 1.0}
        lengths = {}
        for key in DP_POINT_KEYS:
            if key == "dp_I":
                values = record.numbers(key, minimum=1, maximum=NUM_CHARTS, integral=True)
            else:
                values = record.numbers(key, minimum=-DP_TOLERANCE, maximum=ranges[key] + DP_TOLERANCE)
            lengths[key] = values.size
        if len(set(lengths.values())) != 1:
            shortest = min(lengths, key=lambda k: lengths[k])
            record.fail(shortest, f"the five DensePose point lists differ in length ({lengths})")
    if record.has("dp_masks"):
        masks = record.get("dp_masks")
        if not isinstance(masks, list) or len(masks) != NUM_COARSE_PARTS:
            got = f"{len(masks)} entries" if isinstance(masks, list) else describe(masks)
            record.fail("dp_masks", f"expected a list of {NUM_COARSE_PARTS} RLEs or empty entries, got {got}")
        for k, rle in enumerate(masks):
            if isinstance(rle, list | int) and not rle:  # an empty entry: the part is not visible
                continue
            rles.add(rle, record.item, f"dp_masks[{k}]", (DP_GRID, DP_GRID))


def check_wholebody(record: Record, image: Mapping[str, Any], rles: RleChecks) -> None:
    """COCO-WholeBody's foot, face and hand fields (each optional; present ones checked)."""
    for key, count, box, valid in WHOLEBODY_PARTS:
        if record.has(key):
            _keypoints(record, key, count)
        if box is not None and record.has(box):
            record.box_xywh(box)
        if record.has(valid):
            value = record.get(valid)
            if not isinstance(value, bool) and not (is_int(value) and value in (0, 1)):
                record.fail(valid, f"expected true or false, got {describe(value)}")


DENSEPOSE_COCO = CocoSpec("DensePose-COCO annotation file", checks=(check_densepose,))
DENSEPOSE_GT = CocoSpec("DensePose-COCO ground-truth file", categories=False, file_name=False, area=True,
                        checks=(check_densepose,))  # fmt: skip
COCO_WHOLEBODY = CocoSpec("COCO-WholeBody annotation file", keypoints=17, checks=(check_wholebody,))
BODY_135 = CocoSpec(
    "BODY_135 annotation file",
    bbox=False,
    categories=False,
    category_id=False,
    keypoints=135,
    keypoints_required=True,
)
