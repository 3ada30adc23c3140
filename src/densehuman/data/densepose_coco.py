"""DensePose-COCO reader: the annotation JSON and its images as a ``torch.utils.data.Dataset`` of samples.

The JSON is COCO instances format plus the DensePose fields (``dp_x``, ``dp_y``, ``dp_I``, ``dp_U``, ``dp_V``,
``dp_masks``; see ``/work/shared/reference/densepose.md`` section 3). Every item is a ``DensePoseSample``: the RGB
image as stored on disk and a ``Targets`` whose

- ``boxes`` are the COCO ``bbox`` [x, y, w, h] (pixels, top-left corner, pixel edges) as xyxy,
- ``classes`` are the categories mapped to contiguous 0-based ids in order of category id (person = 0),
- ``crowd`` is ``iscrowd``,
- ``densepose[k]`` is a ``DensePoseTarget`` for an annotation with DensePose points (``None`` otherwise, and for
  crowd regions): ``box`` = the GT box xyxy, ``x``, ``y`` = ``dp_x``, ``dp_y`` (box-relative, the box scaled to
  256 x 256: image x = x0 + dp_x * w / 256), ``i`` = ``dp_I`` (1..24), ``u``, ``v`` = ``dp_U``, ``dp_V``, and
  ``segm`` = the 14 ``dp_masks`` RLEs decoded to a 256 x 256 label map (``mask[part_k > 0] = k``, k = 1..14 in
  order, so later parts win), ``None`` when the annotation has no ``dp_masks``.

Annotations with a zero-width or zero-height box are dropped (they cannot be trained on); anything malformed is a
``ValueError`` naming the JSON file and the annotation id. The JSON is validated once, at construction; images and
masks are decoded per item. Records are kept pickled in one byte array so that data-loader workers forked from the
main process do not copy them page by page (the same trick as detectron2's ``DatasetFromList``).
"""

from __future__ import annotations

import json
import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from pycocotools import mask as mask_utils
from torch.utils.data import Dataset

from densehuman.body.charts import NUM_CHARTS, NUM_COARSE_PARTS
from densehuman.models.instances import DensePoseTarget, Targets

DP_GRID = 256  # DensePose points and masks live on a 256 x 256 grid over the GT box
_DP_POINT_KEYS = ("dp_x", "dp_y", "dp_I", "dp_U", "dp_V")
_TOLERANCE = 1e-3  # slack on the [0, 256] and [0, 1] ranges (rounding in the files)


@dataclass(frozen=True)
class DensePoseSample:
    """One image with its ground truth, as read and then as transformed (see ``densehuman.data.transforms``)."""

    image: np.ndarray  # (H, W, 3) uint8 RGB
    image_id: int
    file_name: Path  # the image file
    targets: Targets  # boxes in the pixels of ``image``
    annotation_ids: tuple[int, ...]  # the JSON id of each box, in the order of ``targets``
    meta: dict[str, Any] = field(default_factory=dict)  # "orig_size": (H, W) as read; "flipped": bool

    @property
    def size(self) -> tuple[int, int]:
        """(H, W) of ``image``."""
        return int(self.image.shape[0]), int(self.image.shape[1])


@dataclass(frozen=True)
class _Person:
    """A validated annotation, kept compact until an item is asked for."""

    ann_id: int
    box: tuple[float, float, float, float]  # xyxy
    category: int  # contiguous
    crowd: bool
    points: np.ndarray | None  # (5, P) float32 rows x, y, I, U, V
    masks: tuple[Any, ...] | None  # the 14 dp_masks entries (RLE dicts or falsy)


@dataclass(frozen=True)
class _ImageRecord:
    image_id: int
    file_name: str
    height: int
    width: int
    people: tuple[_Person, ...]

    @property
    def has_usable(self) -> bool:
        return any(not p.crowd for p in self.people)

    @property
    def has_densepose(self) -> bool:
        return any(p.points is not None for p in self.people)


