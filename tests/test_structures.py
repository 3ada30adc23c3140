"""Chart results: detectron2's quantization, the challenge / detectron2 PNG+base64 encodings, decode errors."""

from __future__ import annotations

import base64
import io
import re

import numpy as np
import pytest
from PIL import Image

from densehuman.structures import ChartResult, QuantizedChartResult


def random_quantized(rng: np.random.Generator, height: int, width: int) -> QuantizedChartResult:
    q = np.empty((3, height, width), dtype=np.uint8)
    q[0] = rng.integers(0, 25, size=(height, width))
    q[1:] = rng.integers(0, 256, size=(2, height, width))
    return QuantizedChartResult(q)


def detectron2_compress(q: np.ndarray) -> dict[str, object]:
    """Reference: detectron2's ``compress_quantized_densepose_chart_result`` (PIL PNG of HWC, base64.encodebytes)."""
    im = Image.fromarray(np.moveaxis(q, 0, -1))
    stream = io.BytesIO()
    im.save(stream, format="png", optimize=True)
    return {"shape_chw": list(q.shape), "labels_uv_str": base64.encodebytes(stream.getvalue()).decode()}


def png_base64(array: np.ndarray) -> str:
    stream = io.BytesIO()
    Image.fromarray(array).save(stream, format="png")
    return base64.b64encode(stream.getvalue()).decode()


# --- quantization -------------------------------------------------------------------------------------------------


def test_quantize_truncates_like_detectron2() -> None:
    # (uv * 255).clamp(0, 255).byte(): 0.5 * 255 = 127.5 -> 127 (not 128); out-of-range values clamp.
    u = np.array([[0.0, 0.5, 0.999, 1.0, 1.2, -0.1]], dtype=np.float32)
    v = np.array([[1 / 255, 2 / 255, 0.1, 0.25, 0.75, 0.996]], dtype=np.float32)
    labels = np.array([[0, 1, 5, 24, 12, 3]])
    q = ChartResult(labels, np.stack([u, v])).quantize().labels_uv_uint8
    np.testing.assert_array_equal(q[0], [[0, 1, 5, 24, 12, 3]])
    np.testing.assert_array_equal(q[1], [[0, 127, 254, 255, 255, 0]])
    np.testing.assert_array_equal(q[2], [[1, 2, 25, 63, 191, 253]])


def test_quantize_matches_detectron2_line_exactly() -> None:
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    uv = rng.uniform(-0.1, 1.1, size=(2, 40, 50)).astype(np.float32)
    uv[0, 0, :5] = [k / 255 for k in (1, 2, 127, 128, 254)]  # values whose product lands next to an integer
    labels = rng.integers(0, 25, size=(40, 50))
    q = ChartResult(labels, uv).quantize().labels_uv_uint8
    # densepose/structures/chart_result.py, quantize_densepose_chart_result:
    expected = (torch.from_numpy(uv) * 255).clamp(0, 255).byte().numpy()
    np.testing.assert_array_equal(q[1:], expected)
    np.testing.assert_array_equal(q[0], labels)


def test_dequantize_then_quantize_is_exact_for_every_value() -> None:
    values = np.arange(256, dtype=np.uint8)
    q = np.stack([np.arange(256) % 25, values, values[::-1]]).astype(np.uint8)[:, None, :]
    result = QuantizedChartResult(q).to_result()
    assert result.labels.dtype == np.int64
    assert result.uv.dtype == np.float32
    np.testing.assert_allclose(result.uv[0, 0], values / 255.0, atol=1e-7)
    np.testing.assert_array_equal(result.quantize().labels_uv_uint8, q)


