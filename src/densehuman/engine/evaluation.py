"""Evaluation during and after training: predict the validation split, score it with the GPS evaluator."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from densehuman.config import Config
from densehuman.evaluation.densepose import DensePoseEvalConfig, DensePoseEvaluation, load_ground_truth
from densehuman.evaluation.predictions import Detection
from densehuman.models.instances import Prediction


def resize_for_test(image: np.ndarray, short: int, max_size: int) -> tuple[np.ndarray, float]:
    """detectron2's ResizeShortestEdge at test time: the shorter side to ``short``, the longer at most ``max_size``."""
    h, w = image.shape[:2]
    scale = short / min(h, w)
    if max(h, w) * scale > max_size:
        scale = max_size / max(h, w)
    new_w, new_h = int(w * scale + 0.5), int(h * scale + 0.5)
    if (new_h, new_w) == (h, w):
        return image, 1.0
    return cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_LINEAR), scale


def prediction_to_detections(prediction: Prediction, image_id: int, scale: float) -> list[Detection]:
    """Boxes back to original-image pixels and DensePose outputs to quantized chart results at box size."""
    from densehuman.models.densepose_branch import to_chart_result

    boxes = prediction.boxes.detach().cpu().double() / scale
    out = []
    for k in range(boxes.shape[0]):
        x0, y0, x1, y1 = (float(v) for v in boxes[k])
        chart = None
        if prediction.densepose is not None:
            chart = to_chart_result(prediction.densepose.index(slice(k, k + 1)), boxes[k].float()).quantize()
        out.append(
            Detection(
                image_id=image_id,
                category_id=int(prediction.classes[k]) + 1,
                bbox=(x0, y0, x1 - x0, y1 - y0),
                score=float(prediction.scores[k]),
                chart=chart,
            )
        )
    return out


@torch.no_grad()
def predict_split(
    model: torch.nn.Module, gt: dict[str, Any], images_dir: Path, config: Config, device: torch.device
) -> list[Detection]:
    detections: list[Detection] = []
    for image in gt["images"]:
        path = images_dir / image["file_name"]
        bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if bgr is None:
            raise ValueError(f"{path}: missing or unreadable image")
        rgb, scale = resize_for_test(bgr[..., ::-1], config.input.min_size_test, config.input.max_size_test)
        tensor = torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1).to(device)
        (prediction,) = model.predict([tensor])  # type: ignore[operator]
        detections += prediction_to_detections(prediction, int(image["id"]), scale)
    return detections


def build_evaluator(config: Config, data_root: Path) -> Callable[[torch.nn.Module, int], dict[str, Any]] | None:
    """A callable that scores a model on the validation split (None when the dataset has no such split)."""
    from densehuman.engine.inputs import split_paths

    gt_path, images_dir = split_paths(config, data_root, "val")
    if not gt_path.is_file():
        return None
    gt = load_ground_truth(gt_path)
    if config.data.eval_max_images:
        keep = {int(im["id"]) for im in gt["images"][: config.data.eval_max_images]}
        gt = {
            **gt,
            "images": [im for im in gt["images"] if int(im["id"]) in keep],
            "annotations": [a for a in gt["annotations"] if int(a["image_id"]) in keep],
        }

    def evaluate(model: torch.nn.Module, iteration: int) -> dict[str, Any]:
        from densehuman.evaluation.geodesic_data import load_eval_body

        device = next(model.parameters()).device
        detections = predict_split(model, gt, images_dir, config, device)
        figures = DensePoseEvaluation(gt, detections, load_eval_body("anny"), DensePoseEvalConfig()).run()
        figures["iteration"] = iteration
        return figures

    return evaluate
