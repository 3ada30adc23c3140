"""Region detections and whole-body skeletons merged into one list of people."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from densehuman.cli import main
from densehuman.inference.merge import MergedPerson, merge_people
from densehuman.inference.wholebody import save_wholebody_checkpoint
from densehuman.models.bottomup.config import WholeBodyNetConfig, build_wholebody_net


def skeleton(x0: float, y0: float, x1: float, y1: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    points = np.zeros((135, 3))
    points[:25, 0] = rng.uniform(x0, x1, 25)
    points[:25, 1] = rng.uniform(y0, y1, 25)
    points[:25, 2] = 0.8
    return points


def test_skeletons_go_to_the_box_holding_most_of_their_points() -> None:
    boxes = np.array([[0, 0, 100, 200], [90, 0, 200, 200], [400, 400, 450, 450]], float)
    a = skeleton(10, 10, 90, 190, 0)  # inside box 0
    b = skeleton(110, 10, 190, 190, 1)  # inside box 1 (and partly box 0's overlap: none here)
    c = skeleton(600, 600, 700, 700, 2)  # no box
    merged = merge_people(boxes, [b, c, a])
    assert merged == [
        MergedPerson(0, 2, 1.0),
        MergedPerson(1, 0, 1.0),
        MergedPerson(2, None, 0.0),
        MergedPerson(None, 1, 0.0),
    ]
    # one-to-one: two skeletons in one box, one box: the better one wins, the other stays alone
    half = skeleton(10, 10, 90, 190, 3)
    half[:12, :2] += 500  # about half its points outside
    merged = merge_people(boxes[:1], [half, a])
    assert merged[0] == MergedPerson(0, 1, 1.0)
    assert merged[1] == MergedPerson(None, 0, 0.0)
    # a skeleton with only face points is matched by those
    face = np.zeros((135, 3))
    face[65:135, :2] = [150, 50]
    face[65:135, 2] = 0.5
    assert merge_people(boxes[:2], [face])[0] == MergedPerson(1, 0, 1.0)
    assert merge_people(np.zeros((0, 4)), []) == []
    with pytest.raises(ValueError, match="min_share"):
        merge_people(boxes, [a], min_share=0.0)


def test_predict_with_a_wholebody_model_writes_merged_people(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = WholeBodyNetConfig.body135_cpu()
    checkpoint = save_wholebody_checkpoint(
        tmp_path / "wb.safetensors", build_wholebody_net(config), config, net_height=64
    )
    image = tmp_path / "photo.png"
    cv2.imwrite(str(image), np.random.default_rng(3).integers(0, 255, size=(80, 96, 3), dtype=np.uint8))
    out = tmp_path / "out"
    args = ["predict", str(image), "--model", "densepose_rcnn_tiny_cpu", "--out", str(out), "--quiet"]
    assert main([*args, "--wholebody-model", str(checkpoint), "--min-score", "0.0"]) == 0
    merged = json.loads((out / "photo_people.json").read_text())
    assert merged["version"] == 1
    for person in merged["people"]:
        assert person["region_index"] is not None or person["wholebody_index"] is not None
        if person["wholebody_index"] is not None:
            assert len(person["face_keypoints"]) == 70 * 3
            assert len(person["left_hand_keypoints"]) == 21 * 3
    assert cv2.imread(str(out / "photo_wholebody.png")).shape == (80, 96, 3)
    # not a whole-body model, or the wrong task
    assert main([*args, "--overwrite", "--wholebody-model", "densepose_rcnn_tiny_cpu"]) == 2
    assert "not a whole-body model" in capsys.readouterr().err
    assert main([*args, "--task", "wholebody", "--wholebody-model", str(checkpoint)]) == 2
    assert "--wholebody-model is for region tasks" in capsys.readouterr().err


def test_predict_wholebody_defaults_to_the_bundled_model(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from densehuman.demo import bundled_wholebody_model

    model = bundled_wholebody_model()
    assert model is not None
    image = tmp_path / "photo.png"
    cv2.imwrite(str(image), np.random.default_rng(4).integers(0, 255, size=(90, 120, 3), dtype=np.uint8))
    out = tmp_path / "out"
    assert main(["predict", str(image), "--task", "wholebody", "--out", str(out), "--quiet"]) == 0
    assert f"using the bundled whole-body model {model.name}" in capsys.readouterr().out
    assert json.loads((out / "photo_keypoints.json").read_text())["version"] == 1.3
    # and beside the bundled region model
    merged = tmp_path / "merged"
    assert main(["predict", str(image), "--wholebody-model", "bundled", "--out", str(merged), "--quiet"]) == 0
    assert (merged / "photo_people.json").is_file()
