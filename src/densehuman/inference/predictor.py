"""``Predictor``: images in, per-person DensePose charts and part labels out (boxes in original image pixels).

The test-time pipeline is the evaluation's (``densehuman.engine.evaluation``): the image is resized with
detectron2's ``ResizeShortestEdge`` (short edge, max size, PIL bilinear), ``Detector.predict`` runs on the resized
RGB image, boxes are scaled back per axis and clipped (``detector_postprocess``) and each box's DensePose output
becomes a ``ChartResult`` at int box size
(``to_chart_result``: width ``int(x1 - x0)``, height ``int(y1 - y0)``, anchored at ``(int(x0), int(y0))``).
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Union

import numpy as np
import torch
from PIL import Image

from densehuman.config import Config, from_dict
from densehuman.data.transforms import shortest_edge_size
from densehuman.engine.checkpoint import last_checkpoint, load_weights, read_metadata
from densehuman.engine.detectron2.convert import ImportedModel
from densehuman.engine.evaluation import boxes_to_original, resize_for_test
from densehuman.evaluation.parsing_results import ParsingDetection
from densehuman.evaluation.predictions import Detection, chart_shape
from densehuman.models.branches.densepose.postprocess import to_chart_result
from densehuman.models.branches.parsing.postprocess import parsing_at_box
from densehuman.models.detector import Detector
from densehuman.models.fusion import prepare_for_inference
from densehuman.models.instances import Prediction
from densehuman.structures import ChartResult
from densehuman.validation import InputError, read_yaml
from densehuman.validation.images import MAX_IMAGE_SIDE, read_image
from densehuman.visualization.densepose import DenseMaps

ImageInput = Union[np.ndarray, Image.Image, str, Path]  # noqa: UP007 (a runtime alias)

MAX_PEOPLE_PASTED = 255  # instance ids are uint8


@dataclass(frozen=True)
class PersonResult:
    """One detected person: ``box`` xyxy in original image pixels (float), detection ``score``, and what the
    model's branches give at int box size (pixel (0, 0) is image pixel ``(x = int(box[0]), y = int(box[1]))``):
    ``chart`` (I, U, V) from a DensePose branch, ``parsing`` (h, w) uint8 part labels from a parsing branch (None
    for a branch the model does not have)."""

    box: tuple[float, float, float, float]
    score: float
    chart: ChartResult | None = None
    parsing: np.ndarray | None = None


@dataclass(frozen=True)
class ImageResult:
    """The people of one image, sorted by score (descending), and the image's ``image_size`` (H, W) in pixels."""

    people: list[PersonResult]
    image_size: tuple[int, int]

    def __post_init__(self) -> None:
        h, w = self.image_size
        if h < 1 or w < 1:
            raise ValueError(f"image_size must be a positive (H, W), got {self.image_size}")
        scores = np.array([p.score for p in self.people], dtype=np.float64)
        if scores.size > 1 and (np.diff(scores) > 0).any():
            raise ValueError("people must be sorted by score, descending")

    def dense_maps(self) -> DenseMaps:
        """The pasted full-image maps with the people's boxes and scores, as the visualizations take them."""
        charts, u, v, instances = self.paste()
        boxes = np.array([p.box for p in self.people], dtype=np.float64).reshape(-1, 4)
        scores = np.array([p.score for p in self.people], dtype=np.float64)
        return DenseMaps(charts, u, v, instances, boxes, scores)

    def detections(self, image_id: int, category_id: int = 1) -> list[Detection]:
        """The people as entries of the official results file (xywh boxes, quantized charts)."""
        return [
            Detection(image_id, category_id, (x0, y0, x1 - x0, y1 - y0), p.score, p.chart.quantize())
            for p in self.people
            for x0, y0, x1, y1 in [p.box]
            if p.chart is not None
        ]

    def parsing_detections(self, image_id: int, category_id: int = 1) -> list[ParsingDetection]:
        """The people as entries of a parsing results file (xywh boxes, part labels on the box grid)."""
        return [
            ParsingDetection(image_id, category_id, (x0, y0, x1 - x0, y1 - y0), p.score, p.parsing)
            for p in self.people
            for x0, y0, x1, y1 in [p.box]
            if p.parsing is not None
        ]

    def parsing_maps(self, score_threshold: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
        """(H, W) uint8 global part labels and instance ids, built as Parsing R-CNN's ``parsing_png``: people with
        score >= ``score_threshold`` painted from the lowest score up, each over the earlier ones where it has a
        part; instance id ``k + 1`` is ``people[k]``. (CIHP's official threshold is 0.3, MHP's 0.05.)"""
        if len(self.people) > MAX_PEOPLE_PASTED:
            raise ValueError(f"at most {MAX_PEOPLE_PASTED} people (uint8 ids), got {len(self.people)}")
        parts = np.zeros(self.image_size, dtype=np.uint8)
        instances = np.zeros(self.image_size, dtype=np.uint8)
        for k in reversed(range(len(self.people))):
            person = self.people[k]
            if person.parsing is None or person.score < score_threshold:
                continue
            x0, y0, x1, y1 = person.box
            labels = ParsingDetection(0, 1, (x0, y0, x1 - x0, y1 - y0), person.score, person.parsing)
            pasted = labels.paste(self.image_size)
            painted = pasted > 0
            parts[painted] = pasted[painted]
            instances[painted] = k + 1
        return parts, instances

    def paste(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Full-image maps ``(I, U, V, instance)``: I (H, W) uint8 chart labels 0..24, U and V (H, W) float32 (0 on
        background), instance (H, W) uint8 with ``k + 1`` where ``people[k]`` is painted (0: nobody).

        People are painted in score order and never overwrite an already painted pixel (as the original DensePose
        ``infer_simple``), so higher-score people win overlaps; charts are clipped to the image.
        """
        if len(self.people) > MAX_PEOPLE_PASTED:
            raise ValueError(f"paste supports at most {MAX_PEOPLE_PASTED} people (uint8 ids), got {len(self.people)}")
        h, w = self.image_size
        i_map = np.zeros((h, w), dtype=np.uint8)
        u_map = np.zeros((h, w), dtype=np.float32)
        v_map = np.zeros((h, w), dtype=np.float32)
        inst = np.zeros((h, w), dtype=np.uint8)
        for k, person in enumerate(self.people):
            if person.chart is None:
                continue
            ch, cw = person.chart.shape
            x0, y0 = int(person.box[0]), int(person.box[1])
            # Destination window in the image, and the matching window in the chart.
            dx0, dy0 = max(x0, 0), max(y0, 0)
            dx1, dy1 = min(x0 + cw, w), min(y0 + ch, h)
            if dx1 <= dx0 or dy1 <= dy0:
                continue
            sx0, sy0 = dx0 - x0, dy0 - y0
            labels = person.chart.labels[sy0 : sy0 + dy1 - dy0, sx0 : sx0 + dx1 - dx0]
            uv = person.chart.uv[:, sy0 : sy0 + dy1 - dy0, sx0 : sx0 + dx1 - dx0]
            free = inst[dy0:dy1, dx0:dx1] == 0
            paint = free & (labels > 0)
            i_map[dy0:dy1, dx0:dx1][paint] = labels[paint]
            u_map[dy0:dy1, dx0:dx1][paint] = uv[0][paint]
            v_map[dy0:dy1, dx0:dx1][paint] = uv[1][paint]
            inst[dy0:dy1, dx0:dx1][paint] = k + 1
        return i_map, u_map, v_map, inst


def _read_config_yaml(path: Path) -> Config:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing; a run folder needs the config.yaml written by training")
    data = read_yaml(path, "config file")
    if not isinstance(data, dict):
        raise InputError(path, "not a densehuman config (the top level is not a mapping)")
    try:
        return from_dict(data)
    except ValueError as err:
        raise InputError(path, f"not a valid densehuman config ({err})") from None


def _checkpoint_config(path: Path) -> Config:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such checkpoint")
    try:
        meta = read_metadata(path)
    except Exception as err:  # safetensors raises its own error types
        raise ValueError(f"{path}: not a readable safetensors checkpoint ({err})") from err
    if "config" not in meta:
        raise ValueError(f"{path}: the checkpoint stores no config; pass a preset name and checkpoint=this file")
    try:
        return from_dict(json.loads(meta["config"]))
    except (ValueError, RecursionError) as err:  # json.JSONDecodeError is a ValueError
        raise ValueError(f"{path}: the checkpoint's stored config is invalid ({err})") from err


def _resolve(model: str | Path, checkpoint: str | Path | None) -> tuple[Config, Path | None]:
    """The config and the weights file of a preset name, a checkpoint file or a run folder."""
    from densehuman.models.zoo import PRESETS, preset

    ckpt = Path(checkpoint) if checkpoint is not None else None
    path = Path(model)
    if path.is_dir():
        config = _read_config_yaml(path / "config.yaml")
        if ckpt is None:
            ckpt = last_checkpoint(path)
            if ckpt is None:
                raise FileNotFoundError(f"{path}: run folder without a checkpoint (no last_checkpoint file)")
        return config, ckpt
    if path.is_file():
        if ckpt is not None:
            raise ValueError(f"{path} is a checkpoint file already; do not pass checkpoint={ckpt}")
        return _checkpoint_config(path), path
    if isinstance(model, str) and model in PRESETS:
        return preset(model), ckpt
    raise FileNotFoundError(
        f"{model}: no such checkpoint file or run folder, and not a preset (presets: {', '.join(PRESETS)})"
    )


def _as_rgb(image: ImageInput, bgr: bool) -> np.ndarray:
    """Any accepted input -> a contiguous (H, W, 3) uint8 RGB array, with size checks."""
    if isinstance(image, (str, Path)):
        path = Path(image)
        array = read_image(path)  # header, size limits and truncation checked; errors name the file
        where = str(path)
    elif isinstance(image, Image.Image):
        array = np.asarray(image.convert("RGB"))
        where = "PIL image"
    elif isinstance(image, np.ndarray):
        where = "array"
        if image.dtype != np.uint8:
            raise ValueError(f"image arrays must be uint8 (0..255), got dtype {image.dtype}")
        if image.ndim == 3 and image.shape[2] == 1:
            image = image[..., 0]
        if image.ndim == 2:
            array = np.repeat(image[..., None], 3, axis=2)
        elif image.ndim == 3 and image.shape[2] in (3, 4):
            array = image[..., :3][..., ::-1] if bgr else image[..., :3]  # alpha dropped
        else:
            raise ValueError(f"image arrays must be (H, W), (H, W, 1), (H, W, 3) or (H, W, 4), got {image.shape}")
    else:
        raise ValueError(f"images must be numpy arrays, PIL images or paths, got {type(image).__name__}")
    h, w = array.shape[:2]
    if h < 1 or w < 1:
        raise ValueError(f"{where}: empty image of size {h}x{w}")
    if max(h, w) > MAX_IMAGE_SIDE:
        raise ValueError(f"{where}: image of size {h}x{w} exceeds the {MAX_IMAGE_SIDE}-pixel side limit")
    return np.ascontiguousarray(array)


def _check_resizable(h: int, w: int, short: int, max_size: int) -> None:
    """Reject images whose test-time resize (``resize_for_test``) would have an empty side."""
    if min(shortest_edge_size(h, w, short, max_size)) < 1:
        raise ValueError(f"image of size {h}x{w}: aspect ratio too extreme for input size ({short}, {max_size})")


def to_image_result(prediction: Prediction, resized_size: tuple[int, int], image_size: tuple[int, int]) -> ImageResult:
    """Boxes back to original pixels and each branch's result at box size: chart results (``to_chart_result``,
    ``prediction_to_detections``' conversion) and part labels (``parsing_at_box``: Parsing R-CNN's paste)."""
    boxes, keep = boxes_to_original(prediction.boxes, resized_size, image_size)
    scores = prediction.scores.detach().cpu()
    if prediction.densepose is None and prediction.parsing is None:
        raise ValueError("the model has neither a DensePose nor a parsing branch")
    order = torch.argsort(scores, descending=True, stable=True)
    people = []
    for k in order.tolist():
        if not keep[k]:
            continue
        chart = parsing = None
        if prediction.densepose is not None:
            chart = to_chart_result(prediction.densepose.index(slice(k, k + 1)), boxes[k])
        x0, y0, x1, y1 = (float(v) for v in boxes[k])
        if prediction.parsing is not None:
            probs = prediction.parsing.probs[k].detach().float().cpu().numpy()
            parsing = parsing_at_box(probs, boxes[k].numpy(), chart_shape((x0, y0, x1 - x0, y1 - y0)))
        people.append(PersonResult(box=(x0, y0, x1, y1), score=float(scores[k]), chart=chart, parsing=parsing))
    return ImageResult(people=people, image_size=image_size)


def _import_detectron2(
    model: str | Path, checkpoint: str | Path | None, config: str | Path | None
) -> ImportedModel | None:
    """The detectron2 checkpoint among ``model`` / ``checkpoint`` loaded with its config (None if there is none)."""
    from densehuman.engine.detectron2 import is_detectron2_checkpoint, load_detectron2_model
    from densehuman.models.zoo import PRESETS, preset

    if is_detectron2_checkpoint(model):
        if checkpoint is not None:
            raise ValueError(f"{model} is a checkpoint file already; do not pass checkpoint={checkpoint}")
        return load_detectron2_model(model, config)
    if checkpoint is None or not is_detectron2_checkpoint(checkpoint):
        return None
    if isinstance(model, str) and model in PRESETS:  # a densehuman preset with detectron2 weights
        if config is not None:
            raise ValueError(f"give either the preset {model} or config={config}, not both")
        return load_detectron2_model(checkpoint, preset(model))
    if config is not None:
        raise ValueError(f"give the detectron2 config once: as model ({model}) or as config= ({config})")
    return load_detectron2_model(checkpoint, model)


class Predictor:
    """DensePose R-CNN inference on single images or batches.

    Args:
        model: a preset name (``densehuman.models.zoo``; weights from ``checkpoint``, or random weights with a
            warning when there is none: for tests only), a densehuman checkpoint file (``*.safetensors``, config
            from its metadata), a run folder (``config.yaml`` + the checkpoint named by ``last_checkpoint``, or
            ``checkpoint`` when given), or a detectron2 DensePose checkpoint (``model_final_*.pkl`` of the model
            zoo, or a ``.pth`` of detectron2 training; see ``densehuman.engine.detectron2``).
        checkpoint: weights for a preset or a run folder; not allowed with a checkpoint file. A detectron2
            checkpoint here goes with ``model`` = a preset name, a detectron2 config YAML or a model-zoo name.
        config: the detectron2 config (YAML file, ``_BASE_`` resolved, or a model-zoo name such as
            ``densepose_rcnn_R_50_FPN_s1x``) of a detectron2 checkpoint; by default the ``config.yaml`` beside
            it, its model-zoo file name, or what its tensors show.
        device: torch device, e.g. ``"cpu"`` or ``"cuda"``.
        min_score: detection score threshold handed to ``Detector.predict`` (kept: score > min_score).
        input_size: (short edge, max size) of the test-time resize; default the config's
            ``input.min_size_test`` / ``input.max_size_test``.
        batch_size: images per model call in ``predict_batch``. Images of different sizes are zero-padded to a
            common size in a batch, which can change results slightly against one image at a time.
        optimize: prepare the model for fast inference (``densehuman.models.fusion.prepare_for_inference``: batch
            norms folded into the convolutions, Winograd convolutions on the CPU, the DensePose decoder computed
            only around the detections). The outputs are the same up to float32 rounding; ``self.model`` is then
            for inference only (it cannot train, and its state dict is not a checkpoint). False keeps the model as
            loaded.
        flip_test: average a parsing branch's probabilities with those of the flipped image (default: the
            config's ``model.parsing.flip_test``).
    """

    def __init__(
        self,
        model: str | Path,
        checkpoint: str | Path | None = None,
        *,
        config: str | Path | None = None,
        device: str = "cpu",
        min_score: float = 0.5,
        input_size: tuple[int, int] | None = None,
        batch_size: int = 1,
        optimize: bool = True,
        flip_test: bool | None = None,
    ) -> None:
        from densehuman.models.build import build_model

        if not 0.0 <= min_score <= 1.0:
            raise ValueError(f"min_score must be in [0, 1], got {min_score}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        from densehuman.export import exported_kind, load_exported

        exported = None
        if exported_kind(model) is not None:
            if checkpoint is not None or config is not None:
                raise ValueError(f"{model} is an exported model with its weights and config; pass neither")
            if torch.device(device).type != "cpu":
                raise ValueError(f"{model}: exported (int8 / ONNX) models run on the CPU, not {device}")
            exported = load_exported(model)
        imported = _import_detectron2(model, checkpoint, config) if exported is None else None
        weights: Path | None
        if exported is not None:
            cfg, weights = exported[0], Path(model)
        elif imported is not None:
            cfg, weights = imported.config, Path(checkpoint if checkpoint is not None else model)
        elif config is not None:
            raise ValueError(f"config= is for detectron2 checkpoints (.pkl / .pth); {model} is not one")
        else:
            cfg, weights = _resolve(model, checkpoint)
        if input_size is None:
            input_size = (cfg.input.min_size_test, cfg.input.max_size_test)
        short, longest = (int(s) for s in input_size)
        if not (1 <= short <= MAX_IMAGE_SIDE and 1 <= longest <= MAX_IMAGE_SIDE):
            raise ValueError(f"input_size (short edge, max size) must be in 1..{MAX_IMAGE_SIDE}, got {input_size}")
        self.config = cfg
        self.input_size = (short, longest)
        self.min_score = float(min_score)
        self.batch_size = int(batch_size)
        self.flip_test = cfg.model.parsing.flip_test if flip_test is None else bool(flip_test)
        self.device = torch.device(device)
        if exported is not None:
            net = exported[1]
        else:
            net = imported.model if imported is not None else build_model(cfg.model)
        if imported is not None or exported is not None:
            pass  # weights loaded and checked by the importer / the export's loader
        elif weights is None:
            warnings.warn(
                f"Predictor({model!r}) has no checkpoint: the model has RANDOM weights (useful for tests only)",
                stacklevel=2,
            )
        else:
            try:
                load_weights(weights, net)
            except RuntimeError as err:  # load_state_dict: tensor shapes differ from the config's model
                raise ValueError(f"{weights}: weights do not fit the {cfg.name!r} model ({err})") from err
        self.checkpoint = weights
        self.model: Detector = net.to(self.device).eval()
        if optimize and exported is None:  # an export is as fast as it gets already
            prepare_for_inference(self.model)

    def __call__(self, image: ImageInput, *, bgr: bool = False) -> ImageResult:
        """One image: numpy uint8 (H, W, 3) RGB (BGR with ``bgr=True``; grayscale and RGBA accepted), a PIL image
        or a path (read with OpenCV; ``bgr`` does not apply)."""
        return self.predict_batch([image], bgr=bgr)[0]

    def predict_batch(self, images: Sequence[ImageInput], *, bgr: bool = False) -> list[ImageResult]:
        """``__call__`` for several images, ``batch_size`` at a time; results in input order."""
        results: list[ImageResult] = []
        for start in range(0, len(images), self.batch_size):
            chunk = [_as_rgb(im, bgr) for im in images[start : start + self.batch_size]]
            tensors, sizes = [], []
            for rgb in chunk:
                _check_resizable(rgb.shape[0], rgb.shape[1], *self.input_size)
                resized = resize_for_test(rgb, *self.input_size)
                tensors.append(torch.from_numpy(np.ascontiguousarray(resized)).permute(2, 0, 1).to(self.device))
                sizes.append((resized.shape[0], resized.shape[1]))
            with torch.inference_mode():
                predictions = self.model.predict(tensors, score_threshold=self.min_score, flip_test=self.flip_test)
            for prediction, size, rgb in zip(predictions, sizes, chunk, strict=True):
                results.append(to_image_result(prediction, size, (rgb.shape[0], rgb.shape[1])))
        return results
