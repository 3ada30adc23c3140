"""Predictor: same results as ``model.predict`` + the evaluation's conversion, loading routes, inputs, paste."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from densehuman.config import Config, to_dict
from densehuman.engine.checkpoint import save_checkpoint
from densehuman.engine.evaluation import boxes_to_original, prediction_to_detections, resize_for_test
from densehuman.inference import ImageResult, PersonResult, Predictor
from densehuman.models.build import build_model
from densehuman.models.detector import Detector
from densehuman.models.zoo import preset
from densehuman.numerics import assert_float32_close, reduction_profile
from densehuman.structures import ChartResult

pytestmark = pytest.mark.numerics

PRESET = "densepose_rcnn_tiny_cpu"


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Detector, Config]:
    """A run folder with random weights: (folder, checkpoint file, the model in eval mode, its config)."""
    folder = tmp_path_factory.mktemp("run")
    config = preset(PRESET)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = build_model(config.model)
    ckpt = save_checkpoint(folder, 1, model, to_dict(config))
    (folder / "config.yaml").write_text(yaml.safe_dump(to_dict(config)))
    return folder, ckpt, model.eval(), config


@pytest.fixture(scope="module")
def predictor(run_dir: tuple[Path, Path, Detector, Config]) -> Predictor:
    return Predictor(PRESET, run_dir[1], min_score=0.0)


@pytest.fixture(scope="module")
def image() -> np.ndarray:
    """A 150x220 RGB image with some structure (resized to 256 short edge by the preset)."""
    rng = np.random.default_rng(7)
    img = rng.integers(0, 60, (150, 220, 3), dtype=np.uint8)
    cv2.ellipse(img, (110, 75), (25, 60), 0, 0, 360, (200, 150, 120), -1)
    cv2.rectangle(img, (20, 30), (60, 140), (90, 200, 60), -1)
    return img


def assert_same(a: ImageResult, b: ImageResult) -> None:
    assert a.image_size == b.image_size
    assert len(a.people) == len(b.people)
    for p, q in zip(a.people, b.people, strict=True):
        assert p.box == q.box
        assert p.score == q.score
        assert p.chart == q.chart


def assert_close(a: ImageResult, b: ImageResult, model: Detector) -> None:
    """Equal up to float32 rounding of ``model``'s reductions (batched convolutions may sum in another order), the
    people matched by box (near-equal scores may swap), nearly all chart labels equal."""
    from detectron2_fixtures import match_detections

    assert a.image_size == b.image_size
    assert len(a.people) == len(b.people)
    profile = reduction_profile(model)
    match = match_detections(np.array([q.box for q in b.people]), np.array([p.box for p in a.people]))
    for q, k in zip(b.people, match, strict=True):
        p = a.people[k]
        assert_float32_close(p.box, q.box, profile.longest, profile.layers, what="box")
        assert_float32_close(p.score, q.score, profile.longest, profile.layers, scale=1.0, what="score")
        assert p.chart.shape == q.chart.shape
        same = p.chart.labels == q.chart.labels
        assert same.mean() > 0.99
        uv_scale = float(np.abs(q.chart.uv).max())
        assert_float32_close(p.chart.uv[:, same], q.chart.uv[:, same], profile.longest, profile.layers, scale=uv_scale)


def check_against_model_predict(predictor: Predictor, model: Detector, config: Config, image: np.ndarray) -> None:
    """The Predictor (prepared for inference) against ``model.predict`` on the resized image + the evaluation's
    documented conversion (``prediction_to_detections``): two computation paths, so float32 tolerances (the
    model's reductions), detections matched by box, chart labels equal except at score ties."""
    from detectron2_fixtures import check_charts, convert, match_detections, recording_conversions

    with pytest.MonkeyPatch.context() as patch, recording_conversions(patch) as ours:
        result = predictor(image)
    assert result.image_size == (150, 220)
    assert len(result.people) > 0
    resized = resize_for_test(image, config.input.min_size_test, config.input.max_size_test)
    assert min(resized.shape[:2]) == 256
    (pred,) = model.predict([torch.from_numpy(np.ascontiguousarray(resized)).permute(2, 0, 1)], score_threshold=0.0)
    detections = prediction_to_detections(pred, 0, resized.shape[:2], image.shape[:2])
    boxes, keep = boxes_to_original(pred.boxes, resized.shape[:2], image.shape[:2])
    assert pred.densepose is not None
    theirs = [convert(pred.densepose.index(slice(k, k + 1)), boxes[k]) for k in torch.nonzero(keep).flatten().tolist()]
    assert len(detections) == len(theirs) == len(result.people)
    for det, chart in zip(detections, theirs, strict=True):  # the documented conversion: quantized chart results
        assert det.chart == chart.chart.quantize()
    xywh = np.array([(x0, y0, x1 - x0, y1 - y0) for x0, y0, x1, y1 in (p.box for p in result.people)])
    det_xyxy = np.array([(x, y, x + w, y + h) for x, y, w, h in (d.bbox for d in detections)], dtype=np.float32)
    match = match_detections(det_xyxy, np.array([p.box for p in result.people], dtype=np.float32))
    profile = reduction_profile(model)
    assert_float32_close(xywh[match], [d.bbox for d in detections], profile.longest, profile.layers, what="boxes")
    scores = [p.score for p in result.people]
    assert_float32_close(np.array(scores)[match], [d.score for d in detections], scale=1.0, what="scores")
    reference = {f"chart/{i}/{k}": getattr(c.chart, k) for i, c in enumerate(theirs) for k in ("labels", "uv")}
    check_charts(reference, ours, match, "tiny model", computation=profile)
    for person in result.people:
        x0, y0, x1, y1 = person.box
        assert person.chart.shape == (max(int(np.float32(y1 - y0)), 1), max(int(np.float32(x1 - x0)), 1))
        assert 0 <= x0 <= x1 <= 220 + 1e-3
        assert 0 <= y0 <= y1 <= 150 + 1e-3
    assert scores == sorted(scores, reverse=True)


@pytest.mark.numerics
def test_matches_model_predict_and_documented_conversion(
    predictor: Predictor, run_dir: tuple[Path, Path, Detector, Config], image: np.ndarray
) -> None:
    _, _, model, config = run_dir
    check_against_model_predict(predictor, model, config, image)
    # min_score filters: every kept score is above the threshold, and fewer people survive a higher one.
    people = predictor(image).people
    strict = Predictor(PRESET, run_dir[1], min_score=people[len(people) // 2].score)
    kept = strict(image)
    assert all(p.score > strict.min_score for p in kept.people)
    assert len(kept.people) < len(people)


@pytest.mark.parametrize("mistake", ["boxes half a pixel off", "U and V swapped"])
def test_model_predict_check_catches_small_mistakes(
    mistake: str, run_dir: tuple[Path, Path, Detector, Config], image: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    import densehuman.inference.predictor as predictor_module

    if mistake == "boxes half a pixel off":
        real = predictor_module.boxes_to_original
        monkeypatch.setattr(predictor_module, "boxes_to_original", lambda *a: (real(*a)[0] + 0.5, real(*a)[1]))
    else:
        real_chart = predictor_module.to_chart_result

        def swapped(output: object, box: torch.Tensor) -> ChartResult:
            chart = real_chart(output, box)  # type: ignore[arg-type]
            return ChartResult(chart.labels, chart.uv[::-1].copy())

        monkeypatch.setattr(predictor_module, "to_chart_result", swapped)
    _, ckpt, model, config = run_dir
    with pytest.raises(AssertionError):
        check_against_model_predict(Predictor(PRESET, ckpt, min_score=0.0), model, config, image)


def test_loading_routes_agree(
    predictor: Predictor, run_dir: tuple[Path, Path, Detector, Config], image: np.ndarray
) -> None:
    folder, ckpt, _, config = run_dir
    reference = predictor(image)
    for other in (Predictor(ckpt, min_score=0.0), Predictor(str(folder), min_score=0.0)):
        assert other.input_size == (config.input.min_size_test, config.input.max_size_test)
        assert other.checkpoint == ckpt
        assert_same(other(image), reference)
    with pytest.warns(UserWarning, match="RANDOM weights"):
        Predictor(PRESET)
    small = Predictor(ckpt, min_score=0.0, input_size=(128, 256))
    assert small(image).people[0].box != reference.people[0].box


def test_inputs_agree(
    predictor: Predictor, run_dir: tuple[Path, Path, Detector, Config], image: np.ndarray, tmp_path: Path
) -> None:
    reference = predictor(image)
    path = tmp_path / "im.png"
    assert cv2.imwrite(str(path), image[..., ::-1])
    bgr = np.ascontiguousarray(image[..., ::-1])
    assert_same(predictor(path), reference)
    assert_same(predictor(str(path)), reference)
    assert_same(predictor(Image.fromarray(image)), reference)
    assert_same(predictor(bgr, bgr=True), reference)
    rgba = np.concatenate([image, np.full((*image.shape[:2], 1), 255, np.uint8)], axis=2)
    assert_same(predictor(rgba), reference)
    gray = image[..., 1]
    assert_same(predictor(gray), predictor(np.repeat(gray[..., None], 3, axis=2)))
    batch = Predictor(run_dir[1], min_score=0.0, batch_size=2).predict_batch([image, path, bgr])
    model = run_dir[2]
    assert_close(batch[0], reference, model)
    assert_close(batch[1], reference, model)
    assert_close(batch[2], predictor(bgr), model)  # read as RGB without bgr=True: a different image


def test_input_errors(predictor: Predictor, tmp_path: Path) -> None:
    missing = tmp_path / "nope.jpg"
    with pytest.raises(FileNotFoundError, match=r"nope\.jpg"):
        predictor(missing)
    corrupt = tmp_path / "broken.jpg"
    corrupt.write_bytes(b"\xff\xd8 definitely not a jpeg")
    with pytest.raises(ValueError, match=r"broken\.jpg"):
        predictor(corrupt)
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(ValueError, match=r"empty\.png"):
        predictor(tmp_path / "empty.png")
    with pytest.raises(ValueError, match="empty image"):
        predictor(np.zeros((0, 10, 3), np.uint8))
    with pytest.raises(ValueError, match="side limit"):
        predictor(np.zeros((20000, 2, 3), np.uint8))
    with pytest.raises(ValueError, match="aspect ratio"):
        predictor(np.zeros((1, 5000, 3), np.uint8))
    with pytest.raises(ValueError, match="uint8"):
        predictor(np.zeros((10, 10, 3), np.float32))
    with pytest.raises(ValueError, match="got"):
        predictor(np.zeros((10, 10, 2), np.uint8))


def test_loading_errors(run_dir: tuple[Path, Path, Detector, Config], tmp_path: Path) -> None:
    folder, ckpt, _, _ = run_dir
    with pytest.raises(FileNotFoundError, match=r"missing\.safetensors"):
        Predictor(tmp_path / "missing.safetensors")
    with pytest.raises(FileNotFoundError, match=r"missing\.safetensors"):
        Predictor(PRESET, tmp_path / "missing.safetensors")
    with pytest.raises(FileNotFoundError, match="not a preset"):
        Predictor("no_such_preset")
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"garbage" * 10)
    with pytest.raises(ValueError, match=r"bad\.safetensors"):
        Predictor(bad)
    with pytest.raises(ValueError, match=r"bad\.safetensors"):
        Predictor(PRESET, bad)
    with pytest.raises(ValueError, match="checkpoint file already"):
        Predictor(ckpt, ckpt)
    empty_run = tmp_path / "run"
    empty_run.mkdir()
    with pytest.raises(FileNotFoundError, match=r"config\.yaml"):
        Predictor(empty_run)
    (empty_run / "config.yaml").write_text((folder / "config.yaml").read_text())
    with pytest.raises(FileNotFoundError, match="no last_checkpoint"):
        Predictor(empty_run)
    with pytest.raises(ValueError, match="do not fit"):  # 64-channel heads: the tiny weights do not fit
        Predictor("densepose_rcnn_resnet18_cpu", ckpt)


def person(box: tuple[float, float, float, float], score: float, labels: np.ndarray, u: float) -> PersonResult:
    uv = np.stack([np.full(labels.shape, u, np.float32), np.full(labels.shape, 1 - u, np.float32)])
    return PersonResult(box=box, score=score, chart=ChartResult(labels, uv))


def test_paste_crafted_overlap() -> None:
    a_labels = np.full((5, 6), 3)  # box (2.7, 3.2, 8.9, 9.1): int size 6 x 5 at (2, 3)
    b_labels = np.full((6, 6), 7)
    b_labels[0, :] = 0  # background row of B
    a = person((2.7, 3.2, 8.9, 9.1), 0.9, a_labels, 0.25)
    b = person((5.0, 2.0, 11.5, 8.0), 0.6, b_labels, 0.75)
    c = person((-3.0, 8.0, 2.0, 14.0), 0.3, np.full((6, 5), 12), 0.5)  # partly outside the image
    i_map, u_map, v_map, inst = ImageResult([a, b, c], (12, 10)).paste()
    assert (i_map.dtype, inst.dtype, u_map.dtype, v_map.dtype) == (np.uint8, np.uint8, np.float32, np.float32)
    assert (i_map[3:8, 2:8] == 3).all()
    assert (inst[3:8, 2:8] == 1).all()
    assert (u_map[3:8, 2:8] == 0.25).all()
    assert (v_map[3:8, 2:8] == 0.75).all()
    b_only = np.zeros((12, 10), bool)
    b_only[3:8, 5:10] = True  # B's rows 1..5 (y 3..7), clipped at x = 10
    b_only[3:8, 2:8] = False
    assert (i_map[b_only] == 7).all()
    assert (inst[b_only] == 2).all()
    assert (u_map[b_only] == 0.75).all()
    assert (inst[2, :] == 0).all()  # B's background row stays empty
    assert (i_map[8:12, 0:2] == 12).all()  # C clipped: x -3..1 -> 0..1
    assert (inst[8:12, 0:2] == 3).all()
    painted = np.zeros((12, 10), bool)
    painted[3:8, 2:10] = True
    painted[8:12, 0:2] = True
    np.testing.assert_array_equal(inst > 0, painted)
    np.testing.assert_array_equal(i_map > 0, painted)
    assert ImageResult([], (4, 5)).paste()[0].shape == (4, 5)
    with pytest.raises(ValueError, match="sorted by score"):
        ImageResult([b, a], (12, 10))


def test_paste_predictions_inside_boxes_and_higher_scores_win(predictor: Predictor, image: np.ndarray) -> None:
    result = predictor(image)
    i_map, u_map, _, inst = result.paste()
    h, w = result.image_size
    # Independent reference: paint from the lowest score up, overwriting (the last painter, the highest score, wins).
    ref_i = np.zeros((h, w), np.int64)
    ref_inst = np.zeros((h, w), np.int64)
    ref_u = np.zeros((h, w), np.float32)
    for k in reversed(range(len(result.people))):
        p = result.people[k]
        x0, y0 = int(p.box[0]), int(p.box[1])
        for (r, c), label in np.ndenumerate(p.chart.labels):
            if label > 0 and 0 <= y0 + r < h and 0 <= x0 + c < w:
                ref_i[y0 + r, x0 + c], ref_inst[y0 + r, x0 + c] = label, k + 1
                ref_u[y0 + r, x0 + c] = p.chart.uv[0, r, c]
    np.testing.assert_array_equal(i_map, ref_i)
    np.testing.assert_array_equal(inst, ref_inst)
    np.testing.assert_array_equal(u_map, ref_u)
    assert (i_map > 0).any()
    assert len(np.unique(inst)) > 2  # several people visible
    for k, p in enumerate(result.people):
        ys, xs = np.nonzero(inst == k + 1)
        ch, cw = p.chart.shape
        x0, y0 = int(p.box[0]), int(p.box[1])
        assert ys.size == 0 or (ys.min() >= y0 and ys.max() < y0 + ch and xs.min() >= x0 and xs.max() < x0 + cw)
