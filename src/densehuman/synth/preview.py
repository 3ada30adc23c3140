"""A contact sheet of a synthetic dataset, read back from its files: per image the picture with whole-body
keypoints and DensePose points, then I, U, V and the CIHP parsing, so a person can judge realism and labels."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import matplotlib
import numpy as np

from densehuman import atomic
from densehuman.body.preview import chart_palette
from densehuman.data.dense_png import read_iuv
from densehuman.keypoints.layouts import WHOLEBODY_SKELETON
from densehuman.synth.writers import CIHP_ROOT, CIHP_SPLIT

TILE = 256


def parsing_palette() -> np.ndarray:
    """(20, 3) uint8: black background, then tab20 colours for the 19 CIHP classes."""
    colours = [matplotlib.colormaps["tab20"](i)[:3] for i in range(19)]
    return (np.array([(0.0, 0.0, 0.0), *colours]) * 255).astype(np.uint8)


def _read_rgb(path: Path) -> np.ndarray:
    from densehuman.validation.images import read_image

    try:
        return read_image(path)
    except FileNotFoundError:
        raise ValueError(f"{path}: missing image") from None


def _draw_people(image: np.ndarray, wholebody: list[dict[str, Any]], densepose: list[dict[str, Any]]) -> np.ndarray:
    out = np.ascontiguousarray(image.copy())
    scale = max(image.shape[:2]) / 512.0
    thick = max(1, round(scale))
    cmap = matplotlib.colormaps["hsv"]
    for k, ann in enumerate(wholebody):
        pts = np.array(
            ann["keypoints"] + ann["foot_kpts"] + ann["face_kpts"] + ann["lefthand_kpts"] + ann["righthand_kpts"]
        ).reshape(-1, 3)
        colour = tuple(int(255 * c) for c in cmap((k * 0.29) % 1.0)[:3])
        for a, b in WHOLEBODY_SKELETON:
            if pts[a, 2] > 0 and pts[b, 2] > 0:
                pa = (int(pts[a, 0]), int(pts[a, 1]))
                pb = (int(pts[b, 0]), int(pts[b, 1]))
                cv2.line(out, pa, pb, colour, thick, cv2.LINE_AA)
        for x, y, v in pts:
            if v == 2:
                cv2.circle(out, (int(x), int(y)), thick, (255, 255, 255), -1, cv2.LINE_AA)
            elif v == 1:
                cv2.circle(out, (int(x), int(y)), thick, (90, 90, 90), -1, cv2.LINE_AA)
    palette = chart_palette()
    for ann in densepose:
        if "dp_x" not in ann:
            continue
        x0, y0, w, h = ann["bbox"]
        for x, y, i in zip(ann["dp_x"], ann["dp_y"], ann["dp_I"], strict=True):
            c = tuple(int(v) for v in palette[int(i)])
            cv2.circle(out, (int(x0 + x * w / 256), int(y0 + y * h / 256)), thick + 1, c, -1)
    return out


def _tile(image: np.ndarray) -> np.ndarray:
    h, w = image.shape[:2]
    s = TILE / max(h, w)
    resized = cv2.resize(image, (max(1, int(w * s)), max(1, int(h * s))), interpolation=cv2.INTER_AREA)
    canvas = np.full((TILE, TILE, 3), 32, dtype=np.uint8)
    canvas[: resized.shape[0], : resized.shape[1]] = resized
    return canvas


def preview_rows(root: Path, count: int = 8, split: str = "train") -> list[np.ndarray]:
    """Rows of tiles for the first ``count`` images of ``split`` (falls back to the other split if empty)."""
    dp_path = root / "annotations" / f"densepose_{split}.json"
    if not dp_path.is_file():
        raise ValueError(f"{root}: no {dp_path.relative_to(root)}; is this a densehuman synth dataset?")
    from densehuman.validation import read_json
    from densehuman.validation.coco import COCO_WHOLEBODY, DENSEPOSE_COCO, validate_coco

    dp = read_json(dp_path, "DensePose-COCO annotation file")
    validate_coco(dp, dp_path, DENSEPOSE_COCO)
    wb_path = root / "annotations" / f"coco_wholebody_{split}.json"
    wb = read_json(wb_path, "COCO-WholeBody annotation file")
    validate_coco(wb, wb_path, COCO_WHOLEBODY)
    if not dp["images"] and split == "train":
        return preview_rows(root, count, "val")
    rows = []
    for image in dp["images"][:count]:
        stem = Path(image["file_name"]).stem
        rgb = _read_rgb(root / "images" / split / image["file_name"])
        chart, u, v = read_iuv(root / "dense" / split / f"{stem}_IUV.png")
        parsing = cv2.imread(str(root / CIHP_ROOT / CIHP_SPLIT[split] / "Category_ids" / f"{stem}.png"), -1)
        if parsing is None:
            raise ValueError(f"{root}: missing CIHP Category_ids for {stem}")
        people_wb = [a for a in wb["annotations"] if a["image_id"] == image["id"]]
        people_dp = [a for a in dp["annotations"] if a["image_id"] == image["id"]]
        person = chart > 0
        faded = (rgb * 0.35).astype(np.uint8)
        i_img = np.where(person[..., None], chart_palette()[chart], faded)
        jet = matplotlib.colormaps["jet"]
        u_img = np.where(person[..., None], (jet(u)[..., :3] * 255).astype(np.uint8), faded)
        v_img = np.where(person[..., None], (jet(v)[..., :3] * 255).astype(np.uint8), faded)
        p_img = np.where((parsing > 0)[..., None], parsing_palette()[np.minimum(parsing, 19)], faded)
        tiles = [_draw_people(rgb, people_wb, []), _draw_people(rgb, [], people_dp), i_img, u_img, v_img, p_img]
        rows.append(np.concatenate([_tile(t) for t in tiles], axis=1))
    return rows


def write_dataset_preview(root: Path, out: Path, count: int = 8, overwrite: bool = True) -> Path:
    """Write the contact sheet as a JPEG; columns: keypoints, DensePose points, I, U, V, parsing."""
    if out.exists() and not overwrite:
        raise ValueError(f"{out} already exists (pass --overwrite to replace it)")
    rows = preview_rows(Path(root), count)
    if not rows:
        raise ValueError(f"{root}: the dataset has no images to preview")
    sheet = np.concatenate(rows, axis=0)
    atomic.write_image(out, sheet, jpeg_quality=90)
    return out
