"""DensePose results files, and predictions made from a synthetic dataset's labels.

Results file (the 2018/2019 COCO DensePose challenge format, ``results_format.md``): a JSON list with one object per
detection, ``{"image_id": int, "category_id": int, "bbox": [x, y, w, h], "score": float, "uv_shape": [3, H, W],
"uv_data": str}`` where ``bbox`` is in image pixels (floats, top-left origin) and ``uv_data`` is the base64 PNG of
the quantized (I, U, V) chart on the box grid (``densehuman.structures``). ``load_results`` also reads
detectron2-style records, whose chart is ``"densepose": {"shape_chw": [3, H, W], "labels_uv_str": str}``.

The box grid: detectron2 renders a detection's chart at ``(max(int(h), 1), max(int(w), 1))`` (``int`` truncates;
``converters/chart_output_to_chart_result.py``), pastes it into the image at ``(int(x), int(y))`` and looks GT
points up at ``int(point - box corner)``. ``chart_shape`` gives that grid and a chart of any other size is an error
(the challenge asks for ``height`` and ``width`` that "match the bounding box size").
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from densehuman import atomic
from densehuman.body.charts import POINT_LABEL_SYMMETRIES
from densehuman.data.dense_png import read_inds, read_iuv
from densehuman.structures import ChartResult, QuantizedChartResult

BBox = tuple[float, float, float, float]


def chart_shape(bbox: Sequence[float]) -> tuple[int, int]:
    """(H, W) of the grid a detection's chart is rendered on: ``(max(int(h), 1), max(int(w), 1))``."""
    return max(int(bbox[3]), 1), max(int(bbox[2]), 1)


@dataclass(frozen=True)
class Detection:
    """One detection: ``bbox`` (x, y, w, h) in image pixels, ``score``, and its chart on the box grid (or None)."""

    image_id: int
    category_id: int
    bbox: BBox
    score: float
    chart: QuantizedChartResult | None

    def __post_init__(self) -> None:
        bbox = tuple(float(v) for v in self.bbox)
        if len(bbox) != 4 or not all(math.isfinite(v) for v in bbox):
            raise ValueError(f"bbox must be 4 finite numbers (x, y, w, h), got {self.bbox}")
        if bbox[2] < 0 or bbox[3] < 0:
            raise ValueError(f"bbox has a negative size: {bbox}")
        if not math.isfinite(self.score):
            raise ValueError(f"score must be finite, got {self.score}")
        if self.chart is not None and self.chart.shape != chart_shape(bbox):
            raise ValueError(f"chart is {_hw(self.chart.shape)}, the box {bbox} needs {_hw(chart_shape(bbox))}")
        object.__setattr__(self, "bbox", bbox)
        object.__setattr__(self, "image_id", int(self.image_id))
        object.__setattr__(self, "category_id", int(self.category_id))
        object.__setattr__(self, "score", float(self.score))

    def to_record(self) -> dict[str, Any]:
        """The challenge's JSON record (without ``uv_shape``/``uv_data`` when there is no chart)."""
        record: dict[str, Any] = {
            "image_id": self.image_id,
            "category_id": self.category_id,
            "bbox": list(self.bbox),
            "score": self.score,
        }
        if self.chart is not None:
            record.update(self.chart.encode())
        return record


def load_results(
    path: Path,
    image_ids: Collection[int] | None = None,
    *,
    require_charts: bool = True,
    category_ids: Collection[int] | None = None,
) -> list[Detection]:
    """Read a results JSON file (challenge or detectron2-style records) into detections, in file order.

    ``image_ids`` / ``category_ids``: the ground truth's images and categories; a detection on any other is an
    error (the official evaluation would silently score it as nothing). ``require_charts``: whether a record without
    a chart is an error (otherwise its ``chart`` is None). Errors are ``ValueError`` naming the file, the detection's
    index (and image) and the field, e.g. ``"res.json: detection 17 (image 3): uv_data: bad base64 (...)"``.
    """
    from densehuman.validation import read_json

    path = Path(path)
    if not path.is_file() and not path.exists():
        raise FileNotFoundError(f"{path}: no such results file")
    data = read_json(path, "results file")
    if not isinstance(data, list):
        raise ValueError(f"{path}: a results file is a JSON list of detections, got a {type(data).__name__}")
    known = None if image_ids is None else {int(i) for i in image_ids}
    detections = [_parse_detection(record, i, str(path), known, require_charts) for i, record in enumerate(data)]
    if category_ids is not None:
        categories = {int(c) for c in category_ids}
        for i, d in enumerate(detections):
            if d.category_id not in categories:
                raise ValueError(
                    f"{path}: detection {i} (image {d.image_id}): category_id: {d.category_id} is not a category of "
                    f"the ground truth ({sorted(categories)})"
                )
    return detections


def save_results(path: Path, detections: Sequence[Detection]) -> None:
    """Write detections in the challenge format (``uv_shape``, ``uv_data``), atomically."""
    atomic.write_json(path, [d.to_record() for d in detections])


