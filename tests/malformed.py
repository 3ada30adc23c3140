"""Running one malformed input through the command line and checking what a user must get back.

A ``Case`` builds its files in an empty folder and returns the command line. ``run_case`` runs it in-process and
asserts: a non-zero exit (or argparse's usage error), no exception escaping ``main`` (so no traceback), a message
that names the offending file (or option) and the field, and the folder exactly as it was before the command ran
(nothing left behind, nothing the user had overwritten).
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from pycocotools import mask as mask_utils

from densehuman.cli import main


@dataclass(frozen=True)
class Case:
    """``build(folder) -> argv``; the message must contain ``names`` (the file or option, as a string built by
    ``build``: use ``"{file}"`` to mean the path returned as ``case_file``) and ``field``."""

    id: str
    build: Callable[[Path], tuple[list[str], str]]  # (argv, the text naming the bad input)
    field: str


def snapshot(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
        for p in sorted(folder.rglob("*"))
    }


def run_case(case: Case, folder: Path, capsys: pytest.CaptureFixture[str]) -> str:
    argv, names = case.build(folder)
    before = snapshot(folder)
    capsys.readouterr()
    try:
        code = main(argv)
    except SystemExit as exit_info:  # argparse refusing an option value
        code = exit_info.code if isinstance(exit_info.code, int) else 2
    captured = capsys.readouterr()
    text = captured.out + captured.err
    assert code != 0, f"{case.id}: exit 0 for a malformed input; printed:\n{text}"
    assert "Traceback" not in text, f"{case.id}: traceback printed:\n{text}"
    assert names in text, f"{case.id}: the message does not name {names!r}:\n{text}"
    assert case.field in text, f"{case.id}: the message does not name the field {case.field!r}:\n{text}"
    after = snapshot(folder)
    added = sorted(set(after) - set(before))
    changed = sorted(k for k in before if after.get(k) != before[k])
    assert not added, f"{case.id}: left behind {added}"
    assert not changed, f"{case.id}: changed or removed {changed}"
    return text


# --- valid inputs the cases break -----------------------------------------------------------------------------------


def square_rle(size: int = 256) -> dict[str, Any]:
    m = np.zeros((size, size), np.uint8)
    m[60:200, 80:180] = 1
    rle = mask_utils.encode(np.asfortranarray(m))
    return {"size": [size, size], "counts": rle["counts"].decode()}


def densepose_gt() -> dict[str, Any]:
    """A small valid DensePose-COCO file: 2 images, 2 people with DensePose points and masks, one plain box."""
    dp = {
        "dp_x": [100.0, 128.0, 150.0],
        "dp_y": [90.0, 128.0, 180.0],
        "dp_I": [2, 2, 15],
        "dp_U": [0.2, 0.5, 0.9],
        "dp_V": [0.1, 0.5, 0.7],
        "dp_masks": [square_rle()] + [[] for _ in range(13)],
    }
    person = {"category_id": 1, "iscrowd": 0, "area": 1200.0, "num_keypoints": 0, "keypoints": [0] * 51}
    return {
        "images": [
            {"id": 1, "file_name": "a.png", "height": 64, "width": 80},
            {"id": 2, "file_name": "b.png", "height": 64, "width": 80},
        ],
        "categories": [{"id": 1, "name": "person", "supercategory": "person"}],
        "annotations": [
            {"id": 1, "image_id": 1, "bbox": [10.0, 8.0, 30.0, 40.0], "segmentation": [[10, 8, 40, 8, 40, 48]],
             **person, **dp},
            {"id": 2, "image_id": 2, "bbox": [5.0, 5.0, 20.0, 30.0], **person, **copy.deepcopy(dp)},
            {"id": 3, "image_id": 2, "bbox": [40.0, 10.0, 10.0, 20.0], **person},
        ],
    }  # fmt: skip


def results(gt: dict[str, Any]) -> list[dict[str, Any]]:
    """Perfect-looking results for ``densepose_gt``: one detection per annotation with a chart of its box grid."""
    from densehuman.evaluation.predictions import Detection, chart_shape
    from densehuman.structures import QuantizedChartResult

    out = []
    for k, ann in enumerate(gt["annotations"]):
        h, w = chart_shape(ann["bbox"])
        q = np.zeros((3, h, w), np.uint8)
        q[0, h // 4 : 3 * h // 4, w // 4 : 3 * w // 4] = 2
        out.append(
            Detection(ann["image_id"], 1, tuple(ann["bbox"]), 0.9 - 0.1 * k, QuantizedChartResult(q)).to_record()
        )
    return out


def write_json(path: Path, data: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
    return path


def write_image(path: Path, height: int = 64, width: int = 80, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    assert cv2.imwrite(str(path), rng.integers(0, 255, size=(height, width, 3), dtype=np.uint8))
    return path


@dataclass(frozen=True)
class Replace:
    """Returned by an edit that replaces the whole content (other edits change the copy in place)."""

    content: Any


def edited(base: Any, edit: Callable[[Any], Any]) -> Any:
    """``edit`` applied to a deep copy of ``base``: in place, or a ``Replace`` of the whole content."""
    data = copy.deepcopy(base)
    out = edit(data)
    return out.content if isinstance(out, Replace) else data
