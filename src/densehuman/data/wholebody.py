"""Whole-body (BODY_135) training data: readers of COCO-WholeBody and BODY_135 files, dataset kinds, the mixture.

Every image of a source becomes a ``WholeBodySample`` in the BODY_135 order (``wholebody.md`` §1.2, §1.3):

- ``keypoints`` (P, 135, 3) ``x, y, v`` with v in {0, 1, 2} (0 = no point), as the file has them;
- ``labeled`` (P, 135) bool: which points of each person are annotated. A point can be labeled with v = 0 (absent:
  outside the image), which teaches "no part here"; an unlabeled point says nothing;
- ``boxes`` (P, 4) xyxy; ``ignore``: regions where people or parts are present but not labeled (see below);
- ``labeled_parts`` (135,) bool: the channels the dataset labels (its kind, ``KINDS``).

COCO-WholeBody (§5.1): the 133 points map to BODY_135 with ``wholebody_to_body135`` (hand roots are dropped; the
body wrists stand for them). UpperNeck and HeadTop (17, 18) are not in the format and never labeled; the pupils
(133, 134) are the mean of the six eye-contour points when all six are labeled (openpose_train's FACE_135_70 does the
same), otherwise unlabeled. A part whose ``*_valid`` is false is **unlabeled** for that person, not absent: its
points are unlabeled, and its region (its box, or one estimated from the body keypoints) is an ignore region.

BODY_135 files (``densehuman synth``'s ``annotations/body135_{split}.json``, COCO-like with 405 numbers per
``keypoints``): every point is labeled (OpenPose writes a missing point as 0, 0, 0); the box is ``bbox`` when
present, else the extent of the person's points.

Ignore regions (openpose_caffe_train's "maskMiss"): crowds and people with no labeled point of the dataset's parts
(their segmentation, else their box), plus the invalid parts above. ``ignore_mask`` rasterises them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np
from pycocotools import mask as mask_utils

from densehuman.keypoints.layouts import NUM_BODY135, wholebody_to_body135
from densehuman.validation import InputError, read_json
from densehuman.validation.coco import BODY_135, COCO_WHOLEBODY, validate_coco

# BODY_135 index ranges (wholebody.md §1.2)
B135_BODY = range(0, 17)
B135_MPII = range(17, 19)
B135_FOOT = range(19, 25)
B135_LEFT_HAND = range(25, 45)
B135_RIGHT_HAND = range(45, 65)
B135_FACE68 = range(65, 133)
B135_PUPILS = range(133, 135)
L_WRIST, R_WRIST = 9, 10


def _parts(*ranges: Sequence[int]) -> np.ndarray:
    out = np.zeros(NUM_BODY135, dtype=bool)
    for r in ranges:
        out[list(r)] = True
    out.setflags(write=False)
    return out


# The labeled channels of each dataset kind, after openpose_train's BODY_135 models (§2 "Training recipe"):
# COCO_135_17, COCO_135_23, FACE_135_70, HAND_135_21 (right wrist + right hand), HAND_135_42, DOME_135.
KINDS: dict[str, np.ndarray] = {
    "coco_body": _parts(B135_BODY),
    "coco_foot": _parts(B135_BODY, B135_FOOT),
    "face": _parts(B135_FACE68, B135_PUPILS),
    "hand21": _parts([R_WRIST], B135_RIGHT_HAND),
    "hand42": _parts([L_WRIST, R_WRIST], B135_LEFT_HAND, B135_RIGHT_HAND),
    "wholebody": _parts(range(NUM_BODY135)),
}
KIND_ALIASES = {"hand": "hand42", "body": "coco_body", "foot": "coco_foot", "dome": "wholebody"}
# What COCO-WholeBody files can label at all (no UpperNeck / HeadTop)
WHOLEBODY_FORMAT_PARTS = _parts(B135_BODY, B135_FOOT, B135_LEFT_HAND, B135_RIGHT_HAND, B135_FACE68, B135_PUPILS)

# COCO-WholeBody part -> (validity field, box field, BODY_135 indices)
_WB_PARTS: dict[str, tuple[str, str | None, np.ndarray]] = {
    "foot": ("foot_valid", None, np.arange(19, 25)),
    "face": ("face_valid", "face_box", np.arange(65, 135)),
    "lefthand": ("lefthand_valid", "lefthand_box", np.arange(25, 45)),
    "righthand": ("righthand_valid", "righthand_box", np.arange(45, 65)),
}


def kind_parts(kind: str) -> np.ndarray:
    """(135,) bool: the channels a dataset kind labels (``KINDS``; ``hand`` is ``hand42``)."""
    name = KIND_ALIASES.get(kind, kind)
    if name not in KINDS:
        raise ValueError(f"unknown dataset kind {kind!r} (kinds: {', '.join([*KINDS, *KIND_ALIASES])})")
    return KINDS[name]


@dataclass(frozen=True)
class IgnoreRegion:
    """A region of unlabeled people or parts: a COCO ``segmentation`` (polygons or RLE) or a box [x, y, w, h]."""

    kind: Literal["segmentation", "box"]
    value: Any


@dataclass(frozen=True)
class WholeBodySample:
    """One image of a whole-body source (see the module docstring); arrays are float32 / bool."""

    image_path: Path
    image_id: int
    size: tuple[int, int]  # (H, W) as the file says
    keypoints: np.ndarray  # (P, 135, 3)
    labeled: np.ndarray  # (P, 135) bool
    boxes: np.ndarray  # (P, 4) xyxy
    ignore: tuple[IgnoreRegion, ...]
    labeled_parts: np.ndarray  # (135,) bool
    annotation_ids: tuple[int, ...] = ()
    dataset: str = ""

    @property
    def num_people(self) -> int:
        return int(self.keypoints.shape[0])


@dataclass(frozen=True)
class WholeBodySource:
    """The samples of one annotation file, with its kind and labeled parts."""

    name: str
    kind: str
    labeled_parts: np.ndarray
    samples: tuple[WholeBodySample, ...] = field(repr=False)

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> WholeBodySample:
        return self.samples[index]


def ignore_mask(sample: WholeBodySample) -> np.ndarray:
    """(H, W) bool: True inside the sample's ignore regions."""
    height, width = sample.size
    mask = np.zeros((height, width), dtype=bool)
    for region in sample.ignore:
        if region.kind == "box":
            x, y, w, h = region.value
            x0, y0 = max(int(np.floor(x)), 0), max(int(np.floor(y)), 0)
            x1, y1 = min(int(np.ceil(x + w)), width), min(int(np.ceil(y + h)), height)
            if x1 > x0 and y1 > y0:
                mask[y0:y1, x0:x1] = True
        else:
            mask |= decode_segmentation(region.value, height, width)
    return mask