def test_chart_result_validation() -> None:
    with pytest.raises(ValueError, match=r"uv must have shape \(2, H, W\)"):
        ChartResult(np.zeros((4, 5), dtype=np.int64), np.zeros((2, 5, 4), dtype=np.float32))
    with pytest.raises(ValueError, match=r"labels must be in 0\.\.24"):
        ChartResult(np.full((2, 2), 25), np.zeros((2, 2, 2)))
    with pytest.raises(ValueError, match="non-finite"):
        ChartResult(np.zeros((2, 2), dtype=np.int64), np.full((2, 2, 2), np.nan))
    with pytest.raises(ValueError, match="non-empty"):
        ChartResult(np.zeros((0, 3), dtype=np.int64), np.zeros((2, 0, 3)))
    with pytest.raises(ValueError, match="uint8"):
        QuantizedChartResult(np.zeros((3, 2, 2), dtype=np.int64))
    with pytest.raises(ValueError, match=r"0\.\.24"):
        QuantizedChartResult(np.full((3, 2, 2), 30, dtype=np.uint8))


def test_equality_compares_arrays() -> None:
    rng = np.random.default_rng(1)
    a = random_quantized(rng, 6, 7)
    b = QuantizedChartResult(a.labels_uv_uint8.copy())
    assert a == b
    c = a.labels_uv_uint8.copy()
    c[2, 5, 6] ^= 1
    assert a != QuantizedChartResult(c)
    assert a.to_result() == b.to_result()


# --- encoding -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("height", "width"), [(1, 1), (7, 3), (38, 14), (120, 61)])
def test_encode_decode_round_trip(height: int, width: int) -> None:
    q = random_quantized(np.random.default_rng(height * 1000 + width), height, width)
    record = q.encode()
    assert record["uv_shape"] == [3, height, width]
    assert QuantizedChartResult.decode(record) == q
    # without the newlines of base64.encodebytes, and with Windows line ends
    flat = {"uv_shape": record["uv_shape"], "uv_data": record["uv_data"].replace("\n", "")}
    assert QuantizedChartResult.decode(flat) == q
    crlf = {"uv_shape": record["uv_shape"], "uv_data": record["uv_data"].replace("\n", "\r\n")}
    assert QuantizedChartResult.decode(crlf) == q


def test_encode_is_byte_identical_to_detectron2_and_the_challenge_script() -> None:
    q = random_quantized(np.random.default_rng(5), 90, 45)
    reference = detectron2_compress(q.labels_uv_uint8)
    record = q.encode()
    assert record["uv_data"] == reference["labels_uv_str"]
    assert record["uv_shape"] == reference["shape_chw"]
    lines = record["uv_data"].split("\n")
    assert record["uv_data"].endswith("\n")
    assert all(len(line) == 76 for line in lines[:-2])  # base64.encodebytes / Python 2 str.encode('base64')
    # PNG channel order: R = I, G = U, B = V
    image = Image.open(io.BytesIO(base64.b64decode(record["uv_data"])))
    assert image.mode == "RGB"
    assert image.size == (45, 90)
    np.testing.assert_array_equal(np.asarray(image)[..., 0], q.labels_uv_uint8[0])
    np.testing.assert_array_equal(np.asarray(image)[..., 2], q.labels_uv_uint8[2])


def test_decode_reads_detectron2_compressed_records() -> None:
    q = random_quantized(np.random.default_rng(7), 33, 20)
    assert QuantizedChartResult.decode(detectron2_compress(q.labels_uv_uint8)) == q


def test_decode_reads_an_unoptimized_png() -> None:
    q = random_quantized(np.random.default_rng(8), 9, 11)
    record = {"uv_shape": [3, 9, 11], "uv_data": png_base64(np.moveaxis(q.labels_uv_uint8, 0, -1))}
    assert QuantizedChartResult.decode(record) == q


# --- decode errors ------------------------------------------------------------------------------------------------

WHERE = "detection 17 (image 3)"


def good_record() -> dict[str, object]:
    return random_quantized(np.random.default_rng(9), 8, 5).encode()


def not_rgb_record() -> dict[str, object]:
    return {"uv_shape": [3, 8, 5], "uv_data": png_base64(np.zeros((8, 5), dtype=np.uint8))}