def _parse_detection(record: Any, index: int, source: str, known: set[int] | None, require_charts: bool) -> Detection:
    where = f"{source}: detection {index}"
    if not isinstance(record, Mapping):
        raise ValueError(f"{where}: expected an object, got {_kind(record)}")
    image_id = _integer(record, "image_id", where)
    where = f"{where} (image {image_id})"
    if known is not None and image_id not in known:
        raise ValueError(f"{where}: image_id: {image_id} is not an image of the ground truth")
    category_id = _integer(record, "category_id", where)
    bbox = _bbox(record, where)
    score = _number(record, "score", where)
    chart: QuantizedChartResult | None = None
    shape_field = "uv_shape"
    if "densepose" in record:
        chart = QuantizedChartResult.decode(record["densepose"], f"{where}: densepose")
        shape_field = "densepose: shape_chw"
    elif any(k in record for k in ("uv_shape", "uv_data", "shape_chw", "labels_uv_str")):
        chart = QuantizedChartResult.decode(record, where)
        shape_field = "uv_shape" if "uv_shape" in record else "shape_chw"
    elif require_charts:
        raise ValueError(f"{where}: uv_data: missing (every detection needs uv_shape and uv_data)")
    if chart is not None and chart.shape != chart_shape(bbox):
        raise ValueError(
            f"{where}: {shape_field}: the chart is {_hw(chart.shape)} but the box {list(bbox)} is rendered at "
            f"max(int(h), 1) x max(int(w), 1) = {_hw(chart_shape(bbox))}"
        )
    return Detection(image_id, category_id, bbox, score, chart)


def _kind(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _field(record: Mapping[str, Any], key: str, where: str) -> Any:
    if key not in record:
        raise ValueError(f"{where}: {key}: missing")
    return record[key]


def _integer(record: Mapping[str, Any], key: str, where: str) -> int:
    value = _field(record, key, where)
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(f"{where}: {key}: expected an integer, got {_kind(value)} {value!r}")
    return value


def _number(record: Mapping[str, Any], key: str, where: str) -> float:
    value = _field(record, key, where)
    if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
        raise ValueError(f"{where}: {key}: expected a finite number, got {_kind(value)} {value!r}")
    return float(value)


def _bbox(record: Mapping[str, Any], where: str) -> BBox:
    value = _field(record, "bbox", where)
    numbers = isinstance(value, list | tuple) and all(
        isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in value
    )
    if not numbers or len(value) != 4:
        raise ValueError(f"{where}: bbox: expected 4 finite numbers [x, y, w, h], got {value!r}")
    x, y, w, h = (float(v) for v in value)
    if w < 0 or h < 0:
        raise ValueError(f"{where}: bbox: negative width or height in {list(value)}")
    return x, y, w, h


def _hw(shape: tuple[int, int]) -> str:
    return f"{shape[0]} x {shape[1]} (H x W)"


# --- predictions made from a synthetic dataset's labels ---------------------------------------------------------


def predictions_from_dataset(
    root: Path,
    split: str = "val",
    *,
    rng: np.random.Generator | None = None,
    box_jitter: float = 0.0,
    uv_noise: float = 0.0,
    part_swap: float = 0.0,
    drop: float = 0.0,
    flip_lr: bool = False,
    random: bool = False,
) -> list[Detection]:
    """One detection per GT person of the synthetic dataset at ``root`` (people without DensePose points too).

    A person's chart is the IUV PNG inside that person's mask (``INDS == k`` for the image's k-th annotation in
    id order), cropped to the box grid at ``(int(x), int(y))`` (zeros outside the image): with no perturbation
    the boxes are the GT boxes and the charts reproduce the PNG exactly. Detections come in image-id then
    annotation-id order with distinct scores ``1 - i / N`` (i-th of N people, so 1.0 first), category from the
    annotation. Perturbations, drawn from ``rng`` (required when any is random) person by person:

    - ``drop``: probability to leave a person out (the others keep their scores);
    - ``box_jitter``: the box is shifted by ``box_jitter * (w, h) * N(0, 1)`` and clipped to the image (as
      detectron2 clips boxes); the chart is cut from the label maps at the new box, so the mask moves with it;
    - ``random``: charts with a random I in 1..24 per pixel over the person's mask and uniform U, V;
    - ``flip_lr`` (every person) or ``part_swap`` (probability per person): the left/right mirror of the body,
      ``(I, U, V) -> (POINT_LABEL_SYMMETRIES[I], 1 - U, V)`` (the surface point's mirror image; exact on the
      quantized values, 255 - Uq);
    - ``uv_noise``: Gaussian noise of this sigma added to U and V on labelled pixels, clipped to [0, 1].
    """
    for name, value in (("box_jitter", box_jitter), ("uv_noise", uv_noise)):
        if not (math.isfinite(value) and value >= 0):
            raise ValueError(f"{name} must be a finite number >= 0, got {value}")
    for name, value in (("part_swap", part_swap), ("drop", drop)):
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"{name} is a probability in [0, 1], got {value}")
    if rng is None and (box_jitter > 0 or uv_noise > 0 or part_swap > 0 or drop > 0 or random):
        raise ValueError("pass rng (a numpy Generator) for random perturbations")
    gen = rng if rng is not None else np.random.default_rng(0)  # never drawn from when rng is None
    root = Path(root)
    images, people = _read_split(root, split)
    total = sum(len(v) for v in people.values())
    symmetric = np.asarray(POINT_LABEL_SYMMETRIES, dtype=np.uint8)
    detections: list[Detection] = []
    index = 0
    for image in images:
        anns = people.get(image["id"], [])
        if not anns:
            continue
        height, width = int(image["height"]), int(image["width"])
        stem = Path(image["file_name"]).stem
        chart_map, u_map, v_map = read_iuv(root / "dense" / split / f"{stem}_IUV.png")
        inds = read_inds(root / "dense" / split / f"{stem}_INDS.png")
        if chart_map.shape != (height, width) or inds.shape != (height, width):
            raise ValueError(f"{root}: image {image['id']}: the dense PNGs are not {height} x {width}")
        if int(inds.max()) > len(anns):
            raise ValueError(
                f"{root}: image {image['id']}: INDS has instance {int(inds.max())}, only {len(anns)} people"
            )
        uq = np.rint(u_map * 255.0).astype(np.uint8)
        vq = np.rint(v_map * 255.0).astype(np.uint8)
        for k, ann in enumerate(anns, start=1):
            score = 1.0 - index / total
            index += 1
            if drop > 0 and gen.random() < drop:
                continue
            x, y, w, h = (float(v) for v in ann["bbox"])
            if box_jitter > 0:
                dx, dy = gen.normal(size=2) * box_jitter * np.array([w, h])
                x, y, w, h = _clip_box(x + dx, y + dy, w, h, width, height)
            rows, cols = chart_shape((x, y, w, h))
            x0, y0 = int(x), int(y)
            mask = _crop(inds, x0, y0, rows, cols) == k
            if random:
                labels = np.where(mask, gen.integers(1, 25, size=mask.shape), 0).astype(np.uint8)
                uv = gen.random((2, rows, cols), dtype=np.float32) * mask
            else:
                labels = np.where(mask, _crop(chart_map, x0, y0, rows, cols), 0).astype(np.uint8)
                quv = np.stack([_crop(uq, x0, y0, rows, cols), _crop(vq, x0, y0, rows, cols)]) * (labels > 0)
                if flip_lr or (part_swap > 0 and gen.random() < part_swap):
                    labels = symmetric[labels]
                    quv[0] = np.where(labels > 0, 255 - quv[0], 0)
                uv = quv.astype(np.float32) / np.float32(255.0)
            if uv_noise > 0:
                noisy = uv + gen.normal(0.0, uv_noise, size=uv.shape).astype(np.float32)
                uv = np.where(labels > 0, np.clip(noisy, 0.0, 1.0), 0.0).astype(np.float32)
            chart = ChartResult(labels.astype(np.int64), uv).quantize()
            detections.append(Detection(int(image["id"]), int(ann["category_id"]), (x, y, w, h), score, chart))
    return detections


