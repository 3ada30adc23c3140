"""Files of one synthetic image, and the dataset-level JSON files assembled from all images.

Layout of a dataset folder::

    dataset.json                                   manifest: generator version, seed, options, counts, variety
    images/{train,val}/<id>.jpg                    the pictures (id = image id, 12 digits, as COCO names files)
    annotations/densepose_{train,val}.json         DensePose-COCO (COCO instances + dp_* fields)
    annotations/coco_wholebody_{train,val}.json    COCO-WholeBody (133 keypoints, face/hand boxes, validity)
    annotations/body135_{train,val}.json           the same people in OpenPose's BODY_135 layout
    dense/{train,val}/<id>_IUV.png, <id>_INDS.png  dense I, U, V and instance maps (original DensePose PNGs)
    CIHP/instance-level_human_parsing/{Training,Validation}/
        Images/<id>.jpg  Category_ids/<id>.png  Human_ids/<id>.png  Instance_ids/<id>.png + .txt
        and {train,val}_id.txt                     (the CIHP release's own layout and file names)
    LV-MHP-v2/{train,val}/
        images/<id>.jpg  parsing_annos/<id>_<NN>_<k>.png   MHP v2.0: one map per person k of the image's NN
        and list/{train,val}.txt                   (classes 0..58, mapped from CIHP's: ``densehuman.synth.mhp``)
    preview.jpg                                    a grid of samples with their labels drawn on top
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from densehuman import atomic
from densehuman.data.dense_png import encode_iuv
from densehuman.keypoints.layouts import COCO_KEYPOINT_NAMES, COCO_SKELETON, wholebody_to_body135
from densehuman.synth.generator import GeneratedImage, SynthConfig
from densehuman.synth.mhp import mhp_labels

SPLITS = ("train", "val")
CIHP_SPLIT = {"train": "Training", "val": "Validation"}
CIHP_ROOT = Path("CIHP") / "instance-level_human_parsing"
MHP_ROOT = Path("LV-MHP-v2")


def image_stem(index: int) -> str:
    return f"{index + 1:012d}"


def record_path(partial: Path, index: int) -> Path:
    return partial / "records" / f"{image_stem(index)}.json"


def write_image_files(root: Path, split: str, sample: GeneratedImage, config: SynthConfig) -> dict[str, Any]:
    """Write every per-image file (each atomically) and return the image's record for the JSON files."""
    stem = image_stem(sample.index)
    rendered = sample.rendered
    height, width = rendered.instance.shape
    image_path = root / "images" / split / f"{stem}.jpg"
    atomic.write_image(image_path, sample.image, jpeg_quality=sample.jpeg_quality)
    # Dense maps: only pixels of annotated (visible) people carry labels; the instance map is already re-indexed.
    person = sample.instance > 0
    chart = np.where(person, rendered.chart, 0)
    atomic.write_image(
        root / "dense" / split / f"{stem}_IUV.png", encode_iuv(chart, rendered.u * person, rendered.v * person)
    )
    atomic.write_image(root / "dense" / split / f"{stem}_INDS.png", sample.instance)
    # CIHP: global categories, humans, and part instances (one per (human, category) pair) with their table.
    cihp = root / CIHP_ROOT / CIHP_SPLIT[split]
    category = np.where(person, rendered.parsing, 0).astype(np.uint8)
    part_instance = np.zeros((height, width), dtype=np.uint8)
    lines = []
    pairs = np.unique(sample.instance.astype(np.int64) * 256 + category, return_inverse=False)
    next_id = 1
    for key in pairs:
        human, cls = int(key) // 256, int(key) % 256
        if human == 0 or cls == 0:
            continue
        part_instance[(sample.instance == human) & (category == cls)] = next_id
        lines.append(f"{next_id} {cls} {human}")
        next_id += 1
    atomic.write_image(cihp / "Category_ids" / f"{stem}.png", category)
    atomic.write_image(cihp / "Human_ids" / f"{stem}.png", sample.instance)
    atomic.write_image(cihp / "Instance_ids" / f"{stem}.png", part_instance)
    atomic.write_bytes(cihp / "Instance_ids" / f"{stem}.txt", ("\n".join(lines) + "\n").encode())
    _link_or_copy(image_path, cihp / "Images" / f"{stem}.jpg")
    _write_mhp(root / MHP_ROOT / split, stem, image_path, sample, category)
    people = []
    for p in sample.people:
        body135 = wholebody_to_body135(p.keypoints, p.extras)
        people.append(
            {
                "densepose": p.densepose_fields(),
                "wholebody": p.wholebody_fields(config.annotation),
                "body135": [float(x) if k % 3 < 2 else int(x) for k, x in enumerate(np.round(body135, 2).ravel())],
            }
        )
    return {
        "index": sample.index,
        "split": split,
        "image": {"id": sample.index + 1, "file_name": f"{stem}.jpg", "width": width, "height": height},
        "people": people,
        "description": sample.description,
    }


