"""Whole-body inference (``WholeBodyPredictor``, ``densehuman predict --task wholebody``): checkpoints, OpenPose's
preprocessing and its mapping back to image pixels, OpenPose JSON, COCO-WholeBody results, the command line."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import torch
from torch import nn

from densehuman.cli import main
from densehuman.evaluation.wholebody import evaluate_wholebody
from densehuman.inference.wholebody import (
    WholeBodyPerson,
    WholeBodyPredictor,
    load_wholebody_checkpoint,
    save_wholebody_checkpoint,
)
from densehuman.inference.wholebody_cli import is_wholebody_model
from densehuman.inference.wholebody_outputs import coco_wholebody_results, openpose_json
from densehuman.inference.wholebody_parse import upsample_cropped
from densehuman.keypoints.layouts import body135_to_wholebody
from densehuman.models.bottomup.config import WholeBodyNetConfig, build_wholebody_net
from densehuman.models.bottomup.network import WholeBodyOutput
from densehuman.models.bottomup.peaks import upsample_maps
from densehuman.models.bottomup.targets import make_targets
from densehuman.visualization.wholebody import draw_wholebody

# A standing person facing the camera (BODY_135 0-24: COCO body, upper neck, head top, feet) in a unit box.
PERSON_UV = np.array([
    (0.50, 0.10), (0.56, 0.06), (0.44, 0.06), (0.63, 0.09), (0.37, 0.09), (0.70, 0.24), (0.30, 0.24),
    (0.82, 0.40), (0.18, 0.40), (0.90, 0.55), (0.10, 0.55), (0.62, 0.55), (0.38, 0.55), (0.64, 0.74),
    (0.36, 0.74), (0.65, 0.90), (0.35, 0.90), (0.50, 0.19), (0.50, 0.00), (0.72, 0.97), (0.80, 0.96),
    (0.63, 0.94), (0.28, 0.97), (0.20, 0.96), (0.37, 0.94),
])  # fmt: skip
NET_HEIGHT = 256


def known_person(h: int, w: int) -> np.ndarray:
    """(135, 3) x, y, v=2 in image pixels for the 25 body and foot points (the rest unlabelled)."""
    points = np.zeros((135, 3))
    points[:25, 0] = w * (0.2 + 0.6 * PERSON_UV[:, 0])
    points[:25, 1] = h * (0.08 + 0.84 * PERSON_UV[:, 1])
    points[:25, 2] = 2
    return points


def openpose_net_input(h: int, w: int, net_height: int) -> tuple[int, float]:
    """OpenPose's rules, written out here: net width 16 * round(Hn * W / H / 16), scale = resizeGetScaleFactor."""
    net_width = 16 * int(net_height * w / h / 16 + 0.5)
    return net_width, min((net_width - 1) / (w - 1), (net_height - 1) / (h - 1))


class RenderedNet(nn.Module):
    """Stands in for the network: records its input and returns the stride-8 training targets of ``keypoints``
    (image pixels) at ``scale`` in the net input, i.e. what a perfect network would output."""

    def __init__(self, keypoints: np.ndarray, scale: float) -> None:
        super().__init__()
        self.keypoints, self.scale = keypoints, scale
        self.inputs: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor) -> WholeBodyOutput:
        self.inputs.append(x.clone())
        kpts = self.keypoints.copy()
        kpts[:, :2] *= self.scale
        t = make_targets(kpts[None], (x.shape[2], x.shape[3]), np.ones(135, dtype=bool))
        return WholeBodyOutput(pafs=[torch.from_numpy(t.pafs)[None]], heatmaps=[torch.from_numpy(t.heatmaps)[None]])


def ramp_image(h: int, w: int) -> np.ndarray:
    """RGB: red grows with x, green with y, blue constant (smooth, so that resampling is predictable)."""
    image = np.zeros((h, w, 3), np.uint8)
    image[..., 0] = np.round(np.linspace(20, 235, w))[None, :]
    image[..., 1] = np.round(np.linspace(20, 235, h))[:, None]
    image[..., 2] = 128
    return image


