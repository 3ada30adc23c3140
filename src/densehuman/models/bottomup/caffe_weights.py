"""Read Caffe ``.caffemodel`` files without Caffe or protoc, and load them into :class:`WholeBodyNet` by layer name.

A ``.caffemodel`` is a serialized ``caffe.NetParameter`` (protobuf 2). Only the fields needed for the weights are
decoded; everything else is skipped by wire type. Field numbers (BVLC ``src/caffe/proto/caffe.proto``):

* ``NetParameter``: ``layer = 100`` (``LayerParameter``), ``layers = 2`` (deprecated ``V1LayerParameter``).
* ``LayerParameter``: ``name = 1``, ``type = 2`` (string), ``blobs = 7``.
* ``V1LayerParameter``: ``name = 4``, ``type = 5`` (enum), ``blobs = 6``.
* ``BlobProto``: ``num = 1``, ``channels = 2``, ``height = 3``, ``width = 4`` (legacy 4-D shape), ``data = 5``
  (packed float), ``diff = 6``, ``shape = 7`` (``BlobShape``), ``double_data = 8`` (packed double).
* ``BlobShape``: ``dim = 1`` (packed int64).

Packed and unpacked encodings of repeated scalars are both accepted, as protobuf parsers must.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from torch import nn

from densehuman.models.bottomup.network import WholeBodyNet

_VARINT, _FIXED64, _BYTES, _FIXED32 = 0, 1, 2, 5


class CaffeModelError(ValueError):
    """A ``.caffemodel`` that cannot be decoded, or whose layers do not match the network."""


class _TruncatedError(Exception):
    pass


def _varint(buf: memoryview, pos: int, end: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= end:
            raise _TruncatedError("varint runs past the end of its message")
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7
        if shift >= 70:
            raise ValueError("varint longer than 10 bytes")


def _fields(buf: memoryview, start: int, end: int) -> Iterator[tuple[int, int, int | tuple[int, int]]]:
    """``(field number, wire type, value)``; the value of a length-delimited field is its ``(start, end)``."""
    pos = start
    while pos < end:
        key, pos = _varint(buf, pos, end)
        field, wire = key >> 3, key & 7
        if field == 0:
            raise ValueError("field number 0")
        if wire == _VARINT:
            value, pos = _varint(buf, pos, end)
            yield field, wire, value
        elif wire in (_FIXED64, _FIXED32):
            size = 8 if wire == _FIXED64 else 4
            if pos + size > end:
                raise _TruncatedError(f"fixed{size * 8} field {field} runs past the end of its message")
            yield field, wire, (pos, pos + size)
            pos += size
        elif wire == _BYTES:
            length, pos = _varint(buf, pos, end)
            if pos + length > end:
                raise _TruncatedError(f"field {field} of {length} bytes runs past the end of its message")
            yield field, wire, (pos, pos + length)
            pos += length
        else:
            raise ValueError(f"unsupported wire type {wire} (groups) in field {field}")


def _span(value: int | tuple[int, int], field: str) -> tuple[int, int]:
    if not isinstance(value, tuple):
        raise ValueError(f"{field} is not length-delimited")
    return value


def _int64(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value


def _scalars(buf: memoryview, wire: int, value: int | tuple[int, int], dtype: str, fixed_wire: int) -> np.ndarray:
    """A run of floats/doubles: packed (wire 2) or a single unpacked value (``fixed_wire``)."""
    if wire not in (_BYTES, fixed_wire):
        raise ValueError(f"float data with wire type {wire}")
    start, end = _span(value, "float data")
    size = np.dtype(dtype).itemsize
    if (end - start) % size:
        raise _TruncatedError(f"packed {dtype} data of {end - start} bytes is not a multiple of {size}")
    return np.frombuffer(buf[start:end], dtype=dtype)


def _blob(buf: memoryview, start: int, end: int) -> np.ndarray:
    legacy = [0, 0, 0, 0]
    shape: list[int] | None = None
    floats: list[np.ndarray] = []
    doubles: list[np.ndarray] = []
    for field, wire, value in _fields(buf, start, end):
        if field in (1, 2, 3, 4) and wire == _VARINT:
            assert isinstance(value, int)
            legacy[field - 1] = _int64(value)
        elif field == 5:
            floats.append(_scalars(buf, wire, value, "<f4", _FIXED32))
        elif field == 8:
            doubles.append(_scalars(buf, wire, value, "<f8", _FIXED64))
        elif field == 7:
            shape = []
            s, e = _span(value, "BlobProto.shape")
            for sub_field, sub_wire, dim in _fields(buf, s, e):
                if sub_field != 1:
                    continue
                if sub_wire == _VARINT:
                    assert isinstance(dim, int)
                    shape.append(_int64(dim))
                else:
                    ds, de = _span(dim, "BlobShape.dim")
                    pos = ds
                    while pos < de:
                        d, pos = _varint(buf, pos, de)
                        shape.append(_int64(d))
    dims = shape if shape is not None else legacy
    if any(d < 0 for d in dims):
        raise ValueError(f"negative blob dimension in {dims}")
    data = np.concatenate(floats) if floats else np.concatenate(doubles) if doubles else np.zeros(0, np.float32)
    if data.size != math.prod(dims):
        raise ValueError(f"blob of shape {tuple(dims)} holds {data.size} values")
    return data.astype(np.float32).reshape(dims)


def read_caffemodel(path: str | Path) -> dict[str, list[np.ndarray]]:
    """``{layer name: [blobs]}`` of every layer of a ``.caffemodel`` (new ``layer`` and V1 ``layers`` entries).

    Layers without blobs (ReLU, Pooling, Concat) map to empty lists. Raises :class:`CaffeModelError` naming the
    file when it is truncated, malformed or repeats a layer name.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise CaffeModelError(f"{path}: cannot read the file ({err})") from err
    buf = memoryview(raw)
    layers: dict[str, list[np.ndarray]] = {}
    try:
        for field, _, value in _fields(buf, 0, len(buf)):
            if field not in (100, 2):
                continue
            name_field, blobs_field = (1, 7) if field == 100 else (4, 6)
            start, end = _span(value, "layer")
            name: str | None = None
            blobs: list[np.ndarray] = []
            for sub_field, _, sub_value in _fields(buf, start, end):
                if sub_field == name_field:
                    s, e = _span(sub_value, "layer name")
                    name = bytes(buf[s:e]).decode("utf-8")
                elif sub_field == blobs_field:
                    blobs.append(_blob(buf, *_span(sub_value, "blob")))
            if name is None:
                raise ValueError("a layer has no name")
            if name in layers:
                raise ValueError(f"layer {name!r} appears twice")
            layers[name] = blobs
    except _TruncatedError as err:
        raise CaffeModelError(f"{path}: truncated or corrupt caffemodel ({err})") from err
    except (ValueError, UnicodeDecodeError) as err:
        raise CaffeModelError(f"{path}: not a valid caffemodel ({err})") from err
    return layers


