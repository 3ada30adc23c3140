"""Streaming reader and writer of ``Pdist_matrix.pkl``, DensePose's pickled condensed geodesic distance table.

The file is a pickled dict ``{"Pdist_matrix": array (K, 1) float64}`` (metres, see ``geodesic_data``); the real table
holds 379,597,681 entries (3 GB), so it is never held in several copies.

``load_table_pickle`` reads the pickle with a restricted, streaming unpickler that leaves the array bytes on disk:
bytes stored raw (pickle protocol 3 and later, Python 2's ``BINSTRING``) are memory-mapped straight from the ``.pkl``;
bytes stored as text (protocol 2 written by Python 3, the format ``write_table_pickle`` writes) are transcoded chunk
by chunk into a plain ``.npy`` in ``densehuman.body.build.cache_dir() / "eval_data"`` (named by a hash of the
pickle's path, size and mtime), which this and later loads memory-map. Only globals a pickled numpy array needs are
accepted, so a pickle cannot run code.
"""

from __future__ import annotations

import codecs
import hashlib
import os
import pickle
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, BinaryIO, ClassVar

import numpy as np

from densehuman import atomic

_CHUNK = 1 << 24  # bytes per step when streaming the table


def load_table_pickle(path: Path, cache: bool = True) -> np.ndarray:
    """The distance table of the pickle at ``path``, (K,) or (K, 1) float, as a read-only memory map of the pickle
    or of its ``.npy`` transcoding in the cache folder.

    With ``cache=False`` a table pickled as text is transcoded into memory (one copy) instead of into the cache
    folder. Raises ``FileNotFoundError`` for a missing file and ``ValueError`` for anything but a pickled dict with a
    float array of shape (K,) or (K, 1) under ``"Pdist_matrix"``.
    """
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file (the pickled geodesic distance table)")
    from densehuman.body.build import cache_dir

    stat = path.stat()
    key = hashlib.sha256(f"{path.resolve()}\0{stat.st_size}\0{stat.st_mtime_ns}".encode()).hexdigest()[:24]
    cached = cache_dir() / "eval_data" / f"pdist_{key}.npy"
    if cache and cached.is_file():
        try:
            return _check_table(np.load(cached, mmap_mode="r", allow_pickle=False), cached)
        except (OSError, ValueError):
            pass  # a damaged cache file is rebuilt below
    table = _read_table_pickle(path)
    if isinstance(table.data, _Payload) and not table.data.utf8:
        if table.data.length != table.nbytes:
            raise ValueError(
                f"{path}: array data has {table.data.length} bytes, shape {table.shape} needs {table.nbytes}"
            )
        return np.memmap(path, table.dtype, "r", table.data.offset, table.shape)
    if cache:
        with atomic.replacing(cached) as out:
            header = {"descr": np.lib.format.dtype_to_descr(table.dtype), "fortran_order": False, "shape": table.shape}
            np.lib.format.write_array_header_1_0(out, header)
            for chunk in table.chunks(path):
                out.write(chunk)
        return _check_table(np.load(cached, mmap_mode="r", allow_pickle=False), cached)
    buffer = bytearray(table.nbytes)
    pos = 0
    for chunk in table.chunks(path):
        buffer[pos : pos + len(chunk)] = chunk
        pos += len(chunk)
    return np.frombuffer(buffer, dtype=table.dtype).reshape(table.shape)


def write_table_pickle(path: Path, pdist: np.ndarray) -> None:
    """Write ``{"Pdist_matrix": pdist as (K, 1) little-endian float64}`` to ``path`` atomically, streaming the data.

    Protocol 2 as Python 3 writes it, naming the numpy globals Python 2-era numpy knows: readable by
    ``pickle.load(f, encoding="latin1")`` (and Python 2's ``pickle.load``).
    """
    with atomic.replacing(path) as handle:
        _write_table_pickle(handle, pdist)


# ------------------------------------------------------------------------------------------------- reading
def _read_table_pickle(path: Path) -> _LazyArray:
    try:
        with path.open("rb") as handle:
            root = _TableUnpickler(handle).load()
    except Exception as err:  # a damaged pickle can fail in many ways; all mean the same to the caller
        raise ValueError(f"{path}: not a readable pickle of the distance table ({type(err).__name__}: {err})") from err
    if not isinstance(root, dict) or "Pdist_matrix" not in root:
        found = sorted(map(str, root)) if isinstance(root, dict) else type(root).__name__
        raise ValueError(f"{path}: want a dict with the key 'Pdist_matrix', got {found}")
    table = root["Pdist_matrix"]
    if not isinstance(table, _LazyArray):
        raise ValueError(f"{path}: 'Pdist_matrix' is a {type(table).__name__}, not a numpy array")
    return _check_table(table, path)


