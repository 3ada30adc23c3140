"""``densehuman predict`` on a folder: pictures, IUV/INDS PNGs, arrays and a results file the evaluator reads."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from densehuman.cli import main
from densehuman.config import to_dict
from densehuman.data.dense_png import read_inds, read_iuv
from densehuman.engine.checkpoint import save_checkpoint
from densehuman.evaluation.predictions import load_results
from densehuman.models.build import build_model
from densehuman.models.zoo import preset


def test_predict_a_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import torch

    torch.manual_seed(0)
    config = preset("densepose_rcnn_tiny_cpu")
    save_checkpoint(tmp_path / "run", 1, build_model(config.model), to_dict(config))
    checkpoint = tmp_path / "run" / "model_0000001.safetensors"
    images = tmp_path / "images" / "nested"
    images.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for k in range(2):
        cv2.imwrite(str(images / f"img{k}.png"), rng.integers(0, 255, size=(120, 160, 3), dtype=np.uint8))
    (images / "broken.jpg").write_bytes(b"not an image")
    out = tmp_path / "out"
    args = ["predict", str(tmp_path / "images"), "--model", str(checkpoint), "--out", str(out), "--quiet"]
    opts = ["--min-score", "0.0", "--vis", "segm,u,v,iuv,contour,bbox,texture", "--save", "results,iuv,npz,texture"]
    assert main([*args, *opts]) == 0
    printed = capsys.readouterr().out
    assert "skipped" in printed
    assert "broken.jpg" in printed
    assert "2 images" in printed
    for k in range(2):
        for name in ("segm", "u", "v", "iuv", "contour", "bbox", "texture"):
            picture = cv2.imread(str(out / f"img{k}_{name}.png"))
            assert picture.shape == (120, 160, 3), name
        charts, _, _ = read_iuv(out / f"img{k}_IUV.png")
        inds = read_inds(out / f"img{k}_INDS.png")
        np.testing.assert_array_equal(charts > 0, inds > 0)
        atlas = cv2.imread(str(out / f"img{k}_atlas.png"), cv2.IMREAD_UNCHANGED)
        assert atlas.shape == (800, 1200, 4)
        assert (atlas[..., 3] > 0).sum() > 0  # some of the surface was seen
        arrays = np.load(out / f"img{k}.npz")
        assert arrays["boxes_xyxy"].shape[1] == 4
    images_json = json.loads((out / "images.json").read_text())
    detections = load_results(out / "results.json", image_ids={im["id"] for im in images_json})
    assert all(d.chart is not None for d in detections)
    # Nothing is overwritten without asking.
    assert main([*args, *opts]) == 2
    assert "already exists" in capsys.readouterr().err
    assert main([*args, *opts, "--overwrite", "--side-by-side", "--save", "none"]) == 0
    assert cv2.imread(str(out / "img0_segm.png")).shape == (120, 2 * 160 + 4, 3)
    assert main(["predict", str(tmp_path / "nothing*.png"), "--model", str(checkpoint), "--out", str(out)]) == 2


def test_predict_a_video_keeps_its_frames(tmp_path: Path) -> None:
    import torch

    torch.manual_seed(0)
    config = preset("densepose_rcnn_tiny_cpu")
    save_checkpoint(tmp_path / "run", 1, build_model(config.model), to_dict(config))
    video = tmp_path / "clip.mp4"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter.fourcc(*"mp4v"), 12.0, (96, 80))
    rng = np.random.default_rng(1)
    for _ in range(5):
        writer.write(rng.integers(0, 255, size=(80, 96, 3), dtype=np.uint8))
    writer.release()
    out = tmp_path / "out"
    checkpoint = tmp_path / "run" / "model_0000001.safetensors"
    args = ["predict", str(video), "--model", str(checkpoint), "--out", str(out), "--quiet"]
    assert main([*args, "--min-score", "0.0", "--vis", "segm,bbox", "--save", "none"]) == 0
    for name in ("segm", "bbox"):
        capture = cv2.VideoCapture(str(out / f"clip_{name}.mp4"))
        assert int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == 5
        assert capture.get(cv2.CAP_PROP_FPS) == pytest.approx(12.0)
        ok, frame = capture.read()
        assert ok
        assert frame.shape == (80, 96, 3)
        capture.release()


def test_predict_defaults_to_the_bundled_model(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from densehuman.demo import bundled_model

    image = tmp_path / "photo.png"
    cv2.imwrite(str(image), np.random.default_rng(3).integers(0, 255, size=(96, 128, 3), dtype=np.uint8))
    out = tmp_path / "out"
    assert main(["predict", str(image), "--out", str(out), "--quiet", "--vis", "segm", "--save", "results"]) == 0
    model = bundled_model()
    assert model is not None
    assert f"using the bundled model {model.name}" in capsys.readouterr().out
    assert (out / "photo_segm.png").is_file()
    assert (out / "results.json").is_file()


def test_predict_fails_and_leaves_nothing_when_nothing_can_be_read(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "broken.jpg").write_bytes(b"not an image")
    (tmp_path / "empty.png").write_bytes(b"")
    out = tmp_path / "out"
    assert main(["predict", str(tmp_path / "broken.jpg"), str(tmp_path / "empty.png"), "--out", str(out)]) == 2
    captured = capsys.readouterr()
    assert "none of the 2 inputs could be read" in captured.err
    assert "broken.jpg" in captured.out
    assert not out.exists()
    # An unreadable model: the run stops before writing anything, so no output folder either.
    image = tmp_path / "photo.png"
    cv2.imwrite(str(image), np.zeros((32, 32, 3), np.uint8))
    (tmp_path / "model.safetensors").write_bytes(b"garbage")
    assert main(["predict", str(image), "--model", str(tmp_path / "model.safetensors"), "--out", str(out)]) == 2
    assert "model.safetensors" in capsys.readouterr().err
    assert not out.exists()
    # An empty folder is an error, not "0 images".
    (tmp_path / "nothing").mkdir()
    assert main(["predict", str(tmp_path / "nothing"), "--out", str(out)]) == 2
    assert "no images or videos" in capsys.readouterr().err
    assert not out.exists()


def test_predict_checks_every_output_before_writing_any(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rng = np.random.default_rng(4)
    for name in ("a", "b"):
        cv2.imwrite(str(tmp_path / f"{name}.png"), rng.integers(0, 255, size=(64, 80, 3), dtype=np.uint8))
    out = tmp_path / "out"
    out.mkdir()
    (out / "b_segm.png").write_bytes(b"the user's file")  # collides with the second image's output
    args = ["predict", str(tmp_path / "a.png"), str(tmp_path / "b.png"), "--out", str(out), "--vis", "segm"]
    assert main([*args, "--quiet"]) == 2
    assert "b_segm.png already exists" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == ["b_segm.png"]  # nothing written for a.png either
    assert (out / "b_segm.png").read_bytes() == b"the user's file"


def test_predict_parsing_writes_pictures_maps_and_a_results_file_the_evaluator_reads(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A two-branch model (random weights) on a synthetic split: both tasks' files, and `evaluate --task parsing`
    scores the parsing results through images.json."""
    import torch

    from densehuman.config import apply_overrides, parse_set
    from densehuman.evaluation.parsing_results import load_parsing_results
    from densehuman.synth.engine import SynthJob, run_synth
    from densehuman.synth.generator import SynthConfig

    data = tmp_path / "ds"
    run_synth(SynthJob(data, images=2, seed=4, val_fraction=0.5, config=SynthConfig(size=(96, 96)), workers=1), False)
    torch.manual_seed(0)
    small = ["model.fpn.out_channels=32", "model.parsing.conv_dim=32", "model.parsing.aspp_dim=32"]
    small += ["input.min_size_test=96", "input.max_size_test=96"]
    config = apply_overrides(preset("densepose_parsing_rcnn_cpu"), parse_set(small))
    checkpoint = save_checkpoint(tmp_path / "run", 1, build_model(config.model), to_dict(config))
    out = tmp_path / "out"
    images = data / "images" / "val"
    args = ["predict", str(images), "--model", str(checkpoint), "--out", str(out), "--quiet", "--min-score", "0.0"]
    assert main([*args, "--task", "all", "--vis", "parsing,instances,segm"]) == 0
    (name,) = [p.stem for p in images.iterdir()]
    for picture in ("parsing", "instances", "segm"):
        assert cv2.imread(str(out / f"{name}_{picture}.png")).shape == (96, 96, 3)
    parts = cv2.imread(str(out / "parsing_predict" / f"{name}.png"), cv2.IMREAD_UNCHANGED)
    instances = cv2.imread(str(out / "parsing_instance" / f"{name}.png"), cv2.IMREAD_UNCHANGED)
    assert parts.shape == instances.shape == (96, 96)
    assert ((parts > 0) <= (instances > 0)).all()  # every labelled pixel belongs to a person
    parsed = load_parsing_results(out / "parsing_results.json", num_classes=20)
    assert len(parsed) > 0
    assert (out / "results.json").is_file()
    capsys.readouterr()
    figures = tmp_path / "figures.json"
    evaluate = ["evaluate", "--task", "parsing", "--gt", str(data), "--pred", str(out / "parsing_results.json")]
    assert main([*evaluate, "--out", str(figures), "--quiet"]) == 0
    scored = json.loads(figures.read_text())
    assert scored["detections"] == len(parsed)
    assert 0.0 <= scored["mIoU"] <= 1.0
    # A DensePose-only model refuses the parsing task, before writing anything.
    dp = preset("densepose_rcnn_tiny_cpu")
    dp_checkpoint = save_checkpoint(tmp_path / "dp", 1, build_model(dp.model), to_dict(dp))
    refused = ["predict", str(images), "--model", str(dp_checkpoint), "--out", str(tmp_path / "o2"), "--quiet"]
    assert main([*refused, "--task", "parsing"]) == 2
    assert "no parsing branch" in capsys.readouterr().err
    assert main([*refused, "--vis", "parsing"]) == 2
    assert not (tmp_path / "o2").exists()