def decode_segmentation(segmentation: Any, height: int, width: int) -> np.ndarray:
    """A validated COCO segmentation (polygons, compressed or uncompressed RLE) as an (H, W) bool mask."""
    if isinstance(segmentation, list):
        if not segmentation:
            return np.zeros((height, width), dtype=bool)
        rle = mask_utils.merge(mask_utils.frPyObjects(segmentation, height, width))
    elif isinstance(segmentation.get("counts"), list):
        rle = mask_utils.frPyObjects(segmentation, height, width)
    else:
        rle = segmentation
    decoded = mask_utils.decode(rle)
    return np.asarray(decoded.any(axis=2) if decoded.ndim == 3 else decoded, dtype=bool)


# --------------------------------------------------------------------------------------------- readers
def _kind_from_file(data: Mapping[str, Any], default: str) -> str:
    info = data.get("info")
    if isinstance(info, Mapping) and isinstance(info.get("partial_kind"), str):
        return str(info["partial_kind"])
    return default


def read_coco_wholebody(
    annotations: str | Path, images: str | Path, kind: str | None = None, name: str | None = None
) -> WholeBodySource:
    """A COCO-WholeBody file as BODY_135 samples. ``kind`` defaults to the file's ``info.partial_kind`` (written by
    ``densehuman synth-partial``), else ``wholebody``; the labeled parts are the kind's that the format has."""
    path = Path(annotations)
    data = read_json(path, "COCO-WholeBody annotation file")
    index = validate_coco(data, path, COCO_WHOLEBODY)
    kind = kind or _kind_from_file(data, "wholebody")
    kind = KIND_ALIASES.get(kind, kind)
    try:
        labeled_parts = kind_parts(kind) & WHOLEBODY_FORMAT_PARTS
    except ValueError as err:
        raise InputError(path, str(err), field="info.partial_kind") from None
    by_image: dict[int, list[tuple[int, Mapping[str, Any]]]] = {iid: [] for iid in index.images}
    for i, ann in enumerate(index.annotations):
        by_image[int(ann["image_id"])].append((i, ann))
    samples = []
    for iid, image in index.images.items():
        people: list[tuple[int, np.ndarray, np.ndarray, np.ndarray]] = []
        ignore: list[IgnoreRegion] = []
        for i, ann in by_image[iid]:
            kpts, labeled, regions = _wholebody_person(path, i, ann, labeled_parts)
            box = _box_xyxy(ann, kpts)
            if bool(ann.get("iscrowd", 0)) or not labeled.any() or not (kpts[labeled, 2] > 0).any():
                ignore.append(_person_region(ann, box))
                continue
            ignore += regions
            people.append((int(ann["id"]), kpts, labeled, box))
        samples.append(_sample(path, images, image, people, ignore, labeled_parts, name or path.stem))
    return WholeBodySource(name or path.stem, kind, labeled_parts, tuple(samples))


