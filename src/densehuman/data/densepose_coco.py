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

import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from pycocotools import mask as mask_utils
from torch.utils.data import Dataset

from densehuman.data.parsing_classes import ParsingClasses
from densehuman.data.parsing_folders import ParsingEntry, ParsingSplit
from densehuman.models.instances import DensePoseTarget, ParsingMaps, Targets
from densehuman.validation import InputError, read_json
from densehuman.validation.coco import DENSEPOSE_COCO, DP_GRID, validate_coco
from densehuman.validation.coco import DP_POINT_KEYS as _DP_POINT_KEYS
from densehuman.validation.images import read_image, read_label_map


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
    rank: int = 0  # 1-based position among the image's annotations in id order (its id in the INDS / Human_ids maps)


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

    ``parsing``: the CIHP split of the same images (``densehuman synth`` writes both): each person's part labels
    join the targets (``Targets.parsing``), person k of ``Human_ids`` being the image's k-th annotation in id order,
    as in the synthetic layout.
    """

    def __init__(
        self,
        annotations: Path,
        images: Path,
        *,
        require_densepose_images: bool = False,
        skip_empty: bool = False,
        parsing: ParsingSplit | None = None,
    ) -> None:
        self.annotations = Path(annotations)
        self.images = Path(images)
        self.parsing = parsing
        self._parsing_entries = {e.name: e for e in parsing.entries} if parsing is not None else {}
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

    def _parsing_maps(self, record: _ImageRecord, path: Path, size: tuple[int, int]) -> ParsingMaps:
        assert self.parsing is not None
        entry = self._parsing_entries.get(Path(record.file_name).stem)
        return _parsing_maps_of(entry, record.people, self.parsing.classes, size)

    def check_image_files(self) -> None:
        """Every image file the annotations name exists: an ``InputError`` naming the first missing one (and how
        many are missing) otherwise."""
        missing = [k for k in range(len(self)) if not self.image_path(k).is_file()]
        if missing:
            k = missing[0]
            more = f" ({len(missing)} of {len(self)} images are missing)" if len(missing) > 1 else ""
            item = f"image id {self.image_ids[k]}"
            raise InputError(
                self.annotations, f"{self.image_path(k)} does not exist{more}", item=item, field="file_name"
            )

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
        if self.parsing is not None:
            targets.parsing = self._parsing_maps(record, path, image.shape[:2])
        return DensePoseSample(
            image=image,
            image_id=record.image_id,
            file_name=path,
            targets=targets,
            annotation_ids=tuple(p.ann_id for p in people),
            meta={"orig_size": (record.height, record.width), "flipped": False},
        )


def _parsing_maps_of(
    entry: ParsingEntry | None, people: tuple[_Person, ...], classes: ParsingClasses, size: tuple[int, int]
) -> ParsingMaps:
    labels = torch.zeros((len(people), *size), dtype=torch.uint8)
    has = torch.zeros(len(people), dtype=torch.bool)
    if entry is None or entry.category is None or entry.human is None or not people:
        return ParsingMaps(labels, has)
    category = read_label_map(entry.category, classes.num_classes)
    human = read_label_map(entry.human, ignore=None)
    if category.shape != size or human.shape != size:
        raise ValueError(f"{entry.category}: parsing maps of {category.shape}, the image is {size}")
    for k, person in enumerate(people):
        if person.crowd:
            continue
        labels[k] = torch.from_numpy(np.where(human == person.rank, category, 0))
        has[k] = True
    return ParsingMaps(labels, has)


def synthetic_split(
    root: Path,
    split: str,
    *,
    require_densepose_images: bool = False,
    skip_empty: bool = False,
    parsing: bool = False,
) -> DensePoseCocoDataset:
    """One split of a ``densehuman synth`` dataset: ``annotations/densepose_{split}.json`` over ``images/{split}``,
    with the CIHP maps of the same images when ``parsing`` (see ``DensePoseCocoDataset``)."""
    root = Path(root)
    path = root / "annotations" / f"densepose_{split}.json"
    if not path.is_file():
        have = sorted(p.stem.removeprefix("densepose_") for p in root.glob("annotations/densepose_*.json"))
        raise FileNotFoundError(f"{path}: no such split in {root} (splits there: {', '.join(have) or 'none'})")
    from densehuman.data.parsing_folders import open_parsing_split

    maps = open_parsing_split(root, split, "cihp") if parsing else None
    return DensePoseCocoDataset(
        path,
        root / "images" / split,
        require_densepose_images=require_densepose_images,
        skip_empty=skip_empty,
        parsing=maps,
    )


def read_rgb(path: Path) -> np.ndarray:
    """Read an image file as (H, W, 3) uint8 RGB (``densehuman.validation.images.read_image``): a missing,
    unreadable, truncated or absurdly large file is a ``ValueError`` naming it."""
    try:
        return read_image(path)
    except FileNotFoundError:
        raise ValueError(f"{path}: image file missing") from None


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
    """The annotation file, checked whole (``densehuman.validation.coco``): any problem is an ``InputError``
    naming the file, the item and the field."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no annotation file there")
    data = read_json(path, "DensePose-COCO annotation file")
    validate_coco(data, path, DENSEPOSE_COCO)
    return dict(data)


def _parse(data: dict[str, Any], path: Path) -> tuple[tuple[tuple[int, str], ...], list[_ImageRecord]]:
    """Records of a validated file: boxes as xyxy, categories contiguous (in id order), points clipped."""
    cats = {int(c["id"]): str(c.get("name", c["id"])) for c in data["categories"]}
    contiguous = {cid: k for k, cid in enumerate(sorted(cats))}
    images = {int(im["id"]): im for im in data["images"]}
    people: dict[int, list[_Person]] = {iid: [] for iid in images}
    ranks: dict[int, int] = {}  # annotation id -> its 1-based position among its image's annotations (id order)
    for ids in _ids_by_image(data["annotations"]).values():
        ranks.update({aid: k for k, aid in enumerate(sorted(ids), start=1)})
    for ann in data["annotations"]:
        x, y, w, h = (float(b) for b in ann["bbox"])
        if w <= 0 or h <= 0:
            continue  # cannot be trained on
        crowd = bool(ann.get("iscrowd", 0))
        points = None if crowd else _points(ann)
        masks = None
        if points is not None and ann.get("dp_masks") is not None:
            masks = tuple(ann["dp_masks"]) if any(ann["dp_masks"]) else None
        category = contiguous[int(ann["category_id"])]
        aid = int(ann["id"])
        person = _Person(aid, (x, y, x + w, y + h), category, crowd, points, masks, ranks[aid])
        people[int(ann["image_id"])].append(person)
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


def _ids_by_image(annotations: list[dict[str, Any]]) -> dict[int, list[int]]:
    out: dict[int, list[int]] = {}
    for ann in annotations:
        out.setdefault(int(ann["image_id"]), []).append(int(ann["id"]))
    return out


def _points(ann: dict[str, Any]) -> np.ndarray | None:
    """(5, P) float32 rows x, y, I, U, V of a validated annotation (None without points), clipped to the grid."""
    if "dp_x" not in ann or not ann["dp_x"]:
        return None
    pts = np.stack([np.asarray(ann[k], dtype=np.float64) for k in _DP_POINT_KEYS])
    pts[[0, 1]] = pts[[0, 1]].clip(0, DP_GRID)
    pts[[3, 4]] = pts[[3, 4]].clip(0, 1)
    return pts.astype(np.float32)


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
