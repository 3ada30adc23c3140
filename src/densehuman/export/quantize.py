"""int8 models with PyTorch's FX graph-mode quantization (x86 backend: fbgemm and oneDNN kernels).

What is quantized, and what stays float (the islands "Making DensePose fast and light" needed):

- int8: the trunk (backbone + neck), the RPN head, the box head and its predictor, each branch's head;
- float: the RPN's anchor decoding, top-k and NMS (the RPN head's objectness and deltas are dequantized at its
  output), RoIAlign (on the dequantized trunk maps), box decoding and NMS, the branch predictors' deconvolutions, the
  DensePose decoder.

Two ways in: post-training static quantization (``quantize_ptq``: observers calibrated on a few images) and
quantization-aware training (``prepare_qat``: fake-quantized stages fine-tuned with the usual training loop, then
``convert``), the paper's path. Frozen batch norms are turned into ordinary ones first, so that every convolution
is fused with its norm (and ReLU) before quantization.

An int8 model is saved as one zip (``save_int8`` / ``load_int8``): ``manifest.json`` (the config, the backend, the
stages), ``float.safetensors`` (the float parts) and one TorchScript file per quantized stage.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import os
import warnings
import zipfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, cast

import torch
from torch import Tensor, fx, nn

from densehuman import atomic
from densehuman.config import Config, from_dict, to_dict
from densehuman.export.stages import (
    TRUNK,
    TrunkStage,
    capture_stage_inputs,
    get_stage,
    set_stage,
    stage_names,
    traceable,
    trunk_output_names,
)
from densehuman.export.trunk import trace_trunk
from densehuman.models.detector import Detector

# Quantized ASPP blocks concatenate branches with their own scales, which PyTorch requantizes (exactly what the
# model needs) while warning on every call; the warning would fill a user's terminal at each image.
warnings.filterwarnings("ignore", message="All inputs of this cat operator must share the same quantization")

INT8_FORMAT = "densehuman-int8"
INT8_VERSION = 1
INT8_FILE = "model_final.int8.zip"  # what quantization-aware training writes in its run folder


@contextlib.contextmanager
def library_noise() -> Iterator[None]:
    """Silence what torch.ao.quantization and TorchScript warn about on every use (deprecation notices of
    torch.jit, observer arguments, list outputs of traced stages): nothing a user of the export can act on."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", UserWarning)
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        yield


def quantized_stage_names(model: Detector) -> list[str]:
    """The stages quantized to int8 (the predictors and decoders stay float)."""
    return [n for n in stage_names(model) if not n.startswith("extra_heads.") or n.endswith(".head")]


def _frozen_norm_to_batch_norm(module: nn.Module) -> nn.Module:
    """Frozen batch norms (ours and timm's) as eval-mode ``nn.BatchNorm2d`` with the same statistics, so that FX
    fuses them into the convolutions before them."""
    for name, child in list(module.named_children()):
        kind = type(child).__name__
        if kind in ("FrozenBatchNorm2d", "FrozenBatchNormAct2d") and hasattr(child, "running_var"):
            frozen: Any = child
            bn = nn.BatchNorm2d(frozen.weight.numel(), eps=float(getattr(frozen, "eps", 1e-5)))
            with torch.no_grad():
                bn.weight.copy_(frozen.weight)
                bn.bias.copy_(frozen.bias)
                cast(Tensor, bn.running_mean).copy_(frozen.running_mean)
                cast(Tensor, bn.running_var).copy_(frozen.running_var)
            bn.eval()
            replacement: nn.Module = bn
            if kind == "FrozenBatchNormAct2d":  # timm's norm + activation
                replacement = nn.Sequential(bn, copy.deepcopy(frozen.act))
            setattr(module, name, replacement)
        else:
            _frozen_norm_to_batch_norm(child)
    return module


def _nonzero_batch_norm_scales(module: nn.Module, smallest: float = 1e-4) -> None:
    """Batch-norm scales of exactly 0 (timm's zero-initialized last norm of each residual block, never trained when
    frozen) raised to ``smallest``: quantization-aware conv + BN modules divide by the scale and would give NaN. The
    channel's contribution stays ``smallest`` times a normalized value, far below the int8 step."""
    for m in module.modules():
        if isinstance(m, nn.BatchNorm2d) and m.weight is not None:
            with torch.no_grad():
                tiny = m.weight.abs() < smallest
                m.weight[tiny] = smallest