@pytest.fixture(scope="module")
def predictor() -> WholeBodyPredictor:
    torch.manual_seed(0)
    with pytest.warns(UserWarning, match="RANDOM weights"):
        return WholeBodyPredictor("body135_cpu", net_height=NET_HEIGHT)


def run_known(predictor: WholeBodyPredictor, h: int, w: int) -> tuple[Any, np.ndarray, RenderedNet]:
    known = known_person(h, w)
    _, scale = openpose_net_input(h, w, NET_HEIGHT)
    fake = RenderedNet(known, scale)
    real, predictor.net = predictor.net, fake
    try:
        result = predictor(ramp_image(h, w))
    finally:
        predictor.net = real
    return result, known, fake


def test_cropped_upsampling_is_upsampling_then_crop() -> None:
    maps = np.random.default_rng(5).normal(size=(70, 6, 10)).astype(np.float32)
    expected = upsample_maps(maps)[:, :45, :71]
    np.testing.assert_allclose(upsample_cropped(maps, (48, 80), (45, 71)), expected, atol=1e-5)
    with pytest.raises(ValueError, match="net input"):
        upsample_cropped(maps, (56, 80), (45, 71))


# ---------------------------------------------------------------------------------------------------- checkpoints
def test_checkpoint_round_trip(tmp_path: Path) -> None:
    torch.manual_seed(1)
    config = WholeBodyNetConfig.body135_cpu()
    net = build_wholebody_net(config).eval()
    path = save_wholebody_checkpoint(tmp_path / "wb.safetensors", net, config, net_height=64)
    loaded = load_wholebody_checkpoint(path)
    assert loaded.config == config
    assert loaded.net_height == 64
    x = torch.rand(1, 3, 64, 96) - 0.5
    with torch.no_grad():
        a, b = net(x), loaded.net(x)
    assert torch.equal(a.final_heatmaps, b.final_heatmaps)
    assert torch.equal(a.final_pafs, b.final_pafs)
    # The predictor takes the file, and its stored net height
    image = np.random.default_rng(0).integers(0, 255, (70, 90, 3), dtype=np.uint8)
    p = WholeBodyPredictor(path)
    assert p.net_height == 64
    result = p(image)
    assert result.net_input_size == (64, 80)
    with pytest.raises(FileExistsError, match=r"wb.safetensors"):
        save_wholebody_checkpoint(path, net, config)
    # float16 storage (the bundled model's): half the file, the same outputs up to float16 rounding of the weights
    half = save_wholebody_checkpoint(tmp_path / "wb16.safetensors", net, config, net_height=64, half=True)
    assert half.stat().st_size < 0.6 * path.stat().st_size
    with torch.no_grad():
        c = load_wholebody_checkpoint(half).net(x)
    scale = float(a.final_pafs.abs().max()) + 1e-6
    assert float((c.final_pafs - a.final_pafs).abs().max()) < 0.02 * scale
    # a training run's checkpoint (same format, more metadata) in its run folder: the evaluation height is used
    from safetensors.torch import save_file

    run = tmp_path / "run"
    run.mkdir()
    meta = {
        "format": "densehuman-wholebody-1",
        "config": json.dumps(dataclasses.asdict(config)),
        "train_config": json.dumps({"data": {"eval_height": 96}}),
        "iteration": "10",
    }
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(run / "model_0000010.safetensors"), meta)
    (run / "last_checkpoint").write_text("model_0000010.safetensors")
    assert is_wholebody_model(str(run))
    assert not is_wholebody_model(str(tmp_path))
    assert WholeBodyPredictor(run).net_height == 96


