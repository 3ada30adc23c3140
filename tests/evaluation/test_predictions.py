"""Results files (load/save, errors) and predictions made from a synthetic dataset's labels."""

from __future__ import annotations

import itertools
import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from densehuman.body.charts import POINT_LABEL_SYMMETRIES
from densehuman.data.dense_png import read_inds, read_iuv
from densehuman.evaluation.predictions import (
    Detection,
    chart_shape,
    load_results,
    predictions_from_dataset,
    save_results,
)
from densehuman.structures import QuantizedChartResult
from densehuman.synth.engine import SynthJob, run_synth
from densehuman.synth.generator import SynthConfig

SYMMETRIC = np.asarray(POINT_LABEL_SYMMETRIES)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("predictions") / "ds"
    config = SynthConfig(size=(128, 128), max_people=3)
    run_synth(SynthJob(root, images=4, val_fraction=0.25, config=config, workers=1, preview_count=0), progress=False)
    return root


def load_gt(dataset: Path, split: str) -> dict[str, Any]:
    """A split's annotations in (image id, annotation id) order and each image's label maps (I, Uq, Vq, INDS)."""
    data = json.loads((dataset / "annotations" / f"densepose_{split}.json").read_text())
    anns = sorted(data["annotations"], key=lambda a: (a["image_id"], a["id"]))
    maps = {}
    for image in data["images"]:
        stem = Path(image["file_name"]).stem
        chart, u, v = read_iuv(dataset / "dense" / split / f"{stem}_IUV.png")
        inds = read_inds(dataset / "dense" / split / f"{stem}_INDS.png")
        maps[image["id"]] = (chart, np.rint(u * 255).astype(np.uint8), np.rint(v * 255).astype(np.uint8), inds)
    return {"anns": anns, "maps": maps}


@pytest.fixture(scope="module")
def gt(dataset: Path) -> dict[str, Any]:
    return load_gt(dataset, "train")


@pytest.fixture(scope="module")
def perfect(dataset: Path) -> list[Detection]:
    return predictions_from_dataset(dataset, "train")


def instance_index(anns: list[dict[str, Any]], ann: dict[str, Any]) -> int:
    """k of ``ann`` in its image (1-based, annotation-id order): its value in the INDS map."""
    same = [a["id"] for a in anns if a["image_id"] == ann["image_id"]]
    return sorted(same).index(ann["id"]) + 1


def paste(det: Detection, height: int, width: int) -> np.ndarray:
    """The detection's (3, H, W) chart pasted into a zero (3, height, width) image at (int(x), int(y))."""
    assert det.chart is not None
    out = np.zeros((3, height + 2 * 256, width + 2 * 256), dtype=np.uint8)
    q = det.chart.labels_uv_uint8
    x0, y0 = int(det.bbox[0]) + 256, int(det.bbox[1]) + 256
    out[:, y0 : y0 + q.shape[1], x0 : x0 + q.shape[2]] = q
    return out[:, 256 : 256 + height, 256 : 256 + width]


# --- predictions_from_dataset ----------------------------------------------------------------------------------


@pytest.mark.parametrize("split", ["train", "val"])
def test_perfect_predictions_reproduce_the_dense_pngs(dataset: Path, split: str) -> None:
    gt = load_gt(dataset, split)
    anns = gt["anns"]
    perfect = predictions_from_dataset(dataset, split)
    assert len(perfect) == len(anns) >= 3
    assert any("dp_I" not in a for a in anns)  # people without DensePose points are predicted too
    scores = [d.score for d in perfect]
    assert scores[0] == 1.0
    assert all(a > b > 0 for a, b in itertools.pairwise(scores))
    for det, ann in zip(perfect, anns, strict=True):
        assert det.image_id == ann["image_id"]
        assert det.category_id == ann["category_id"] == 1
        assert det.bbox == tuple(ann["bbox"])
        assert det.chart is not None
        assert det.chart.shape == (int(ann["bbox"][3]), int(ann["bbox"][2]))
        chart, uq, vq, inds = gt["maps"][ann["image_id"]]
        mask = inds == instance_index(anns, ann)
        assert mask.any()
        pasted = paste(det, *inds.shape)
        np.testing.assert_array_equal(pasted[0], np.where(mask, chart, 0))
        np.testing.assert_array_equal(pasted[1], np.where(mask & (chart > 0), uq, 0))
        np.testing.assert_array_equal(pasted[2], np.where(mask & (chart > 0), vq, 0))


def test_split_selects_the_images(dataset: Path, perfect: list[Detection]) -> None:
    val = predictions_from_dataset(dataset, "val")
    val_ids = {im["id"] for im in json.loads((dataset / "annotations" / "densepose_val.json").read_text())["images"]}
    assert len(val_ids) == 1
    assert val
    assert {d.image_id for d in val} == val_ids
    assert not val_ids & {d.image_id for d in perfect}


