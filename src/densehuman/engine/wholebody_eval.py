"""Evaluation of the whole-body network during training: predict the validation images, score COCO-WholeBody AP.

For each image of the split's ``coco_wholebody_{split}.json``: find people exactly as ``densehuman predict --task
wholebody`` does (``inference.wholebody_parse.parse_image``: OpenPose's preprocessing at net height ``eval_height``, the
network, the parse), then move OpenPose's image coordinates (pixel centre ``p`` reported as ``p + 0.5``) to the
file's convention, whose pixel centres are at ``pixel_origin`` (0.5 for ``densehuman synth``, whose pixel i spans
[i, i + 1); 0 for COCO). People become COCO-WholeBody results (BODY_135 -> 133 order, hand roots from the wrists)
scored by ``evaluate_wholebody``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from densehuman.evaluation.wholebody import evaluate_wholebody
from densehuman.inference.wholebody_parse import parse_image
from densehuman.keypoints.layouts import FACE, FOOT, LEFT_HAND, RIGHT_HAND, body135_to_wholebody
from densehuman.models.bottomup.network import WholeBodyNet
from densehuman.validation import InputError, read_json
from densehuman.validation.images import read_image

STRIDE = 8


def val_files(root: Path, split: str) -> tuple[Path, Path]:
    """The COCO-WholeBody ground truth of ``split`` and its image folder in a ``densehuman synth`` dataset."""
    return root / "annotations" / f"coco_wholebody_{split}.json", root / "images" / split


def predict_people(
    net: WholeBodyNet,
    image: np.ndarray,
    eval_height: int = 0,
    *,
    device: torch.device | None = None,
    pixel_origin: float = 0.5,
) -> tuple[np.ndarray, np.ndarray]:
    """People in an RGB uint8 ``image`` as ``WholeBodyPredictor`` finds them at net height ``eval_height`` (0: the
    image height rounded to a multiple of 8): ``(keypoints (P, 135, 3) x, y, score in the image's coordinates with
    pixel centres at ``pixel_origin``; zeros for missing points, scores (P,))``. ``net`` must be in eval mode."""
    net_height = eval_height or max(STRIDE, STRIDE * round(image.shape[0] / STRIDE))
    parsed = parse_image(net, image, net_height, device=device)
    keypoints = parsed.keypoints
    found = keypoints[..., 2] > 0
    # the predictor reports OpenPose's p + 0.5 for the pixel centre p (counted from 0)
    shift = np.float32(pixel_origin - 0.5)
    keypoints[..., :2] = np.where(found[..., None], keypoints[..., :2] + shift, 0.0)
    return keypoints, parsed.scores


def wholebody_results(
    keypoints: np.ndarray, scores: np.ndarray, image_id: int, category_id: int = 1
) -> list[dict[str, Any]]:
    """COCO-WholeBody result objects of one image's people (BODY_135 keypoints, see ``predict_people``)."""
    out = []
    for person, score in zip(body135_to_wholebody(keypoints), scores, strict=True):
        points = np.where(person[:, 2:3] > 0, person, 0.0)

        def flat(part: slice, points: np.ndarray = points) -> list[float]:
            return [round(float(v), 3) for v in points[part].reshape(-1)]

        out.append(
            {
                "image_id": int(image_id),
                "category_id": int(category_id),
                "keypoints": flat(slice(0, 17)),
                "foot_kpts": flat(FOOT),
                "face_kpts": flat(FACE),
                "lefthand_kpts": flat(LEFT_HAND),
                "righthand_kpts": flat(RIGHT_HAND),
                "score": float(score),
            }
        )
    return out


def evaluate_net(
    net: WholeBodyNet,
    gt_path: Path,
    images_dir: Path,
    *,
    eval_height: int = 0,
    max_images: int = 0,
    pixel_origin: float = 0.5,
    device: torch.device | None = None,
    progress: bool = False,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Predict the images of the COCO-WholeBody file ``gt_path`` (the first ``max_images``; 0: all) and score them.
    Returns ``(evaluate_wholebody figures, results)``. ``net`` is put in eval mode and left there."""
    gt = read_json(gt_path, "COCO-WholeBody ground-truth file")
    if not isinstance(gt, Mapping) or not isinstance(gt.get("images"), list) or not gt.get("categories"):
        raise InputError(gt_path, "not a COCO-WholeBody file (images and categories needed)")
    images = gt["images"][:max_images] if max_images else gt["images"]
    if max_images:
        kept = {int(im["id"]) for im in images}
        gt = {**gt, "images": images, "annotations": [a for a in gt["annotations"] if int(a["image_id"]) in kept]}
    category = int(gt["categories"][0]["id"])
    net.eval()
    results: list[dict[str, Any]] = []
    for image in tqdm(images, desc="eval", unit="img", disable=not progress, leave=False):
        path = images_dir / str(image["file_name"])
        try:
            pixels = read_image(path)
        except FileNotFoundError:
            raise InputError(path, "image file missing", item=f"image id {image['id']}", field="file_name") from None
        keypoints, scores = predict_people(net, pixels, eval_height, device=device, pixel_origin=pixel_origin)
        results += wholebody_results(keypoints, scores, int(image["id"]), category)
    return evaluate_wholebody(gt, results), results


def part_aps(figures: Mapping[str, Any]) -> dict[str, float]:
    """``{part: AP}`` of ``evaluate_wholebody`` figures (-1 where a part has nothing to score)."""
    return {part: round(float(row["AP"]), 6) for part, row in figures["parts"].items()}
