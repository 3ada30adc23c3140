"""Quantized and exported models ("Making DensePose fast and light"): int8 with PyTorch's FX graph-mode quantization
(``densehuman.export.quantize``: post-training static quantization and quantization-aware training) and ONNX run
with onnxruntime (``densehuman.export.onnx``). ``load_exported`` reads either; the ``Predictor`` and
``densehuman predict`` take them wherever they take a checkpoint."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from densehuman.config import Config
    from densehuman.models.detector import Detector


def exported_kind(path: str | os.PathLike[str]) -> str | None:
    """ "int8" (a zip of ``save_int8``, or a quantization-aware training run folder holding one), "onnx" (a folder of
    ``export_onnx``) or None (anything else: a checkpoint, a run folder, a preset name)."""
    from densehuman.export.onnx import is_onnx_export
    from densehuman.export.quantize import INT8_FILE, is_int8_file

    p = Path(path)
    if p.is_file():
        return "int8" if is_int8_file(p) else None
    if p.is_dir():
        if is_onnx_export(p):
            return "onnx"
        if is_int8_file(p / INT8_FILE):
            return "int8"
    return None


def load_exported(path: str | os.PathLike[str], threads: int | None = None) -> tuple[Config, Detector] | None:
    """(config, model) of an int8 or ONNX export (see ``exported_kind``), None when ``path`` is neither."""
    kind = exported_kind(path)
    p = Path(path)
    if kind == "onnx":
        from densehuman.export.onnx import load_onnx

        return load_onnx(p, threads)
    if kind == "int8":
        from densehuman.export.quantize import INT8_FILE, load_int8

        return load_int8(p if p.is_file() else p / INT8_FILE)
    return None
