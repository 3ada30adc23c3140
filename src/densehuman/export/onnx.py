"""ONNX export, and the model run with onnxruntime.

The model is exported as one ONNX graph per network stage (``densehuman.export.stages``: the trunk, the RPN head,
the box head and its predictor, each branch's decoder / head / predictor), with every size that depends on the
image or on the number of detections dynamic. What runs between the graphs is densehuman's PyTorch code with no
parameters: anchor decoding, top-k and NMS of the RPN, RoIAlign, box decoding and NMS, the DensePose and parsing
post-processing. That is the split "at the RoIs" the export needs: the RoI count changes from image to image, and
NMS / RoIAlign have no ONNX form that matches torchvision's to the pixel.

An export is a folder: ``manifest.json`` (format, the config, the stages with their files, input counts and output
structure), ``<stage>.onnx`` per stage, and ``float.safetensors`` with whatever parameters and buffers are left
outside the stages (normally none but the pixel normalization). ``load_onnx`` rebuilds the ``Detector`` with
``OrtStage`` modules in place of the stages, so the ``Predictor`` and ``densehuman predict`` run it unchanged.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from densehuman import atomic
from densehuman.config import Config, from_dict, to_dict
from densehuman.export.stages import TRUNK, capture_stage_inputs, get_stage, set_stage, stage_names
from densehuman.export.trunk import Trunk
from densehuman.models.detector import Detector
from densehuman.models.instances import DensePoseOutput

ONNX_FORMAT = "densehuman-onnx"
ONNX_VERSION = 1
OPSET = 17
_DENSEPOSE_FIELDS = (
    "coarse_segm",
    "fine_segm",
    "u",
    "v",
    "sigma_1",
    "sigma_2",
    "kappa_u",
    "kappa_v",
    "fine_segm_confidence",
    "coarse_segm_confidence",
)

# --- output structure: what a stage returns, as a JSON spec and a flat list of tensors ------------------------------


def flatten_outputs(value: Any) -> tuple[list[Tensor], Any]:
    """(tensors, spec) of a stage's output: a tensor, a list / tuple of outputs or a ``DensePoseOutput``."""
    if isinstance(value, Tensor):
        return [value], "tensor"
    if isinstance(value, DensePoseOutput):
        fields = [f for f in _DENSEPOSE_FIELDS if getattr(value, f) is not None]
        return [getattr(value, f) for f in fields], {"densepose": fields}
    if isinstance(value, (list, tuple)):
        tensors: list[Tensor] = []
        specs = []
        for item in value:
            flat, spec = flatten_outputs(item)
            tensors += flat
            specs.append(spec)
        return tensors, {"list" if isinstance(value, list) else "tuple": specs}
    raise TypeError(f"a stage output of type {type(value).__name__} cannot be exported")


def unflatten_outputs(tensors: Sequence[Tensor], spec: Any) -> Any:
    """The inverse of ``flatten_outputs``."""
    value, used = _unflatten(list(tensors), spec, 0)
    if used != len(tensors):
        raise ValueError(f"the output spec takes {used} tensors, the graph gave {len(tensors)}")
    return value


def _unflatten(tensors: list[Tensor], spec: Any, at: int) -> tuple[Any, int]:
    if spec == "tensor":
        return tensors[at], at + 1
    if "densepose" in spec:
        fields = spec["densepose"]
        return DensePoseOutput(**dict(zip(fields, tensors[at : at + len(fields)], strict=True))), at + len(fields)
    kind = "list" if "list" in spec else "tuple"
    items = []
    for item_spec in spec[kind]:
        item, at = _unflatten(tensors, item_spec, at)
        items.append(item)
    return (items if kind == "list" else tuple(items)), at


def _flat_inputs(example: tuple[Any, ...]) -> list[Tensor]:
    flat: list[Tensor] = []
    for item in example:
        flat += list(item) if isinstance(item, (list, tuple)) else [item]
    return flat


class _FlatStage(nn.Module):
    """A stage with flat tensor inputs and outputs, for the exporter."""

    def __init__(self, module: nn.Module, list_input: int, spec: Any) -> None:
        super().__init__()
        self.module = module
        self.list_input = list_input  # 0: positional tensors; n: one list of n tensors
        self.spec = spec

    def forward(self, *inputs: Tensor) -> tuple[Tensor, ...]:
        out = self.module(list(inputs)) if self.list_input else self.module(*inputs)
        return tuple(flatten_outputs(out)[0])


# --- the onnxruntime side -------------------------------------------------------------------------------------------