def _check_table(table: Any, where: Path) -> Any:
    shape = tuple(table.shape)
    if len(shape) not in (1, 2) or (len(shape) == 2 and shape[1] != 1) or np.dtype(table.dtype).kind != "f":
        raise ValueError(f"{where}: the distance table must be a float array of shape (K,) or (K, 1), got {shape}")
    return table


@dataclass(frozen=True)
class _Payload:
    """``length`` bytes of a pickle left on disk at ``offset``: raw bytes, or UTF-8 text of latin-1 characters
    (how Python 3 pickles bytes with protocol 2) that stands for the latin-1 encoding of that text."""

    offset: int
    length: int
    utf8: bool


class _LazyArray:
    """A numpy array the pickle describes, its data possibly still in the file (a ``_Payload``)."""

    def __init__(self, shape: tuple[int, ...] = (), dtype: Any = np.float64, data: Any = b"") -> None:
        self.shape, self.dtype, self.data = tuple(int(s) for s in shape), np.dtype(dtype), data

    def __setstate__(self, state: tuple[Any, ...]) -> None:  # numpy's (version, shape, dtype, fortran, data)
        shape, dtype, _fortran, data = state[-4:]  # a (K,) or (K, 1) array is laid out alike in C and F order
        self.shape, self.dtype, self.data = tuple(int(s) for s in shape), np.dtype(dtype), data

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) * self.dtype.itemsize

    def chunks(self, path: Path) -> Iterator[bytes]:
        """The array's bytes in pieces of at most about ``_CHUNK`` bytes, checked against its size."""
        data, total = self.data, 0
        if isinstance(data, _Payload):
            decoder = codecs.getincrementaldecoder("utf-8")() if data.utf8 else None
            with path.open("rb") as handle:
                handle.seek(data.offset)
                for start in range(0, data.length, _CHUNK):
                    piece = handle.read(min(_CHUNK, data.length - start))
                    if decoder is not None:
                        piece = decoder.decode(piece, final=start + _CHUNK >= data.length).encode("latin-1")
                    total += len(piece)
                    yield piece
        else:
            piece = data.encode("latin-1") if isinstance(data, str) else bytes(data)
            total = len(piece)
            yield piece
        if total != self.nbytes:
            raise ValueError(f"{path}: array data has {total} bytes, its shape {self.shape} needs {self.nbytes}")


def _reconstruct(_subtype: Any, _shape: Any, _code: Any) -> _LazyArray:
    return _LazyArray()


def _frombuffer(data: Any, dtype: Any, shape: tuple[int, ...], _order: str) -> _LazyArray:
    return _LazyArray(shape, dtype, data)


def _encode(text: Any, encoding: str = "utf-8", errors: str = "strict") -> Any:
    if isinstance(text, _Payload):
        if not text.utf8 or codecs.lookup(encoding).name != "iso8859-1":
            raise ValueError(f"unexpected encoding of array data ({encoding})")
        return text
    return codecs.encode(text, encoding, errors)


class _TableUnpickler(pickle._Unpickler):  # the pure-Python unpickler lets big payloads stay on disk
    """Loads numpy arrays as ``_LazyArray`` whose data (of 1 MiB or more) is a ``_Payload``; refuses other globals."""

    dispatch: ClassVar[dict[int, Any]] = dict(pickle._Unpickler.dispatch)
    _GLOBALS: ClassVar[dict[tuple[str, str], Any]] = {
        ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
        ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
        ("numpy.core.numeric", "_frombuffer"): _frombuffer,
        ("numpy._core.numeric", "_frombuffer"): _frombuffer,
        ("_codecs", "encode"): _encode,
        ("codecs", "encode"): _encode,
        ("numpy", "dtype"): np.dtype,
        ("numpy", "ndarray"): np.ndarray,
    }

    def __init__(self, handle: BinaryIO) -> None:
        super().__init__(handle, encoding="latin1")
        self._handle = handle
        self._size = os.fstat(handle.fileno()).st_size

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self._GLOBALS:
            raise pickle.UnpicklingError(f"unexpected object {module}.{name}")
        return self._GLOBALS[(module, name)]

    def _payload(self, length: int, utf8: bool) -> bytes | _Payload:
        if length < (1 << 20) or self._unframer.current_frame is not None:  # type: ignore[attr-defined]
            data: bytes = self.read(length)  # type: ignore[attr-defined]
            if len(data) != length:
                raise EOFError("the pickle ends inside a string")
            return data
        offset = self._handle.tell()
        if offset + length > self._size:
            raise EOFError(f"the pickle ends inside the array data ({self._size - offset} of {length} bytes)")
        self._handle.seek(length, os.SEEK_CUR)
        return _Payload(offset, length, utf8)

    def _push(self, fmt: str, utf8: bool, text: bool) -> None:
        (length,) = struct.unpack(fmt, self.read(struct.calcsize(fmt)))  # type: ignore[attr-defined]
        if length < 0:
            raise pickle.UnpicklingError("negative string length")
        data = self._payload(length, utf8)
        if isinstance(data, bytes) and text:
            self.append(str(data, "utf-8", "surrogatepass") if utf8 else data.decode("latin-1"))  # type: ignore[attr-defined]
        else:
            self.append(data)  # type: ignore[attr-defined]


