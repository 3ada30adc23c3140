"""The whole-body (BODY_135) network as one ONNX file, run with onnxruntime by ``densehuman predict``.

``densehuman export --format onnx --model WHOLEBODY --out body135.onnx`` writes the network (input ``image``:
(1, 3, H, W) float, OpenPose-normalised BGR; outputs ``heatmaps`` (1, 135, H/8, W/8) and ``pafs`` (1, 304, H/8,
W/8) of the last stages; H and W dynamic, multiples of 8) with the network config and the net input height in the
model's metadata (``format`` = ``densehuman-wholebody-onnx-1``), checks onnxruntime against PyTorch on the first
image, and the file is then a ``--model`` like a checkpoint: the preprocessing and the parse stay in densehuman.
This answers what OpenPose users keep asking for (an ONNX model of BODY_135, no Caffe).
"""

from __future__ import annotations

import dataclasses
import json
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from densehuman import atomic
from densehuman.export.onnx import ort_session
from densehuman.models.bottomup.config import WholeBodyNetConfig
from densehuman.models.bottomup.network import WholeBodyOutput

WHOLEBODY_ONNX_FORMAT = "densehuman-wholebody-onnx-1"
OPSET = 17


class _FinalMaps(nn.Module):
    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, image: Tensor) -> tuple[Tensor, Tensor]:
        out = self.net(image)
        return out.final_heatmaps, out.final_pafs


def export_wholebody_onnx(
    net: nn.Module,
    config: WholeBodyNetConfig,
    out: str | Path,
    *,
    net_height: int,
    example: np.ndarray | None = None,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Write ``net`` (eval mode) as ONNX to ``out`` (module docstring) and compare onnxruntime with PyTorch on
    ``example`` ((H, W, 3) uint8 RGB, prepared as the predictor does; default a random image). Returns the
    agreement: ``{"max_abs_diff": ..., "max_abs": ...}`` over both outputs."""
    import onnx

    from densehuman.inference.wholebody_preprocess import prepare_input
    from densehuman.models.bottomup.network import normalize_openpose

    target = Path(out)
    if target.exists() and not overwrite:
        raise FileExistsError(f"{target} already exists (pass --overwrite to replace it)")
    if target.suffix.lower() != ".onnx":
        raise ValueError(f"{target}: a whole-body ONNX export is one file; name it *.onnx")
    net = net.eval().cpu()
    rgb = example if example is not None else np.random.default_rng(0).integers(0, 256, (net_height, 320, 3), np.uint8)
    prepared = prepare_input(rgb, net_height)
    x = normalize_openpose(torch.from_numpy(prepared.bgr).permute(2, 0, 1)[None].float())
    with tempfile.TemporaryDirectory() as scratch, torch.no_grad(), warnings.catch_warnings():
        # PyTorch's TorchScript exporter (plain convolutions, dynamic sizes) says it is deprecated on every call
        warnings.simplefilter("ignore", DeprecationWarning)
        traced = Path(scratch) / "net.onnx"
        torch.onnx.export(
            _FinalMaps(net).eval(),
            (x,),
            str(traced),
            input_names=["image"],
            output_names=["heatmaps", "pafs"],
            dynamic_axes={"image": {2: "height", 3: "width"}, "heatmaps": {2: "h", 3: "w"}, "pafs": {2: "h", 3: "w"}},
            opset_version=OPSET,
            dynamo=False,
        )
        model = onnx.load(str(traced))
    for key, value in (
        ("format", WHOLEBODY_ONNX_FORMAT),
        ("config", json.dumps(dataclasses.asdict(config))),
        ("net_height", str(int(net_height))),
    ):
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    data = model.SerializeToString()
    session = ort_session(data)
    heatmaps, pafs = session.run(None, {"image": x.numpy()})
    with torch.no_grad():
        reference = net(x)
    diffs = [
        float(np.abs(heatmaps - reference.final_heatmaps.numpy()).max()),
        float(np.abs(pafs - reference.final_pafs.numpy()).max()),
    ]
    scale = max(float(reference.final_heatmaps.abs().max()), float(reference.final_pafs.abs().max()), 1e-6)
    if max(diffs) > 1e-3 * scale + 1e-5:
        raise RuntimeError(f"onnxruntime disagrees with PyTorch by {max(diffs):.3g} (outputs up to {scale:.3g})")
    atomic.write_bytes(target, data)
    return {"max_abs_diff": max(diffs), "max_abs": scale}


def onnx_metadata(path: str | Path) -> dict[str, str]:
    """The metadata of an ONNX file (errors name the file)."""
    import onnx

    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{p}: no such ONNX file")
    try:
        model = onnx.load(str(p), load_external_data=False)
    except Exception as err:  # onnx raises DecodeError and others
        raise ValueError(f"{p}: not a readable ONNX model ({err})") from None
    return {entry.key: entry.value for entry in model.metadata_props}


def is_wholebody_onnx(path: str | Path) -> bool:
    p = Path(path)
    if not (p.is_file() and p.suffix.lower() == ".onnx"):
        return False
    try:
        return onnx_metadata(p).get("format") == WHOLEBODY_ONNX_FORMAT
    except (ValueError, ImportError):
        return False


class OnnxWholeBodyNet(nn.Module):
    """An exported whole-body network run by onnxruntime, called like ``WholeBodyNet`` (final stages only)."""

    def __init__(self, path: str | Path, threads: int | None = None) -> None:
        super().__init__()
        self.session = ort_session(path, threads)

    def forward(self, image: Tensor) -> WholeBodyOutput:
        heatmaps, pafs = self.session.run(None, {"image": image.detach().cpu().float().numpy()})
        return WholeBodyOutput(pafs=[torch.from_numpy(pafs)], heatmaps=[torch.from_numpy(heatmaps)])


def load_wholebody_onnx(path: str | Path) -> tuple[OnnxWholeBodyNet, dict[str, str]]:
    """The session and the metadata of an exported whole-body network (``format`` checked)."""
    meta = onnx_metadata(path)
    if meta.get("format") != WHOLEBODY_ONNX_FORMAT:
        raise ValueError(f"{path}: not a densehuman whole-body ONNX export (metadata format {meta.get('format')!r})")
    return OnnxWholeBodyNet(path), meta
