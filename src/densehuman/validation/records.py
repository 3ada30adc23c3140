"""Typed access to the fields of one JSON object, each failure an ``InputError`` naming the file, item and field."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, NoReturn

import numpy as np

from densehuman.validation.errors import InputError, describe

_MISSING = object()


def is_int(value: Any) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    return isinstance(value, int | float | np.number) and not isinstance(value, bool)


class Record:
    """One object of a file (``item``: e.g. ``"annotations[3] (id 17)"``) with checked getters."""

    def __init__(self, source: str, item: str, value: Any) -> None:
        self.source = source
        self.item = item
        if not isinstance(value, Mapping):
            raise InputError(source, f"expected an object, got {describe(value)}", item=item)
        self.value: Mapping[str, Any] = value

    def fail(self, field: str | None, problem: str) -> NoReturn:
        raise InputError(self.source, problem, item=self.item, field=field)

    def has(self, key: str) -> bool:
        return key in self.value

    def get(self, key: str, default: Any = _MISSING) -> Any:
        if key in self.value:
            return self.value[key]
        if default is _MISSING:
            self.fail(key, "missing")
        return default

    def integer(
        self, key: str, *, minimum: int | None = None, maximum: int | None = None, default: Any = _MISSING
    ) -> int:
        value = self.get(key, default)
        if not is_int(value):
            self.fail(key, f"expected an integer, got {describe(value)}")
        value = int(value)
        if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
            self.fail(key, f"{value} is outside {_range(minimum, maximum)}")
        return value

    def number(
        self, key: str, *, minimum: float | None = None, maximum: float | None = None, default: Any = _MISSING
    ) -> float:
        value = self.get(key, default)
        if not is_number(value) or not math.isfinite(float(value)):
            self.fail(key, f"expected a finite number, got {describe(value)}")
        value = float(value)
        if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
            self.fail(key, f"{value:g} is outside {_range(minimum, maximum)}")
        return value

    def string(self, key: str, *, nonempty: bool = True, default: Any = _MISSING) -> str:
        value = self.get(key, default)
        if not isinstance(value, str) or (nonempty and not value):
            self.fail(key, f"expected a{' non-empty' if nonempty else ''} string, got {describe(value)}")
        return value

    def flag(self, key: str, default: bool = False) -> bool:
        """A boolean written as true/false or 0/1 (COCO's ``iscrowd`` and ``*_valid`` fields)."""
        value = self.get(key, default)
        if value not in (0, 1) or (not isinstance(value, bool) and not is_int(value)):
            self.fail(key, f"expected 0 or 1 (or true / false), got {describe(value)}")
        return bool(value)

    def box_xywh(self, key: str = "bbox", *, default: Any = _MISSING) -> tuple[float, float, float, float]:
        """``[x, y, w, h]``: 4 finite numbers with non-negative width and height."""
        value = self.get(key, default)
        if not isinstance(value, list | tuple) or len(value) != 4 or not all(is_number(v) for v in value):
            self.fail(key, f"expected 4 numbers [x, y, w, h], got {describe(value)}")
        x, y, w, h = (float(v) for v in value)
        if not all(math.isfinite(v) for v in (x, y, w, h)):
            self.fail(key, f"non-finite value in {list(value)}")
        if w < 0 or h < 0:
            self.fail(key, f"negative width or height in {list(value)}")
        return x, y, w, h

    def numbers(
        self,
        key: str,
        *,
        length: int | None = None,
        multiple_of: int | None = None,
        minimum: float | None = None,
        maximum: float | None = None,
        integral: bool = False,
        default: Any = _MISSING,
    ) -> np.ndarray:
        """A list of finite numbers as a float64 array, with its length and range checked."""
        value = self.get(key, default)
        if not isinstance(value, list | tuple):
            self.fail(key, f"expected a list of numbers, got {describe(value)}")
        if not all(is_number(v) for v in value):
            bad = next(i for i, v in enumerate(value) if not is_number(v))
            self.fail(key, f"element {bad} is {describe(value[bad])}, not a number")
        array = np.asarray(value, dtype=np.float64).reshape(-1)
        if length is not None and array.size != length:
            self.fail(key, f"expected {length} numbers, got {array.size}")
        if multiple_of is not None and array.size % multiple_of:
            self.fail(key, f"expected a multiple of {multiple_of} numbers, got {array.size}")
        if not np.isfinite(array).all():
            self.fail(key, f"non-finite value at element {int(np.argmin(np.isfinite(array)))}")
        if integral and (array != np.round(array)).any():
            bad = int(np.argmax(array != np.round(array)))
            self.fail(key, f"element {bad} is {array[bad]}, not a whole number")
        low = minimum is not None and array.size and array.min() < minimum
        high = maximum is not None and array.size and array.max() > maximum
        if low or high:
            bad = int(np.argmin(array)) if low else int(np.argmax(array))
            self.fail(key, f"element {bad} is {array[bad]:g}, outside {_range(minimum, maximum)}")
        return array


def _range(minimum: float | None, maximum: float | None) -> str:
    if minimum is not None and maximum is not None:
        return f"[{minimum:g}, {maximum:g}]"
    if minimum is not None:
        return f"[{minimum:g}, inf)"
    return f"(-inf, {maximum:g}]"