def test_same_rng_same_output_and_different_rng_differs(dataset: Path) -> None:
    knobs: dict[str, Any] = {"box_jitter": 0.1, "uv_noise": 0.05, "part_swap": 0.5, "drop": 0.2}
    a = predictions_from_dataset(dataset, "train", rng=np.random.default_rng(3), **knobs)
    b = predictions_from_dataset(dataset, "train", rng=np.random.default_rng(3), **knobs)
    c = predictions_from_dataset(dataset, "train", rng=np.random.default_rng(4), **knobs)
    assert a == b
    assert a != c


def test_drop_removes_detections_and_keeps_the_others(dataset: Path, perfect: list[Detection]) -> None:
    assert predictions_from_dataset(dataset, "train", rng=np.random.default_rng(0), drop=1.0) == []
    kept_counts = set()
    for seed in range(6):
        kept = predictions_from_dataset(dataset, "train", rng=np.random.default_rng(seed), drop=0.5)
        kept_counts.add(len(kept))
        for det in kept:
            assert det in perfect  # same box, score and chart as the unperturbed detection
    assert len(kept_counts) > 1  # some people dropped, how many depends on the generator


def flipped(det: Detection) -> np.ndarray:
    assert det.chart is not None
    q = det.chart.labels_uv_uint8.astype(np.int64)
    labelled = q[0] > 0
    return np.stack([SYMMETRIC[q[0]], np.where(labelled, 255 - q[1], 0), q[2]]).astype(np.uint8)


def test_flip_lr_mirrors_every_chart(dataset: Path, perfect: list[Detection]) -> None:
    flip = predictions_from_dataset(dataset, "train", flip_lr=True)
    assert len(flip) == len(perfect)
    changed = 0
    for f, p in zip(flip, perfect, strict=True):
        assert f.bbox == p.bbox
        assert f.chart is not None
        assert p.chart is not None
        np.testing.assert_array_equal(f.chart.labels_uv_uint8, flipped(p))
        np.testing.assert_array_equal(flipped(f), p.chart.labels_uv_uint8)  # an involution
        changed += int(np.count_nonzero(f.chart.labels != p.chart.labels))
    assert changed > 0
    assert predictions_from_dataset(dataset, "train", rng=np.random.default_rng(0), part_swap=1.0) == flip


def test_part_swap_mirrors_some_people(dataset: Path, perfect: list[Detection]) -> None:
    swapped_counts = set()
    for seed in range(5):
        swap = predictions_from_dataset(dataset, "train", rng=np.random.default_rng(seed), part_swap=0.5)
        n = 0
        for s, p in zip(swap, perfect, strict=True):
            assert s.chart is not None
            assert p.chart is not None
            is_perfect = s.chart == p.chart
            is_flipped = np.array_equal(s.chart.labels_uv_uint8, flipped(p))
            assert is_perfect or is_flipped
            n += int(not is_perfect)
        swapped_counts.add(n)
    assert len(swapped_counts) > 1


def test_uv_noise_perturbs_uv_only(dataset: Path, perfect: list[Detection]) -> None:
    sigma = 0.05
    noisy = predictions_from_dataset(dataset, "train", rng=np.random.default_rng(1), uv_noise=sigma)
    diffs = []
    for n, p in zip(noisy, perfect, strict=True):
        assert n.chart is not None
        assert p.chart is not None
        np.testing.assert_array_equal(n.chart.labels, p.chart.labels)
        labelled = p.chart.labels > 0
        assert not n.chart.labels_uv_uint8[1:, ~labelled].any()
        inside = (p.chart.labels_uv_uint8[1:] > 20) & (p.chart.labels_uv_uint8[1:] < 235) & labelled
        diffs.append((n.chart.labels_uv_uint8[1:].astype(float) - p.chart.labels_uv_uint8[1:])[inside] / 255)
    d = np.concatenate(diffs)
    assert d.size > 1000
    # truncating quantization shifts the mean by about half a step; the spread is the noise
    assert abs(d.mean() + 0.5 / 255) < 0.01
    assert 0.9 * sigma < d.std() < 1.1 * sigma