def test_corrupt_checkpoints_are_refused_naming_the_file(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00not json at all!")
    with pytest.raises(ValueError, match=r"garbage.safetensors: not a readable safetensors"):
        load_wholebody_checkpoint(garbage)
    region = tmp_path / "region.safetensors"
    save_file({"w": torch.zeros(2)}, str(region), metadata={"format": "densehuman-checkpoint-1", "config": "{}"})
    with pytest.raises(ValueError, match=r"region.safetensors: not a densehuman whole-body checkpoint"):
        load_wholebody_checkpoint(region)
    bad_config = tmp_path / "bad_config.safetensors"
    meta = {"format": "densehuman-wholebody-1", "config": json.dumps({"trunk": "vgg19", "paf_widths": "wide"})}
    save_file({"w": torch.zeros(2)}, str(bad_config), metadata=meta)
    with pytest.raises(ValueError, match=r"bad_config.safetensors: metadata field 'config': paf_widths"):
        load_wholebody_checkpoint(bad_config)
    # weights of another network than the stored config's
    wrong = tmp_path / "wrong.safetensors"
    meta = {"format": "densehuman-wholebody-1", "config": json.dumps({"trunk": "timm", "feature_channels": 96})}
    save_file({"w": torch.zeros(2)}, str(wrong), metadata=meta)
    with pytest.raises(ValueError, match=r"wrong.safetensors: weights do not fit"):
        load_wholebody_checkpoint(wrong)
    with pytest.raises(FileNotFoundError, match=r"missing.safetensors"):
        WholeBodyPredictor(tmp_path / "missing.safetensors")


# ------------------------------------------------------------------------------------------------------ predictor
def test_predictor_structure_on_a_random_network(predictor: WholeBodyPredictor) -> None:
    image = np.random.default_rng(2).integers(0, 255, (90, 130, 3), dtype=np.uint8)
    predictor.net_height = 64
    try:
        result = predictor(image)
    finally:
        predictor.net_height = NET_HEIGHT
    assert result.image_size == (90, 130)
    assert result.net_input_size == (64, 96)  # 16 * round(64 * 130 / 90 / 16) = 96
    assert result.network_seconds > 0
    assert result.assembly_seconds > 0
    assert isinstance(result.people, list)
    for person in result.people:
        assert person.keypoints.shape == (135, 3)
    # the named groups of a person
    keypoints = np.arange(135 * 3, dtype=np.float32).reshape(135, 3)
    person = WholeBodyPerson(keypoints, 0.5)
    np.testing.assert_array_equal(person.body, keypoints[:17])
    np.testing.assert_array_equal(person.feet, keypoints[19:25])
    np.testing.assert_array_equal(person.face, keypoints[65:135])
    np.testing.assert_array_equal(person.left_hand, keypoints[[9, *range(25, 45)]])
    np.testing.assert_array_equal(person.right_hand, keypoints[[10, *range(45, 65)]])
    assert person.wholebody().shape == (133, 3)


@pytest.mark.parametrize("size", [(240, 320), (360, 200)])
def test_known_keypoints_come_back_in_image_pixels(predictor: WholeBodyPredictor, size: tuple[int, int]) -> None:
    h, w = size
    result, known, fake = run_known(predictor, h, w)
    net_width, scale = openpose_net_input(h, w, NET_HEIGHT)
    # The net saw OpenPose's input: the image at the top left, scaled by s, BGR / 256 - 0.5, padded with -0.5
    (x,) = fake.inputs
    assert tuple(x.shape) == (1, 3, NET_HEIGHT, net_width)
    assert result.net_input_size == (NET_HEIGHT, net_width)
    assert result.scale == pytest.approx(scale)
    image = ramp_image(h, w).astype(np.float64)
    for ys in np.linspace(0.1, 0.9, 5):
        for xs in np.linspace(0.1, 0.9, 5):
            X, Y = round(xs * net_width * 0.95), round(ys * NET_HEIGHT * 0.95)
            u, v = X / scale, Y / scale  # image coordinates of the net pixel
            expected_r = np.interp(u, np.arange(w), image[0, :, 0])
            expected_g = np.interp(v, np.arange(h), image[:, 0, 1])
            assert float(x[0, 2, Y, X]) == pytest.approx(expected_r / 256 - 0.5, abs=2 / 256)  # R is channel 2
            assert float(x[0, 1, Y, X]) == pytest.approx(expected_g / 256 - 0.5, abs=2 / 256)
            assert float(x[0, 0, Y, X]) == pytest.approx(128 / 256 - 0.5, abs=1 / 256)
    content_w, content_h = round(scale * w), round(scale * h)
    assert content_w < net_width or content_h < NET_HEIGHT  # these sizes have padding
    assert torch.all(x[0, :, content_h + 1 :, :] == -0.5)
    assert torch.all(x[0, :, :, content_w + 1 :] == -0.5)
    # One person, its 25 points where they were put, in original image pixels (OpenPose adds 0.5)
    assert len(result.people) == 1
    person = result.people[0]
    found = person.keypoints
    assert np.all(found[:25, 2] > 0.5)
    assert np.all(found[25:] == 0)
    # OpenPose reports net pixel p at p / s + 0.5; the peaks of maps sampled every 8 net pixels come back within
    # 1.5 net pixels (1.5 / s image pixels), so: at most 1.5 / s from known + 0.5 (2.6 px from known here)
    error = found[:25, :2] - known[:25, :2]
    assert np.abs(error - 0.5).max() * scale < 1.5, np.abs(error).max()
    assert np.abs(error).max() < 2.6
    # the score: (25 peak scores + the 46 PAF scores among the 25 points) / (135 parts + 152 PAFs) at most
    assert 0.15 < person.score <= (25 + 46) / (135 + 152)


def test_exact_maps_give_the_same_people(predictor: WholeBodyPredictor) -> None:
    """OpenPose's full x8 upsampling (``exact_maps``) and the default stride-8 parse find the same keypoints."""
    fast, _, _ = run_known(predictor, 150, 230)
    predictor.exact_maps = True
    try:
        exact, _, _ = run_known(predictor, 150, 230)
    finally:
        predictor.exact_maps = False
    assert len(fast.people) == len(exact.people) == 1
    np.testing.assert_allclose(fast.people[0].keypoints, exact.people[0].keypoints, rtol=1e-4, atol=1e-3)
    assert fast.people[0].score == pytest.approx(exact.people[0].score, rel=1e-4)
    assert exact.maps_seconds > 0
    assert fast.assembly_seconds > 0


# -------------------------------------------------------------------------------------------------------- outputs
def test_openpose_json_layout(predictor: WholeBodyPredictor) -> None:
    result, _, _ = run_known(predictor, 240, 320)
    data = json.loads(json.dumps(openpose_json(result)))
    assert list(data) == ["version", "people"]
    assert data["version"] == 1.3
    (person,) = data["people"]
    assert list(person) == [
        "person_id",
        "pose_keypoints_2d",
        "face_keypoints_2d",
        "hand_left_keypoints_2d",
        "hand_right_keypoints_2d",
        "pose_keypoints_3d",
        "face_keypoints_3d",
        "hand_left_keypoints_3d",
        "hand_right_keypoints_3d",
    ]
    assert person["person_id"] == [-1]
    assert len(person["pose_keypoints_2d"]) == 135 * 3
    np.testing.assert_allclose(person["pose_keypoints_2d"], result.people[0].keypoints.reshape(-1), atol=1e-4)
    assert all(person[k] == [] for k in list(person)[2:])
    assert openpose_json([]) == {"version": 1.3, "people": []}
    picture = draw_wholebody(ramp_image(240, 320), result.people)
    assert picture.shape == (240, 320, 3)
    assert (picture != ramp_image(240, 320)).any()


def test_coco_wholebody_results_score_perfectly(predictor: WholeBodyPredictor, tmp_path: Path) -> None:
    h, w = 360, 200
    result, known, _ = run_known(predictor, h, w)
    results = coco_wholebody_results(result, image_id=7)
    (entry,) = results
    assert entry["image_id"] == 7
    assert entry["category_id"] == 1
    assert [len(entry[k]) for k in ("keypoints", "foot_kpts", "face_kpts", "lefthand_kpts", "righthand_kpts")] == [
        51,
        18,
        204,
        63,
        63,
    ]
    gt133 = body135_to_wholebody(known)
    gt133[91] = gt133[112] = 0  # the GT has no hands
    box = [float(w * 0.2), float(h * 0.08), float(w * 0.6), float(h * 0.84)]
    annotation: dict[str, Any] = {"id": 1, "image_id": 7, "category_id": 1, "iscrowd": 0, "bbox": box}
    annotation["area"] = box[2] * box[3]
    for field, part in (("keypoints", slice(0, 17)), ("foot_kpts", slice(17, 23)), ("face_kpts", slice(23, 91))):
        annotation[field] = gt133[part].reshape(-1).tolist()
    annotation["lefthand_kpts"] = annotation["righthand_kpts"] = [0.0] * 63
    annotation["num_keypoints"] = 17
    gt = {
        "images": [{"id": 7, "file_name": "a.png", "height": h, "width": w}],
        "annotations": [annotation],
        "categories": [{"id": 1, "name": "person"}],
    }
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    (tmp_path / "res.json").write_text(json.dumps(results))
    figures = evaluate_wholebody(tmp_path / "gt.json", tmp_path / "res.json")
    assert figures["parts"]["body"]["AP"] == pytest.approx(1.0)
    assert figures["parts"]["foot"]["AP"] == pytest.approx(1.0)
    assert figures["parts"]["face"]["AP"] == -1  # nothing labelled to score


# ---------------------------------------------------------------------------------------------------- command line
def test_predict_wholebody_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    torch.manual_seed(3)
    config = WholeBodyNetConfig.body135_cpu()
    checkpoint = save_wholebody_checkpoint(
        tmp_path / "wb.safetensors", build_wholebody_net(config), config, net_height=64
    )
    images = tmp_path / "images"
    images.mkdir()
    rng = np.random.default_rng(4)
    sizes = {"a": (80, 120), "b": (90, 60)}
    for name, (h, w) in sizes.items():
        cv2.imwrite(str(images / f"{name}.png"), rng.integers(0, 255, (h, w, 3), dtype=np.uint8))
    video = tmp_path / "clip.mp4"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter.fourcc(*"mp4v"), 10.0, (64, 48))
    for _ in range(3):
        writer.write(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8))
    writer.release()
    out = tmp_path / "out"
    args = ["predict", str(images), str(video), "--task", "wholebody", "--model", str(checkpoint), "--out", str(out)]
    assert main([*args, "--quiet"]) == 0
    for name, (h, w) in sizes.items():
        assert cv2.imread(str(out / f"{name}_wholebody.png")).shape == (h, w, 3)
        data = json.loads((out / f"{name}_keypoints.json").read_text())
        assert data["version"] == 1.3
        assert isinstance(data["people"], list)
    images_json = json.loads((out / "images.json").read_text())
    assert [(im["id"], Path(im["file_name"]).name) for im in images_json] == [(1, "a.png"), (2, "b.png")]
    assert isinstance(json.loads((out / "wholebody_results.json").read_text()), list)
    frames = sorted(p.name for p in (out / "clip_json").iterdir())
    assert frames == [f"clip_{k:012d}_keypoints.json" for k in range(3)]
    capture = cv2.VideoCapture(str(out / "clip_wholebody.mp4"))
    assert int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == 3
    capture.release()
    capsys.readouterr()
    # nothing is overwritten without asking; the refusal comes before anything is written
    before = (out / "a_keypoints.json").stat().st_mtime_ns
    assert main([*args, "--quiet"]) == 2
    assert "already exists" in capsys.readouterr().err
    assert (out / "a_keypoints.json").stat().st_mtime_ns == before
    # --task auto (the default) picks the whole-body path for a whole-body model
    auto = ["predict", str(images), str(video), "--model", str(checkpoint), "--out", str(out), "--quiet"]
    assert main([*auto, "--overwrite"]) == 0
    assert (out / "a_keypoints.json").stat().st_mtime_ns != before
    # the wrong kind of model for the task, either way
    assert main(["predict", str(images), "--model", str(checkpoint), "--task", "densepose", "--out", str(out)]) == 2
    assert "use --task wholebody" in capsys.readouterr().err
    region = ["predict", str(images), "--model", "densepose_rcnn_tiny_cpu", "--task", "wholebody", "--out", str(out)]
    assert main(region) == 2
    assert "not a whole-body model" in capsys.readouterr().err
