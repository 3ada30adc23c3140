"""Inference on images: run a trained DensePose R-CNN and get per-person boxes and I/U/V charts.

``Predictor(model, checkpoint)`` loads a model from a preset name (+ weights), a densehuman checkpoint file or a
run folder; calling it on an image (numpy RGB/BGR array, PIL image or path) gives an ``ImageResult``: the people
sorted by score, each with its box (xyxy, original image pixels) and its chart result at int box size, and
``ImageResult.paste()`` for full-image I, U, V and instance maps.

The names are imported on first use, so that ``densehuman.inference.cli`` (the command line's parser) does not
load PyTorch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from densehuman.inference.predictor import ImageResult, PersonResult, Predictor

__all__ = ["ImageResult", "PersonResult", "Predictor"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        return getattr(importlib.import_module("densehuman.inference.predictor"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