def test_box_jitter_moves_boxes_and_masks_together(dataset: Path, gt: dict[str, Any], perfect: list[Detection]) -> None:
    jit = predictions_from_dataset(dataset, "train", rng=np.random.default_rng(2), box_jitter=0.2)
    anns = gt["anns"]
    moved = 0
    for det, p, ann in zip(jit, perfect, anns, strict=True):
        chart, _, _, inds = gt["maps"][ann["image_id"]]
        height, width = inds.shape
        x, y, w, h = det.bbox
        assert min(x, y) >= 0
        assert x + w <= width + 1e-9
        assert y + h <= height + 1e-9
        assert det.chart is not None
        assert det.chart.shape == chart_shape(det.bbox)
        moved += int(det.bbox != p.bbox)
        # the chart is the person's label map seen through the jittered box grid
        x0, y0 = int(x), int(y)
        rows, cols = det.chart.shape
        window = np.zeros((rows, cols), dtype=np.uint8)
        crop_i = chart[y0 : y0 + rows, x0 : x0 + cols]
        crop_k = inds[y0 : y0 + rows, x0 : x0 + cols] == instance_index(anns, ann)
        window[: crop_i.shape[0], : crop_i.shape[1]] = np.where(crop_k, crop_i, 0)
        np.testing.assert_array_equal(det.chart.labels, window)
    assert moved == len(jit)


def test_random_charts_cover_the_person_mask(dataset: Path, gt: dict[str, Any], perfect: list[Detection]) -> None:
    rand = predictions_from_dataset(dataset, "train", rng=np.random.default_rng(5), random=True)
    anns = gt["anns"]
    agree, total = 0, 0
    for r, p, ann in zip(rand, perfect, anns, strict=True):
        assert r.bbox == p.bbox
        inds = gt["maps"][ann["image_id"]][3]
        mask = paste(r, *inds.shape)[0] > 0
        np.testing.assert_array_equal(mask, inds == instance_index(anns, ann))
        assert r.chart is not None
        assert p.chart is not None
        labelled = r.chart.labels > 0
        assert r.chart.labels.max() <= 24
        agree += int(np.count_nonzero((r.chart.labels == p.chart.labels) & labelled))
        total += int(np.count_nonzero(labelled))
        u = r.chart.labels_uv_uint8[1][labelled]
        assert 100 < u.mean() < 155
    assert total > 1000
    assert agree / total < 0.1  # chance is 1/24


def test_knob_errors(dataset: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="pass rng"):
        predictions_from_dataset(dataset, "train", uv_noise=0.1)
    with pytest.raises(ValueError, match=r"drop is a probability in \[0, 1\]"):
        predictions_from_dataset(dataset, "train", rng=np.random.default_rng(0), drop=1.5)
    with pytest.raises(ValueError, match="box_jitter must be a finite number >= 0"):
        predictions_from_dataset(dataset, "train", rng=np.random.default_rng(0), box_jitter=-0.1)
    with pytest.raises(FileNotFoundError, match=r"densepose_test\.json: no such file"):
        predictions_from_dataset(dataset, "test")
    with pytest.raises(FileNotFoundError, match=r"densepose_val\.json: no such file"):
        predictions_from_dataset(tmp_path)


# --- results files ------------------------------------------------------------------------------------------------


def test_save_load_round_trip(tmp_path: Path, perfect: list[Detection]) -> None:
    path = tmp_path / "res.json"
    save_results(path, perfect)
    records = json.loads(path.read_text())
    assert isinstance(records, list)
    assert set(records[0]) == {"image_id", "category_id", "bbox", "score", "uv_shape", "uv_data"}
    assert "\n" in records[0]["uv_data"]
    assert [r["uv_shape"] for r in records] == [[3, *d.chart.shape] for d in perfect if d.chart is not None]
    assert [r["bbox"] for r in records] == [list(d.bbox) for d in perfect]
    back = load_results(path, image_ids=[1, 3, 4])
    assert back == perfect
    assert [p.name for p in tmp_path.iterdir()] == ["res.json"]  # no temporary file left


def test_chart_shape_truncates_like_detectron2() -> None:
    assert chart_shape((1.5, 2.5, 14.99, 0.5)) == (1, 14)
    assert chart_shape((0, 0, 215, 342)) == (342, 215)  # the challenge's example: bbox w, h -> uv_shape [3, h, w]
    q = QuantizedChartResult(np.zeros((3, 5, 4), dtype=np.uint8))
    assert Detection(1, 1, (0.7, 0.2, 4.9, 5.99), 0.5, q).bbox == (0.7, 0.2, 4.9, 5.99)
    with pytest.raises(ValueError, match=r"chart is 5 x 4 \(H x W\), the box .* needs 5 x 5"):
        Detection(1, 1, (0.7, 0.2, 5.0, 5.99), 0.5, q)


def chart_record(h: int, w: int) -> dict[str, Any]:
    q = QuantizedChartResult(np.zeros((3, h, w), dtype=np.uint8))
    return {"image_id": 1, "category_id": 1, "bbox": [2.0, 3.0, float(w) + 0.5, float(h)], "score": 0.9, **q.encode()}


