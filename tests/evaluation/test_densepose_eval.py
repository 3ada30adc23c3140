"""DensePose evaluation: known answers on crafted cases, the official matching rules, and whole-dataset sanity."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from scipy.spatial.distance import cdist

from densehuman.cli import main
from densehuman.evaluation.densepose import DensePoseEvalConfig, DensePoseEvaluation, load_ground_truth
from densehuman.evaluation.geodesic_data import GeodesicEvalData, from_body_surface
from densehuman.evaluation.gps import (
    COARSE_PARTS,
    MEAN_DISTANCES,
    PredictedVertexTable,
    gps_matrix,
    prepare_gt_points,
)
from densehuman.evaluation.matching import ImageSimilarity, accumulate, evaluate_image, iou_thresholds, summarize
from densehuman.evaluation.predictions import Detection, predictions_from_dataset, save_results
from densehuman.synth.engine import SynthJob, run_synth
from densehuman.synth.generator import SynthConfig

# A toy body: chart 1 has UV vertices at (0.1, 0.1) and (0.9, 0.9) (table vertices 1 and 2), chart 2 one vertex at
# (0.5, 0.5) (table vertex 3); d(1,2) = 0.1 m, d(1,3) = 0.2 m, d(2,3) = 0.3 m.
TOY = GeodesicEvalData(
    name="toy",
    part_ids=np.array([1, 1, 2]),
    uv=np.array([[0.1, 0.1], [0.9, 0.9], [0.5, 0.5]]),
    transform=np.array([1, 2, 3]),
    pdist=np.array([[0.1], [0.2], [0.3]]),
)


def _toy_gt(points: list[tuple[float, float, int, float, float]], bbox: list[float]) -> dict[str, Any]:
    return {
        "id": 1,
        "image_id": 1,
        "category_id": 1,
        "bbox": bbox,
        "area": bbox[2] * bbox[3],
        "iscrowd": 0,
        "dp_x": [p[0] for p in points],
        "dp_y": [p[1] for p in points],
        "dp_I": [float(p[2]) for p in points],
        "dp_U": [p[3] for p in points],
        "dp_V": [p[4] for p in points],
    }


def test_gps_of_a_hand_computed_case() -> None:
    # Three GT points in a 255 x 255 box at the origin, so dp_x / 255 * w = dp_x pixels (the official scaling).
    gt = _toy_gt(
        [(10.0, 20.0, 1, 0.12, 0.1), (100.0, 50.0, 1, 0.88, 0.9), (200.0, 200.0, 2, 0.5, 0.5)], [0, 0, 255, 255]
    )
    chart = np.zeros((3, 255, 255), dtype=np.uint8)
    chart[:, 20, 10] = (1, 230, 230)  # says chart 1 near (0.9, 0.9): vertex 2 where the GT is at vertex 1 -> 0.1 m
    chart[:, 50, 100] = (1, 229, 229)  # vertex 2, same as the GT -> 0 m
    chart[:, 200, 200] = (0, 0, 0)  # background where the GT has chart 2 -> infinitely wrong
    (points,) = prepare_gt_points([gt], TOY, kappa=None)
    np.testing.assert_array_equal(points.vertex, [1, 2, 3])
    gps = gps_matrix([points], np.array([[0.0, 0.0, 255.0, 255.0]]), [chart], TOY, PredictedVertexTable(TOY))
    k_torso = MEAN_DISTANCES[COARSE_PARTS[1]]
    expected = (math.exp(-(0.1**2) / (2 * k_torso**2)) + 1.0 + 0.0) / 3
    assert gps[0, 0] == pytest.approx(expected, abs=1e-15)
    # The paper's single kappa.
    (points,) = prepare_gt_points([gt], TOY, kappa=0.255)
    gps = gps_matrix([points], np.array([[0.0, 0.0, 255.0, 255.0]]), [chart], TOY, PredictedVertexTable(TOY))
    assert gps[0, 0] == pytest.approx((math.exp(-(0.1**2) / (2 * 0.255**2)) + 1.0) / 3, abs=1e-15)
    # A detection box that misses every GT point scores 0; one shifted by 1 px reads the neighbouring pixels.
    far = gps_matrix([points], np.array([[300.0, 300.0, 50.0, 50.0]]), [chart], TOY, PredictedVertexTable(TOY))
    assert far[0, 0] == 0.0


def test_official_point_scaling_quirk() -> None:
    """Points are read with dp_x * w / 255 and truncated: in a 510-px box, dp_x = 255 lands on pixel 510 (outside)."""
    gt = _toy_gt([(255.0, 0.0, 1, 0.1, 0.1)], [0, 0, 510, 10])
    chart = np.zeros((3, 10, 510), dtype=np.uint8)
    chart[:] = np.array([1, 25, 25], dtype=np.uint8)[:, None, None]
    (p255,) = prepare_gt_points([gt], TOY, kappa=None)
    (p256,) = prepare_gt_points([gt], TOY, kappa=None, point_scale=256.0)
    box = np.array([[0.0, 0.0, 510.0, 10.0]])
    assert gps_matrix([p255], box, [chart], TOY, PredictedVertexTable(TOY))[0, 0] == 0.0
    assert gps_matrix([p256], box, [chart], TOY, PredictedVertexTable(TOY))[0, 0] == 1.0


def _sim(
    sim: list[list[float]],
    box: list[list[float]],
    ignore: list[bool],
    scores: list[float],
    crowd: list[bool] | None = None,
) -> ImageSimilarity:
    n_dt, n_gt = len(scores), len(ignore)
    return ImageSimilarity(
        gt_ids=np.arange(1, n_gt + 1),
        gt_ignore=np.array(ignore, dtype=bool),
        gt_area=np.full(n_gt, 5000.0),
        gt_crowd=np.array(crowd or [False] * n_gt, dtype=bool),
        dt_ids=np.arange(1, n_dt + 1),
        dt_scores=np.array(scores, dtype=np.float64),
        dt_area=np.full(n_dt, 5000.0),
        similarity=np.array(sim, dtype=np.float64).reshape(n_dt, n_gt),
        box_iou=np.array(box, dtype=np.float64).reshape(n_dt, n_gt),
    )


def _ap(images: list[ImageSimilarity]) -> dict[str, float]:
    thr = iou_thresholds()
    results = {
        "all": [evaluate_image(s, (0, 1e10), thr) for s in images],
        "medium": [evaluate_image(s, (32**2, 96**2), thr) for s in images],
        "large": [evaluate_image(s, (96**2, 1e10), thr) for s in images],
    }
    return summarize(accumulate(results, thr, 20))


def test_matching_known_answers() -> None:
    # One annotated person; the true detection (GPS 0.9) outranks a false one: AP = 1 at 9 of 10 thresholds.
    ap = _ap([_sim([[0.9, 0.0], [0.0, 0.0]], [[0.9, 0.0], [0.0, 0.0]], [False, True], [0.9, 0.8])])
    assert ap["AP"] == pytest.approx(0.9)
    assert ap["AP50"] == pytest.approx(1.0)  # tp / (tp + fp + eps), as the official code
    assert ap["AR"] == pytest.approx(0.9)
    # The false detection ranked first: precision 1/2 wherever the true one matches.
    ap = _ap([_sim([[0.0, 0.0], [0.9, 0.0]], [[0.0, 0.0], [0.9, 0.0]], [False, True], [0.9, 0.8])])
    assert ap["AP"] == pytest.approx(0.45)
    # ... unless it sits on a person without DensePose points (box IoU >= 0.8): then it is not a false positive.
    ap = _ap([_sim([[0.0, 0.0], [0.9, 0.0]], [[0.0, 0.85], [0.9, 0.0]], [False, True], [0.9, 0.8])])
    assert ap["AP"] == pytest.approx(0.9)
    # Box IoU 0.79 with the ignored person is not enough.
    ap = _ap([_sim([[0.0, 0.0], [0.9, 0.0]], [[0.0, 0.79], [0.9, 0.0]], [False, True], [0.9, 0.8])])
    assert ap["AP"] == pytest.approx(0.45)


def test_ignore_only_and_empty_images_do_not_count() -> None:
    good = _sim([[1.0]], [[1.0]], [False], [0.5])
    only_ignored = _sim([[0.0]], [[0.1]], [True], [0.99])  # every GT ignored: its detections are ignored
    no_gt = _sim(np.zeros((1, 0)).tolist(), np.zeros((1, 0)).tolist(), [], [0.98])  # the official np.all([]) quirk
    assert _ap([good, only_ignored, no_gt])["AP"] == pytest.approx(1.0)
    # A real false positive in an image with an annotated person does count.
    fp = _sim([[0.0]], [[0.0]], [False], [0.99])
    assert _ap([good, fp])["AP"] < 0.6


def test_crowd_gt_absorbs_several_detections() -> None:
    # Two detections both match the same crowd GT: neither is a false positive; a crowd GT is not a positive.
    crowd = _sim(
        [[0.0, 0.0], [0.0, 0.9], [0.0, 0.9]],
        [[0, 0], [0.0, 0.9], [0.0, 0.9]],
        [False, True],
        [1.0, 0.9, 0.8],
        [False, True],
    )
    ap = _ap([crowd, _sim([[1.0]], [[1.0]], [False], [0.95])])
    assert ap["AP"] < 1.0  # the first detection misses its annotated GT (similarity 0): a false positive
    direct = evaluate_image(crowd, (0, 1e10), iou_thresholds())
    assert direct is not None
    assert (direct.dt_matches[:, 1:] == 2).all()  # both land on the crowd GT at every threshold
    assert direct.dt_ignore[:, 1:].all()


def _reference_gps(gt: dict[str, Any], box: list[float], chart: np.ndarray, body: GeodesicEvalData) -> float:
    """The official algorithm written out point by point (cdist + argmin, the n-dependent index formula)."""
    n = body.table_size
    part_uv = {i: body.uv[body.part_ids == i] for i in range(1, 25)}
    part_ids = {i: np.flatnonzero(body.part_ids == i) for i in range(1, 25)}

    def closest(i: int, u: float, v: float) -> int:
        d = cdist(part_uv[i], np.array([[u, v]]))[:, 0]
        return int(body.transform[part_ids[i][np.argmin(d)]])

    x, y, w, h = gt["bbox"]
    values = []
    for dx, dy, i_gt, u_gt, v_gt in zip(gt["dp_x"], gt["dp_y"], gt["dp_I"], gt["dp_U"], gt["dp_V"], strict=True):
        px = int(dx * w / 255.0 + x - box[0])
        py = int(dy * h / 255.0 + y - box[1])
        inside = 0 <= px < int(box[2]) and 0 <= py < int(box[3])
        i_dt = int(chart[0, py, px]) if inside else 0
        a = closest(int(i_gt), u_gt, v_gt)
        if i_dt == 0:
            values.append(0.0)
            continue
        b = closest(i_dt, chart[1, py, px] / 255.0, chart[2, py, px] / 255.0)
        if a == b:
            d = 0.0
        else:
            i, j = (a - 1, b - 1) if a > b else (b - 1, a - 1)
            ii, jj = n - i - 1, n - j - 1
            k = (n * (n - 1) / 2) - (n - ii) * ((n - ii) - 1) / 2 + jj - ii - 1
            k = (n * n - n) / 2 - k - 1
            d = float(np.asarray(body.pdist).reshape(-1)[int(k)])
        kappa = MEAN_DISTANCES[COARSE_PARTS[int(i_gt)]]
        values.append(math.exp(-(d**2) / (2 * kappa**2)))
    return float(np.mean(values))


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("eval") / "ds"
    config = SynthConfig(size=(256, 256), max_people=4)
    run_synth(
        SynthJob(root, images=8, seed=3, val_fraction=0.5, config=config, workers=1, preview_count=0), progress=False
    )
    return root


@pytest.fixture(scope="module")
def anny(surface: Any) -> GeodesicEvalData:
    return from_body_surface(surface)


def _evaluate(dataset: Path, dets: list[Detection], body: GeodesicEvalData, **kw: Any) -> dict[str, Any]:
    gt = load_ground_truth(dataset / "annotations" / "densepose_val.json")
    return DensePoseEvaluation(gt, dets, body, DensePoseEvalConfig(**kw)).run()


def test_vectorized_gps_equals_the_pointwise_algorithm(dataset: Path, anny: GeodesicEvalData) -> None:
    checked = 0
    for split in ("train", "val"):
        gt = load_ground_truth(dataset / "annotations" / f"densepose_{split}.json")
        dets = predictions_from_dataset(dataset, split, rng=np.random.default_rng(1), uv_noise=0.05, box_jitter=0.03)
        for ann in gt["annotations"]:
            if "dp_x" not in ann:
                continue
            (points,) = prepare_gt_points([ann], anny, kappa=None)
            for det in (d for d in dets if d.image_id == ann["image_id"]):
                assert det.chart is not None
                chart = det.chart.labels_uv_uint8
                fast = gps_matrix([points], np.array([det.bbox]), [chart], anny, PredictedVertexTable(anny))[0, 0]
                assert fast == pytest.approx(_reference_gps(ann, list(det.bbox), chart, anny), abs=1e-12)
                checked += 1
    assert checked >= 5


def test_perfect_predictions_score_one_everywhere(dataset: Path, anny: GeodesicEvalData) -> None:
    figures = _evaluate(dataset, predictions_from_dataset(dataset, "val"), anny)
    for mode in ("gps", "gpsm", "iou"):
        assert figures[mode]["AP"] == pytest.approx(1.0)
        assert figures[mode]["AR"] == 1.0
    assert figures["bbox"]["AP"] == pytest.approx(1.0)
    assert figures["rcp"]["RCP@10cm"] > 0.99


def test_perturbations_lower_the_scores_in_order(dataset: Path, anny: GeodesicEvalData) -> None:
    perfect = _evaluate(dataset, predictions_from_dataset(dataset, "val"), anny)
    noisy = _evaluate(
        dataset, predictions_from_dataset(dataset, "val", rng=np.random.default_rng(0), uv_noise=0.1), anny
    )
    flipped = _evaluate(dataset, predictions_from_dataset(dataset, "val", flip_lr=True), anny)
    random = _evaluate(
        dataset, predictions_from_dataset(dataset, "val", rng=np.random.default_rng(0), random=True), anny
    )
    assert random["gps"]["AP"] < 0.05
    assert random["rcp"]["AUC30"] < 0.2
    assert noisy["rcp"]["AUC10"] < perfect["rcp"]["AUC10"]
    # Swapping left and right keeps the silhouette (IOU unchanged) but puts points on the wrong side of the body.
    assert flipped["iou"]["AP"] == perfect["iou"]["AP"]
    assert flipped["gps"]["AP"] < 0.5 * perfect["gps"]["AP"]
    assert flipped["rcp"]["AUC30"] < perfect["rcp"]["AUC30"]
    # The paper's single kappa is larger than most per-part ones, so it is more lenient on noisy UVs.
    lenient = _evaluate(
        dataset, predictions_from_dataset(dataset, "val", rng=np.random.default_rng(0), uv_noise=0.1), anny, kappa=0.255
    )
    assert lenient["gps"]["AP"] >= noisy["gps"]["AP"]


def test_cli_evaluate(dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pred = tmp_path / "pred.json"
    save_results(pred, predictions_from_dataset(dataset, "val"))
    gt = dataset / "annotations" / "densepose_val.json"
    out, plot = tmp_path / "figures.json", tmp_path / "rcp.png"
    assert (
        main(["evaluate", "--gt", str(gt), "--pred", str(pred), "--out", str(out), "--plot", str(plot), "--quiet"]) == 0
    )
    printed = capsys.readouterr().out
    assert "gpsm" in printed
    assert "100.00" in printed
    figures = json.loads(out.read_text())
    assert figures["gps"]["AP"] == pytest.approx(1.0)
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # Mismatched files: a detection on an image the ground truth does not have.
    bad = json.loads(pred.read_text())
    bad[0]["image_id"] = 999999
    pred.write_text(json.dumps(bad))
    assert main(["evaluate", "--gt", str(gt), "--pred", str(pred), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "detection 0" in err
    assert "999999" in err
    assert main(["evaluate", "--gt", str(tmp_path / "missing.json"), "--pred", str(pred)]) == 2
    assert "missing.json" in capsys.readouterr().err