class DensePoseCocoDataset(Dataset[DensePoseSample]):
    """The images of a DensePose-COCO file, one ``DensePoseSample`` per item.

    ``images`` is the folder the ``file_name`` entries are relative to (``train2014/`` for the real data,
    ``images/{split}/`` for ours). ``require_densepose_images`` keeps only images with at least one annotation
    that has DensePose points; ``skip_empty`` keeps only images with at least one non-crowd person box (for
    training; evaluation wants every image).
    """

    def __init__(
        self, annotations: Path, images: Path, *, require_densepose_images: bool = False, skip_empty: bool = False
    ) -> None:
        self.annotations = Path(annotations)
        self.images = Path(images)
        if not self.images.is_dir():
            raise FileNotFoundError(f"{self.images}: no image folder there")
        data = _load_json(self.annotations)
        self.categories, records = _parse(data, self.annotations)
        if require_densepose_images:
            records = [r for r in records if r.has_densepose]
        if skip_empty:
            records = [r for r in records if r.has_usable]
        self.image_ids: tuple[int, ...] = tuple(r.image_id for r in records)
        blobs = [pickle.dumps(r, protocol=pickle.HIGHEST_PROTOCOL) for r in records]
        self._offsets = np.cumsum([0, *(len(b) for b in blobs)]).astype(np.int64)
        self._blob = np.frombuffer(b"".join(blobs), dtype=np.uint8) if blobs else np.zeros(0, np.uint8)

    def __len__(self) -> int:
        return len(self.image_ids)

    def __repr__(self) -> str:
        return f"DensePoseCocoDataset({self.annotations}, {len(self)} images)"

    def _record(self, index: int) -> _ImageRecord:
        if not -len(self) <= index < len(self):
            raise IndexError(f"image index {index} out of range for {len(self)} images")
        index %= len(self)
        lo, hi = self._offsets[index], self._offsets[index + 1]
        record: _ImageRecord = pickle.loads(self._blob[lo:hi].tobytes())
        return record

    def image_path(self, index: int) -> Path:
        return self.images / self._record(index).file_name

    def __getitem__(self, index: int) -> DensePoseSample:
        record = self._record(index)
        path = self.images / record.file_name
        image = read_rgb(path)
        if image.shape[:2] != (record.height, record.width):
            raise ValueError(
                f"{path}: image is {image.shape[0]} x {image.shape[1]} but {self.annotations} says "
                f"{record.height} x {record.width} (image id {record.image_id})"
            )
        people = record.people
        boxes = np.asarray([p.box for p in people], dtype=np.float32).reshape(-1, 4)
        targets = Targets(
            boxes=torch.from_numpy(boxes),
            classes=torch.tensor([p.category for p in people], dtype=torch.int64),
            densepose=[_densepose_target(p, self.annotations) for p in people],
            crowd=torch.tensor([p.crowd for p in people], dtype=torch.bool),
        )
        return DensePoseSample(
            image=image,
            image_id=record.image_id,
            file_name=path,
            targets=targets,
            annotation_ids=tuple(p.ann_id for p in people),
            meta={"orig_size": (record.height, record.width), "flipped": False},
        )


def synthetic_split(root: Path, split: str, **options: bool) -> DensePoseCocoDataset:
    """One split of a ``densehuman synth`` dataset: ``annotations/densepose_{split}.json`` over ``images/{split}``.

    ``options`` are passed on to ``DensePoseCocoDataset`` (``require_densepose_images``, ``skip_empty``).
    """
    root = Path(root)
    path = root / "annotations" / f"densepose_{split}.json"
    if not path.is_file():
        have = sorted(p.stem.removeprefix("densepose_") for p in root.glob("annotations/densepose_*.json"))
        raise FileNotFoundError(f"{path}: no such split in {root} (splits there: {', '.join(have) or 'none'})")
    return DensePoseCocoDataset(path, root / "images" / split, **options)


def read_rgb(path: Path) -> np.ndarray:
    """Read an image file as (H, W, 3) uint8 RGB; a missing or unreadable file is a ``ValueError`` naming it."""
    if not path.is_file():
        raise ValueError(f"{path}: image file missing")
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise ValueError(f"{path}: not a readable image (corrupt or not an image format)")
    return np.ascontiguousarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))


def decode_dp_masks(masks: tuple[Any, ...] | list[Any]) -> np.ndarray:
    """The 14 ``dp_masks`` entries -> (256, 256) int64 coarse-part labels 0..14 (``mask[part_k > 0] = k``)."""
    label = np.zeros((DP_GRID, DP_GRID), dtype=np.int64)
    for k, rle in enumerate(masks, start=1):
        if not rle:
            continue
        if isinstance(rle.get("counts"), list):  # uncompressed RLE
            rle = mask_utils.frPyObjects(rle, *rle["size"])
        label[mask_utils.decode(rle) > 0] = k
    return label


