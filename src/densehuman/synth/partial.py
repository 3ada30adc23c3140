"""``densehuman synth-partial``: partial COCO-WholeBody datasets cut from a synthetic one, for multi-dataset training.

``write_partial(root, kind, out_json, split)`` reads ``annotations/coco_wholebody_{split}.json`` and writes a
COCO-WholeBody file in which only the parts of ``kind`` are labeled (``densehuman.data.wholebody.KINDS``):

- ``coco_body``, ``coco_foot``, ``wholebody``: the same images (``images/{split}``); body keypoints are kept for the
  body kinds, feet for ``coco_foot`` and ``wholebody``, face and hands for ``wholebody``; every other part is
  zeroed with its ``*_valid`` false and its box [0, 0, 0, 0].
- ``face``, ``hand21`` (right hands), ``hand42`` / ``hand`` (both hands): close-up crops, one per valid face or hand:
  a square around its box, enlarged 1.5-2x, resized to a side of 128-256 px (both drawn from (seed, annotation,
  part)), padded grey (128) beyond the image, written as JPEGs into ``images/{kind}_{split}/``. The file's
  images are the crops; its annotations are every person whose box meets the crop, with boxes, segmentations and
  keypoints in crop coordinates; points outside the crop become 0, 0, 0. Only the kind's parts stay (the wrists
  as well for the hand kinds). Each image has ``source`` (the original image id, file name, the crop box
  [x, y, side, side], the annotation and part it was cut around).

The synthetic keypoints are continuous image coordinates (pixel i spans [i, i + 1)), so a crop with top-left
(x0, y0) and zoom k maps x to k (x - x0). ``info.partial_kind`` records the kind for the readers.
"""

from __future__ import annotations

import argparse
import copy
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from densehuman import atomic
from densehuman.data.wholebody import KIND_ALIASES, KINDS, decode_segmentation, rle_of
from densehuman.data.wholebody_mix import CROP_KINDS, partial_images, partial_json
from densehuman.validation import InputError, read_json
from densehuman.validation.coco import COCO_WHOLEBODY, validate_coco
from densehuman.validation.images import read_image

# COCO-WholeBody keypoint fields of each part: (keypoints, count, box, valid)
PART_FIELDS: dict[str, tuple[str, int, str | None, str | None]] = {
    "body": ("keypoints", 17, None, None),
    "foot": ("foot_kpts", 6, None, "foot_valid"),
    "face": ("face_kpts", 68, "face_box", "face_valid"),
    "lefthand": ("lefthand_kpts", 21, "lefthand_box", "lefthand_valid"),
    "righthand": ("righthand_kpts", 21, "righthand_box", "righthand_valid"),
}
KIND_PARTS: dict[str, tuple[str, ...]] = {
    "coco_body": ("body",),
    "coco_foot": ("body", "foot"),
    "face": ("face",),
    "hand21": ("righthand",),
    "hand42": ("lefthand", "righthand"),
    "wholebody": ("body", "foot", "face", "lefthand", "righthand"),
}
HAND_WRISTS = {"hand21": (10,), "hand42": (9, 10)}  # COCO body indices kept by the hand kinds
CROP_ENLARGE = (1.5, 2.0)
CROP_SIDE = (128, 256)