def _strip_ones(shape: tuple[int, ...]) -> tuple[int, ...]:
    """Drop leading 1s: a legacy 4-D bias blob is (1, 1, 1, C)."""
    k = 0
    while k < len(shape) - 1 and shape[k] == 1:
        k += 1
    return shape[k:]


def load_caffe_weights(net: WholeBodyNet, path: str | Path) -> None:
    """Copy a ``.caffemodel``'s convolution weights/biases and PReLU slopes into ``net`` by Caffe layer name.

    Every parameter of ``net`` must belong to a Caffe-named layer (so a timm trunk cannot be loaded), every such
    layer must be in the file with matching blob shapes, and every layer of the file that has blobs must exist in
    ``net``. Otherwise a :class:`CaffeModelError` names the file and lists every problem, and nothing is copied.
    """
    layers = read_caffemodel(path)
    targets = net.caffe_layers()
    problems: list[str] = []
    covered = {id(p) for module in targets.values() for p in module.parameters()}
    orphans = [n for n, p in net.named_parameters() if id(p) not in covered]
    if orphans:
        problems.append(f"parameters without a Caffe layer: {', '.join(orphans)}")
    missing = sorted(n for n in targets if n not in layers or not layers[n])
    if missing:
        problems.append(f"layers missing from the file: {', '.join(missing)}")
    unexpected = sorted(n for n, blobs in layers.items() if blobs and n not in targets)
    if unexpected:
        problems.append(f"unexpected layers in the file: {', '.join(unexpected)}")
    copies: list[tuple[torch.Tensor, np.ndarray]] = []
    for name, module in targets.items():
        blobs = layers.get(name)
        if not blobs:
            continue
        params: list[torch.Tensor]
        if isinstance(module, nn.Conv2d):
            params = [module.weight] + ([module.bias] if module.bias is not None else [])
        elif isinstance(module, nn.PReLU):
            params = [module.weight]
        else:
            raise TypeError(f"layer {name} is a {type(module).__name__}, expected Conv2d or PReLU")
        if len(blobs) != len(params):
            problems.append(f"{name}: {len(blobs)} blobs in the file, the network has {len(params)}")
            continue
        for k, (param, blob) in enumerate(zip(params, blobs, strict=True)):
            if _strip_ones(tuple(blob.shape)) != _strip_ones(tuple(param.shape)):
                problems.append(
                    f"{name} blob {k}: shape {tuple(blob.shape)} in the file, {tuple(param.shape)} in the net"
                )
            else:
                copies.append((param, blob))
    if problems:
        raise CaffeModelError(f"{Path(path)}: cannot load into {type(net).__name__}:\n  " + "\n  ".join(problems))
    with torch.no_grad():
        for param, blob in copies:
            param.copy_(torch.from_numpy(blob.reshape(tuple(param.shape))).to(param.dtype))