# --------------------------------------------------------------------------------------------- parsing
def _load_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no annotation file there")
    try:
        with path.open("rb") as fh:
            data = json.load(fh)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{path}: not valid JSON ({err})") from err
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a COCO annotation object at the top level, got {type(data).__name__}")
    for key in ("images", "annotations", "categories"):
        if not isinstance(data.get(key), list):
            raise ValueError(f"{path}: no {key!r} list (not a COCO annotation file)")
    return data


def _parse(data: dict[str, Any], path: Path) -> tuple[tuple[tuple[int, str], ...], list[_ImageRecord]]:
    cats: dict[int, str] = {}
    for c in data["categories"]:
        if not isinstance(c, dict) or not _is_int(c.get("id")):
            raise ValueError(f"{path}: category entry {c!r} has no integer id")
        cats[int(c["id"])] = str(c.get("name", c["id"]))
    if not cats:
        raise ValueError(f"{path}: no categories")
    contiguous = {cid: k for k, cid in enumerate(sorted(cats))}

    images: dict[int, dict[str, Any]] = {}
    for im in data["images"]:
        if not isinstance(im, dict) or not _is_int(im.get("id")):
            raise ValueError(f"{path}: image entry {str(im)[:80]} has no integer id")
        iid = int(im["id"])
        if not isinstance(im.get("file_name"), str) or not im["file_name"]:
            raise ValueError(f"{path}: image {iid} has no file_name")
        if not all(_is_int(im.get(k)) and im[k] > 0 for k in ("height", "width")):
            raise ValueError(f"{path}: image {iid} needs positive integer height and width")
        if iid in images:
            raise ValueError(f"{path}: image id {iid} appears twice")
        images[iid] = im

    people: dict[int, list[_Person]] = {iid: [] for iid in images}
    seen: set[int] = set()
    for ann in data["annotations"]:
        person, iid = _parse_annotation(ann, path, contiguous, images)
        if person.ann_id in seen:
            raise ValueError(f"{path}: annotation id {person.ann_id} appears twice")
        seen.add(person.ann_id)
        if person.box[2] > person.box[0] and person.box[3] > person.box[1]:
            people[iid].append(person)
    records = [
        _ImageRecord(
            iid,
            im["file_name"],
            int(im["height"]),
            int(im["width"]),
            tuple(sorted(people[iid], key=lambda p: p.ann_id)),
        )
        for iid, im in images.items()
    ]
    return tuple((cid, cats[cid]) for cid in sorted(cats)), records


def _parse_annotation(
    ann: Any, path: Path, contiguous: dict[int, int], images: dict[int, dict[str, Any]]
) -> tuple[_Person, int]:
    if not isinstance(ann, dict) or not _is_int(ann.get("id")):
        raise ValueError(f"{path}: annotation entry {str(ann)[:80]} has no integer id")
    aid = int(ann["id"])
    where = f"{path}: annotation {aid}"
    iid: Any = ann.get("image_id")
    if not _is_int(iid) or int(iid) not in images:
        raise ValueError(f"{where}: image_id {iid!r} is not an image of the file")
    cid: Any = ann.get("category_id")
    if not _is_int(cid) or int(cid) not in contiguous:
        raise ValueError(f"{where}: category_id {cid!r} is not a category of the file ({sorted(contiguous)})")
    bbox = ann.get("bbox")
    if not isinstance(bbox, list | tuple) or len(bbox) != 4 or not all(_is_number(b) for b in bbox):
        raise ValueError(f"{where}: bbox must be 4 numbers [x, y, w, h], got {bbox!r}")
    x, y, w, h = (float(b) for b in bbox)
    if not np.isfinite([x, y, w, h]).all() or w < 0 or h < 0:
        raise ValueError(f"{where}: bbox {bbox} must be finite with non-negative width and height")
    crowd = ann.get("iscrowd", 0)
    if crowd not in (0, 1, True, False):
        raise ValueError(f"{where}: iscrowd must be 0 or 1, got {crowd!r}")
    points = _parse_points(ann, where)
    masks = _parse_masks(ann.get("dp_masks"), where) if points is not None else None
    if crowd:
        points, masks = None, None
    return _Person(aid, (x, y, x + w, y + h), contiguous[int(cid)], bool(crowd), points, masks), int(iid)


