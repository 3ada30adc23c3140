"""Evaluation during and after training: predict the validation split, score it with the GPS evaluator."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from densehuman.config import Config
from densehuman.data.transforms import resize_bilinear, shortest_edge_size
from densehuman.evaluation.densepose import DensePoseEvalConfig, DensePoseEvaluation, load_ground_truth
from densehuman.evaluation.predictions import Detection
from densehuman.models.instances import Prediction
from densehuman.validation.images import read_image


def resize_for_test(image: np.ndarray, short: int, max_size: int) -> np.ndarray:
    """detectron2's test-time ``ResizeShortestEdge`` of a uint8 (H, W, 3) image (the training resize too)."""
    h, w = image.shape[:2]
    new_h, new_w = shortest_edge_size(h, w, short, max_size)
    return image if (new_h, new_w) == (h, w) else resize_bilinear(image, new_h, new_w)


def boxes_to_original(
    boxes: torch.Tensor, resized_size: tuple[int, int], original_size: tuple[int, int]
) -> tuple[torch.Tensor, torch.Tensor]:
    """detectron2's ``detector_postprocess``: (D, 4) xyxy boxes of the resized image -> float32 boxes of the
    original (H, W) (x times W / resized W, y times H / resized H, clipped to the image), and the mask of the
    boxes that are not empty afterwards (detectron2 drops the others)."""
    (rh, rw), (h, w) = resized_size, original_size
    out = boxes.detach().to("cpu", torch.float32).clone()
    out[:, 0::2] *= w / rw
    out[:, 1::2] *= h / rh
    out[:, 0::2] = out[:, 0::2].clamp(min=0, max=w)
    out[:, 1::2] = out[:, 1::2].clamp(min=0, max=h)
    keep = (out[:, 2] > out[:, 0]) & (out[:, 3] > out[:, 1])
    return out, keep


def prediction_to_detections(
    prediction: Prediction, image_id: int, resized_size: tuple[int, int], original_size: tuple[int, int]
) -> list[Detection]:
    """Boxes back to original-image pixels (:func:`boxes_to_original`) and DensePose outputs to quantized chart
    results at box size."""
    from densehuman.models.branches.densepose.postprocess import to_chart_result

    boxes, keep = boxes_to_original(prediction.boxes, resized_size, original_size)
    out = []
    for k in torch.nonzero(keep).flatten().tolist():
        x0, y0, x1, y1 = (float(v) for v in boxes[k])
        chart = None
        if prediction.densepose is not None:
            chart = to_chart_result(prediction.densepose.index(slice(k, k + 1)), boxes[k]).quantize()
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
        original = read_image(images_dir / image["file_name"])
        rgb = resize_for_test(original, config.input.min_size_test, config.input.max_size_test)
        tensor = torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1).to(device)
        (prediction,) = model.predict([tensor])  # type: ignore[operator]
        size = (rgb.shape[0], rgb.shape[1])
        detections += prediction_to_detections(prediction, int(image["id"]), size, original.shape[:2])
    return detections


def build_evaluator(config: Config, data_root: Path) -> Callable[[torch.nn.Module, int], dict[str, Any]] | None:
    """A callable that scores a model on the validation split (None when there is nothing to score it on): the
    DensePose figures (GPS / GPSm / IOU AP, box AP) of a DensePose branch on the DensePose-COCO val split, and the
    parsing figures (mIoU, APp50, APp_vol, PCP50, ...) of a parsing branch under ``"parsing"`` on the CIHP / MHP
    val split of the data folder."""
    densepose = _densepose_evaluator(config, data_root) if config.model.densepose.enabled else None
    parsing = _parsing_evaluator(config, data_root) if config.model.parsing.enabled else None
    if densepose is None and parsing is None:
        return None

    def evaluate(model: torch.nn.Module, iteration: int) -> dict[str, Any]:
        figures: dict[str, Any] = densepose(model, iteration) if densepose is not None else {}
        if parsing is not None:
            figures["parsing"] = parsing(model)
        figures["iteration"] = iteration
        return figures

    return evaluate


def _densepose_evaluator(config: Config, data_root: Path) -> Callable[[torch.nn.Module, int], dict[str, Any]] | None:
    from densehuman.engine.inputs import split_paths

    if config.data.format != "densepose_coco":
        return None
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


def _parsing_evaluator(config: Config, data_root: Path) -> Callable[[torch.nn.Module], dict[str, Any]] | None:
    """The parsing figures of the model on the val split's CIHP / MHP folder (the first ``eval_max_images``)."""
    from dataclasses import replace

    from densehuman.data.parsing_folders import open_parsing_split
    from densehuman.evaluation.parsing import ParsingEvaluation
    from densehuman.validation import InputError

    try:
        split = open_parsing_split(data_root, config.data.val_split, config.model.parsing.dataset)
    except (InputError, FileNotFoundError):
        return None
    if config.data.eval_max_images:
        split = replace(split, entries=split.entries[: config.data.eval_max_images])
    if not split.entries:
        return None

    def evaluate(model: torch.nn.Module) -> dict[str, Any]:
        from densehuman.evaluation.parsing_results import ParsingDetection
        from densehuman.inference.predictor import to_image_result

        device = next(model.parameters()).device
        detections: list[ParsingDetection] = []
        with torch.no_grad():
            for entry in split.entries:
                original = read_image(entry.image)
                rgb = resize_for_test(original, config.input.min_size_test, config.input.max_size_test)
                tensor = torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1).to(device)
                (prediction,) = model.predict([tensor])  # type: ignore[operator]
                prediction.densepose = None  # only the parsing is scored here
                result = to_image_result(prediction, (rgb.shape[0], rgb.shape[1]), original.shape[:2])
                detections += result.parsing_detections(entry.image_id)
        return ParsingEvaluation(split, detections).run()

    return evaluate