def write_partial(
    dataset_root: str | Path,
    kind: str,
    out_json: str | Path | None = None,
    split: str = "train",
    *,
    overwrite: bool = False,
    seed: int = 0,
) -> dict[str, int]:
    """Write the partial dataset of ``kind`` (see the module docstring); returns counts (images, people)."""
    root = Path(dataset_root)
    kind = KIND_ALIASES.get(kind, kind)
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r} (kinds: {', '.join([*KINDS, *KIND_ALIASES])})")
    source = root / "annotations" / f"coco_wholebody_{split}.json"
    if not source.is_file():
        raise FileNotFoundError(f"{source}: no COCO-WholeBody file for split {split!r} (is {root} a synth dataset?)")
    out = Path(out_json) if out_json is not None else partial_json(root, kind, split)
    crops = partial_images(root, kind, split)
    if not overwrite:
        if out.exists():
            raise ValueError(f"{out} exists; pass --overwrite to replace it")
        if kind in CROP_KINDS and crops.exists() and any(crops.iterdir()):
            raise ValueError(f"{crops} holds files; pass --overwrite to replace them")
    data = read_json(source, "COCO-WholeBody annotation file")
    validate_coco(data, source, COCO_WHOLEBODY)
    info = {**(data.get("info") or {}), "partial_kind": kind, "partial_of": source.name}
    if kind in CROP_KINDS:
        images, annotations = _crops(root / "images" / split, crops, data, kind, seed)
        info["images"] = crops.relative_to(root).as_posix()
    else:
        images = list(data["images"])
        annotations = [_keep_parts(dict(ann), kind) for ann in data["annotations"]]
        info["images"] = f"images/{split}"
    result = {**data, "info": info, "images": images, "annotations": annotations}
    atomic.write_json(out, result)
    return {"images": len(images), "people": len(annotations)}


def _keep_parts(ann: dict[str, Any], kind: str) -> dict[str, Any]:
    """The annotation with every part outside ``kind`` zeroed (the hand kinds keep their wrists)."""
    keep = KIND_PARTS[kind]
    for part, (key, count, box, valid) in PART_FIELDS.items():
        if part in keep or key not in ann:
            continue
        values = np.zeros((count, 3))
        if part == "body":
            for k in HAND_WRISTS.get(kind, ()):
                values[k] = np.asarray(ann[key], dtype=np.float64).reshape(count, 3)[k]
        ann[key] = _flat(values)
        if box is not None:
            ann[box] = [0.0, 0.0, 0.0, 0.0]
        if valid is not None:
            ann[valid] = False
    if "keypoints" in ann:
        ann["num_keypoints"] = int((np.asarray(ann["keypoints"]).reshape(17, 3)[:, 2] > 0).sum())
    return ann