def _read_split(root: Path, split: str) -> tuple[list[dict[str, Any]], dict[int, list[dict[str, Any]]]]:
    """The split's images (by id) and each image's annotations (by id)."""
    path = root / "annotations" / f"densepose_{split}.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file (is {root} a densehuman synth dataset with a {split} split?)")
    from densehuman.validation import read_json
    from densehuman.validation.coco import DENSEPOSE_COCO, validate_coco

    data = read_json(path, "DensePose-COCO annotation file")
    validate_coco(data, path, DENSEPOSE_COCO)
    images = sorted(data["images"], key=lambda im: int(im["id"]))
    people: dict[int, list[dict[str, Any]]] = {}
    for ann in sorted(data["annotations"], key=lambda a: int(a["id"])):
        people.setdefault(int(ann["image_id"]), []).append(ann)
    return images, people


def _clip_box(x: float, y: float, w: float, h: float, width: int, height: int) -> BBox:
    """Clip an xywh box to the image [0, width] x [0, height] (its size may shrink to 0)."""
    x0, y0 = min(max(x, 0.0), width), min(max(y, 0.0), height)
    x1, y1 = min(max(x + w, 0.0), width), min(max(y + h, 0.0), height)
    return x0, y0, x1 - x0, y1 - y0


def _crop(image: np.ndarray, x0: int, y0: int, rows: int, cols: int) -> np.ndarray:
    """``image[y0:y0+rows, x0:x0+cols]`` with zeros where the window leaves the image."""
    out = np.zeros((rows, cols), dtype=image.dtype)
    height, width = image.shape
    ya, yb = max(y0, 0), min(y0 + rows, height)
    xa, xb = max(x0, 0), min(x0 + cols, width)
    if ya < yb and xa < xb:
        out[ya - y0 : yb - y0, xa - x0 : xb - x0] = image[ya:yb, xa:xb]
    return out
