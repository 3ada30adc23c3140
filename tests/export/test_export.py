"""int8 and ONNX exports: traced graphs agree with the eager model, files round-trip, the Predictor and the CLI run
them, and broken exports are refused with the file named."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import Tensor
from torchvision.ops import box_iou

from densehuman.cli import main
from densehuman.config import Config, apply_overrides, parse_set, to_dict
from densehuman.engine.checkpoint import save_checkpoint
from densehuman.export import exported_kind, load_exported
from densehuman.export.cli import read_images
from densehuman.export.onnx import export_onnx, load_onnx
from densehuman.export.quantize import load_int8, quantize_ptq, save_int8
from densehuman.export.stages import TRUNK, capture_stage_inputs, get_stage, stage_names
from densehuman.export.trunk import trace_trunk
from densehuman.inference.predictor import Predictor
from densehuman.models.build import build_model
from densehuman.models.detector import Detector
from densehuman.models.zoo import preset
from densehuman.numerics import assert_float32_close
from densehuman.synth.engine import SynthJob, run_synth
from densehuman.synth.generator import SynthConfig
from densehuman.validation import InputError

pytestmark = pytest.mark.numerics

SMALL = ["input.min_size_test=128", "input.max_size_test=160", "input.min_size_train=[128]", "input.max_size_train=160"]


def _config(name: str) -> Config:
    config: Config = apply_overrides(preset(name), parse_set(SMALL))
    return config


def _model(config: Config, seed: int = 0) -> Detector:
    torch.manual_seed(seed)
    model = build_model(config.model).eval()
    # Random weights, but a trained model's statistics: batch norms that do something (not the identity).
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            with torch.no_grad():
                module.running_mean.uniform_(-0.1, 0.1)
                module.running_var.uniform_(0.5, 1.5)
    return model


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("export") / "ds"
    config = SynthConfig(size=(128, 160), max_people=2)
    run_synth(
        SynthJob(root, images=4, seed=3, val_fraction=0.0, config=config, workers=1, preview_count=0), progress=False
    )
    return root


@pytest.fixture(scope="module")
def images(dataset: Path) -> list[Tensor]:
    return read_images([str(dataset / "images")], _config("densepose_rcnn_tiny_cpu"), 4)


def _flat(value: Any) -> list[Tensor]:
    if isinstance(value, Tensor):
        return [value]
    if isinstance(value, dict):
        return [t for k in sorted(value) for t in _flat(value[k])]
    if isinstance(value, (list, tuple)):
        return [t for v in value for t in _flat(v)]
    if hasattr(value, "__dataclass_fields__"):
        return [t for k in value.__dataclass_fields__ for t in _flat(getattr(value, k))]
    return []


def _stage_outputs(model: Detector, inputs: dict[str, tuple[Any, ...]]) -> dict[str, list[Tensor]]:
    with torch.no_grad():
        out = {}
        for name in (n for n in stage_names(model) if n in inputs):
            if name == TRUNK:  # the backbone, then the neck (one stage once exported)
                value = model.backbone(*inputs[name])
                value = model.neck(value) if model.neck is not None else value
            else:
                value = get_stage(model, name)(*inputs[name])
            out[name] = [t.float() for t in _flat(value)]
        return out


def _relative_error(a: list[Tensor], b: list[Tensor]) -> float:
    """Worst over the tensors of max |a - b| / max |b|."""
    assert len(a) == len(b)
    return max(float((x - y).abs().max()) / max(float(y.abs().max()), 1e-12) for x, y in zip(a, b, strict=True))


def _rms_error(a: list[Tensor], b: list[Tensor]) -> float:
    """Worst over the tensors of ||a - b|| / ||b|| (the inverse square root of the signal-to-quantization-noise
    ratio)."""
    assert len(a) == len(b)
    return max(float((x - y).norm() / max(float(y.norm()), 1e-12)) for x, y in zip(a, b, strict=True))


# --- tracing ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["densepose_rcnn_tiny_cpu", "mobile_parsing_rcnn_b_cpu"])
def test_traced_trunk_matches_the_eager_backbone_and_neck(name: str) -> None:
    model = _model(_config(name))
    x = torch.randn(1, 3, 128, 160)
    graph = trace_trunk(model)
    with torch.no_grad():
        eager = model.neck(model.backbone(x)) if model.neck is not None else model.backbone(x)
        traced = graph(x)
    assert len(traced) == len(eager)
    for got, (key, want) in zip(traced, eager.items(), strict=True):
        assert_float32_close(got, want, reduction_length=9 * 256, depth=40, what=f"{name} trunk {key}")


# --- ONNX ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["densepose_rcnn_tiny_cpu", "mobile_parsing_rcnn_b_cpu"])
def test_onnx_export_agrees_with_pytorch_and_catches_a_changed_weight(
    name: str, images: list[Tensor], tmp_path: Path
) -> None:
    config = _config(name)
    model = _model(config)
    out = export_onnx(model, config, tmp_path / "onnx", images[:1])
    assert exported_kind(out) == "onnx"
    manifest = json.loads((out / "manifest.json").read_text())
    assert sorted(manifest["stages"]) == sorted(stage_names(model))
    _, loaded = load_onnx(out)
    assert loaded.exported == "onnx"
    # Stage by stage, on what each stage receives from another image (of another size: the graphs are dynamic).
    inputs = capture_stage_inputs(model, images[1:2])
    want, got = _stage_outputs(model, inputs), _stage_outputs(loaded, inputs)
    for stage in want:
        assert _relative_error(got[stage], want[stage]) < 1e-4, stage
    # End to end: the same people, the same boxes (to a hundredth of a pixel) on every image.
    with torch.no_grad():
        for image in images:
            a = model.predict([image], score_threshold=0.2)[0]
            b = loaded.predict([image], score_threshold=0.2)[0]
            assert len(a.boxes) == len(b.boxes) > 0
            torch.testing.assert_close(b.boxes, a.boxes, atol=1e-2, rtol=0)
            torch.testing.assert_close(b.scores, a.scores, atol=1e-4, rtol=0)
    # A branch with no RoI in an image (an empty batch, which ONNX's reshapes cannot take): empty outputs, shaped as
    # PyTorch shapes them.
    for stage in (n for n in stage_names(model) if n.startswith("extra_heads.") and n.endswith(".head")):
        empty = tuple(t[:0] for t in inputs[stage])
        want_empty, got_empty = _stage_outputs(model, {stage: empty}), _stage_outputs(loaded, {stage: empty})
        assert [t.shape for t in got_empty[stage]] == [t.shape for t in want_empty[stage]], stage
    # The same comparison must fail when the exported graph differs from the model by one weight.
    first_conv = next(m for m in model.modules() if isinstance(m, torch.nn.Conv2d))
    with torch.no_grad():
        first_conv.weight[0] *= 1.05
    assert _relative_error(got[TRUNK], _stage_outputs(model, inputs)[TRUNK]) > 1e-3


def test_onnx_export_refuses_to_overwrite_and_loading_names_broken_files(images: list[Tensor], tmp_path: Path) -> None:
    config = _config("densepose_rcnn_tiny_cpu")
    model = _model(config)
    out = export_onnx(model, config, tmp_path / "onnx", images[:1])
    with pytest.raises(FileExistsError, match="overwrite"):
        export_onnx(model, config, out, images[:1])
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]  # nothing half-written left behind
    broken = tmp_path / "broken"
    broken.mkdir()
    for p in out.iterdir():
        (broken / p.name).write_bytes(p.read_bytes())
    stage = next(iter(json.loads((out / "manifest.json").read_text())["stages"]))
    (broken / f"{stage}.onnx").unlink()
    with pytest.raises(InputError, match=rf"{stage}\.onnx.*missing"):
        load_onnx(broken)
    (broken / f"{stage}.onnx").write_bytes(b"not an onnx graph")
    with pytest.raises(InputError, match=rf"{stage}\.onnx.*onnxruntime cannot load"):
        load_onnx(broken)
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["stages"].pop(stage)
    (broken / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(InputError, match=r"manifest\.json.*do not fit"):
        load_onnx(broken)
    (broken / "manifest.json").write_text("{ not json")
    assert exported_kind(broken) is None  # not recognizably an export any more
    with pytest.raises(InputError, match=r"manifest\.json"):
        load_onnx(broken)


# --- int8 ---------------------------------------------------------------------------------------------------------


def test_int8_is_close_to_float_round_trips_and_is_smaller(images: list[Tensor], tmp_path: Path) -> None:
    config = _config("mobile_parsing_rcnn_b_cpu")
    reference = _model(config)
    inputs = capture_stage_inputs(reference, images[1:2])
    want = _stage_outputs(reference, inputs)
    model = quantize_ptq(_model(config), images)
    got = _stage_outputs(model, inputs)
    # Quantization error (random weights, which quantize worse than trained ones: a trained resnet18 trunk is within
    # 10 % RMS): well below what another model gives.
    other = _stage_outputs(_model(config, seed=1), inputs)
    for stage in want:
        error, unrelated = _rms_error(got[stage], want[stage]), _rms_error(other[stage], want[stage])
        assert error < unrelated / 1.5, (stage, error, unrelated)
        assert stage != TRUNK or error < 0.4, (stage, error)
    path = save_int8(model, config, tmp_path / "m.int8.zip", images[:1])
    assert exported_kind(path) == "int8"
    loaded_config, loaded = load_int8(path)
    assert loaded_config == config
    assert loaded.exported == "int8"
    again = _stage_outputs(loaded, inputs)
    for stage in got:  # the same int8 kernels on the same weights: equal up to float32 rounding of dequantization
        assert _relative_error(again[stage], got[stage]) < 1e-4, stage
    save_checkpoint(tmp_path / "run", 1, reference, to_dict(config))
    float_file = next((tmp_path / "run").glob("model_*.safetensors"))
    assert path.stat().st_size < 0.4 * float_file.stat().st_size
    with torch.no_grad():
        a = reference.predict([images[0]], score_threshold=0.2)[0]
        b = loaded.predict([images[0]], score_threshold=0.2)[0]
    assert len(b.boxes) > 0
    assert torch.isfinite(b.scores).all()
    # Random weights score many boxes alike, so the counts and the low-scoring boxes differ under int8 rounding; the
    # best ones (predictions come sorted by score) are the float model's.
    overlap = box_iou(b.boxes[:3], a.boxes).max(dim=1).values if len(a.boxes) else torch.zeros(1)
    assert bool((overlap > 0.5).all()), overlap


def test_int8_loading_names_broken_files(images: list[Tensor], tmp_path: Path) -> None:
    truncated = tmp_path / "cut.int8.zip"
    truncated.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(InputError, match=r"cut\.int8\.zip"):
        load_int8(truncated)
    wrong = tmp_path / "wrong.int8.zip"
    with zipfile.ZipFile(wrong, "w") as zf:
        zf.writestr("manifest.json", json.dumps({"format": "densehuman-int8", "version": 99, "stages": []}))
        zf.writestr("float.safetensors", b"")
    with pytest.raises(InputError, match=r"wrong\.int8\.zip"):
        load_int8(wrong)
    config = _config("densepose_rcnn_tiny_cpu")
    float_model = _model(config)
    with pytest.raises(ValueError, match="converted int8"):
        save_int8(float_model, config, tmp_path / "x.zip", images[:1])


# --- Predictor, CLI, quantization-aware training -------------------------------------------------------------------


def test_export_cli_then_predict_with_each_export(dataset: Path, images: list[Tensor], tmp_path: Path) -> None:
    config = _config("densepose_rcnn_tiny_cpu")
    model = _model(config)
    checkpoint = save_checkpoint(tmp_path / "run", 10, model, to_dict(config))
    common = ["--model", str(checkpoint), "--images", str(dataset / "images"), "--quiet"]
    assert main(["export", "--format", "onnx", "--out", str(tmp_path / "onnx"), *common]) == 0
    assert main(["export", "--format", "int8", "--out", str(tmp_path / "m.int8.zip"), *common]) == 0
    assert main(["export", "--format", "int8", "--out", str(tmp_path / "m.int8.zip"), *common]) == 2  # no overwrite
    reference = Predictor(checkpoint, min_score=0.2)
    rgb = images[0].permute(1, 2, 0).numpy()
    want = reference(rgb)
    for export in ("onnx", "m.int8.zip"):
        predictor = Predictor(tmp_path / export, min_score=0.2)
        assert predictor.model.exported == ("onnx" if export == "onnx" else "int8")
        got = predictor(rgb)
        assert len(got.people) > 0
        if export == "onnx":  # float: the same people
            assert len(got.people) == len(want.people)
            boxes = np.array([p.box for p in got.people]), np.array([p.box for p in want.people])
            np.testing.assert_allclose(boxes[0], boxes[1], atol=1e-2)
        out = tmp_path / f"pred_{export}"
        args = ["predict", str(dataset / "images"), "--model", str(tmp_path / export), "--out", str(out), "--quiet"]
        assert main([*args, "--min-score", "0.2"]) == 0
        assert len(list(out.glob("*_IUV.png"))) == 4
    with pytest.raises(ValueError, match="pass neither"):
        Predictor(tmp_path / "onnx", checkpoint)
    assert main(["export", "--format", "onnx", "--model", str(tmp_path / "onnx"), "--out", str(tmp_path / "o2"),
                 "--images", str(dataset / "images")]) == 2  # fmt: skip


def test_quantization_aware_training_ends_with_an_int8_model(dataset: Path, tmp_path: Path) -> None:
    from densehuman.engine.trainer import run_training

    settings = [*SMALL, "solver.max_iter=3", "solver.ims_per_batch=2", "solver.warmup_iters=1", "solver.steps=[10]",
                "solver.checkpoint_period=2", "data.num_workers=0", "data.eval_max_images=0",
                "quantization.qat=true"]  # fmt: skip
    config: Config = apply_overrides(preset("densepose_rcnn_tiny_cpu"), parse_set(settings))
    run = tmp_path / "qat"
    result = run_training(config, dataset, run, progress=False)
    assert Path(result["int8"]) == run / "model_final.int8.zip"
    assert exported_kind(run) == "int8"
    loaded = load_exported(run)
    assert loaded is not None
    assert loaded[1].exported == "int8"
    assert loaded[1].int8 is not None
    assert "trunk" in loaded[1].int8["stages"]
    # A mid-run checkpoint (fake-quantized stages, observers shared between inputs) was written, and the int8
    # model detects people in a training image.
    assert (run / "model_0000002.safetensors").is_file()
    image = read_images([str(dataset / "images")], config, 1)
    people = loaded[1].predict(image, score_threshold=0.0)[0]
    assert len(people.boxes) > 0
    assert torch.isfinite(people.scores).all()