def read_body135(annotations: str | Path, images: str | Path, name: str | None = None) -> WholeBodySource:
    """A BODY_135 file (``densehuman synth``'s ``body135_{split}.json``) as samples: every point labeled."""
    path = Path(annotations)
    data = read_json(path, "BODY_135 annotation file")
    index = validate_coco(data, path, BODY_135)
    labeled_parts = KINDS["wholebody"]
    by_image: dict[int, list[Mapping[str, Any]]] = {iid: [] for iid in index.images}
    for ann in index.annotations:
        by_image[int(ann["image_id"])].append(ann)
    samples = []
    for iid, image in index.images.items():
        people: list[tuple[int, np.ndarray, np.ndarray, np.ndarray]] = []
        ignore: list[IgnoreRegion] = []
        for ann in by_image[iid]:
            kpts = np.asarray(ann["keypoints"], dtype=np.float32).reshape(NUM_BODY135, 3)
            box = _box_xyxy(ann, kpts)
            if bool(ann.get("iscrowd", 0)) or not (kpts[:, 2] > 0).any():
                if "segmentation" in ann or "bbox" in ann:
                    ignore.append(_person_region(ann, box))
                continue
            people.append((int(ann["id"]), kpts, np.ones(NUM_BODY135, dtype=bool), box))
        samples.append(_sample(path, images, image, people, ignore, labeled_parts, name or path.stem))
    return WholeBodySource(name or path.stem, "wholebody", labeled_parts, tuple(samples))


def _sample(
    path: Path,
    images: str | Path,
    image: Mapping[str, Any],
    people: list[tuple[int, np.ndarray, np.ndarray, np.ndarray]],
    ignore: list[IgnoreRegion],
    labeled_parts: np.ndarray,
    name: str,
) -> WholeBodySample:
    count = len(people)
    return WholeBodySample(
        image_path=Path(images) / str(image["file_name"]),
        image_id=int(image["id"]),
        size=(int(image["height"]), int(image["width"])),
        keypoints=np.stack([p[1] for p in people]) if count else np.zeros((0, NUM_BODY135, 3), np.float32),
        labeled=np.stack([p[2] for p in people]) if count else np.zeros((0, NUM_BODY135), bool),
        boxes=np.stack([p[3] for p in people]).astype(np.float32) if count else np.zeros((0, 4), np.float32),
        ignore=tuple(ignore),
        labeled_parts=labeled_parts,
        annotation_ids=tuple(p[0] for p in people),
        dataset=name,
    )


def _wholebody_person(
    path: Path, i: int, ann: Mapping[str, Any], labeled_parts: np.ndarray
) -> tuple[np.ndarray, np.ndarray, list[IgnoreRegion]]:
    """(135, 3) keypoints, (135,) labeled and the ignore regions of invalid parts, of one validated annotation."""
    fields = (("keypoints", 17), ("foot_kpts", 6), ("face_kpts", 68), ("lefthand_kpts", 21), ("righthand_kpts", 21))
    blocks = []
    for key, count in fields:
        values = ann.get(key)
        if values is None:
            blocks.append(np.zeros((count, 3)))
        else:
            blocks.append(np.asarray(values, dtype=np.float64).reshape(count, 3))
    kpts = wholebody_to_body135(np.concatenate(blocks)).astype(np.float32)
    labeled = labeled_parts.copy()
    if "keypoints" not in ann:
        labeled[list(B135_BODY)] = False
    regions: list[IgnoreRegion] = []
    for part, (valid_key, box_key, indices) in _WB_PARTS.items():
        if bool(ann.get(valid_key, False)):
            continue
        kpts[indices] = 0.0
        if labeled[indices].any():
            labeled[indices] = False
            region = _part_region(part, ann.get(box_key) if box_key else None, kpts)
            if region is not None:
                regions.append(region)
    eyes = kpts[[101 + k for k in range(6)] + [107 + k for k in range(6)]].reshape(2, 6, 3)
    for pupil, eye in zip((133, 134), eyes, strict=True):  # RPupil from the right eye, LPupil from the left
        if labeled[pupil] and (eye[:, 2] > 0).all():
            kpts[pupil] = (*eye[:, :2].mean(axis=0), 2.0 if (eye[:, 2] == 2).all() else 1.0)
    return kpts, labeled, regions