def _qconfig_mapping(backend: str, qat: bool) -> Any:
    from torch.ao.quantization import get_default_qat_qconfig_mapping, get_default_qconfig_mapping

    return get_default_qat_qconfig_mapping(backend) if qat else get_default_qconfig_mapping(backend)


def _set_engine(backend: str) -> None:
    if backend not in torch.backends.quantized.supported_engines:
        engines = torch.backends.quantized.supported_engines
        raise ValueError(f"quantized backend {backend!r} is not in this PyTorch ({engines})")
    torch.backends.quantized.engine = backend


@library_noise()
def prepare(model: Detector, images: Sequence[Tensor], backend: str = "x86", qat: bool = False) -> Detector:
    """``model`` with observers (PTQ) or fake quantization (QAT) in its quantizable stages, in place.

    ``images``: at least one image (3, H, W) uint8 RGB on which the model detects something, to trace the stages
    with. For QAT, put the model in training mode afterwards and train it as usual."""
    from torch.ao.quantization.quantize_fx import prepare_fx, prepare_qat_fx

    _set_engine(backend)
    model.eval()
    _frozen_norm_to_batch_norm(model)
    if qat:
        _nonzero_batch_norm_scales(model)
    examples = capture_stage_inputs(model, images)
    names = quantized_stage_names(model)
    if missing := [n for n in names if n not in examples]:
        raise ValueError(f"the calibration images reached no detection, so stages {missing} never ran")
    mapping = _qconfig_mapping(backend, qat)
    prepare_stage = prepare_qat_fx if qat else prepare_fx
    for name in names:
        if name == TRUNK:
            shapes = (model.neck or model.backbone).output_shapes()
            graph: nn.Module = trace_trunk(model)
            if qat:
                graph.train()
            prepared = prepare_stage(graph, mapping, examples[name])
            set_stage(model, name, TrunkStage(prepared, trunk_output_names(model), shapes))
        else:
            module = traceable(get_stage(model, name), examples[name])
            module.train(qat)
            set_stage(model, name, prepare_stage(module, mapping, examples[name]))
    model.int8 = {"backend": backend, "stages": names, "qat": qat}
    return model


def freeze_batch_norm_stats(model: nn.Module) -> None:
    """Stop the fake-quantized conv + BN modules from updating their statistics (``freeze_bn_stats``)."""
    from torch.ao.nn.intrinsic.qat import freeze_bn_stats

    model.apply(freeze_bn_stats)


def prepare_qat(model: Detector, images: Sequence[Tensor], backend: str = "x86", freeze_bn: bool = True) -> Detector:
    """Quantization-aware training: ``model`` (float weights) with fake quantization in its quantizable stages,
    batch-norm statistics frozen (DensePoseFnL's recipe), in training mode; train as usual, then ``convert``."""
    prepare(model, images, backend, qat=True)
    if freeze_bn:
        freeze_batch_norm_stats(model)
    return model.train()


@torch.no_grad()
def calibrate(model: Detector, images: Sequence[Tensor], batch_size: int = 1) -> None:
    """Run the prepared model on ``images`` so its observers see real activations."""
    model.eval()
    for start in range(0, len(images), batch_size):
        model.predict(list(images[start : start + batch_size]), score_threshold=0.0)


@library_noise()
def convert(model: Detector) -> Detector:
    """The prepared (and calibrated or trained) stages converted to int8 modules, in place."""
    from torch.ao.quantization.quantize_fx import convert_fx

    info = getattr(model, "int8", None)
    if not info:
        raise ValueError("the model was not prepared for quantization (call prepare first)")
    model.eval()
    for name in info["stages"]:
        stage = model.backbone if name == TRUNK else get_stage(model, name)
        if isinstance(stage, TrunkStage):
            stage.trunk = convert_fx(cast(fx.GraphModule, stage.trunk))
        else:
            set_stage(model, name, convert_fx(cast(fx.GraphModule, stage)))
    model.inference_only = True
    return model


def quantize_ptq(model: Detector, images: Sequence[Tensor], backend: str = "x86") -> Detector:
    """Post-training static quantization: prepare, calibrate on ``images``, convert (in place)."""
    if not images:
        raise ValueError("post-training quantization needs calibration images")
    prepare(model, images[:1], backend)
    calibrate(model, images)
    return convert(model)


# --- saving and loading -------------------------------------------------------------------------------------------


