"""Chart-based DensePose results of one detection and their quantized and compressed encodings.

A detection's dense result lives on the pixel grid of its box, ``H = max(int(h), 1)`` rows by
``W = max(int(w), 1)`` columns (detectron2 renders there; see ``densehuman.evaluation.predictions``):

- ``ChartResult``: ``labels`` (H, W) int64, the chart I in 0..24 (0 = background), and ``uv`` (2, H, W) float32,
  U and V in [0, 1] (detectron2's ``DensePoseChartResult``).
- ``QuantizedChartResult``: ``labels_uv_uint8`` (3, H, W) uint8 = I, Uq, Vq (detectron2's
  ``DensePoseChartResultQuantized``). Quantization is detectron2's ``quantize_densepose_chart_result``,
  ``labels_uv_uint8[1:] = (result.uv * 255).clamp(0, 255).byte()``: multiply in float32, clamp, then *truncate*
  (not round). Dequantization is ``U = Uq / 255`` (as the evaluator reads it); ``quantize(to_result(q)) == q`` for
  every uint8 value.
- Compressed record: the (3, H, W) array moved to (H, W, 3), saved by PIL as an RGB PNG with ``optimize=True``, the
  PNG bytes encoded by ``base64.encodebytes`` (standard alphabet, a newline every 76 characters and at the end).
  The 2018/2019 COCO DensePose challenge stores it as ``{"uv_shape": [3, H, W], "uv_data": str}``
  (``challenge/encode_results_for_competition.py``: Python 2 ``s.encode('base64')``, the same bytes);
  detectron2's ``DensePoseChartResultCompressed`` as ``{"shape_chw": [3, H, W], "labels_uv_str": str}``
  (``compress_quantized_densepose_chart_result``). ``encode`` writes the challenge keys, byte for byte what both
  write with the same PIL/zlib; ``decode`` reads either, with or without the newlines, and checks everything the
  reference decoders take on trust (shape, channels, chart range).
"""

from __future__ import annotations

import base64
import binascii
import io
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

NUM_CHART_LABELS = 25  # background + 24 charts
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_FORMATS = (("uv_shape", "uv_data"), ("shape_chw", "labels_uv_str"))  # challenge, detectron2


@dataclass(frozen=True, eq=False)
class ChartResult:
    """One detection's dense pose result at box size: labels (H, W) int64 0..24, uv (2, H, W) float32 in [0, 1].

    Arrays are converted to these dtypes on construction. U and V outside [0, 1] are allowed (``quantize`` clamps
    them, as detectron2 does); non-finite values are not.
    """

    labels: np.ndarray
    uv: np.ndarray

    def __post_init__(self) -> None:
        labels = np.asarray(self.labels)
        uv = np.asarray(self.uv)
        if labels.ndim != 2 or labels.shape[0] < 1 or labels.shape[1] < 1:
            raise ValueError(f"labels must be a non-empty (H, W) array, got shape {labels.shape}")
        if uv.shape != (2, *labels.shape):
            raise ValueError(f"uv must have shape (2, H, W) = {(2, *labels.shape)}, got {uv.shape}")
        if not np.issubdtype(labels.dtype, np.integer):
            raise ValueError(f"labels must be integers, got dtype {labels.dtype}")
        if labels.min() < 0 or labels.max() >= NUM_CHART_LABELS:
            raise ValueError(f"labels must be in 0..24, got {int(labels.min())}..{int(labels.max())}")
        uv32 = np.ascontiguousarray(uv, dtype=np.float32)
        if not np.isfinite(uv32).all():
            raise ValueError("uv has non-finite values")
        object.__setattr__(self, "labels", np.ascontiguousarray(labels, dtype=np.int64))
        object.__setattr__(self, "uv", uv32)

    @property
    def shape(self) -> tuple[int, int]:
        """(H, W) of the box grid."""
        return (int(self.labels.shape[0]), int(self.labels.shape[1]))

    def quantize(self) -> QuantizedChartResult:
        """detectron2's quantization: I, and ``uint8(clamp(float32(U) * 255, 0, 255))`` (truncation), same for V."""
        q = np.empty((3, *self.shape), dtype=np.uint8)
        q[0] = self.labels
        q[1:] = np.clip(self.uv * np.float32(255.0), 0.0, 255.0).astype(np.uint8)
        return QuantizedChartResult(q)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ChartResult):
            return NotImplemented
        return np.array_equal(self.labels, other.labels) and np.array_equal(self.uv, other.uv)

    __hash__ = None  # type: ignore[assignment]