def _box_xyxy(ann: Mapping[str, Any], kpts: np.ndarray) -> np.ndarray:
    if "bbox" in ann:
        x, y, w, h = (float(v) for v in ann["bbox"])
        return np.array([x, y, x + w, y + h], dtype=np.float32)
    present = kpts[kpts[:, 2] > 0, :2]
    if present.shape[0] == 0:
        return np.zeros(4, dtype=np.float32)
    return np.array([*present.min(axis=0), *present.max(axis=0)], dtype=np.float32)


def _person_region(ann: Mapping[str, Any], box: np.ndarray) -> IgnoreRegion:
    if ann.get("segmentation"):
        return IgnoreRegion("segmentation", ann["segmentation"])
    x0, y0, x1, y1 = (float(v) for v in box)
    return IgnoreRegion("box", (x0, y0, x1 - x0, y1 - y0))


def _part_region(part: str, box: Any, kpts: np.ndarray) -> IgnoreRegion | None:
    """The region of an invalid part: its box when it has one, else a square estimated from the body keypoints
    (head points for the face, forearm for a hand, shin for a foot); None when the body says nowhere."""
    if box is not None and len(box) == 4 and float(box[2]) > 0 and float(box[3]) > 0:
        return IgnoreRegion("box", tuple(float(v) for v in box))
    have = kpts[:, 2] > 0

    def point(k: int) -> np.ndarray | None:
        return kpts[k, :2].astype(np.float64) if have[k] else None

    shoulders = [p for p in (point(5), point(6)) if p is not None]
    width = float(np.linalg.norm(shoulders[0] - shoulders[1])) if len(shoulders) == 2 else 0.0
    if part == "face":
        head = kpts[[k for k in range(5) if have[k]], :2].astype(np.float64)
        if head.shape[0] == 0:
            return None
        spread = float(np.ptp(head, axis=0).max()) if head.shape[0] > 1 else 0.0
        return _square(head.mean(axis=0), max(2.0 * spread, 0.6 * width, 8.0))
    ends = {"lefthand": [(9, 7)], "righthand": [(10, 8)], "foot": [(15, 13), (16, 14)]}[part]
    regions = []
    for end, joint in ends:
        tip, base = point(end), point(joint)
        if tip is None:
            continue
        if base is None:
            regions.append(_square(tip, max(0.4 * width, 8.0)))
            continue
        length = float(np.linalg.norm(tip - base))
        regions.append(_square(tip + 0.4 * (tip - base), max(1.2 * length, 8.0)))
    if not regions:
        return None
    boxes = np.array([r.value for r in regions])
    x0, y0 = boxes[:, 0].min(), boxes[:, 1].min()
    x1, y1 = (boxes[:, 0] + boxes[:, 2]).max(), (boxes[:, 1] + boxes[:, 3]).max()
    return IgnoreRegion("box", (float(x0), float(y0), float(x1 - x0), float(y1 - y0)))


def _square(centre: np.ndarray, side: float) -> IgnoreRegion:
    return IgnoreRegion("box", (float(centre[0] - side / 2), float(centre[1] - side / 2), side, side))


def rle_of(mask: np.ndarray) -> dict[str, Any]:
    """COCO compressed RLE of a bool mask, JSON-ready."""
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(rle["size"][0]), int(rle["size"][1])], "counts": rle["counts"].decode("ascii")}


def warp_mask(mask: np.ndarray, matrix: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A bool mask through the (2, 3) affine ``matrix`` (pixel-centre convention) into an (H, W) bool mask."""
    height, width = size
    out = cv2.warpAffine(mask.astype(np.uint8), matrix, (width, height), flags=cv2.INTER_NEAREST, borderValue=0)
    return np.asarray(out, dtype=bool)