@library_noise()
def _script(module: nn.Module, example: tuple[Any, ...]) -> bytes:
    buf = io.BytesIO()
    try:
        scripted = torch.jit.script(module)
    except Exception:  # some FX graphs script, others only trace
        scripted = torch.jit.trace(module, example, check_trace=False)
    torch.jit.save(scripted, buf)
    return buf.getvalue()


def save_int8(model: Detector, config: Config, path: str | os.PathLike[str], images: Sequence[Tensor]) -> Path:
    """Write a converted int8 model as one zip, atomically. ``images``: one image to trace the stages with."""
    from safetensors.torch import save

    info = getattr(model, "int8", None)
    if not info or not model.inference_only:
        raise ValueError("only a converted int8 model can be saved (quantize_ptq, or prepare + convert)")
    examples = capture_stage_inputs(model, images[:1])
    stages: dict[str, bytes] = {}
    for name in info["stages"]:
        module = cast(nn.Module, model.backbone.trunk) if name == TRUNK else get_stage(model, name)
        stages[name] = _script(module, examples[name])
    quantized = tuple(f"{'backbone.trunk' if n == TRUNK else n}." for n in info["stages"])
    floats = {k: v.contiguous() for k, v in model.state_dict().items() if not k.startswith(quantized)}
    floats = {k: v for k, v in floats.items() if v.dtype.is_floating_point or not v.is_quantized}
    manifest = {
        "format": INT8_FORMAT,
        "version": INT8_VERSION,
        "backend": info["backend"],
        "stages": info["stages"],
        "trunk_outputs": list(model.backbone.names) if isinstance(model.backbone, TrunkStage) else [],
        "trunk_shapes": {k: list(v) for k, v in model.backbone.output_shapes().items()},
        "config": to_dict(config),
    }
    target = Path(path)
    with atomic.replacing(target) as handle, zipfile.ZipFile(handle, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("manifest.json", json.dumps(manifest, indent=1))
        zf.writestr("float.safetensors", save(floats))
        for name, data in stages.items():
            zf.writestr(f"stages/{name}.pt", data)
    return target


def is_int8_file(path: str | os.PathLike[str]) -> bool:
    p = Path(path)
    if not p.is_file() or not zipfile.is_zipfile(p):
        return False
    with zipfile.ZipFile(p) as zf:
        if "manifest.json" not in zf.namelist():
            return False
        try:
            return bool(json.loads(zf.read("manifest.json")).get("format") == INT8_FORMAT)
        except (ValueError, UnicodeDecodeError):
            return False


@library_noise()
def load_int8(path: str | os.PathLike[str]) -> tuple[Config, Detector]:
    """(config, model) of an int8 zip written by ``save_int8``; errors name the file."""
    from safetensors.torch import load

    from densehuman.models.build import build_model
    from densehuman.validation import InputError

    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{p}: no such int8 model file")
    try:
        with zipfile.ZipFile(p) as zf:
            manifest = json.loads(zf.read("manifest.json"))
            floats = load(zf.read("float.safetensors"))
            stages = {name: zf.read(f"stages/{name}.pt") for name in manifest["stages"]}
    except Exception as err:  # zipfile's, json's and safetensors' own error types
        raise InputError(p, f"not a readable densehuman int8 model ({type(err).__name__}: {err})") from None
    if manifest.get("format") != INT8_FORMAT or manifest.get("version") != INT8_VERSION:
        raise InputError(p, f"int8 format {manifest.get('format')} v{manifest.get('version')} is not supported")
    _set_engine(manifest["backend"])
    config = from_dict(manifest["config"])
    model = build_model(config.model).eval()
    _frozen_norm_to_batch_norm(model)
    for name in manifest["stages"]:
        module = torch.jit.load(io.BytesIO(stages[name]))
        if name == TRUNK:
            shapes = {k: (int(v[0]), int(v[1])) for k, v in manifest["trunk_shapes"].items()}
            set_stage(model, name, TrunkStage(module, manifest["trunk_outputs"], shapes))
        else:
            set_stage(model, name, module)
    missing, unexpected = model.load_state_dict(floats, strict=False)
    quantized = tuple(f"{'backbone.trunk' if n == TRUNK else n}." for n in manifest["stages"])
    missing = [k for k in missing if not k.startswith(quantized)]
    if missing or unexpected:
        raise InputError(p, f"float weights do not fit the model (missing {missing[:5]}, unexpected {unexpected[:5]})")
    model.int8 = {"backend": manifest["backend"], "stages": manifest["stages"], "qat": False}
    model.inference_only = True
    model.exported = "int8"
    return config, model.eval()