def ort_session(model: bytes | str | Path, threads: int | None = None) -> Any:
    """An onnxruntime CPU session of ``model`` (serialized bytes or a file), all graph optimizations, ``threads``
    intra-op threads (default: PyTorch's thread count)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or torch.get_num_threads()
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    source = model if isinstance(model, bytes) else str(model)
    return ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])


class OrtStage(nn.Module):
    """Runs one exported stage with onnxruntime where the detector expects the PyTorch module: same inputs (tensors
    or one list of tensors), same output structure. CPU tensors in and out; ``threads``: onnxruntime's intra-op
    threads (default: PyTorch's thread count)."""

    def __init__(self, model: bytes | str | Path, spec: Any, list_input: int, threads: int | None = None) -> None:
        super().__init__()
        self.session = ort_session(model, threads)
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.spec = spec
        self.list_input = list_input
        # the output structure exists at run time too: ``output_shapes`` of a trunk, read by the detector
        self._shapes: dict[str, tuple[int, int]] = {}

    def output_shapes(self) -> dict[str, tuple[int, int]]:
        return dict(self._shapes)

    def forward(self, *args: Any) -> Any:
        inputs = list(args[0]) if self.list_input else list(args)
        if not self.list_input and inputs and inputs[0].shape[0] == 0:
            # no RoI in this image: ONNX shape arithmetic is ambiguous on empty batches (a reshape with -1), so run
            # one zero RoI and keep none of its outputs, which gives the outputs' shapes
            outputs = self.forward(*[t.new_zeros((1, *t.shape[1:])) for t in inputs])
            return unflatten_outputs([t[:0] for t in flatten_outputs(outputs)[0]], self.spec)
        feeds = {
            name: np.ascontiguousarray(t.detach().cpu().float().numpy())
            for name, t in zip(self.input_names, inputs, strict=True)
        }
        outputs = self.session.run(None, feeds)
        return unflatten_outputs([torch.from_numpy(o) for o in outputs], self.spec)


class OrtTrunk(OrtStage):
    """The trunk's graph where the detector expects its backbone: returns the neck's maps by name."""

    def __init__(self, model: bytes | str | Path, names: Sequence[str], shapes: dict[str, tuple[int, int]]) -> None:
        super().__init__(model, {"tuple": ["tensor"] * len(names)}, 0)
        self.names = tuple(names)
        self._shapes = dict(shapes)

    def forward(self, *args: Any) -> Any:
        return dict(zip(self.names, super().forward(*args), strict=True))


# --- export ---------------------------------------------------------------------------------------------------------


def _export_stage(module: nn.Module, example: tuple[Any, ...]) -> tuple[bytes, Any, int]:
    list_input = len(example[0]) if len(example) == 1 and isinstance(example[0], (list, tuple)) else 0
    flat = _flat_inputs(example)
    with torch.no_grad():
        _, spec = flatten_outputs(module(*example))
    wrapper = _FlatStage(module, list_input, spec).eval()
    with torch.no_grad():
        outputs = wrapper(*flat)
    input_names = [f"in{k}" for k in range(len(flat))]
    output_names = [f"out{k}" for k in range(len(outputs))]
    # every size but the channels is dynamic: batch / RoI count, and the map sizes
    dynamic = {n: {d: f"{n}_d{d}" for d in range(t.dim()) if d != 1} for n, t in zip(input_names, flat, strict=True)}
    dynamic |= {
        n: {d: f"{n}_d{d}" for d in range(t.dim()) if d != 1} for n, t in zip(output_names, outputs, strict=True)
    }
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer warnings about shape arithmetic; the graphs are checked after
        torch.onnx.export(
            wrapper,
            tuple(flat),
            buffer,  # type: ignore[arg-type]  # (a file object is accepted, as documented)
            input_names=input_names,
            output_names=output_names,
            dynamic_axes=dynamic,
            opset_version=OPSET,
            dynamo=False,
        )
    return buffer.getvalue(), spec, list_input


def export_onnx(
    model: Detector, config: Config, out: str | os.PathLike[str], images: Sequence[Tensor], overwrite: bool = False
) -> Path:
    """Export a float ``model`` (as built from ``config`` and loaded, not prepared for inference) to the folder
    ``out``, written whole or not at all. ``images``: (3, H, W) uint8 RGB images on which the model detects
    someone (the stages are traced on what they receive)."""
    from safetensors.torch import save_file

    if model.int8:
        raise ValueError("an int8 model cannot be exported to ONNX; export the float model")
    if model.inference_only:
        raise ValueError("export the model as loaded (Predictor(..., optimize=False).model), not an optimized one")
    target = Path(out)
    if target.exists() and not overwrite:
        raise FileExistsError(f"{target} exists; pass overwrite=True (--overwrite) to replace it")
    model = model.eval()
    examples = capture_stage_inputs(model, images)
    names = stage_names(model)
    if missing := [n for n in names if n not in examples]:
        raise ValueError(f"the images reached no detection, so stages {missing} never ran; give other images")
    shapes = (model.neck or model.backbone).output_shapes()
    trunk_names = tuple(shapes)
    stages: dict[str, dict[str, Any]] = {}
    graphs: dict[str, bytes] = {}
    for name in names:
        module = Trunk(model.backbone, model.neck, trunk_names) if name == TRUNK else get_stage(model, name)
        graph, spec, list_input = _export_stage(module, examples[name])
        graphs[name] = graph
        stages[name] = {"file": f"{name}.onnx", "spec": spec, "list_input": list_input}
    inside = tuple(("backbone.", "neck.")) + tuple(f"{n}." for n in names if n != TRUNK)
    rest = {k: v.contiguous() for k, v in model.state_dict().items() if not k.startswith(inside)}
    manifest = {
        "format": ONNX_FORMAT,
        "version": ONNX_VERSION,
        "opset": OPSET,
        "stages": stages,
        "trunk_outputs": list(trunk_names),
        "trunk_shapes": {k: list(v) for k, v in shapes.items()},
        "config": to_dict(config),
    }
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    try:
        os.chmod(tmp, atomic.default_mode(directory=True))  # mkdtemp makes it private (0700)
        for name, graph in graphs.items():
            (tmp / stages[name]["file"]).write_bytes(graph)
        save_file(rest, str(tmp / "float.safetensors"))
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=1))
        if target.exists():
            shutil.rmtree(target) if target.is_dir() else target.unlink()
        os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def is_onnx_export(path: str | os.PathLike[str]) -> bool:
    manifest = Path(path) / "manifest.json"
    if not manifest.is_file():
        return False
    try:
        return bool(json.loads(manifest.read_text()).get("format") == ONNX_FORMAT)
    except (ValueError, UnicodeDecodeError, OSError):
        return False


