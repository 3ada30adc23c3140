"""COCO run-length encodings checked before pycocotools sees them.

pycocotools decodes an RLE in C without checking it: counts that do not add up to the mask's ``h * w`` write past
the mask (or leave it half filled), and a malformed counts string can turn into huge or negative runs. So every RLE
a reader accepts is checked here first: ``size`` is two non-negative integers, and the counts (a list of
integers, or COCO's compressed string) are non-negative and add up to ``h * w``.

The compressed strings are decoded for all RLEs of a file at once with NumPy (the format, from pycocotools'
``rleFrString``: each count is a little-endian group of 5-bit digits offset by 48, bit 0x20 meaning "more digits",
bit 0x10 of the last digit the sign; counts after the second are stored as differences to the count two before).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from densehuman.validation.records import is_int

MAX_DIGITS = 12  # 60 bits: far beyond any mask's run length
CHUNK_CHARS = 1 << 22  # characters decoded at once


def rle_problems(rles: Sequence[Any], size: tuple[int, int] | None = None) -> list[str | None]:
    """For each entry, ``None`` if it is a well-formed COCO RLE (of ``size`` (h, w) when given), else what is
    wrong with it."""
    problems: list[str | None] = [None] * len(rles)
    strings: list[tuple[int, bytes, int]] = []  # (entry, counts, h * w)
    for i, rle in enumerate(rles):
        if not isinstance(rle, Mapping) or "size" not in rle or "counts" not in rle:
            problems[i] = "not a COCO RLE (an object with 'size' and 'counts')"
            continue
        hw = rle["size"]
        if not isinstance(hw, list | tuple) or len(hw) != 2 or not (_size_int(hw[0]) and _size_int(hw[1])):
            problems[i] = f"size must be [height, width] (two non-negative integers), got {hw!r}"[:160]
            continue
        h, w = int(hw[0]), int(hw[1])
        if size is not None and (h, w) != tuple(size):
            problems[i] = f"size is [{h}, {w}], expected {list(size)}"
            continue
        counts = rle["counts"]
        if isinstance(counts, list):
            if not all(is_int(c) and c >= 0 for c in counts):
                problems[i] = "counts must be non-negative integers"
            elif sum(int(c) for c in counts) != h * w:
                problems[i] = f"counts add up to {sum(int(c) for c in counts)}, not height x width = {h * w}"
        elif isinstance(counts, str):
            try:
                strings.append((i, counts.encode("ascii"), h * w))
            except UnicodeEncodeError:
                problems[i] = "counts string has characters outside COCO's RLE alphabet"
        else:
            problems[i] = f"counts must be a string or a list of integers, got {type(counts).__name__}"
    start = 0
    while start < len(strings):  # in chunks of about CHUNK_CHARS characters: memory stays small
        stop, chars = start, 0
        while stop < len(strings) and (chars == 0 or chars + len(strings[stop][1]) <= CHUNK_CHARS):
            chars += len(strings[stop][1])
            stop += 1
        chunk = strings[start:stop]
        for (i, _, _), problem in zip(chunk, _check_strings(chunk), strict=True):
            problems[i] = problem
        start = stop
    return problems


def _size_int(value: Any) -> bool:
    return (type(value) is int and value >= 0) or (is_int(value) and value >= 0)


def _check_strings(strings: list[tuple[int, bytes, int]]) -> list[str | None]:
    lengths = np.array([len(s) for _, s, _ in strings], dtype=np.int64)
    total = np.array([t for _, _, t in strings], dtype=np.int64)
    out: list[str | None] = [None] * len(strings)
    chars = np.frombuffer(b"".join(s for _, s, _ in strings), dtype=np.uint8).astype(np.int64) - 48
    owner = np.repeat(np.arange(len(strings)), lengths)
    for k in np.unique(owner[(chars < 0) | (chars > 63)]):
        out[k] = "counts string has characters outside COCO's RLE alphabet"
    more = (chars & 0x20) != 0
    nonempty = lengths > 0
    ends = np.cumsum(lengths) - 1
    for k in np.nonzero(nonempty)[0][more[ends[nonempty]]]:
        out[k] = out[k] or "counts string ends in the middle of a number"
    # Only strings that end on a complete number are decoded: their numbers cannot run into the next string.
    keep = np.array([p is None for p in out])[owner] if owner.size else np.zeros(0, dtype=bool)
    chars, more, owner = chars[keep], more[keep], owner[keep]
    if chars.size:
        # Group the digits into numbers: a number ends at a digit without the "more" bit.
        last = ~more
        first = np.nonzero(np.r_[True, last[:-1]])[0]
        number = np.cumsum(np.r_[True, last[:-1]]) - 1
        digit = np.arange(chars.size) - first[number]
        for k in np.unique(owner[digit >= MAX_DIGITS]):
            out[k] = out[k] or "counts string holds a number too long to be a run length"
        digit = digit.clip(max=MAX_DIGITS - 1)
        values = np.add.reduceat((chars & 0x1F) << (5 * digit), first)
        width = np.add.reduceat(np.ones_like(digit), first).clip(max=MAX_DIGITS)
        negative = (chars[np.nonzero(last)[0]] & 0x10) != 0
        values = np.where(negative, values - (np.int64(1) << (5 * width)), values)
        # Undo the delta coding: count[m] += count[m - 2] for m > 2 (m counted within the string), i.e. the runs
        # at odd m are prefix sums of the odd values, those at even m >= 2 of the even ones from m = 2.
        string_of = owner[first]
        per_string = np.bincount(string_of, minlength=len(strings))
        number_start = np.r_[0, np.cumsum(per_string)[:-1]]
        m = np.arange(values.size) - number_start[string_of]
        runs = values.copy()
        for chosen in ((m % 2 == 1), (m % 2 == 0) & (m >= 2)):
            sums = np.cumsum(np.where(chosen, values, 0))
            before = np.where(number_start > 0, sums[number_start - 1], 0)
            runs = np.where(chosen, sums - before[string_of], runs)
        negative_run = np.bincount(string_of[runs < 0], minlength=len(strings)) > 0
        added: np.ndarray = np.bincount(string_of, weights=runs.astype(np.float64), minlength=len(strings))
    else:
        negative_run = np.zeros(len(strings), dtype=bool)
        added = np.zeros(len(strings), dtype=np.float64)
    added_int = np.rint(added).astype(np.int64)
    for k in np.nonzero(negative_run | (added_int != total))[0].tolist():
        if out[k] is not None:
            continue
        if negative_run[k]:
            out[k] = "counts string decodes to a negative run length"
        else:
            out[k] = f"counts add up to {int(added_int[k])}, not height x width = {int(total[k])}"
    return out