def test_load_detectron2_style_records(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    q = np.stack([rng.integers(0, 25, (6, 4)), rng.integers(0, 256, (6, 4)), rng.integers(0, 256, (6, 4))])
    chart = QuantizedChartResult(q.astype(np.uint8))
    enc = chart.encode()
    record = {"image_id": 7, "category_id": 1, "bbox": [1, 2, 4.2, 6.9], "score": 1}
    record["densepose"] = {"shape_chw": enc["uv_shape"], "labels_uv_str": enc["uv_data"]}
    path = tmp_path / "d2.json"
    path.write_text(json.dumps([record]))
    (det,) = load_results(path)
    assert det == Detection(7, 1, (1.0, 2.0, 4.2, 6.9), 1.0, chart)


def test_charts_can_be_optional(tmp_path: Path) -> None:
    path = tmp_path / "boxes.json"
    path.write_text(json.dumps([{"image_id": 1, "category_id": 1, "bbox": [0, 0, 3, 3], "score": 0.5}]))
    with pytest.raises(ValueError, match=r"detection 0 \(image 1\): uv_data: missing"):
        load_results(path)
    (det,) = load_results(path, require_charts=False)
    assert det.chart is None
    save_results(tmp_path / "again.json", [det])
    assert load_results(tmp_path / "again.json", require_charts=False) == [det]


GOOD = chart_record(4, 3)


@pytest.mark.parametrize(
    ("records", "message"),
    [
        ({"a": 1}, "a results file is a JSON list of detections, got a dict"),
        ([GOOD, 5], "detection 1: expected an object, got int"),
        ([{k: v for k, v in GOOD.items() if k != "image_id"}], "detection 0: image_id: missing"),
        ([{**GOOD, "image_id": "1"}], "detection 0: image_id: expected an integer, got str '1'"),
        ([{**GOOD, "image_id": 1.0}], "detection 0: image_id: expected an integer, got float 1.0"),
        ([GOOD, {**GOOD, "image_id": 99}], r"detection 1 \(image 99\): image_id: 99 is not an image of the"),
        ([{**GOOD, "category_id": True}], r"detection 0 \(image 1\): category_id: expected an integer, got bool"),
        ([{k: v for k, v in GOOD.items() if k != "bbox"}], r"detection 0 \(image 1\): bbox: missing"),
        ([{**GOOD, "bbox": [1, 2, 3]}], r"detection 0 \(image 1\): bbox: expected 4 finite numbers"),
        ([{**GOOD, "bbox": [1, 2, "3", 4]}], r"detection 0 \(image 1\): bbox: expected 4 finite numbers"),
        ([{**GOOD, "bbox": [1, 2, 3.5, -4]}], r"detection 0 \(image 1\): bbox: negative width or height"),
        ([{**GOOD, "score": "high"}], r"detection 0 \(image 1\): score: expected a finite number, got str"),
        ([{**GOOD, "score": None}], r"detection 0 \(image 1\): score: expected a finite number, got null"),
        ([{**GOOD, "bbox": [2, 3, 4.0, 4]}], r"detection 0 \(image 1\): uv_shape: the chart is 4 x 3 \(H x W\) but"),
        ([{**GOOD, "uv_data": "%%"}], r"detection 0 \(image 1\): uv_data: bad base64"),
        ([{**GOOD, "uv_shape": [3, 4]}], r"detection 0 \(image 1\): uv_shape: expected \[3, H, W\]"),
        (
            [{**GOOD, "densepose": {"shape_chw": [3, 4, 3]}}],
            r"detection 0 \(image 1\): densepose: labels_uv_str: missing",
        ),
        ([{**GOOD, "densepose": 3}], r"detection 0 \(image 1\): densepose: expected an object"),
    ],
)
def test_malformed_results_name_the_detection_and_field(tmp_path: Path, records: Any, message: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(records))
    with pytest.raises(ValueError, match="^" + re.escape(str(path)) + ": " + message):
        load_results(path, image_ids=[1, 2, 3])


def test_non_finite_and_malformed_json(tmp_path: Path) -> None:
    path = tmp_path / "nan.json"
    path.write_text('[{"image_id": 1, "category_id": 1, "bbox": [0, 0, NaN, 1], "score": 1}]')
    with pytest.raises(ValueError, match=r"detection 0 \(image 1\): bbox: expected 4 finite numbers"):
        load_results(path)
    path.write_text('[{"image_id": 1,')
    with pytest.raises(ValueError, match=re.escape(str(path)) + r": not valid JSON: .* at line 1, column 17"):
        load_results(path)
    with pytest.raises(FileNotFoundError, match=r"missing\.json: no such results file"):
        load_results(tmp_path / "missing.json")