def load_onnx(path: str | os.PathLike[str], threads: int | None = None) -> tuple[Config, Detector]:
    """(config, model) of an export folder written by ``export_onnx``: the detector with its stages run by
    onnxruntime. Errors name the file."""
    from safetensors.torch import load_file

    from densehuman.models.build import build_model
    from densehuman.validation import InputError, read_json

    root = Path(path)
    manifest_path = root / "manifest.json"
    manifest = read_json(manifest_path, "ONNX export manifest")
    if not isinstance(manifest, dict) or manifest.get("format") != ONNX_FORMAT:
        raise InputError(manifest_path, f"not a densehuman ONNX export (format {manifest.get('format')!r})")
    if manifest.get("version") != ONNX_VERSION:
        raise InputError(manifest_path, f"ONNX export version {manifest.get('version')} is not supported")
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        raise ImportError("running an ONNX export needs onnxruntime: pip install 'densehuman[export]'") from None
    try:
        config = from_dict(manifest["config"])
    except (KeyError, ValueError) as err:
        raise InputError(manifest_path, f"the stored config is invalid ({err})") from None
    model = build_model(config.model).eval()
    expected = stage_names(model)
    stages = manifest.get("stages", {})
    if sorted(stages) != sorted(expected):
        raise InputError(manifest_path, f"stages {sorted(stages)} do not fit the config's model ({expected})")
    for name in expected:
        entry = stages[name]
        file = root / entry["file"]
        if not file.is_file():
            raise InputError(file, "missing (the export folder is incomplete)")
        try:
            if name == TRUNK:
                shapes = {k: (int(v[0]), int(v[1])) for k, v in manifest["trunk_shapes"].items()}
                stage: nn.Module = OrtTrunk(file, manifest["trunk_outputs"], shapes)
            else:
                stage = OrtStage(file, entry["spec"], int(entry["list_input"]), threads)
        except Exception as err:  # onnxruntime's own error types
            raise InputError(file, f"onnxruntime cannot load it ({type(err).__name__}: {err})") from None
        set_stage(model, name, stage)
    rest_file = root / "float.safetensors"
    try:
        rest = load_file(str(rest_file))
    except Exception as err:  # safetensors' own error types
        raise InputError(rest_file, f"not readable ({err})") from None
    state = model.state_dict()
    if unknown := [k for k in rest if k not in state]:
        raise InputError(rest_file, f"tensors {unknown[:5]} do not fit the model")
    model.load_state_dict(rest, strict=False)
    model.inference_only = True
    model.exported = "onnx"
    return config, model