@dataclass(frozen=True, eq=False)
class QuantizedChartResult:
    """``labels_uv_uint8`` (3, H, W) uint8: I (0..24), U * 255 and V * 255 quantized as detectron2 does."""

    labels_uv_uint8: np.ndarray

    def __post_init__(self) -> None:
        q = np.asarray(self.labels_uv_uint8)
        if q.ndim != 3 or q.shape[0] != 3 or q.shape[1] < 1 or q.shape[2] < 1:
            raise ValueError(f"labels_uv_uint8 must be a non-empty (3, H, W) array, got shape {q.shape}")
        if q.dtype != np.uint8:
            raise ValueError(f"labels_uv_uint8 must be uint8, got dtype {q.dtype}")
        if q[0].max() >= NUM_CHART_LABELS:
            raise ValueError(f"chart labels (channel 0) must be in 0..24, got up to {int(q[0].max())}")
        object.__setattr__(self, "labels_uv_uint8", np.ascontiguousarray(q))

    @property
    def shape(self) -> tuple[int, int]:
        """(H, W) of the box grid."""
        return (int(self.labels_uv_uint8.shape[1]), int(self.labels_uv_uint8.shape[2]))

    @property
    def labels(self) -> np.ndarray:
        """(H, W) uint8 chart labels I (a view)."""
        return self.labels_uv_uint8[0]

    def to_result(self) -> ChartResult:
        """Dequantize: labels as int64, U = Uq / 255, V = Vq / 255 (float32)."""
        uv = self.labels_uv_uint8[1:].astype(np.float32) / np.float32(255.0)
        return ChartResult(self.labels_uv_uint8[0].astype(np.int64), uv)

    def png_bytes(self) -> bytes:
        """The (H, W, 3) array as an RGB PNG written by PIL with ``optimize=True`` (as detectron2 and the challenge)."""
        image = Image.fromarray(np.ascontiguousarray(np.moveaxis(self.labels_uv_uint8, 0, -1)))
        stream = io.BytesIO()
        image.save(stream, format="png", optimize=True)
        return stream.getvalue()

    def encode(self) -> dict[str, Any]:
        """The challenge's record fields: ``{"uv_shape": [3, H, W], "uv_data": base64.encodebytes(PNG)}``."""
        return {
            "uv_shape": [3, *self.shape],
            "uv_data": base64.encodebytes(self.png_bytes()).decode("ascii"),
        }

    @staticmethod
    def decode(record: Mapping[str, Any], where: str = "") -> QuantizedChartResult:
        """Read ``uv_shape``/``uv_data`` (challenge) or ``shape_chw``/``labels_uv_str`` (detectron2) from ``record``.

        Errors are ``ValueError`` whose message starts with ``where`` and names the field, e.g.
        ``"detection 17 (image 3): uv_data: bad base64 (...)"``.
        """
        prefix = f"{where}: " if where else ""
        if not isinstance(record, Mapping):
            raise ValueError(f"{prefix}expected an object with uv_shape and uv_data, got {type(record).__name__}")
        for shape_key, data_key in _FORMATS:
            if shape_key in record or data_key in record:
                break
        else:
            raise ValueError(
                f"{prefix}uv_data: missing (a chart needs uv_shape and uv_data, or shape_chw and labels_uv_str)"
            )
        for key in (shape_key, data_key):
            if key not in record:
                raise ValueError(f"{prefix}{key}: missing")
        height, width = _parse_shape(record[shape_key], f"{prefix}{shape_key}")
        png = _parse_base64(record[data_key], f"{prefix}{data_key}")
        data = _decode_png(png, (height, width), f"{prefix}{data_key}")
        q = np.ascontiguousarray(np.moveaxis(data, -1, 0))
        top = int(q[0].max())
        if top >= NUM_CHART_LABELS:
            raise ValueError(f"{prefix}{data_key}: chart labels (channel 0) must be in 0..24, got up to {top}")
        return QuantizedChartResult(q)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, QuantizedChartResult):
            return NotImplemented
        return np.array_equal(self.labels_uv_uint8, other.labels_uv_uint8)

    __hash__ = None  # type: ignore[assignment]


def _parse_shape(value: Any, what: str) -> tuple[int, int]:
    ok = (
        isinstance(value, list | tuple)
        and len(value) == 3
        and all(isinstance(v, int) and not isinstance(v, bool) for v in value)
    )
    if not ok:
        raise ValueError(f"{what}: expected [3, H, W] (three integers), got {value!r}")
    if value[0] != 3 or value[1] < 1 or value[2] < 1:
        raise ValueError(f"{what}: expected [3, H, W] with H, W >= 1, got {list(value)}")
    return int(value[1]), int(value[2])


def _parse_base64(value: Any, what: str) -> bytes:
    if not isinstance(value, str):
        raise ValueError(f"{what}: expected a base64 string, got {type(value).__name__}")
    try:
        return base64.b64decode("".join(value.split()), validate=True)
    except (binascii.Error, ValueError) as err:
        raise ValueError(f"{what}: bad base64 ({err})") from err


def _decode_png(png: bytes, shape: tuple[int, int], what: str) -> np.ndarray:
    """PNG bytes -> (H, W, 3) uint8, checked against the declared (H, W)."""
    if not png.startswith(_PNG_SIGNATURE):
        raise ValueError(f"{what}: not a PNG (the decoded bytes start with {png[:8]!r})")
    try:
        image = Image.open(io.BytesIO(png), formats=["PNG"])  # reads the header only
    except Exception as err:  # PIL raises many kinds (OSError, SyntaxError, ValueError, ...)
        raise ValueError(f"{what}: corrupt PNG ({type(err).__name__}: {err})") from err
    with image:
        width, height = image.size
        if image.mode != "RGB":
            raise ValueError(f"{what}: expected an 8-bit RGB PNG (I, U, V), got PIL mode {image.mode!r}")
        if (height, width) != shape:
            raise ValueError(
                f"{what}: the PNG is {height} x {width} (H x W), the declared shape says {shape[0]} x {shape[1]}"
            )
        try:
            data = np.asarray(image, dtype=np.uint8)
        except Exception as err:  # truncated or corrupt pixel data: OSError, zlib.error, ...
            raise ValueError(f"{what}: corrupt PNG ({type(err).__name__}: {err})") from err
    if data.shape != (*shape, 3):
        raise ValueError(f"{what}: decoded PNG has shape {data.shape}, expected {(*shape, 3)}")
    return data