def _parse_points(ann: dict[str, Any], where: str) -> np.ndarray | None:
    present = [k for k in _DP_POINT_KEYS if k in ann]
    if not present:
        return None
    if len(present) != len(_DP_POINT_KEYS):
        missing = [k for k in _DP_POINT_KEYS if k not in ann]
        raise ValueError(f"{where}: has {', '.join(present)} but not {', '.join(missing)}")
    arrays = {}
    for k in _DP_POINT_KEYS:
        arr = np.asarray(ann[k]) if isinstance(ann[k], list) else None
        if arr is None or arr.ndim != 1 or (arr.size and arr.dtype.kind not in "iuf"):
            raise ValueError(f"{where}: {k} must be a list of numbers, got {str(ann[k])[:60]}")
        arrays[k] = arr
    lengths = {k: a.size for k, a in arrays.items()}
    if len(set(lengths.values())) != 1:
        raise ValueError(f"{where}: DensePose point lists differ in length ({lengths})")
    if lengths["dp_x"] == 0:
        return None
    pts = np.stack([arrays[k].astype(np.float64) for k in _DP_POINT_KEYS])
    if not np.isfinite(pts).all():
        raise ValueError(f"{where}: DensePose point fields hold NaN or infinite values")
    for row, name, hi in ((0, "dp_x", DP_GRID), (1, "dp_y", DP_GRID), (3, "dp_U", 1), (4, "dp_V", 1)):
        if pts[row].min() < -_TOLERANCE or pts[row].max() > hi + _TOLERANCE:
            raise ValueError(f"{where}: {name} must lie in [0, {hi}], got [{pts[row].min()}, {pts[row].max()}]")
    charts = pts[2]
    if (charts != np.round(charts)).any() or charts.min() < 1 or charts.max() > NUM_CHARTS:
        raise ValueError(f"{where}: dp_I must be whole chart numbers 1..{NUM_CHARTS}, got {np.unique(charts)}")
    pts[[0, 1]] = pts[[0, 1]].clip(0, DP_GRID)
    pts[[3, 4]] = pts[[3, 4]].clip(0, 1)
    return pts.astype(np.float32)


def _parse_masks(masks: Any, where: str) -> tuple[Any, ...] | None:
    if masks is None:
        return None
    if not isinstance(masks, list) or len(masks) != NUM_COARSE_PARTS:
        n = len(masks) if isinstance(masks, list) else type(masks).__name__
        raise ValueError(f"{where}: dp_masks must be a list of {NUM_COARSE_PARTS} RLEs or empty entries, got {n}")
    for k, rle in enumerate(masks, start=1):
        if not rle:
            continue
        if not isinstance(rle, dict) or "counts" not in rle or "size" not in rle:
            raise ValueError(f"{where}: dp_masks[{k - 1}] is not a COCO RLE (a dict with size and counts)")
        if list(rle["size"]) != [DP_GRID, DP_GRID]:
            raise ValueError(f"{where}: dp_masks[{k - 1}] has size {rle['size']}, expected [{DP_GRID}, {DP_GRID}]")
        if not isinstance(rle["counts"], str | list):
            raise ValueError(f"{where}: dp_masks[{k - 1}] counts must be a string or a list")
    return tuple(masks) if any(masks) else None


def _densepose_target(person: _Person, path: Path) -> DensePoseTarget | None:
    if person.points is None:
        return None
    try:
        segm = None if person.masks is None else torch.from_numpy(decode_dp_masks(person.masks))
    except Exception as err:  # pycocotools raises bare exceptions on malformed counts
        raise ValueError(f"{path}: annotation {person.ann_id}: cannot decode dp_masks ({err})") from err
    pts = torch.from_numpy(person.points)
    return DensePoseTarget(
        box=torch.tensor(person.box, dtype=torch.float32),
        x=pts[0].clone(),
        y=pts[1].clone(),
        i=pts[2].to(torch.int64),
        u=pts[3].clone(),
        v=pts[4].clone(),
        segm=segm,
    )


def _is_int(value: Any) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float | np.number) and not isinstance(value, bool)
