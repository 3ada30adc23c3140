"""``densehuman evaluate`` on malformed ground truth and results: every case a clear one-line error naming the file,
the item and the field; no traceback; no figures written; nothing in the folder touched."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from malformed import Case, Replace, densepose_gt, edited, results, run_case, write_json

GT = densepose_gt()


def _ann(k: int = 0) -> Callable[[dict[str, Any]], dict[str, Any]]:
    return lambda d: d["annotations"][k]


def _set(path: Callable[[dict[str, Any]], dict[str, Any]], key: str, value: Any) -> Callable[[Any], None]:
    return lambda d: path(d).__setitem__(key, value)


def _drop(path: Callable[[dict[str, Any]], dict[str, Any]], key: str) -> Callable[[Any], None]:
    return lambda d: path(d).pop(key)


def _mask(k: int, value: Any) -> Callable[[Any], None]:
    return lambda d: d["annotations"][0]["dp_masks"].__setitem__(k, value)


def _image(k: int = 0) -> Callable[[dict[str, Any]], dict[str, Any]]:
    return lambda d: d["images"][k]


A0 = _ann(0)
# (id, edit of the ground truth, text the message must contain)
GT_EDITS: list[tuple[str, Callable[[Any], Any], str]] = [
    ("top-level list", lambda d: Replace([d]), "JSON object at the top level"),
    ("no images", _drop(lambda d: d, "images"), "'images'"),
    ("images not a list", _set(lambda d: d, "images", {"id": 1}), "'images' must be a list"),
    ("no annotations", _drop(lambda d: d, "annotations"), "'annotations'"),
    ("annotations a string", _set(lambda d: d, "annotations", "none"), "'annotations' must be a list"),
    ("categories not a list", _set(lambda d: d, "categories", 1), "'categories' must be a list"),
    ("category not an object", lambda d: d["categories"].append(7), "categories[1]"),
    ("category without id", _drop(lambda d: d["categories"][0], "id"), "categories[0]: id: missing"),
    ("category id twice", lambda d: d["categories"].append({"id": 1, "name": "x"}), "category id 1 appears twice"),
    ("category name a number", _set(lambda d: d["categories"][0], "name", 5), "name: expected a non-empty string"),
    ("image not an object", lambda d: d["images"].append("a.png"), "images[2]: expected an object"),
    ("image without id", _drop(_image(), "id"), "images[0]: id: missing"),
    ("image id a string", _set(_image(), "id", "1"), "images[0]: id: expected an integer"),
    ("image id a float", _set(_image(), "id", 1.5), "id: expected an integer"),
    ("image id a bool", _set(_image(), "id", True), "id: expected an integer"),
    ("image id twice", _set(_image(1), "id", 1), "image id 1 appears twice"),
    ("image height 0", _set(_image(), "height", 0), "height: 0 is outside"),
    ("image width negative", _set(_image(), "width", -80), "width: -80 is outside"),
    ("image width a string", _set(_image(), "width", "80"), "width: expected an integer"),
    ("image without height", _drop(_image(), "height"), "height: missing"),
    ("ignore regions garbage", _set(_image(), "ignore_regions_x", "x"), "ignore_regions_x"),
    ("ignore region polygon of strings", _set(_image(), "ignore_regions_x", [["a"]]), "ignore_regions_x[0]"),
    ("annotation not an object", lambda d: d["annotations"].append([1, 2]), "annotations[3]: expected an object"),
    ("annotation without id", _drop(A0, "id"), "annotations[0]: id: missing"),
    ("annotation id a bool", _set(A0, "id", False), "id: expected an integer"),
    ("annotation id twice", _set(_ann(1), "id", 1), "annotation id 1 appears twice"),
    ("image_id dangling", _set(A0, "image_id", 99), "image_id: 99 is not the id of an image"),
    ("image_id a string", _set(A0, "image_id", "1"), "image_id: expected an integer"),
    ("image_id missing", _drop(A0, "image_id"), "image_id: missing"),
    ("category_id missing", _drop(A0, "category_id"), "category_id: missing"),
    ("category_id dangling", _set(A0, "category_id", 2), "category_id: 2 is not a category"),
    ("bbox missing", _drop(A0, "bbox"), "bbox: missing"),
    ("bbox a string", _set(A0, "bbox", "10 8 30 40"), "bbox: expected 4 numbers"),
    ("bbox of 3 numbers", _set(A0, "bbox", [1, 2, 3]), "bbox: expected 4 numbers"),
    ("bbox of 5 numbers", _set(A0, "bbox", [1, 2, 3, 4, 5]), "bbox: expected 4 numbers"),
    ("bbox with a string", _set(A0, "bbox", [1, 2, "3", 4]), "bbox: expected 4 numbers"),
    ("bbox with null", _set(A0, "bbox", [1, 2, None, 4]), "bbox: expected 4 numbers"),
    ("bbox NaN", _set(A0, "bbox", [float("nan"), 2, 3, 4]), "bbox: non-finite"),
    ("bbox infinite", _set(A0, "bbox", [1, 2, float("inf"), 4]), "bbox: non-finite"),
    ("bbox negative width", _set(A0, "bbox", [1, 2, -3, 4]), "bbox: negative width or height"),
    ("bbox negative height", _set(A0, "bbox", [1, 2, 3, -4]), "bbox: negative width or height"),
    ("area missing", _drop(A0, "area"), "area: missing"),
    ("area negative", _set(A0, "area", -1), "area: -1 is outside"),
    ("area NaN", _set(A0, "area", float("nan")), "area: expected a finite number"),
    ("area a string", _set(A0, "area", "big"), "area: expected a finite number"),
    ("iscrowd 2", _set(A0, "iscrowd", 2), "iscrowd: expected 0 or 1"),
    ("iscrowd a string", _set(A0, "iscrowd", "no"), "iscrowd: expected 0 or 1"),
    ("dp_x missing, the rest there", _drop(A0, "dp_x"), "dp_x: missing"),
    ("dp_V missing", _drop(A0, "dp_V"), "dp_V: missing"),
    ("dp_I 0", _set(A0, "dp_I", [0, 2, 15]), "dp_I: element 0 is 0, outside [1, 24]"),
    ("dp_I 25", _set(A0, "dp_I", [2, 25, 15]), "dp_I: element 1 is 25, outside [1, 24]"),
    ("dp_I fractional", _set(A0, "dp_I", [2, 2.5, 15]), "dp_I: element 1 is 2.5, not a whole number"),
    ("dp_I strings", _set(A0, "dp_I", ["2", "2", "15"]), "dp_I: element 0 is str"),
    ("dp_U above 1", _set(A0, "dp_U", [0.2, 1.5, 0.9]), "dp_U: element 1 is 1.5"),
    ("dp_V negative", _set(A0, "dp_V", [-0.5, 0.5, 0.7]), "dp_V: element 0 is -0.5"),
    ("dp_x beyond 256", _set(A0, "dp_x", [100, 300, 150]), "dp_x: element 1 is 300"),
    ("dp_y NaN", _set(A0, "dp_y", [90, float("nan"), 180]), "dp_y: non-finite value"),
    ("dp_x a string", _set(A0, "dp_x", "100"), "dp_x: expected a list of numbers"),
    ("dp lists of other lengths", _set(A0, "dp_U", [0.2, 0.5]), "differ in length"),
    ("dp_masks not a list", _set(A0, "dp_masks", "masks"), "dp_masks: expected a list of 14"),
    ("dp_masks of 13 entries", lambda d: d["annotations"][0]["dp_masks"].pop(), "dp_masks: expected a list of 14"),
    ("dp_masks entry a string", _mask(0, "garbage"), "dp_masks[0]: not a COCO RLE"),
    ("dp_masks entry without counts", _mask(1, {"size": [256, 256]}), "dp_masks[1]: not a COCO RLE"),
    ("dp_masks counts a number", _mask(2, {"size": [256, 256], "counts": 5}), "dp_masks[2]: counts must be"),
    ("dp_masks counts bad characters", _mask(0, {"size": [256, 256], "counts": "~~~\x7f"}), "dp_masks[0]: counts"),
    ("dp_masks counts truncated", _mask(0, {"size": [256, 256], "counts": "ab"}), "dp_masks[0]: counts"),
    ("dp_masks counts too short", _mask(0, {"size": [256, 256], "counts": "0"}), "dp_masks[0]: counts add up"),
    ("dp_masks wrong size", _mask(0, {"size": [255, 256], "counts": "0"}), "dp_masks[0]: size is [255, 256]"),
    ("dp_masks size strings", _mask(0, {"size": ["256", "256"], "counts": "0"}), "dp_masks[0]: size must be"),
    ("dp_masks list counts too long", _mask(0, {"size": [256, 256], "counts": [65536, 1]}), "dp_masks[0]: counts"),
    ("dp_masks negative list counts", _mask(0, {"size": [256, 256], "counts": [-1, 65537]}), "non-negative"),
    ("segmentation a string", _set(A0, "segmentation", "poly"), "segmentation: expected polygons"),
    ("polygon of strings", _set(A0, "segmentation", [["1", "2"]]), "segmentation[0]"),
    ("polygon of two points", _set(A0, "segmentation", [[1, 2, 3, 4]]), "a polygon needs at least 3 points"),
    ("polygon of odd length", _set(A0, "segmentation", [[1, 2, 3, 4, 5, 6, 7]]), "multiple of 2"),
    ("segmentation RLE malformed", _set(A0, "segmentation", {"size": [64, 80], "counts": "zz"}), "segmentation"),
    ("segmentation RLE of another size", _set(A0, "segmentation", {"size": [2, 2], "counts": [4]}), "size is [2, 2]"),
    ("keypoints not a multiple of 3", _set(A0, "keypoints", [1, 2, 2, 4]), "keypoints: expected a multiple of 3"),
    ("keypoints visibility 3", _set(A0, "keypoints", [1, 2, 3]), "visibility 3"),
    ("keypoints NaN", _set(A0, "keypoints", [1, float("nan"), 2]), "keypoints: non-finite"),
    ("num_keypoints negative", _set(A0, "num_keypoints", -2), "num_keypoints: -2 is outside"),
]

RAW_GT: list[tuple[str, bytes, str]] = [
    ("empty file", b"", "empty file"),
    ("binary file", bytes(range(256)) * 4, "not UTF-8 text"),
    ("not JSON", b"images: []", "not valid JSON"),
    ("truncated JSON", b'{"images": [{"id": 1, "height": 2', "not valid JSON"),
    ("nested 100,000 deep", b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
    ("NaN as the whole file", b"NaN", "JSON object at the top level"),
]


def _evaluate(gt: Path, pred: Path, folder: Path) -> list[str]:
    return ["evaluate", "--gt", str(gt), "--pred", str(pred), "--out", str(folder / "figures.json"), "--quiet"]


def _gt_case(name: str, edit: Callable[[Any], Any], field: str) -> Case:
    def build(folder: Path) -> tuple[list[str], str]:
        gt = write_json(folder / "gt.json", edited(GT, edit))
        pred = write_json(folder / "pred.json", results(GT))
        return [
            "evaluate",
            "--gt",
            str(gt),
            "--pred",
            str(pred),
            "--out",
            str(folder / "figures.json"),
            "--quiet",
        ], str(gt)

    return Case(name, build, field)


def _raw_gt_case(name: str, data: bytes, field: str) -> Case:
    def build(folder: Path) -> tuple[list[str], str]:
        gt = folder / "gt.json"
        gt.write_bytes(data)
        pred = write_json(folder / "pred.json", results(GT))
        return [
            "evaluate",
            "--gt",
            str(gt),
            "--pred",
            str(pred),
            "--out",
            str(folder / "figures.json"),
            "--quiet",
        ], str(gt)

    return Case(name, build, field)


R0 = _ann  # results records are edited through the list
RESULT_EDITS: list[tuple[str, Callable[[Any], Any], str]] = [
    ("results an object", lambda r: Replace({"detections": r}), "a JSON list of detections"),
    ("detection not an object", lambda r: r.append("det"), "detection 3: expected an object"),
    ("image_id missing", lambda r: r[0].pop("image_id"), "detection 0: image_id: missing"),
    ("image_id a string", lambda r: r[0].__setitem__("image_id", "1"), "image_id: expected an integer"),
    ("image_id not in the ground truth", lambda r: r[1].__setitem__("image_id", 7), "image_id: 7 is not an image"),
    ("category_id of no ground-truth category", lambda r: [d.__setitem__("category_id", 2) for d in r], "category_id"),
    ("bbox a string", lambda r: r[0].__setitem__("bbox", "box"), "detection 0 (image 1): bbox: expected 4"),
    ("bbox NaN", lambda r: r[0].__setitem__("bbox", [float("nan"), 1, 2, 3]), "bbox: expected 4 finite numbers"),
    ("bbox negative", lambda r: r[0].__setitem__("bbox", [1, 1, -2, 3]), "bbox: negative width or height"),
    ("score missing", lambda r: r[0].pop("score"), "score: missing"),
    ("score NaN", lambda r: r[0].__setitem__("score", float("nan")), "score: expected a finite number"),
    ("score a string", lambda r: r[0].__setitem__("score", "high"), "score: expected a finite number"),
    ("uv_data missing", lambda r: r[0].pop("uv_data"), "uv_data"),
    ("uv_data not base64", lambda r: r[0].__setitem__("uv_data", "@@@@"), "uv_data"),
    ("uv_data not a PNG", lambda r: r[0].__setitem__("uv_data", "aGVsbG8="), "uv_data"),
    ("uv_shape of the wrong box grid", lambda r: r[0].__setitem__("bbox", [10.0, 8.0, 31.0, 40.0]), "uv_shape"),
    ("uv_shape garbage", lambda r: r[0].__setitem__("uv_shape", "3x40x30"), "uv_shape"),
    ("densepose field garbage", lambda r: r[0].__setitem__("densepose", 5), "densepose"),
]

RAW_RESULTS: list[tuple[str, bytes, str]] = [
    ("empty results", b"", "empty file"),
    ("binary results", b"\x89PNG\r\n\x1a\n" + bytes(300), "not UTF-8 text"),
    ("results not JSON", b"[{image_id: 1}]", "not valid JSON"),
    ("results nested deep", b"[" * 50_000 + b"]" * 50_000, "nested too deeply"),
]


def _results_case(name: str, edit: Callable[[Any], Any] | None, field: str, raw: bytes | None = None) -> Case:
    def build(folder: Path) -> tuple[list[str], str]:
        gt = write_json(folder / "gt.json", GT)
        pred = folder / "pred.json"
        if raw is not None:
            pred.write_bytes(raw)
        else:
            assert edit is not None
            write_json(pred, edited(results(GT), edit))
        return [
            "evaluate",
            "--gt",
            str(gt),
            "--pred",
            str(pred),
            "--out",
            str(folder / "figures.json"),
            "--quiet",
        ], str(pred)

    return Case(name, build, field)


CASES = (
    [_gt_case(*c) for c in GT_EDITS]
    + [_raw_gt_case(*c) for c in RAW_GT]
    + [_results_case(name, edit, field) for name, edit, field in RESULT_EDITS]
    + [_results_case(name, None, field, raw) for name, raw, field in RAW_RESULTS]
)


def test_the_valid_files_evaluate(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The cases break these files one thing at a time: untouched, they are scored (so each case fails for its
    own reason)."""
    from densehuman.cli import main

    gt = write_json(tmp_path / "gt.json", GT)
    pred = write_json(tmp_path / "pred.json", results(GT))
    assert main(["evaluate", "--gt", str(gt), "--pred", str(pred), "--out", str(tmp_path / "f.json"), "--quiet"]) == 0
    assert (tmp_path / "f.json").is_file()


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_malformed_evaluation_input(case: Case, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run_case(case, tmp_path, capsys)