def truncated_png_record() -> dict[str, object]:
    raw = base64.b64decode(random_quantized(np.random.default_rng(3), 30, 30).encode()["uv_data"])
    return {"uv_shape": [3, 30, 30], "uv_data": base64.b64encode(raw[: len(raw) // 2]).decode()}


def bad_labels_record() -> dict[str, object]:
    array = np.zeros((8, 5, 3), dtype=np.uint8)
    array[2, 3, 0] = 25
    return {"uv_shape": [3, 8, 5], "uv_data": png_base64(array)}


def jpeg_record() -> dict[str, object]:
    stream = io.BytesIO()
    Image.fromarray(np.zeros((8, 5, 3), dtype=np.uint8)).save(stream, format="jpeg")
    return {"uv_shape": [3, 8, 5], "uv_data": base64.b64encode(stream.getvalue()).decode()}


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: {}, "uv_data: missing"),
        (lambda: {"uv_shape": [3, 8, 5]}, "uv_data: missing"),
        (lambda: {"uv_data": good_record()["uv_data"]}, "uv_shape: missing"),
        (lambda: {"shape_chw": [3, 8, 5]}, "labels_uv_str: missing"),
        (lambda: {**good_record(), "uv_shape": [8, 5]}, r"uv_shape: expected \[3, H, W\]"),
        (lambda: {**good_record(), "uv_shape": [3, 8.0, 5]}, r"uv_shape: expected \[3, H, W\]"),
        (lambda: {**good_record(), "uv_shape": [1, 8, 5]}, r"uv_shape: expected \[3, H, W\] with"),
        (lambda: {**good_record(), "uv_shape": [3, 0, 5]}, r"uv_shape: expected \[3, H, W\] with"),
        (lambda: {**good_record(), "uv_shape": [3, 5, 8]}, r"uv_data: the PNG is 8 x 5 \(H x W\)"),
        (lambda: {**good_record(), "uv_data": 12}, "uv_data: expected a base64 string, got int"),
        (lambda: {**good_record(), "uv_data": "iVBOR$$w0KGgo="}, "uv_data: bad base64"),
        (lambda: {**good_record(), "uv_data": "iVBORw0KGgoA"[:-1]}, "uv_data: bad base64"),
        (lambda: {**good_record(), "uv_data": base64.b64encode(b"GIF89a....").decode()}, "uv_data: not a PNG"),
        (jpeg_record, "uv_data: not a PNG"),
        (not_rgb_record, "uv_data: expected an 8-bit RGB PNG"),
        (truncated_png_record, "uv_data: corrupt PNG"),
        (bad_labels_record, r"uv_data: chart labels \(channel 0\) must be in 0\.\.24, got up to 25"),
        (lambda: {"shape_chw": [3, 8, 5], "labels_uv_str": "@@"}, "labels_uv_str: bad base64"),
    ],
)
def test_decode_errors_name_the_field(make, message: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match="^" + re.escape(WHERE) + ": " + message):
        QuantizedChartResult.decode(make(), WHERE)


def test_decode_error_without_where_starts_with_the_field() -> None:
    with pytest.raises(ValueError, match=r"^uv_data: bad base64"):
        QuantizedChartResult.decode({"uv_shape": [3, 1, 1], "uv_data": "!!"})


def test_decode_rejects_a_corrupted_deflate_stream() -> None:
    q = random_quantized(np.random.default_rng(4), 20, 20)
    raw = bytearray(base64.b64decode(q.encode()["uv_data"]))
    start = raw.index(b"IDAT") + 4
    raw[start + 10 : start + 20] = bytes(10)  # wipe part of the compressed pixel data
    record = {"uv_shape": [3, 20, 20], "uv_data": base64.b64encode(bytes(raw)).decode()}
    with pytest.raises(ValueError, match=r"^x: uv_data: corrupt PNG"):
        QuantizedChartResult.decode(record, "x")