def _crops(
    images: Path, crops: Path, data: Mapping[str, Any], kind: str, seed: int
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    by_image: dict[int, list[Mapping[str, Any]]] = {}
    for ann in data["annotations"]:
        by_image.setdefault(int(ann["image_id"]), []).append(ann)
    out_images: list[dict[str, Any]] = []
    out_anns: list[dict[str, Any]] = []
    for image in data["images"]:
        people = by_image.get(int(image["id"]), [])
        wanted = [
            (ann, part)
            for ann in people
            for part in KIND_PARTS[kind]
            if not ann.get("iscrowd") and ann.get(PART_FIELDS[part][3] or "", False)
        ]
        if not wanted:
            continue
        path = images / str(image["file_name"])
        try:
            pixels = read_image(path)
        except FileNotFoundError:
            raise InputError(path, "image file missing", item=f"image id {image['id']}", field="file_name") from None
        for ann, part in wanted:
            rng = np.random.default_rng([seed, int(ann["id"]), list(PART_FIELDS).index(part)])
            x, y, w, h = (float(v) for v in ann[PART_FIELDS[part][2] or ""])
            side = max(w, h, 4.0) * float(rng.uniform(*CROP_ENLARGE))
            x0, y0 = x + w / 2.0 - side / 2.0, y + h / 2.0 - side / 2.0
            size = int(rng.integers(CROP_SIDE[0], CROP_SIDE[1] + 1))
            zoom = size / side
            # pixel-centre matrix of x' = zoom (x - x0) in continuous coordinates
            matrix = np.array([[zoom, 0.0, zoom * (0.5 - x0) - 0.5], [0.0, zoom, zoom * (0.5 - y0) - 0.5]])
            crop = cv2.warpAffine(
                pixels,
                matrix,
                (size, size),
                flags=cv2.INTER_LINEAR,
                borderMode=cv2.BORDER_CONSTANT,
                borderValue=(128, 128, 128),
            )  # grey beyond the image, as the training crops are padded
            crop_id = len(out_images) + 1
            name = f"{Path(str(image['file_name'])).stem}_{int(ann['id'])}_{part}.jpg"
            atomic.write_image(crops / name, crop, jpeg_quality=95)
            out_images.append(
                {
                    "id": crop_id,
                    "file_name": name,
                    "width": size,
                    "height": size,
                    "source": {
                        "image_id": int(image["id"]),
                        "file_name": str(image["file_name"]),
                        "box": [round(x0, 3), round(y0, 3), round(side, 3), round(side, 3)],
                        "annotation_id": int(ann["id"]),
                        "part": part,
                    },
                }
            )
            for other in people:
                moved = _crop_annotation(other, (int(image["height"]), int(image["width"])), x0, y0, zoom, size)
                if moved is not None:
                    out_anns.append({**_keep_parts(moved, kind), "id": len(out_anns) + 1, "image_id": crop_id})
    return out_images, out_anns


def _crop_annotation(
    ann: Mapping[str, Any], image_size: tuple[int, int], x0: float, y0: float, zoom: float, size: int
) -> dict[str, Any] | None:
    """``ann`` in the crop's coordinates, or None when its box misses the crop."""
    bx, by, bw, bh = (float(v) for v in ann["bbox"])
    cx0, cy0 = max(zoom * (bx - x0), 0.0), max(zoom * (by - y0), 0.0)
    cx1, cy1 = min(zoom * (bx + bw - x0), float(size)), min(zoom * (by + bh - y0), float(size))
    if cx1 <= cx0 or cy1 <= cy0:
        return None
    out = copy.deepcopy(dict(ann))
    out["source_id"] = int(ann["id"])
    out["bbox"] = [round(v, 2) for v in (cx0, cy0, cx1 - cx0, cy1 - cy0)]
    if ann.get("segmentation"):
        mask = decode_segmentation(ann["segmentation"], *image_size)
        matrix = np.array([[zoom, 0.0, zoom * (0.5 - x0) - 0.5], [0.0, zoom, zoom * (0.5 - y0) - 0.5]])
        warped = cv2.warpAffine(mask.astype(np.uint8), matrix, (size, size), flags=cv2.INTER_NEAREST) > 0
        out["segmentation"] = rle_of(warped)
        out["area"] = int(warped.sum())
    elif "area" in ann:
        out["area"] = round(float(ann["area"]) * zoom * zoom, 2)
    for _part, (key, count, box, valid) in PART_FIELDS.items():
        if key not in ann:
            continue
        points = np.asarray(ann[key], dtype=np.float64).reshape(count, 3).copy()
        present = points[:, 2] > 0
        points[present, 0] = zoom * (points[present, 0] - x0)
        points[present, 1] = zoom * (points[present, 1] - y0)
        inside = (points[:, 0] >= 0) & (points[:, 0] < size) & (points[:, 1] >= 0) & (points[:, 1] < size)
        points[~(present & inside)] = 0.0
        out[key] = _flat(points)
        if box is not None and box in ann:
            x, y, w, h = (float(v) for v in ann[box])
            out[box] = [round(zoom * (x - x0), 2), round(zoom * (y - y0), 2), round(zoom * w, 2), round(zoom * h, 2)]
        if valid is not None and bool(ann.get(valid, False)) and not (points[:, 2] > 0).any():
            out[valid] = False
            if box is not None:
                out[box] = [0.0, 0.0, 0.0, 0.0]
    if "keypoints" in ann:
        out["num_keypoints"] = int((np.asarray(out["keypoints"]).reshape(17, 3)[:, 2] > 0).sum())
    return out


def _flat(points: np.ndarray) -> list[float | int]:
    out: list[float | int] = []
    for x, y, v in points:
        out += [float(np.floor(x * 100.0) / 100.0), float(np.floor(y * 100.0) / 100.0), int(np.rint(v))]
    return out


# ------------------------------------------------------------------------------------------------------ CLI
def run(args: argparse.Namespace) -> int:
    counts = write_partial(args.dataset, args.kind, args.out, args.split, overwrite=args.overwrite, seed=args.seed)
    kind = KIND_ALIASES.get(args.kind, args.kind)
    out = args.out or partial_json(Path(args.dataset), kind, args.split)
    print(f"{out}: {counts['images']} images, {counts['people']} people ({kind})")
    return 0