for _opcode, _fmt, _utf8, _text in (
    (pickle.BINSTRING, "<i", False, True),
    (pickle.BINBYTES, "<I", False, False),
    (pickle.BINBYTES8, "<Q", False, False),
    (pickle.BYTEARRAY8, "<Q", False, False),
    (pickle.BINUNICODE, "<I", True, True),
    (pickle.BINUNICODE8, "<Q", True, True),
):
    _TableUnpickler.dispatch[_opcode[0]] = partial(_TableUnpickler._push, fmt=_fmt, utf8=_utf8, text=_text)


# ------------------------------------------------------------------------------------------------- writing
def _write_table_pickle(handle: BinaryIO, pdist: np.ndarray) -> None:
    """Pickle ``{"Pdist_matrix": pdist as (K, 1) little-endian float64}`` with protocol 2 as Python 3 would, but
    naming ``numpy.core.multiarray`` (which every numpy reads), streaming the data in chunks."""
    count = pdist.shape[0]
    flat = pdist.reshape(count)
    utf8_length = 0
    for start in range(0, count, _CHUNK // 8):
        piece = np.asarray(flat[start : start + _CHUNK // 8], dtype="<f8").view(np.uint8)
        utf8_length += piece.size + int(np.count_nonzero(piece >= 128))
    if utf8_length > 0xFFFFFFFF or count > 0x7FFFFFFF:
        raise ValueError(f"a table of {count} distances is too large for a protocol-2 pickle")

    def text(value: str) -> bytes:
        return pickle.BINUNICODE + struct.pack("<I", len(value.encode())) + value.encode()

    def glob(module: str, name: str) -> bytes:
        return pickle.GLOBAL + f"{module}\n{name}\n".encode()

    def latin1(data: bytes) -> bytes:
        return glob("_codecs", "encode") + data + text("latin1") + pickle.TUPLE2 + pickle.REDUCE

    dtype_state = text("<") + pickle.NONE * 3 + (pickle.BININT + struct.pack("<i", -1)) * 2 + pickle.BININT1 + b"\x00"
    handle.write(
        pickle.PROTO + b"\x02" + pickle.EMPTY_DICT + text("Pdist_matrix")
        + glob("numpy.core.multiarray", "_reconstruct") + glob("numpy", "ndarray")
        + pickle.BININT1 + b"\x00" + pickle.TUPLE1 + latin1(text("b")) + pickle.TUPLE3 + pickle.REDUCE
        + pickle.MARK + pickle.BININT1 + b"\x01"
        + pickle.BININT + struct.pack("<i", count) + pickle.BININT1 + b"\x01" + pickle.TUPLE2
        + glob("numpy", "dtype") + text("f8") + pickle.NEWFALSE + pickle.NEWTRUE + pickle.TUPLE3 + pickle.REDUCE
        + pickle.MARK + pickle.BININT1 + b"\x03" + dtype_state + pickle.TUPLE + pickle.BUILD
        + pickle.NEWFALSE + glob("_codecs", "encode") + pickle.BINUNICODE + struct.pack("<I", utf8_length)
    )  # fmt: skip
    for start in range(0, count, _CHUNK // 8):
        piece = np.asarray(flat[start : start + _CHUNK // 8], dtype="<f8")
        handle.write(piece.tobytes().decode("latin-1").encode("utf-8"))
    handle.write(
        text("latin1") + pickle.TUPLE2 + pickle.REDUCE + pickle.TUPLE + pickle.BUILD + pickle.SETITEM + pickle.STOP
    )
