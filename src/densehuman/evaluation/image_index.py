"""Results written by ``densehuman predict`` number their images 1, 2, ... and list them in an ``images.json`` beside
the results file (``{"id", "file_name", ...}`` each). Evaluation maps those ids to the ground truth's own ids by
file name (the stem: ``photos/000000000005.jpg`` is the ground truth's ``000000000005.jpg``)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from densehuman.validation import InputError, read_json
from densehuman.validation.errors import describe


def read_image_index(path: str | Path, by_name: Mapping[str, int], ground_truth: str) -> dict[int, int]:
    """Results image id -> ground-truth image id, from the ``images.json`` at ``path``; ``by_name`` maps the ground
    truth's file stems to its ids. An image the ground truth does not have is an error (its detections could not
    be scored); ``ground_truth`` names it in that message."""
    path = Path(path)
    data = read_json(path, "image list")
    if not isinstance(data, list):
        raise InputError(path, f"an image list is a JSON list of {{'id', 'file_name'}} objects, got {describe(data)}")
    index: dict[int, int] = {}
    for i, record in enumerate(data):
        item = f"images[{i}]"
        if not isinstance(record, Mapping):
            raise InputError(path, f"expected an object, got {describe(record)}", item=item)
        image_id = record.get("id")
        if isinstance(image_id, bool) or not isinstance(image_id, int):
            raise InputError(path, f"expected an integer, got {describe(image_id)}", item=item, field="id")
        item = f"images[{i}] (id {image_id})"
        name = record.get("file_name")
        if not isinstance(name, str) or not name:
            raise InputError(path, f"expected a file name, got {describe(name)}", item=item, field="file_name")
        if image_id in index:
            raise InputError(path, "listed twice", item=item, field="id")
        stem = Path(name).stem
        if stem not in by_name:
            raise InputError(path, f"{name!r} is not an image of {ground_truth}", item=item, field="file_name")
        index[image_id] = by_name[stem]
    return index


def beside(results: str | Path) -> Path | None:
    """The ``images.json`` next to a results file, if there is one."""
    candidate = Path(results).parent / "images.json"
    return candidate if candidate.is_file() else None
