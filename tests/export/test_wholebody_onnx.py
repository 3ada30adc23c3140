"""The whole-body network as one ONNX file: export, agreement with PyTorch, and use as a --model."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from densehuman.cli import main
from densehuman.export.wholebody_onnx import is_wholebody_onnx, load_wholebody_onnx
from densehuman.inference.wholebody import WholeBodyPredictor, save_wholebody_checkpoint
from densehuman.inference.wholebody_cli import is_wholebody_model
from densehuman.models.bottomup.config import WholeBodyNetConfig, build_wholebody_net
from densehuman.models.bottomup.network import normalize_openpose

pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    root = tmp_path_factory.mktemp("wbonnx")
    torch.manual_seed(3)
    config = WholeBodyNetConfig.body135_cpu()
    net = build_wholebody_net(config).eval()
    checkpoint = save_wholebody_checkpoint(root / "wb.safetensors", net, config, net_height=96)
    image = root / "person.png"
    cv2.imwrite(str(image), np.random.default_rng(0).integers(0, 255, (90, 130, 3), dtype=np.uint8))
    onnx_path = root / "wb.onnx"
    assert (
        main(
            ["export", "--format", "onnx", "--model", str(checkpoint), "--images", str(image), "--out", str(onnx_path)]
        )
        == 0
    )
    return checkpoint, onnx_path, image


def test_onnx_outputs_match_pytorch_at_other_sizes(exported: tuple[Path, Path, Path]) -> None:
    checkpoint, onnx_path, _ = exported
    assert is_wholebody_onnx(onnx_path)
    assert is_wholebody_model(str(onnx_path))
    session, meta = load_wholebody_onnx(onnx_path)
    assert meta["net_height"] == "96"
    torch_net = WholeBodyPredictor(checkpoint).net
    for size in ((96, 128), (64, 200)):  # the height and width are dynamic
        x = normalize_openpose(torch.rand(1, 3, *size) * 255)
        with torch.no_grad():
            want = torch_net(x)
        got = session(x)
        assert got.final_heatmaps.shape == want.final_heatmaps.shape == (1, 135, size[0] // 8, size[1] // 8)
        scale = float(want.final_pafs.abs().max())
        torch.testing.assert_close(got.final_pafs, want.final_pafs, rtol=1e-4, atol=1e-4 * scale)
        torch.testing.assert_close(got.final_heatmaps, want.final_heatmaps, rtol=1e-4, atol=1e-4 * scale)


def test_onnx_export_is_a_predict_model(exported: tuple[Path, Path, Path], tmp_path: Path) -> None:
    _, onnx_path, image = exported
    predictor = WholeBodyPredictor(onnx_path)
    assert predictor.net_height == 96
    result = predictor(cv2.imread(str(image))[..., ::-1])
    assert result.net_input_size == (96, 144)
    out = tmp_path / "out"
    assert main(["predict", str(image), "--model", str(onnx_path), "--out", str(out), "--quiet"]) == 0
    assert (out / "person_keypoints.json").is_file()
    assert (out / "wholebody_results.json").is_file()


def test_onnx_export_refusals(
    exported: tuple[Path, Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    checkpoint, onnx_path, image = exported
    args = ["export", "--model", str(checkpoint), "--images", str(image)]
    assert main([*args, "--format", "onnx", "--out", str(onnx_path)]) == 2  # exists
    assert "already exists" in capsys.readouterr().err
    assert main([*args, "--format", "int8", "--out", str(tmp_path / "wb.zip")]) == 2
    assert "--format onnx" in capsys.readouterr().err
    assert main([*args, "--format", "onnx", "--out", str(tmp_path / "wb_folder")]) == 2
    assert "*.onnx" in capsys.readouterr().err
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not a model")
    assert not is_wholebody_onnx(broken)
    with pytest.raises(ValueError, match=r"broken\.onnx"):
        load_wholebody_onnx(broken)