def _write_mhp(folder: Path, stem: str, image_path: Path, sample: GeneratedImage, category: np.ndarray) -> None:
    """MHP v2.0: the image and one label map per annotated person, ``<id>_<NN>_<k>.png`` (person k of NN, k as in
    ``Human_ids``), with the person's MHP classes over the whole image and 0 elsewhere. An image without people
    has no map (the reader gives it no people)."""
    _link_or_copy(image_path, folder / "images" / f"{stem}.jpg")
    count = len(sample.people)
    for k in range(1, count + 1):
        mask = sample.instance == k
        labels = np.zeros(mask.shape, dtype=np.uint8)
        outfit = sample.description[k - 1].get("outfit", {})
        labels[mask] = mhp_labels(category[mask], sample.rendered.chart[mask], outfit)
        atomic.write_image(folder / "parsing_annos" / f"{stem}_{count:02d}_{k:02d}.png", labels)


def _link_or_copy(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp")
    tmp.unlink(missing_ok=True)
    try:
        os.link(source, tmp)
    except OSError:
        atomic.write_bytes(tmp, source.read_bytes())
    os.replace(tmp, target)


def categories() -> list[dict[str, Any]]:
    return [
        {
            "id": 1,
            "name": "person",
            "supercategory": "person",
            "keypoints": list(COCO_KEYPOINT_NAMES),
            "skeleton": [list(link) for link in COCO_SKELETON],
        }
    ]


def assemble(root: Path, records: list[dict[str, Any]], info: dict[str, Any]) -> dict[str, dict[str, int]]:
    """Write the per-split JSON files and the CIHP and MHP id lists from the image records; return counts per
    split."""
    counts: dict[str, dict[str, int]] = {}
    for split in SPLITS:
        recs = [r for r in records if r["split"] == split]
        images = [r["image"] for r in recs]
        dp_anns: list[dict[str, Any]] = []
        wb_anns: list[dict[str, Any]] = []
        b135: list[dict[str, Any]] = []
        next_id = 1
        for r in recs:
            for person in r["people"]:
                dp_anns.append({"id": next_id, "image_id": r["image"]["id"], **person["densepose"]})
                wb_anns.append({"id": next_id, "image_id": r["image"]["id"], **person["wholebody"]})
                b135.append({"id": next_id, "image_id": r["image"]["id"], "keypoints": person["body135"]})
                next_id += 1
        split_info = {**info, "description": f"{info['description']} ({split})"}
        base = {"info": split_info, "licenses": [], "images": images, "categories": categories()}
        ann = root / "annotations"
        atomic.write_json(ann / f"densepose_{split}.json", {**base, "annotations": dp_anns})
        atomic.write_json(ann / f"coco_wholebody_{split}.json", {**base, "annotations": wb_anns})
        atomic.write_json(ann / f"body135_{split}.json", {**base, "annotations": b135, "layout": "BODY_135"})
        ids = "".join(f"{Path(im['file_name']).stem}\n" for im in images)
        atomic.write_bytes(root / CIHP_ROOT / f"{split}_id.txt", ids.encode())
        atomic.write_bytes(root / MHP_ROOT / "list" / f"{split}.txt", ids.encode())
        for sub in ("images", "parsing_annos"):  # a split without images or people is still an (empty) split
            (root / MHP_ROOT / split / sub).mkdir(parents=True, exist_ok=True)
        counts[split] = {
            "images": len(images),
            "people": len(dp_anns),
            "densepose_people": sum(1 for a in dp_anns if "dp_I" in a),
            "densepose_points": sum(len(a.get("dp_I", [])) for a in dp_anns),
            "valid_faces": sum(1 for a in wb_anns if a["face_valid"]),
            "valid_hands": sum(int(a["lefthand_valid"]) + int(a["righthand_valid"]) for a in wb_anns),
        }
    return counts


def read_record(path: Path) -> dict[str, Any]:
    try:
        return dict(json.loads(path.read_text()))
    except (OSError, json.JSONDecodeError) as err:
        raise ValueError(f"{path}: unreadable image record ({err}); delete it to regenerate that image") from err
